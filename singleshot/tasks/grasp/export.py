"""``grasp export``: ONNX export of the grasp nets (GG-CNN, GG-CNN2, PSPNet grasp nets) and ``.onnx``
files standing in for them.

Graph: input ``images`` float32 [B, C, S, S] (C = 1 depth, 3 RGB, 4 RGB-D, normalised as
:class:`~singleshot.tasks.grasp.predictor.GraspPredictor` does: depth minus its mean clipped to [-1, 1], RGB
/ 255 minus its mean), outputs ``pos``, ``cos``, ``sin``, ``width``, each [B, 1, S, S] raw (no
activation). The batch axis is dynamic; S is the ``input_size`` of the weights' metadata (the
graphs resize their maps to the traced size, so the side is fixed at export).

What changes for export (the numbers do not):

- the PSPNet auxiliary head (``aux=True``, training only) is dropped: its tensors are stripped
  from the weights (:func:`~singleshot.models.psp_grasp.strip_aux`) and the module removed
  (:meth:`~singleshot.models.psp_grasp.PSPGrasp.drop_aux`), so the graph has the four maps only;
- adaptive average pooling whose bins do not tile the map evenly (PSPNet's 3x3 and 6x6 bins on,
  e.g., the 38x38 map of a 300 input) has no ONNX operator; on a copy of the model it is replaced by
  :class:`StaticAdaptiveAvgPool2d`, the same average written as two products with constant bin
  matrices (the bins of ``torch.nn.AdaptiveAvgPool2d``: ``floor(i*n/o)`` to ``ceil((i+1)*n/o)``).

int8 calibration (``calib``): a Cornell or Jacquard root (``calib_samples`` evaluation views spread
over its images, pre-processed as at inference), a ``.npy`` / ``.npz`` of pre-processed inputs, or
nothing: N(0, 1) inputs with a warning (depth inputs lie in [-1, 1], so random inputs give ranges
of the right order, fit for a smoke test only).
"""

from __future__ import annotations

import copy
import logging
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from singleshot.data.input_spec import size_hw
from singleshot.errors import ConfigError, DataError, WeightsError
from singleshot.export.calibration import CALIB_FILES, calibration_from_file, eager, even_picks, random_calibration
from singleshot.export.onnx_export import ExportOptions
from singleshot.models.ggcnn import MAP_KEYS
from singleshot.structures import GRASP_INPUT_CHANNELS
from singleshot.tasks.common import make_config, refuse_overwrite, require
from singleshot.tasks.grasp.predictor import load_grasp_weights

logger = logging.getLogger(__name__)

__all__ = [
    "GraspExportOptions",
    "INPUT_NAME",
    "StaticAdaptiveAvgPool2d",
    "calibration_batches",
    "exportable",
    "export_grasp",
    "export_grasp_model",
    "export_mode",
    "input_shape",
    "load_onnx_grasp_model",
]

INPUT_NAME = "images"


def _bin_matrix(n: int, out: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """Tensor[out, n]: row i averages ``floor(i*n/out) .. ceil((i+1)*n/out) - 1``."""
    i = torch.arange(out, dtype=torch.int64)
    start = torch.div(i * n, out, rounding_mode="floor")
    end = torch.div((i + 1) * n + out - 1, out, rounding_mode="floor")
    j = torch.arange(n, dtype=torch.int64)
    inside = (j[None] >= start[:, None]) & (j[None] < end[:, None])
    return (inside.double() / (end - start)[:, None].double()).to(dtype=dtype, device=device)


class StaticAdaptiveAvgPool2d(nn.Module):
    """``nn.AdaptiveAvgPool2d`` for a map size fixed when traced, exportable for any bins.

    Bins that tile the map evenly go through ``F.adaptive_avg_pool2d`` (exported as AveragePool);
    others are computed as ``P_h @ x @ P_w^T`` with constant bin matrices P (Tensor[o, n]).

    Shapes:
        x: Tensor[B, C, H, W] -> Tensor[B, C, oh, ow].
    """

    def __init__(self, output_size: int | tuple[int | None, int | None]) -> None:
        super().__init__()
        size = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)
        self.output_size: tuple[int | None, int | None] = (size[0], size[1])

    def forward(self, x: Tensor) -> Tensor:
        h, w = int(x.shape[-2]), int(x.shape[-1])
        oh = h if self.output_size[0] is None else int(self.output_size[0])
        ow = w if self.output_size[1] is None else int(self.output_size[1])
        if h % oh == 0 and w % ow == 0:
            return F.adaptive_avg_pool2d(x, (oh, ow))
        ph = _bin_matrix(h, oh, x.dtype, x.device)
        pw = _bin_matrix(w, ow, x.dtype, x.device)
        return torch.matmul(torch.matmul(ph, x), pw.t())

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


def exportable(model: nn.Module) -> nn.Module:
    """A copy of ``model`` ready to trace: training wrappers removed, auxiliary head dropped,
    adaptive average pools replaced by :class:`StaticAdaptiveAvgPool2d`; in eval mode."""
    from singleshot.models.aux_heads import deployable

    out = copy.deepcopy(deployable(model)).eval()
    if callable(getattr(out, "drop_aux", None)):
        out.drop_aux()
    for name, module in list(out.named_modules()):
        if isinstance(module, nn.AdaptiveAvgPool2d):
            parent_name, _, child = name.rpartition(".")
            parent = out.get_submodule(parent_name) if parent_name else out
            setattr(parent, child, StaticAdaptiveAvgPool2d(module.output_size))  # type: ignore[arg-type]
    return out


def _channels(meta: dict[str, Any], default: int) -> int:
    """Input channels named by the metadata (``in_channels``, else ``input``), else ``default``."""
    return int(meta.get("in_channels") or GRASP_INPUT_CHANNELS.get(str(meta.get("input", "")), default))


def input_shape(model: nn.Module, meta: dict[str, Any]) -> tuple[int, int, int]:
    """One sample's input shape (C, S, S): C from ``in_channels`` / ``input`` of the metadata (else
    the model's), S from ``input_size`` (default 300)."""
    channels = _channels(meta, int(getattr(model, "in_channels", 1)))
    size = meta.get("input_size", 300)
    side = size_hw(size)[0]
    return (int(channels), side, side)


def export_grasp_model(
    model: nn.Module,
    meta: dict[str, Any],
    path: str | Path,
    *,
    opset: int = 17,
    dynamic_batch: bool = True,
    dynamo: bool = False,
) -> Path:
    """Export a grasp net (its weights as they are; ``model`` itself is not modified) to ``path``.

    Args:
        model: GG-CNN, GG-CNN2 or a PSPNet grasp net (auxiliary head or not), or a training wrapper.
        meta: weights metadata, embedded with ``task``, ``input_layout`` and ``input_shape`` added.
        path: the ``.onnx`` file.
        opset / dynamic_batch / dynamo: see :func:`~singleshot.export.onnx_export.export_onnx`.
    """
    from singleshot.export.onnx_export import export_onnx

    net = exportable(model)
    shape = input_shape(net, meta)
    full = dict(
        meta,
        task="grasp",
        input_layout="[B, C, S, S] float32 normalised",
        input_shape=list(shape),
        outputs=list(MAP_KEYS),
    )
    example = torch.randn((1, *shape), generator=torch.Generator().manual_seed(0))
    return export_onnx(
        net, example, path, list(MAP_KEYS), dynamic_batch, opset, full, input_names=(INPUT_NAME,), dynamo=dynamo
    )


def _dataset_batches(
    meta: dict[str, Any], shape: tuple[int, ...], root: Path, layout: str, depth: str, count: int, batch: int
) -> Iterator[np.ndarray]:
    """Evaluation views of a Cornell / Jacquard root as float32 arrays [b, C, S, S]."""
    from singleshot.data.grasp.dataset import GraspDataset, find_grasp_samples

    samples = find_grasp_samples(root, layout, **({"depth": depth} if layout == "jacquard" else {}))
    kind = str(meta.get("input", "depth"))
    crop_size = meta.get("crop_size")
    dataset = GraspDataset(
        samples, kind, shape[-1], str(meta.get("crop", "center")), int(crop_size) if crop_size else None, None
    )
    picks = even_picks(len(dataset), count)
    if not picks:
        raise DataError(f"calib={root}: no grasp images found for calibration")
    for start in range(0, len(picks), batch):
        x = torch.stack([dataset[i][0] for i in picks[start : start + batch]])
        if tuple(x.shape[1:]) != tuple(shape):
            raise DataError(f"calib={root}: views of shape {tuple(x.shape[1:])}, the graph takes {tuple(shape)}")
        yield x.contiguous().numpy()


def calibration_batches(
    meta: dict[str, Any],
    shape: tuple[int, ...],
    calib: str | Path | None,
    count: int = 32,
    batch: int = 4,
    layout: str = "auto",
    depth: str = "perfect",
    seed: int = 0,
) -> Iterator[np.ndarray]:
    """Calibration inputs [b, C, S, S] for int8 quantization (see the module docstring)."""
    if calib is None or str(calib) == "":
        warnings.warn(
            f"int8 without calib=: calibrating on {count} random N(0, 1) inputs; "
            "pass a Cornell or Jacquard root for representative activation ranges",
            stacklevel=2,
        )
        return random_calibration(shape, count, batch, seed)
    path = Path(calib)
    if not path.exists():
        raise ConfigError(f"calib={calib}: calibration data not found")
    if path.suffix.lower() in CALIB_FILES:
        return eager(calibration_from_file(path, shape, count, batch))
    return eager(_dataset_batches(meta, shape, path, layout, depth, count, batch))


def export_grasp(
    weights_path: str | Path,
    dst: str | Path | None = None,
    int8: bool = False,
    calib: str | Path | None = None,
    *,
    calib_samples: int = 32,
    calib_method: str = "minmax",
    per_channel: bool = True,
    layout: str = "auto",
    depth: str = "perfect",
    opset: int = 17,
    dynamic_batch: bool = True,
) -> dict[str, Any]:
    """Export a grasp ``.safetensors`` to ONNX, optionally quantized to int8.

    Args:
        weights_path: the weights (metadata: ``architecture``, ``input``/``in_channels``, ``input_size``).
        dst: the ``.onnx`` to write (default: beside the weights, ``<stem>.onnx`` / ``<stem>.int8.onnx``).
        int8: quantize (onnxruntime static QDQ, uint8 activations, int8 per-channel weights).
        calib: calibration data (Cornell/Jacquard root, ``.npy``/``.npz``, or None for random inputs).
        calib_samples / calib_method / per_channel: quantization settings.
        layout / depth: reading a calibration dataset (``auto``/``cornell``/``jacquard``; Jacquard depth kind).

    Returns:
        ``{"dst", "format", "architecture", "int8", "opset", "input", "input_name", "outputs",
        "bytes", "seconds"}`` plus ``"calibration_samples"`` for int8.
    """
    from singleshot.export.quantize import write_onnx_graph

    weights = Path(weights_path)
    model, meta = load_grasp_weights(weights)
    out = Path(dst) if dst else weights.with_name(weights.stem + (".int8" if int8 else "") + ".onnx")
    refuse_overwrite({"dst": out}, {"weights": weights, "calib": calib})
    meta = dict(meta, source_weights=weights.name)
    shape = input_shape(model, meta)
    t0 = time.perf_counter()
    samples = write_onnx_graph(
        out,
        lambda path: export_grasp_model(model, meta, path, opset=opset, dynamic_batch=dynamic_batch),
        int8,
        lambda: calibration_batches(meta, shape, calib, calib_samples, layout=layout, depth=depth),
        per_channel=per_channel,
        method=calib_method,
    )
    extra: dict[str, Any] = {}
    if int8:
        extra = {"calibration_samples": samples, "calibration": str(calib) if calib else "random-normal"}
    result = {
        "dst": str(out),
        "format": "onnx",
        "architecture": meta.get("architecture"),
        "int8": bool(int8),
        "opset": int(opset),
        "input": [-1 if dynamic_batch else 1, *shape],
        "input_name": INPUT_NAME,
        "outputs": list(MAP_KEYS),
        "bytes": out.stat().st_size,
        "seconds": round(time.perf_counter() - t0, 2),
        **extra,
    }
    logger.info("wrote %s (%s, %.1f s)", out, meta.get("architecture"), result["seconds"])
    return result


def load_onnx_grasp_model(path: str | Path, threads: int | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """An exported grasp ``.onnx`` as ``(model, meta)``; ``model(x)`` returns ``{"pos", "cos", "sin",
    "width"}`` like the torch net, so it can replace it in :class:`~singleshot.tasks.grasp.predictor.GraspPredictor`.

    Raises:
        WeightsError: not a grasp export, or outputs missing.
    """
    from singleshot.export.onnx_runtime import OnnxModel

    model = OnnxModel(path, threads=threads)
    meta = model.meta
    if not meta or meta.get("task") != "grasp":
        raise WeightsError(f"{path}: not an ONNX file written by `singleshot grasp export` (task {meta.get('task')!r})")
    missing = [k for k in MAP_KEYS if k not in model.output_names]
    if missing:
        raise WeightsError(f"{path}: the graph outputs {model.output_names}, lacking {missing}")
    model.in_channels = int(meta.get("input_shape", [1])[0])
    return model, meta


@dataclass
class GraspExportOptions(ExportOptions):
    """The keys of ``singleshot grasp export``: :class:`~singleshot.export.onnx_export.ExportOptions`
    plus how to read a calibration dataset (``calib`` a Cornell / Jacquard root)."""

    layout: str = "auto"
    depth: str = "perfect"


def export_mode(args: dict[str, str]) -> dict[str, Any]:
    """Weights -> ONNX (optionally int8, calibrated on ``calib=``): ``grasp export weights=W.safetensors [dst=...]``."""
    opts = make_config(GraspExportOptions, args)
    require(opts, "weights")
    return export_grasp(opts.weights, **opts.export_kwargs())
