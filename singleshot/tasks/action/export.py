"""``action export``: ONNX export of the action detectors (YOWO, ACT) and ``.onnx`` files standing
in for them in the members' predictors.

Graphs (batch axis dynamic, every other axis fixed at export):

- YOWO: input ``clips`` float32 [B, 3, T, H, W] (normalised as the metadata says, key frame last),
  output ``out`` [B, A * (5 + C), H/32, W/32] -- the raw region map of
  :class:`~singleshot.models.yowo.YOWO`;
- ACT: input ``frames`` float32 [B, K, 3, S, S] (the K frames of a tubelet in temporal order),
  outputs ``loc`` [B, P, 4K] and ``conf`` [B, P, C + 1] of
  :class:`~singleshot.models.act.ACTDetector` (fc6 with one dilation per stream included);
- two-stream ACT: one graph of inputs ``frames`` and ``motion`` [B, K, 3n, S, S] (the motion
  stream's window: RGB differences, or n stacked flow images per frame) and outputs ``loc`` (the
  RGB stream's) and ``conf`` (log of the fused class probabilities), as the predictor fuses them
  (:mod:`singleshot.tasks.action.act_weights`); float only.

The weights' metadata travels inside the file (``metadata_props["singleshot"]``), with ``family``
and ``input_layout`` added, and the resize policy written explicitly (``resize``: bilinear,
``antialias`` true or false; weights without the key are antialiased, as the predictors read them).
The graph's input is each frame resized on uint8 (bilinear, antialiased when shrinking if
``resize.antialias``), scaled to [0, 1], flipped for ``channel_order`` BGR and normalised with
``mean``/``std``. :func:`load_onnx_action_model` gives an
:class:`~singleshot.export.onnx_runtime.OnnxModel` carrying the attributes the predictors and
post-processors read from the torch model (YOWO: ``anchors``, ``num_classes``, ``num_anchors``,
``clip_len``; ACT: ``priors``, ``k``, ``num_classes``, ``prior_spec``, ``image_size``).

int8 calibration inputs (``calib``), in order of preference:

- an action dataset (a YOWO root or a ground-truth file such as an ACT ``*-GT.pkl``; frames under
  ``frames`` or beside it): ``calib_samples`` test clips spread evenly over the split, pre-processed
  exactly as at inference (resize with the metadata's policy, /255, channel order, mean/std);
- a ``.npy`` / ``.npz`` file of already pre-processed inputs in the graph's layout;
- nothing: ``calib_samples`` inputs drawn from N(0, 1), with a warning. Normalised frames have
  roughly unit spread, so this gives usable ranges for a smoke test, but activation ranges of
  random noise are not those of real clips: use data for any accuracy claim.

The file and random sources are :mod:`singleshot.export.calibration`'s, shared by every family.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from singleshot.data.action.clip_transforms import ClipResize
from singleshot.data.action.datasets import ActTubeletDataset, YowoClipDataset
from singleshot.data.action.readers import load_action_annotations
from singleshot.data.input_spec import InputSpec, resize_meta, size_hw
from singleshot.errors import ConfigError, DataError, WeightsError
from singleshot.export.calibration import CALIB_FILES, calibration_from_file, eager, even_picks, random_calibration
from singleshot.export.onnx_export import ExportOptions, export_onnx
from singleshot.export.onnx_runtime import OnnxModel
from singleshot.export.quantize import write_onnx_graph
from singleshot.models import model_from_meta
from singleshot.models.act import ACTDetector
from singleshot.models.aux_heads import deployable
from singleshot.models.yowo import YOWO
from singleshot.tasks.action.act_two_stream import TwoStreamACT
from singleshot.tasks.action.act_weights import INPUT_NAMES as TWO_STREAM_INPUTS
from singleshot.tasks.action.act_weights import check_exportable, export_two_stream, stream_shapes
from singleshot.tasks.action.predictor import load_action_weights
from singleshot.tasks.common import make_config, refuse_overwrite, require

logger = logging.getLogger(__name__)

__all__ = [
    "ActionExportOptions",
    "INPUT_NAMES",
    "OUTPUT_NAMES",
    "action_family",
    "calibration_batches",
    "example_input",
    "export_action",
    "export_action_model",
    "export_mode",
    "input_shape",
    "load_onnx_action_model",
]

#: graph input name per family.
INPUT_NAMES: dict[str, str] = {"yowo": "clips", "act": "frames"}
#: graph outputs per family (the keys of the torch model's output dict).
OUTPUT_NAMES: dict[str, tuple[str, ...]] = {"yowo": ("out",), "act": ("loc", "conf")}
_LAYOUTS = {"yowo": "[B, 3, T, H, W] float32 normalised, key frame last", "act": "[B, K, 3, S, S] float32 normalised"}


# ---------------------------------------------------------------- export of a model
def action_family(model: nn.Module) -> str:
    """``"yowo"`` or ``"act"`` for a YOWO / ACT detector (training wrappers removed first)."""
    if isinstance(model, YOWO):
        return "yowo"
    if isinstance(model, ACTDetector):
        return "act"
    raise ConfigError(f"action export: {type(model).__name__} is neither a YOWO nor an ACT detector")


def input_shape(model: nn.Module, meta: dict[str, Any]) -> tuple[int, ...]:
    """One sample's input shape: YOWO (3, T, H, W) from ``clip_len`` / ``input_size`` of the metadata
    (else the model's ``clip_len`` and 224); ACT (K, C, S, S) from the model (C = 15 for a FLOW5 stream;
    a two-stream ACT: its RGB input, the motion input's in :func:`~singleshot.tasks.action.act_weights.stream_shapes`)."""
    model = deployable(model)
    if isinstance(model, TwoStreamACT):
        model = model.rgb
    if action_family(model) == "act":
        s = int(model.image_size)
        return (int(model.k), int(getattr(model, "in_channels", 3)), s, s)
    size = meta.get("input_size", [224, 224])
    h, w = size_hw(size)
    return (3, int(meta.get("clip_len", getattr(model, "clip_len", 16))), h, w)


def example_input(model: nn.Module, meta: dict[str, Any], batch: int = 1, seed: int = 0) -> Tensor:
    """A N(0, 1) input of the graph's shape with ``batch`` samples (see :func:`input_shape`)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn((batch, *input_shape(model, meta)), generator=g)


def export_action_model(
    model: nn.Module,
    meta: dict[str, Any],
    path: str | Path,
    *,
    opset: int = 17,
    dynamic_batch: bool = True,
    dynamo: bool = False,
) -> Path:
    """Export a YOWO or ACT detector (its weights as they are) to ``path``.

    Args:
        model: the detector, or a training wrapper around it (the deployable model is exported); a
            two-stream ACT gives one graph of both streams, fused
            (:func:`~singleshot.tasks.action.act_weights.export_two_stream`).
        meta: weights metadata, embedded in the file with ``task``, ``family``, ``input_layout``
            and ``input_shape`` (one sample) added.
        path: the ``.onnx`` file.
        opset / dynamic_batch / dynamo: see :func:`~singleshot.export.onnx_export.export_onnx`.

    Returns:
        ``path``.
    """
    model = deployable(model)
    if isinstance(model, TwoStreamACT):
        return export_two_stream(model, meta, path, opset=opset, dynamic_batch=dynamic_batch, dynamo=dynamo)
    family = action_family(model)
    shape = input_shape(model, meta)
    full = dict(meta, task="action", family=family, input_layout=_LAYOUTS[family], input_shape=list(shape))
    full.setdefault("num_classes", int(model.num_classes))
    if family == "yowo":
        full.setdefault("anchors", model.anchors.tolist())
        full.setdefault("clip_len", shape[1])
    return export_onnx(
        model,
        example_input(model, meta),
        path,
        list(OUTPUT_NAMES[family]),
        dynamic_batch,
        opset,
        full,
        input_names=(INPUT_NAMES[family],),
        dynamo=dynamo,
    )


# ---------------------------------------------------------------- calibration
def _antialias(meta: dict[str, Any]) -> bool:
    """The resize policy of weights metadata as the action predictors read it (no key: antialiased)."""
    return InputSpec.from_meta(meta, size=1, antialias=True).antialias


def _dataset_batches(
    model: nn.Module, meta: dict[str, Any], root: str, frames: str, split: int, count: int, batch: int
) -> Iterator[np.ndarray]:
    """Test clips of an action dataset, pre-processed as at inference, as float32 arrays [b, *shape]."""
    family, shape = action_family(model), input_shape(model, meta)
    path = Path(root)
    ann = load_action_annotations(path, split=split, classes=list(meta.get("classes") or []) or None)
    frame_root = Path(frames) if frames else (path if path.is_dir() else path.parent)
    if not (frame_root / "rgb-images").is_dir():
        raise DataError(
            f"{frame_root / 'rgb-images'}: calibration frames not found; pass frames=<folder holding rgb-images/>"
        )
    unit = ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))  # the dataset gives x / 255; normalised below as the metadata says
    resize = ClipResize(shape[2:], _antialias(meta))  # the predictors' resize policy
    if family == "yowo":
        size, channel_dim = shape[2:], 1
        dataset: Any = YowoClipDataset(
            ann,
            frame_root,
            None,
            shape[1],
            size,
            False,
            stride=int(meta.get("stride", 1)),
            mean=unit[0],
            std=unit[1],
            transform=resize,
        )
    else:
        size, channel_dim = shape[2:], 2
        dataset = ActTubeletDataset(
            ann, frame_root, None, shape[0], size, False, mean=unit[0], std=unit[1], transform=resize
        )
    picks = even_picks(len(dataset), count)
    if not picks:
        raise DataError(f"calib={root}: no {family} calibration samples in the test split")
    view = [1] * (len(shape) + 1)
    view[channel_dim] = 3
    mean = torch.tensor([float(v) for v in meta.get("mean", (0.485, 0.456, 0.406))]).view(view)
    std = torch.tensor([float(v) for v in meta.get("std", (0.229, 0.224, 0.225))]).view(view)
    bgr = str(meta.get("channel_order", "RGB")).upper() == "BGR"
    for start in range(0, len(picks), batch):
        x = torch.stack([dataset[i][0] for i in picks[start : start + batch]])
        if bgr:
            x = x.flip(channel_dim)
        yield ((x - mean) / std).contiguous().numpy()


def calibration_batches(
    model: nn.Module,
    meta: dict[str, Any],
    calib: str | Path | None,
    count: int = 32,
    batch: int = 4,
    frames: str = "",
    split: int = 1,
    seed: int = 0,
) -> Iterator[np.ndarray]:
    """Calibration inputs for int8 quantization (see the module docstring for the three sources)."""
    shape = input_shape(model, meta)
    if calib is None or str(calib) == "":
        warnings.warn(
            f"int8 without calib=: calibrating on {count} random N(0, 1) inputs; "
            "pass a dataset for representative activation ranges",
            stacklevel=2,
        )
        return random_calibration(shape, count, batch, seed)
    path = Path(calib)
    if not path.exists():
        raise ConfigError(f"calib={calib}: calibration data not found")
    if path.suffix.lower() in CALIB_FILES:
        return eager(calibration_from_file(path, shape, count, batch))
    return eager(_dataset_batches(model, meta, str(path), frames, split, count, batch))


def export_action(
    weights_path: str | Path,
    dst: str | Path | None = None,
    int8: bool = False,
    calib: str | Path | None = None,
    *,
    calib_samples: int = 32,
    calib_method: str = "minmax",
    per_channel: bool = True,
    frames: str = "",
    split: int = 1,
    opset: int = 17,
    dynamic_batch: bool = True,
) -> dict[str, Any]:
    """Export an action ``.safetensors`` (YOWO or ACT) to ONNX, optionally quantized to int8.

    Args:
        weights_path: the weights file (metadata: ``architecture``, ``num_classes``, ``arch_kwargs``, ...).
        dst: the ``.onnx`` to write (default: beside the weights, ``<stem>.onnx`` / ``<stem>.int8.onnx``).
        int8: quantize (onnxruntime static QDQ, uint8 activations, int8 per-channel weights).
        calib: calibration data (dataset, ``.npy``/``.npz``, or None for random inputs).
        calib_samples: calibration samples. calib_method: ``minmax``, ``entropy`` or ``percentile``.
        frames / split: frame folder and split of a calibration dataset.

    Returns:
        ``{"dst", "format", "family", "int8", "opset", "input", "input_name", "outputs", "bytes",
        "seconds"}`` plus ``"calibration_samples"`` for int8.
    """
    weights = Path(weights_path)
    if weights.suffix == ".onnx":
        raise ConfigError(f"weights={weights}: already ONNX; export reads a .safetensors file")
    model, meta = load_action_weights(weights)
    model.eval()
    check_exportable(model, meta, weights, int8)
    family = "act" if isinstance(model, TwoStreamACT) else action_family(model)
    out = Path(dst) if dst else weights.with_name(weights.stem + (".int8" if int8 else "") + ".onnx")
    refuse_overwrite({"dst": out}, {"weights": weights, "calib": calib, "frames": frames})
    # the resize policy the predictors read, written explicitly (weights without the key antialias)
    meta = dict(meta, source_weights=weights.name, resize=resize_meta(_antialias(meta)))
    t0 = time.perf_counter()
    samples = write_onnx_graph(
        out,
        lambda path: export_action_model(model, meta, path, opset=opset, dynamic_batch=dynamic_batch),
        int8,
        lambda: calibration_batches(model, meta, calib, calib_samples, frames=frames, split=split),
        per_channel=per_channel,
        method=calib_method,
    )
    extra: dict[str, Any] = {}
    if int8:
        extra = {"calibration_samples": samples, "calibration": str(calib) if calib else "random-normal"}
    shape = input_shape(model, meta)
    result = {
        "dst": str(out),
        "format": "onnx",
        "family": family,
        "int8": bool(int8),
        "opset": int(opset),
        "input": [-1 if dynamic_batch else 1, *shape],
        "input_name": INPUT_NAMES[family],
        "outputs": list(OUTPUT_NAMES[family]),
        "bytes": out.stat().st_size,
        "seconds": round(time.perf_counter() - t0, 2),
        **extra,
    }
    if isinstance(model, TwoStreamACT):  # the second input, the motion stream's window
        motion = stream_shapes(model)[1]
        result.update(input_names=list(TWO_STREAM_INPUTS), motion_input=[-1 if dynamic_batch else 1, *motion])
    logger.info("wrote %s (%s, %.1f s)", out, family, result["seconds"])
    return result


# ---------------------------------------------------------------- running an exported file
def load_onnx_action_model(path: str | Path, threads: int | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """An exported action ``.onnx`` as ``(model, meta)``: ``model(x)`` returns the torch model's dict
    (``{"out"}`` or ``{"loc", "conf"}``) and carries the attributes the predictors read (see the
    module docstring), so it can replace the torch model in a predictor.

    Raises:
        WeightsError: not an action export, or its outputs do not fit the family.
    """
    model = OnnxModel(path, threads=threads)
    meta = model.meta
    if not meta or meta.get("task") != "action":
        raise WeightsError(
            f"{path}: not an ONNX file written by `singleshot action export` (task {meta.get('task')!r})"
        )
    family = str(meta.get("family", ""))
    if family not in OUTPUT_NAMES:
        raise WeightsError(f"{path}: unknown action family {family!r} in the metadata")
    missing = [n for n in OUTPUT_NAMES[family] if n not in model.output_names]
    if missing:
        raise WeightsError(f"{path}: the graph outputs {model.output_names}, lacking {missing}")
    model.num_classes = int(meta["num_classes"])
    if family == "yowo" and meta.get("anchors"):
        model.register_buffer(
            "anchors", torch.tensor(meta["anchors"], dtype=torch.float32).view(-1, 2), persistent=False
        )
        model.num_anchors = int(model.anchors.shape[0])
        model.clip_len = int(meta.get("clip_len", meta["input_shape"][1]))
        return model, meta
    ref = model_from_meta(meta, task="action", source=path)  # rebuilt (untrained) for its anchors / priors only
    if family == "yowo":
        model.register_buffer("anchors", ref.anchors.clone(), persistent=False)
        model.num_anchors, model.clip_len = int(ref.num_anchors), int(meta.get("clip_len", ref.clip_len))
    else:
        model.register_buffer("priors", ref.priors.clone(), persistent=False)
        model.k, model.prior_spec, model.image_size = int(ref.k), ref.prior_spec, int(ref.image_size)
    return model, meta


# ---------------------------------------------------------------- CLI
@dataclass
class ActionExportOptions(ExportOptions):
    """The keys of ``singleshot action export``: :class:`~singleshot.export.onnx_export.ExportOptions`
    plus where a calibration dataset's frames are (``calib`` a YOWO root or ground-truth file)."""

    frames: str = ""  # folder holding rgb-images/ of the calibration data
    split: int = 1


def export_mode(args: dict[str, str]) -> dict[str, Any]:
    """Weights -> ONNX (optionally int8, calibrated on ``calib=``): ``action export weights=W.safetensors [dst=...]``."""
    opts = make_config(ActionExportOptions, args)
    require(opts, "weights")
    return export_action(opts.weights, **opts.export_kwargs())
