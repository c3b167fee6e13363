"""Two-stream ACT as one weights file, and as one exported ONNX graph.

A two-stream ACT run (``modality=rgb+diff|rgb+flow``, :mod:`singleshot.tasks.action.act_two_stream`)
writes one self-contained ``best.safetensors``:

* tensors: those of :class:`~singleshot.tasks.action.act_two_stream.TwoStreamACT`, ``rgb.<name>`` (the
  RGB stream) and ``flow.<name>`` (the motion stream);
* metadata: the RGB stream's (what every reader of ACT weights reads: ``architecture``, ``classes``,
  ``K``, the input convention, ``train_config``, ``metrics``) plus ``two_stream``: ``{"modality": diff |
  flow, "fusion_weight": w, "flow": the motion stream's metadata}`` (its ``arch_kwargs``, with
  ``in_channels`` 15 for FLOW5, its ``flow_stack`` and ``flow_images``). The training checkpoints
  (``last.pt``, ``best.pt``) hold the same tensors under the same metadata.

:func:`two_stream_model` rebuilds the :class:`TwoStreamACT` of such a file; ``action val``/``predict``
fuse its streams as training's evaluation did
(:func:`~singleshot.tasks.action.act_two_stream.fuse_streams`); ``action export`` writes
:class:`FusedTwoStreamACT`, one graph of inputs ``frames`` [B, K, 3, S, S] and ``motion``
[B, K, 3n, S, S] and outputs ``loc`` and ``conf`` (the fused log-probabilities).

Older runs wrote the streams as two files, ``best.safetensors`` (RGB) naming ``best_flow.safetensors``
beside it in ``flow_weights``, and checkpoints holding both streams under the RGB metadata:
:func:`with_flow_beside` reads them as the one-file layout while that second file is beside them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from singleshot.engine.weights import finetune_from, load_state_into, load_weights, read_model_weights
from singleshot.errors import ConfigError, WeightsError
from singleshot.export.onnx_export import export_onnx
from singleshot.models import model_from_meta
from singleshot.models.registry import check_weights_task
from singleshot.tasks.action.act_two_stream import TwoStreamACT, fuse_streams

logger = logging.getLogger(__name__)

__all__ = [
    "FusedTwoStreamACT",
    "INPUT_NAMES",
    "TWO_STREAM_KEY",
    "check_exportable",
    "embedded_streams",
    "export_two_stream",
    "finetune_act",
    "is_two_stream",
    "read_finetune_weights",
    "rgb_stream",
    "stream_metas",
    "stream_shapes",
    "two_stream_meta",
    "two_stream_model",
    "with_flow_beside",
]

#: the metadata key of a two-stream file (see the module docstring).
TWO_STREAM_KEY = "two_stream"
#: the exported two-stream graph's inputs: the RGB window, the motion stream's window.
INPUT_NAMES = ("frames", "motion")
#: ACT's fusion weight, for motion metadata without one (older files).
_ACT_WEIGHT = 0.5
#: run-wide entries kept once, at the top level, rather than in the motion stream's metadata too.
_TOP_LEVEL_ONLY = ("train_config", "metrics", "epoch", "flow_weights", TWO_STREAM_KEY)


def two_stream_meta(meta: Mapping[str, Any], flow_meta: Mapping[str, Any]) -> dict[str, Any]:
    """The metadata of a two-stream file: the RGB stream's ``meta`` with ``two_stream`` holding the
    motion stream's ``flow_meta`` (its ``modality`` and ``fusion_weight`` also at ``two_stream``'s top)."""
    flow = {k: v for k, v in flow_meta.items() if k not in _TOP_LEVEL_ONLY}
    entry = {
        "modality": str(flow_meta.get("modality", "diff")),
        "fusion_weight": float(flow_meta.get("fusion_weight", _ACT_WEIGHT)),
        "flow": flow,
    }
    return {**{k: v for k, v in meta.items() if k not in ("flow_weights", TWO_STREAM_KEY)}, TWO_STREAM_KEY: entry}


def is_two_stream(meta: Mapping[str, Any]) -> bool:
    """Whether ``meta`` is a two-stream file's (:func:`two_stream_meta`)."""
    return isinstance(meta.get(TWO_STREAM_KEY), Mapping)


def stream_metas(meta: Mapping[str, Any], source: str | Path = "") -> tuple[dict[str, Any], dict[str, Any]]:
    """``(RGB metadata, motion metadata)`` of a two-stream file's ``meta``; the motion stream's carries
    ``modality`` and ``fusion_weight`` (as the predictor reads them).

    Raises:
        WeightsError: naming ``source``: ``two_stream`` lacks the motion stream's metadata.
    """
    entry = meta[TWO_STREAM_KEY]
    flow = entry.get("flow")
    if not isinstance(flow, Mapping):
        raise WeightsError(f"{source}: two-stream weights metadata lacks the motion stream's ('two_stream.flow')")
    rgb = {k: v for k, v in meta.items() if k != TWO_STREAM_KEY}
    fusion = float(entry.get("fusion_weight", flow.get("fusion_weight", _ACT_WEIGHT)))
    return rgb, dict(flow, modality=str(entry.get("modality", flow.get("modality", "diff"))), fusion_weight=fusion)


def _stream_state(state: Mapping[str, Tensor], stream: str) -> dict[str, Tensor]:
    """The tensors of ``stream`` (``rgb`` or ``flow``) of a two-stream state, the prefix removed."""
    cut = stream + "."
    return {k[len(cut) :]: v for k, v in state.items() if k.startswith(cut)}


def _is_two_stream_state(state: Mapping[str, Tensor]) -> bool:
    return bool(state) and all(k.startswith(("rgb.", "flow.")) for k in state)


def with_flow_beside(
    state: dict[str, Tensor], meta: dict[str, Any], path: str | Path
) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Weights of the older two-file layout as the one-file layout: an RGB file (or a checkpoint
    holding both streams) whose ``flow_weights`` names the motion stream's file beside ``path`` ->
    both streams' tensors (``rgb.``, ``flow.``) and :func:`two_stream_meta`. Anything else, and an
    RGB file whose second file is not there (the predictor names it unless ``flow_weights=none``),
    is returned as it is.

    Raises:
        WeightsError: a checkpoint of both streams whose second file (its motion metadata) is missing.
    """
    name = str(meta.get("flow_weights") or "")
    if is_two_stream(meta) or not name or name.lower() == "none":
        return state, meta
    beside = Path(path).parent / name
    both = _is_two_stream_state(state)
    if not beside.is_file():
        if both:
            raise WeightsError(
                f"{path}: a checkpoint of a two-stream run of the older two-file layout; its motion stream's "
                f"metadata is in {beside}, not found. Put that file beside it, or use a newer run's checkpoint"
            )
        return state, meta
    flow_state, flow_meta = load_weights(beside)
    logger.info("%s: two-stream weights of the older two-file layout, the motion stream from %s", path, beside)
    if not both:
        state = {**{f"rgb.{k}": v for k, v in state.items()}, **{f"flow.{k}": v for k, v in flow_state.items()}}
    return state, two_stream_meta(meta, flow_meta)


def two_stream_model(state: Mapping[str, Tensor], meta: Mapping[str, Any], source: str | Path) -> TwoStreamACT:
    """The :class:`TwoStreamACT` of a two-stream file's tensors and metadata, loaded strictly.

    Raises:
        WeightsError: naming ``source``: metadata that builds no ACT, or tensors that do not fit it.
    """
    rgb_meta, flow_meta = stream_metas(meta, source)
    rgb = model_from_meta(rgb_meta, task="action", source=source)
    flow = model_from_meta(flow_meta, task="action", source=f"{source} (motion stream)")
    model = TwoStreamACT(rgb, flow)
    load_state_into(model, dict(state), source, f"two-stream {rgb_meta.get('architecture')}")
    return model


def rgb_stream(
    state: dict[str, Tensor], meta: dict[str, Any], path: str | Path
) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """``(tensors, metadata)`` of the RGB stream of two-stream weights (of either layout), else as given."""
    state, meta = with_flow_beside(state, meta, path)
    return (_stream_state(state, "rgb"), stream_metas(meta, path)[0]) if is_two_stream(meta) else (state, meta)


def embedded_streams(
    model: nn.Module, meta: Mapping[str, Any], source: str | Path = ""
) -> tuple[nn.Module, tuple[nn.Module, dict[str, Any]] | None]:
    """``(RGB stream, (motion stream, its metadata) or None)`` of the model of ``weights=``: a
    :class:`TwoStreamACT` -> its two streams; an exported two-stream graph (two inputs) -> the graph
    as both (the predictor runs it once, fused); any other model -> ``(model, None)``."""
    if not is_two_stream(meta):
        return model, None
    flow_meta = stream_metas(meta, source)[1]
    if isinstance(model, TwoStreamACT):
        return model.rgb, (model.flow, flow_meta)
    if len(getattr(model, "input_names", ())) == len(INPUT_NAMES):
        return model, (model, flow_meta)
    return model, None


# ---------------------------------------------------------------- fine-tuning (train weights=)
def read_finetune_weights(path: str | Path) -> tuple[dict[str, dict[str, Tensor]], dict[str, Any]]:
    """``train weights=`` of ACT: ``({"rgb": tensors[, "flow": tensors]}, RGB metadata)`` of a one- or
    two-stream file or checkpoint (the RGB stream of a two-stream file starts an RGB model).

    Raises:
        WeightsError: missing, unreadable, or weights of another task.
    """
    state, meta = with_flow_beside(*read_model_weights(path), path)
    check_weights_task(meta, "action", path)
    if not is_two_stream(meta):
        return {"rgb": state}, meta
    return {s: _stream_state(state, s) for s in ("rgb", "flow")}, stream_metas(meta, path)[0]


def finetune_act(
    model: nn.Module, tensors: Mapping[str, Tensor], source: str, meta: Mapping[str, Any], arch: str
) -> None:
    """Start ``model`` (an ACT stream of ``arch``) from ``tensors`` of ``source`` whose metadata is
    ``meta`` (:func:`~singleshot.engine.weights.finetune_from`: the tensors whose name and shape fit)."""
    theirs = str(meta.get("architecture", ""))
    if arch and theirs and theirs != arch:
        logger.warning(
            "weights=%s holds %s weights, not %s: only the tensors that fit are loaded", source, theirs, arch
        )
    finetune_from(model, tensors, source)


# ---------------------------------------------------------------- export
class FusedTwoStreamACT(nn.Module):
    """A :class:`TwoStreamACT`'s streams and their fusion as one module (what ``action export`` writes).

    ``forward(frames Tensor[B, K, 3, S, S], motion Tensor[B, K, 3n, S, S])`` (each normalised with its
    stream's mean/std; n = 1 but for a flow stack) -> ``{"loc" [B, P, 4K] of the RGB stream, "conf"
    [B, P, C + 1] log of the fused class probabilities}`` (:func:`fuse_streams` with ``fusion_weight``).
    """

    def __init__(self, model: TwoStreamACT, fusion_weight: float) -> None:
        super().__init__()
        self.rgb, self.flow, self.fusion_weight = model.rgb, model.flow, float(fusion_weight)

    def forward(self, frames: Tensor, motion: Tensor) -> dict[str, Tensor]:
        return fuse_streams(self.rgb(frames), self.flow(motion), self.fusion_weight)


def stream_shapes(model: TwoStreamACT) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """One sample's shape of each input of the exported graph: (K, 3, S, S) and (K, 3n, S, S)."""
    k, s = int(model.rgb.k), int(model.rgb.image_size)
    return (k, int(getattr(model.rgb, "in_channels", 3)), s, s), (k, int(getattr(model.flow, "in_channels", 3)), s, s)


def check_exportable(model: nn.Module, meta: Mapping[str, Any], weights: Path, int8: bool) -> None:
    """Refuse what ``action export`` of ``weights`` can not write whole: int8 of a two-stream ACT (the
    quantizer takes one-input graphs), and an RGB file of the older layout whose motion stream is
    not beside it (the graph would hold one stream).

    Raises:
        ConfigError: int8 of two streams. WeightsError: the older layout's second file missing.
    """
    if isinstance(model, TwoStreamACT) and int8:
        raise ConfigError(
            f"weights={weights}: int8 export of a two-stream ACT is not supported (the quantizer takes "
            "one-input graphs); export it as float (int8=false)"
        )
    if not isinstance(model, TwoStreamACT) and meta.get("flow_weights"):
        raise WeightsError(
            f"weights={weights}: two-stream weights of the older two-file layout whose motion stream "
            f"{weights.parent / str(meta['flow_weights'])} is not beside them; the export would hold the RGB "
            "stream alone. Copy that file beside them"
        )


def export_two_stream(
    model: TwoStreamACT,
    meta: dict[str, Any],
    path: str | Path,
    *,
    opset: int = 17,
    dynamic_batch: bool = True,
    dynamo: bool = False,
) -> Path:
    """Export a two-stream ACT as one graph (:class:`FusedTwoStreamACT`; inputs :data:`INPUT_NAMES`,
    outputs ``loc`` and ``conf``) with ``meta`` (a two-stream file's) inside, ``input_layout``,
    ``input_shape`` and ``motion_input_shape`` (one sample each) added."""
    fusion = stream_metas(meta, path)[1]["fusion_weight"]
    shapes = stream_shapes(model)
    g = torch.Generator().manual_seed(0)
    example = tuple(torch.randn((1, *shape), generator=g) for shape in shapes)
    full = dict(
        meta,
        task="action",
        family="act",
        input_layout="frames [B, K, 3, S, S] and motion [B, K, 3n, S, S], float32 normalised; outputs fused",
        input_shape=list(shapes[0]),
        motion_input_shape=list(shapes[1]),
    )
    full.setdefault("num_classes", int(model.rgb.num_classes))
    fused = FusedTwoStreamACT(model, fusion).eval()
    return export_onnx(fused, example, path, ["loc", "conf"], dynamic_batch, opset, full, INPUT_NAMES, dynamo)
