"""Deployable weights: a safetensors file with the run's metadata as JSON in its header.

The safetensors header's metadata is a flat ``str -> str`` map; singleshot stores its whole
metadata dict (architecture, classes, mean/std, input size, clip length, metrics, ...) as one JSON
string under the key ``"singleshot"`` (plus ``"format": "pt"`` for other safetensors tools).
Loading parses no pickle at all.

Weights from other projects come as ``.pth`` pickles: :func:`load_foreign_pth`, the one loader of
foreign weights (the converters of :mod:`singleshot.convert` read through it), reads them with
``torch.load(weights_only=True)`` and refuses anything that would need arbitrary code execution.
"""

from __future__ import annotations

import json
import logging
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as safetensors_save
from torch import Tensor, nn

from singleshot.engine.checkpoint import load_checkpoint, unpickling_reason
from singleshot.engine.damaged_files import unreadable_file
from singleshot.engine.write_errors import write_explained
from singleshot.errors import WeightsError

logger = logging.getLogger(__name__)

__all__ = [
    "save_weights",
    "nonfinite_tensors",
    "load_weights",
    "load_state_into",
    "load_foreign_pth",
    "unwrap_state_dict",
    "META_KEY",
]

META_KEY = "singleshot"
_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "net", "weights")


def _plain_tensors(state: Mapping[str, Any]) -> dict[str, Tensor]:
    """Detached, contiguous CPU tensors; storages shared between entries are cloned apart.

    safetensors refuses tensors that share memory (tied weights); loading the cloned copies back
    with ``load_state_dict`` restores the tie because both names receive the same values.
    """
    out: dict[str, Tensor] = {}
    seen: set[tuple[int, int]] = set()
    for name, value in state.items():
        if not isinstance(value, Tensor):
            logger.warning("weights: skipping non-tensor state entry %r (%s)", name, type(value).__name__)
            continue
        t = value.detach().to("cpu").contiguous()
        key = (t.untyped_storage().data_ptr(), t.untyped_storage().nbytes())
        if t.numel() > 0 and key in seen:
            t = t.clone()
        seen.add((t.untyped_storage().data_ptr(), t.untyped_storage().nbytes()))
        out[name] = t
    return out


def nonfinite_tensors(state: Mapping[str, Any]) -> list[str]:
    """The names of the floating-point tensors of ``state`` holding a NaN or an infinity, in order."""
    return [
        name
        for name, t in state.items()
        if isinstance(t, Tensor) and t.is_floating_point() and t.numel() and not bool(torch.isfinite(t).all())
    ]


def save_weights(path: str | Path, model: nn.Module | Mapping[str, Tensor], meta: dict[str, Any]) -> None:
    """Write ``model``'s state dict to ``path`` (safetensors) with ``meta`` as JSON metadata.

    ``meta`` must be JSON-serialisable (numbers, strings, lists, dicts). The write is atomic.

    Raises:
        WeightsError: ``meta`` is not JSON-serialisable, or a tensor holds NaN or inf (named; such
            weights are never written as deployable weights).
        TrainingError: the file could not be written (a full disk), naming it; the file that was
            there before is unchanged.
    """
    path = Path(path)
    state = model.state_dict() if isinstance(model, nn.Module) else model
    try:
        meta_json = json.dumps(meta, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise WeightsError(f"{path}: metadata is not JSON-serialisable ({exc})") from exc
    tensors = _plain_tensors(state)
    bad = nonfinite_tensors(tensors)
    if bad:
        shown = ", ".join(bad[:8]) + (f", ... ({len(bad) - 8} more)" if len(bad) > 8 else "")
        raise WeightsError(
            f"{path}: refused to save weights with non-finite values (NaN or inf) in {len(bad)} of "
            f"{len(tensors)} tensors: {shown}"
        )
    data = safetensors_save(tensors, metadata={"format": "pt", META_KEY: meta_json})
    write_explained(path, lambda f: f.write(data))  # a full disk: one line naming the file
    logger.debug("saved weights %s (%d tensors)", path, len(state))


def load_weights(path: str | Path, device: str | torch.device = "cpu") -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Read a safetensors file; returns ``(state_dict, meta)``.

    ``meta`` is the parsed ``"singleshot"`` JSON, or ``{}`` (with a warning) for a safetensors
    file written by another tool. Raises :class:`WeightsError` naming the file on any problem.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: weights file not found")
    try:
        with safe_open(str(path), framework="pt", device=str(device)) as f:
            header = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as exc:  # empty, truncated or damaged (engine.damaged_files)
        raise unreadable_file(path, "safetensors file", exc) from exc
    raw = header.get(META_KEY)
    if raw is None:
        logger.warning("%s: safetensors file has no %r metadata; returning empty metadata", path, META_KEY)
        return state, {}
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise WeightsError(f"{path}: the {META_KEY!r} metadata is not valid JSON ({exc})") from exc
    if not isinstance(meta, dict):
        raise WeightsError(f"{path}: the {META_KEY!r} metadata must be a JSON object, got {type(meta).__name__}")
    return state, meta


_CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt")


def is_checkpoint(path: str | Path) -> bool:
    """Whether ``path`` is a training checkpoint (``last.pt``, ``best.pt``): a ``.pt``/``.pth``/
    ``.ckpt`` name, or (other than ``.safetensors``) a file that starts like a ``torch.save`` zip."""
    path = Path(path)
    if path.suffix.lower() in _CHECKPOINT_SUFFIXES:
        return True
    if path.suffix.lower() == ".safetensors":  # its first 8 bytes are a header length, any value
        return False
    try:
        with open(path, "rb") as f:
            return f.read(2) == b"PK"
    except OSError:
        return False


def _checkpoint_weights(path: Path) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """``(state, meta)`` of the deployable model inside a training checkpoint.

    The model state is the EMA's when the run kept one (that is what the run evaluated and saved as
    ``best.safetensors``), else the trained module's; a training wrapper's own tensors (teacher,
    auxiliary head) are left out by the prefix the trainer recorded. The metadata is the one the
    run writes into its ``.safetensors`` files, stored in the checkpoint as ``weights_meta``.
    """
    ckpt = load_checkpoint(path)
    saved = ckpt.get("weights_meta")
    if not isinstance(saved, Mapping) or not isinstance(saved.get("meta"), Mapping):
        raise WeightsError(
            f"{path}: this checkpoint holds no weights metadata (architecture, classes, input size), so the "
            "model can not be rebuilt from it; it was written by an older singleshot. Use the run's "
            "best.safetensors, or resume the run once so that its checkpoints are written again"
        )
    meta = dict(saved["meta"])
    ema = ckpt.get("ema")
    use_ema = isinstance(ema, Mapping) and isinstance(ema.get("model"), Mapping)
    state = dict(ema["model"] if use_ema else ckpt["model"])
    prefix = str(saved.get("prefix") or "")
    if prefix:
        cut = prefix + "."
        state = {k[len(cut) :]: v for k, v in state.items() if k.startswith(cut)}
    meta.setdefault("epoch", ckpt.get("epoch"))
    logger.info(
        "%s: training checkpoint of epoch %s; using its %s weights (%d tensors)",
        path,
        ckpt.get("epoch"),
        "EMA" if use_ema else "model",
        len(state),
    )
    return state, meta


def read_model_weights(path: str | Path) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """``(state_dict, meta)`` of a trained model given as ``weights=``: a ``.safetensors`` file, or
    a training checkpoint (``last.pt``, ``best.pt``) read with ``torch.load(weights_only=True)``.

    The one reader of model weights of every family (``val``, ``predict``, ``export``, ``train
    weights=``, distillation teachers).

    Raises:
        WeightsError: naming the file: missing, unreadable, or a checkpoint without weights metadata.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: weights file not found")
    if is_checkpoint(path):
        return _checkpoint_weights(path)
    return load_weights(path)


def finetune_from(model: nn.Module, state: Mapping[str, Tensor], source: str | Path) -> dict[str, list[str]]:
    """Start ``model`` from the tensors of a trained model of the same family (fine-tuning).

    Tensors whose name and shape match are copied; those of ``model`` left as built (freshly
    initialised, e.g. class-count dependent heads when the classes differ) are "re-initialised";
    tensors of ``state`` with no matching name or shape are "dropped". The counts are logged, and
    the names where there are few.

    Returns:
        ``{"loaded": [...], "reinitialised": [...], "dropped": [...]}`` (tensor names).

    Raises:
        WeightsError: not a single tensor fits ``model``.
    """
    own = model.state_dict()
    loaded = [k for k, v in state.items() if k in own and tuple(own[k].shape) == tuple(v.shape)]
    keep = set(loaded)
    reinit = [k for k in own if k not in keep]
    dropped = [k for k in state if k not in keep]
    if not loaded:
        raise WeightsError(f"{source}: none of its {len(state)} tensors fits the model being trained")
    with torch.no_grad():
        for k in loaded:
            own[k].copy_(state[k].to(own[k].dtype))

    def names(items: list[str]) -> str:
        return f": {', '.join(items)}" if 0 < len(items) <= 12 else ""

    logger.info(
        "weights=%s: loaded %d tensors, re-initialised %d%s, dropped %d%s",
        source,
        len(loaded),
        len(reinit),
        names(reinit),
        len(dropped),
        names(dropped),
    )
    return {"loaded": loaded, "reinitialised": reinit, "dropped": dropped}


def load_state_into(
    model: nn.Module, state: Mapping[str, Tensor], source: str | Path, architecture: str | None = None
) -> nn.Module:
    """``model.load_state_dict(state)`` (strict), returning ``model``.

    Raises:
        WeightsError: missing, unexpected or mis-shaped tensors, naming ``source`` (the file, or
            e.g. ``teacher=<file>``) and ``architecture`` (default: the model's class name).
    """
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        arch = architecture or type(model).__name__
        raise WeightsError(f"{source}: the tensors do not fit {arch!r}: {str(exc)[:300]}") from None
    return model


def unwrap_state_dict(obj: Any, source: str = "<object>") -> dict[str, Tensor]:
    """Find the tensor state dict inside a checkpoint from another project.

    Descends through wrapper dicts (keys tried in order: ``state_dict``, ``model_state_dict``,
    ``model``, ``net``, ``weights``) until it reaches a dict whose values are all tensors, then
    strips a ``module.`` prefix (``DataParallel`` / DDP) when every key carries it.
    ``source`` names the file in error messages.
    """
    current = obj
    for _ in range(8):  # wrappers are never this deep; bounds the loop on odd inputs
        if not isinstance(current, Mapping):
            raise WeightsError(f"{source}: expected a dict of tensors, found {type(current).__name__}")
        if current and all(isinstance(v, Tensor) for v in current.values()):
            break
        key = next((k for k in _WRAPPER_KEYS if isinstance(current.get(k), Mapping)), None)
        if key is None:
            bad = [k for k, v in current.items() if not isinstance(v, Tensor)][:5]
            raise WeightsError(
                f"{source}: no tensor state dict found (keys {sorted(map(str, current))[:8]}; "
                f"non-tensor entries such as {bad} and no wrapper key among {list(_WRAPPER_KEYS)})"
            )
        logger.info("%s: using the state dict nested under %r", source, key)
        current = current[key]
    else:
        raise WeightsError(f"{source}: state dict nested too deeply")
    state = {str(k): v for k, v in current.items()}
    prefix = "module."
    if state and all(k.startswith(prefix) for k in state):
        logger.info("%s: stripped the 'module.' prefix (nn.DataParallel / DDP) from every key", source)
        state = {k[len(prefix) :]: v for k, v in state.items()}
    return state


_NUMPY_SCALAR_GLOBALS: list = [np.dtype, np._core.multiarray.scalar] + [
    type(np.dtype(c)) for c in ("float64", "float32", "int64", "int32", "bool")
]


def load_foreign_pth(path: str | Path) -> dict[str, Tensor]:
    """Read another project's ``.pth``/``.pt`` weights safely and return the tensor state dict.

    Uses ``torch.load(weights_only=True)``: files that pickle arbitrary Python objects (a whole
    ``nn.Module``, an ``argparse.Namespace``, custom classes) are refused with a
    :class:`WeightsError` that names the file and says why. The result goes through
    :func:`unwrap_state_dict`.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: weights file not found")
    try:
        # NumPy scalars and dtypes (e.g. a best score saved beside the weights, as YOWO's
        # checkpoints do) are plain data: allow their reconstruction, nothing else.
        with torch.serialization.safe_globals(_NUMPY_SCALAR_GLOBALS):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise WeightsError(
            f"{path}: refused. The file pickles Python objects other than tensors and plain "
            f"containers ({unpickling_reason(exc)}), so loading it would need arbitrary code "
            "execution. If you trust the file, re-save just "
            "its state dict (torch.save(obj['state_dict'] or model.state_dict(), ...)) in the "
            "environment that made it, and load that instead."
        ) from exc
    except Exception as exc:  # RuntimeError, EOFError, OSError, ... from an empty, truncated, damaged or foreign file
        raise unreadable_file(path, "PyTorch file", exc) from exc
    return unwrap_state_dict(obj, source=str(path))
