"""Shared helpers of the weight converters: safe loading, key checks and strict loading."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import torch
from torch import Tensor, nn

from singleshot.errors import WeightsError

logger = logging.getLogger(__name__)

StateSource = Union[str, Path, Mapping[str, Tensor]]

#: wrapper keys under which training scripts commonly nest the model's state dict.
_NESTED_KEYS = ("model", "state_dict", "model_state_dict", "net")


@dataclass
class ConvertedWeights:
    """A state dict in singleshot's key layout plus what is needed to reproduce the source's predictions.

    Attributes:
        state_dict: tensors keyed as in the target singleshot model (``backbone.*``, ``head.*``).
        metadata: JSON-serialisable facts: architecture, classes, input size, channel order,
            mean/std (in 0..1 pixel units), post-processing thresholds and the source's name.
        origin: our key -> the source's key (for error messages).
        source: the file (or ``<state dict>``) the weights came from.
    """

    state_dict: dict[str, Tensor]
    metadata: dict[str, Any] = field(default_factory=dict)
    origin: dict[str, str] = field(default_factory=dict)
    source: str = "<state dict>"


def load_state_dict_file(path: str | Path) -> dict[str, Tensor]:
    """Read a ``.pth``/``.pt`` state dict with ``torch.load(weights_only=True)`` (no arbitrary unpickling).

    A dict nesting the weights under ``model``/``state_dict`` is unwrapped and a ``module.`` prefix
    (``nn.DataParallel``) is removed, each with a logged warning.

    Raises:
        WeightsError: the file is missing, is not a safe pickle of tensors, or holds no state dict.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: weights file not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError, ...
        raise WeightsError(f"{path}: cannot be read as a weights-only torch file: {exc}") from exc
    return normalise_state_dict(obj, str(path))


def normalise_state_dict(obj: object, source: str) -> dict[str, Tensor]:
    """Unwrap a nested checkpoint and strip ``module.`` prefixes; every value must be a tensor."""
    if isinstance(obj, Mapping):
        for key in _NESTED_KEYS:
            inner = obj.get(key)
            if isinstance(inner, Mapping) and inner and all(isinstance(v, Tensor) for v in inner.values()):
                logger.warning("%s: using the state dict nested under %r", source, key)
                obj = inner
                break
    if not isinstance(obj, Mapping) or not obj:
        raise WeightsError(f"{source}: expected a non-empty state dict (a mapping of names to tensors)")
    bad = [k for k, v in obj.items() if not isinstance(v, Tensor)]
    if bad:
        raise WeightsError(f"{source}: entries that are not tensors: {bad[:5]}")
    sd = {str(k): v for k, v in obj.items()}
    if all(k.startswith("module.") for k in sd):
        logger.warning("%s: stripped the 'module.' prefix of nn.DataParallel from every key", source)
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return sd


def as_state_dict(source: StateSource) -> tuple[dict[str, Tensor], str]:
    """A state dict from a path or a mapping, and a name for error messages."""
    if isinstance(source, (str, Path)):
        return load_state_dict_file(source), str(source)
    return normalise_state_dict(source, "<state dict>"), "<state dict>"


def rename_keys(
    sd: Mapping[str, Tensor], map_key: Callable[[str], str | None], source: str, what: str
) -> tuple[dict[str, Tensor], dict[str, str]]:
    """Rename every key of ``sd`` with ``map_key``; a key it does not know is a WeightsError.

    Returns:
        (state dict in singleshot's keys, our key -> the source's key).
    """
    out: dict[str, Tensor] = {}
    origin: dict[str, str] = {}
    for key, value in sd.items():
        ours = map_key(key)
        if ours is None:
            raise WeightsError(f"{source}: key {key!r} is not part of {what}")
        out[ours] = value
        origin[ours] = key
    return out, origin


def require(sd: Mapping[str, Tensor], key: str, source: str, ndim: int | None = None) -> Tensor:
    """``sd[key]``, or a WeightsError naming the missing key (and a wrong number of dimensions)."""
    if key not in sd:
        raise WeightsError(f"{source}: missing key {key!r}")
    t = sd[key]
    if ndim is not None and t.dim() != ndim:
        raise WeightsError(f"{source}: {key!r} has shape {tuple(t.shape)}, expected {ndim} dimensions")
    return t


def load_strict(
    model: nn.Module, state_dict: Mapping[str, Tensor], source: str, origin: Mapping[str, str] | None = None
) -> None:
    """Check keys and shapes against ``model``, then ``model.load_state_dict(strict=True)``.

    Args:
        origin: our key -> the source's key, to name the source's key in errors.

    Raises:
        WeightsError: a key is missing or unexpected, or a shape differs (the message names the key).
    """
    origin = origin or {}
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    if missing:
        raise WeightsError(f"{source}: no weights for {len(missing)} model keys, first {missing[:5]}")
    unexpected = [origin.get(k, k) for k in state_dict if k not in expected]
    if unexpected:
        raise WeightsError(f"{source}: {len(unexpected)} keys the model does not have, first {unexpected[:5]}")
    for key, ref in expected.items():
        got = state_dict[key]
        if tuple(got.shape) != tuple(ref.shape):
            name = f"{origin[key]!r} (-> {key!r})" if key in origin else repr(key)
            raise WeightsError(f"{source}: {name} has shape {tuple(got.shape)}, the model expects {tuple(ref.shape)}")
    model.load_state_dict(dict(state_dict), strict=True)
