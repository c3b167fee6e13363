"""``singleshot detect export`` and ``.onnx`` files in ``detect predict`` / ``detect val``.

``singleshot detect export weights=W.safetensors format=onnx [nms=true] [int8=true calib=ROOT
calib_images=64] [dst=out.onnx] [opset=17]`` writes one ONNX file:

- default: the raw SSD graph, input ``images`` float32 [B, 3, S, S], outputs ``cls_logits``
  [B, P, C+1] and ``bbox_regression`` [B, P, 4];
- ``int8=true``: the same graph quantized to int8 (QDQ), calibrated on ``calib_images`` images of
  ``calib`` (a VOC root, a COCO ``*.json``, or a folder of images) pre-processed like inference;
- ``nms=true``: decoding and per-class NMS appended in the graph (see
  :mod:`singleshot.tasks.detect.export_graph`): one output ``detections`` [N, 7] = (batch_index, x1, y1,
  x2, y2 normalised, score, label), with the weights' thresholds (or ``conf``/``iou``/``topk``/
  ``max_det`` given on the command line) baked in.

The weights metadata travels inside the file (``metadata_props["singleshot"]``), so ``detect
predict`` and ``detect val`` take ``weights=model.onnx`` and run it with onnxruntime.

Pre-processing the graph expects (the weights' input convention, written explicitly into the
file's metadata even for weights that predate these keys): an RGB uint8 image scaled to [0, 1];
resized to S x S with bilinear interpolation, half-pixel centres, aspect ratio not kept, and
antialiasing when shrinking if ``resize.antialias`` is true (models trained here by default;
``torch.nn.functional.interpolate(..., antialias=True)``, or Pillow's bilinear resize) or plain
bilinear if false (converted torchvision/ssd.pytorch/Caffe weights; ``cv2.resize`` INTER_LINEAR);
channels flipped when ``channel_order`` is ``BGR``; then ``(x - mean) / std`` per channel.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from singleshot.atomic import write_bytes
from singleshot.config import build_config
from singleshot.data.input_spec import InputSpec
from singleshot.errors import ConfigError, WeightsError
from singleshot.io.scratch import scratch_dir
from singleshot.models import model_from_meta
from singleshot.structures import Detections
from singleshot.tasks.common import make_config, refuse_overwrite, require
from singleshot.tasks.detect.config import DetectConfig
from singleshot.tasks.detect.data import IMAGE_SUFFIXES, build_dataset
from singleshot.tasks.detect.export_graph import DETECTIONS_COLUMNS, append_ssd_postprocess, detections_from_rows
from singleshot.tasks.detect.predictor import DetectPredictor, load_detector, settings_from_meta

logger = logging.getLogger(__name__)

__all__ = [
    "ExportOptions",
    "OnnxNMSPredictor",
    "calibration_batches",
    "export",
    "export_detector",
    "load_onnx_predictor",
    "split_export_args",
]

RAW_OUTPUTS = ("cls_logits", "bbox_regression")


@dataclass
class ExportOptions:
    """The ``export`` keys that :class:`DetectConfig` does not have."""

    format: str = "onnx"
    nms: bool = False
    int8: bool = False
    calib: str = ""  # calibration images: VOC root, COCO *.json or a folder of images
    calib_images: int = 64
    calib_method: str = "minmax"
    per_channel: bool = True
    opset: int = 17
    dynamic_batch: bool = True


def split_export_args(args: dict[str, str]) -> tuple[ExportOptions, dict[str, str]]:
    """Separate the :class:`ExportOptions` keys from the rest (which go to ``DetectConfig``)."""
    names = {f.name for f in dataclasses.fields(ExportOptions)}
    mine = {k: v for k, v in args.items() if k in names}
    rest = {k: v for k, v in args.items() if k not in names}
    return build_config(ExportOptions, None, mine), rest


def _default_dst(weights: Path, opts: ExportOptions) -> Path:
    suffix = "".join((".int8" if opts.int8 else "", ".nms" if opts.nms else "", ".onnx"))
    return weights.with_name(weights.stem + suffix)


def calibration_batches(
    predictor: DetectPredictor, cfg: DetectConfig, root: str, count: int, batch: int = 8
) -> Iterator[np.ndarray]:
    """Pre-processed calibration inputs, ``count`` images spread evenly over ``root``.

    Args:
        predictor: supplies the inference pre-processing (size, mean/std, channel order).
        cfg: dataset keys (``train_set``, ``years``, ``images`` for COCO).
        root: a VOC root, a COCO annotation ``*.json`` or a folder of images.
        count: number of images.
        batch: images per yielded array.

    Yields:
        float32 arrays [b, 3, S, S], exactly what the exported graph receives at inference.
    """
    from singleshot.data.image_io import read_image_rgb

    path = Path(root)
    if not path.exists():
        raise ConfigError(f"calib={root}: calibration data not found")
    if path.is_dir() and any(p.suffix.lower() in IMAGE_SUFFIXES for p in path.iterdir()):
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        load = lambda i: read_image_rgb(files[i])  # noqa: E731
        total = len(files)
    else:
        data_cfg = dataclasses.replace(cfg, data=str(path))
        dataset = build_dataset(data_cfg, cfg.train_set, list(predictor.class_names) or list(cfg.classes))
        load = lambda i: dataset[i][0]  # noqa: E731
        total = len(dataset)
    if total == 0:
        raise ConfigError(f"calib={root}: no calibration images found")
    n = max(1, min(int(count), total))
    picks = np.linspace(0, total - 1, n).round().astype(int).tolist()
    for start in range(0, n, batch):
        images = [load(i) for i in picks[start : start + batch]]
        with torch.inference_mode():
            yield predictor.preprocess(images).contiguous().numpy()


def export_detector(cfg: DetectConfig, opts: ExportOptions) -> dict[str, Any]:
    """Export ``cfg.weights`` (a ``.safetensors`` SSD) as ONNX; returns a summary dict."""
    import onnx

    from singleshot.export.onnx_export import export_onnx, read_onnx_metadata, set_onnx_metadata
    from singleshot.export.quantize import write_onnx_graph

    if opts.format != "onnx":
        raise ConfigError(f"format={opts.format!r} is not supported; expected onnx")
    require(cfg, "weights")
    if opts.int8 and not opts.calib:
        raise ConfigError("int8=true needs calib=<VOC root, COCO json or image folder> for the calibration images")
    weights = Path(cfg.weights)
    if weights.suffix == ".onnx":
        raise ConfigError(f"weights={weights}: already ONNX; export reads a .safetensors file")
    model, meta = load_detector(weights)
    model.eval()
    dst = Path(cfg.dst) if cfg.dst else _default_dst(weights, opts)
    refuse_overwrite({"dst": dst}, {"weights": weights, "calib": opts.calib})
    size = int(model.image_size)
    settings = settings_from_meta(meta, cfg)
    spec = InputSpec.from_meta(meta, size=size, antialias=False, source=str(weights))  # as DetectPredictor reads it
    meta = dict(
        meta,
        **spec.to_meta(),
        source_weights=weights.name,
        postprocess={
            "score_thresh": settings.score_thresh,
            "nms_thresh": settings.nms_thresh,
            "topk_candidates": settings.topk_candidates,
            "detections_per_img": settings.max_detections,
        },
    )
    t0 = time.perf_counter()
    with scratch_dir(dst) as tmp:  # hidden, beside dst; removed on error and on SIGINT/SIGTERM
        graph = dst if not opts.nms else Path(tmp) / "graph.onnx"  # the NMS is appended to it below
        example = torch.zeros(1, 3, size, size)
        calibrated = write_onnx_graph(
            graph,
            lambda path: export_onnx(model, example, path, list(RAW_OUTPUTS), opts.dynamic_batch, opts.opset, meta),
            opts.int8,
            lambda: calibration_batches(
                DetectPredictor(model, meta, settings, "cpu", channels_last=False), cfg, opts.calib, opts.calib_images
            ),
            per_channel=opts.per_channel,
            method=opts.calib_method,
        )
        if opts.nms:
            proto = onnx.load(str(graph))
            full_meta = read_onnx_metadata(proto)
            append_ssd_postprocess(proto, model.priors, int(meta["num_classes"]), settings)
            onnx_meta = dict(
                full_meta.get("onnx", {}), graph="nms", outputs=["detections"], columns=list(DETECTIONS_COLUMNS)
            )
            set_onnx_metadata(proto, dict(full_meta, onnx=onnx_meta))
            onnx.checker.check_model(proto, full_check=True)
            dst.parent.mkdir(parents=True, exist_ok=True)
            write_bytes(dst, proto.SerializeToString())
    logger.info("wrote %s in %.1f s", dst, time.perf_counter() - t0)
    result: dict[str, Any] = {
        "dst": str(dst),
        "format": "onnx",
        "int8": opts.int8,
        "nms": opts.nms,
        "opset": opts.opset,
        "input": [-1 if opts.dynamic_batch else 1, 3, size, size],
        "outputs": ["detections"] if opts.nms else list(RAW_OUTPUTS),
        "bytes": dst.stat().st_size,
    }
    if opts.int8:
        result["calibration_images"] = calibrated
    return result


class OnnxNMSPredictor(DetectPredictor):
    """A :class:`DetectPredictor` for an exported graph that already decodes and runs NMS
    (output ``detections`` [N, 7]); its thresholds are the ones baked into the graph."""

    @torch.inference_mode()
    def __call__(self, images: Sequence[Tensor], image_ids: Sequence[str] | None = None) -> list[Detections]:
        if len(images) == 0:
            return []
        rows = self.model(self.preprocess(images))["detections"]
        sizes = [(int(i.shape[-2]), int(i.shape[-1])) for i in images]
        return detections_from_rows(rows, sizes, list(image_ids) if image_ids is not None else None)


def load_onnx_predictor(cfg: DetectConfig, threads: int | None = None) -> DetectPredictor:
    """A predictor running ``cfg.weights`` (an ``.onnx`` file written by ``detect export``) with onnxruntime.

    Raw graphs go through the usual PyTorch post-processing (the priors are rebuilt from the
    architecture named in the metadata); graphs with NMS inside return their own detections.
    """
    from singleshot.export.onnx_runtime import OnnxModel

    if cfg.device != "cpu":
        warnings.warn(f"device={cfg.device}: ONNX models run on the CPU with onnxruntime", stacklevel=2)
    model = OnnxModel(cfg.weights, threads=threads)
    meta = model.meta
    if not meta:
        raise WeightsError(
            f"{cfg.weights}: the ONNX file has no singleshot metadata; export it with `singleshot detect export`"
        )
    if meta.get("task", "detect") != "detect":
        raise WeightsError(f"{cfg.weights}: exported for task {meta.get('task')!r}, not detect")
    graph = meta.get("onnx", {}).get("graph", "raw")
    if graph == "nms":
        changed = [k for k in ("conf", "iou", "topk", "max_det") if getattr(cfg, k) != getattr(DetectConfig(), k)]
        if changed:
            warnings.warn(
                f"{cfg.weights}: thresholds are baked into this graph; ignoring {', '.join(changed)}", stacklevel=2
            )
        return OnnxNMSPredictor(model, meta, settings_from_meta(meta), "cpu", channels_last=False)
    missing = [n for n in RAW_OUTPUTS if n not in model.output_names]
    if missing:
        raise WeightsError(f"{cfg.weights}: the graph outputs {model.output_names}, lacking {missing}")
    model.register_buffer("priors", model_from_meta(meta, task="detect").priors, persistent=False)
    return DetectPredictor(model, meta, settings_from_meta(meta, cfg), "cpu", channels_last=False)


def export(args: dict[str, str]) -> dict:
    """Weights -> ONNX (``nms=true``: decoding and NMS in the graph; ``int8=true calib=...``: int8)."""
    opts, rest = split_export_args(args)
    return export_detector(make_config(DetectConfig, rest), opts)
