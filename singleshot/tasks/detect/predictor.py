"""The ``detect`` predictor: SSD models from names or weights, and detections from raw images.

Pieces: the metadata written beside the tensors of a model trained here (:func:`model_meta`),
model building from a name (:func:`build_detector`, through :func:`singleshot.models.create_model`)
or from a weights file (:func:`load_detector`, through :func:`singleshot.models.model_from_meta`),
post-processing thresholds from the config or the weights (:func:`postprocess_settings`,
:func:`settings_from_meta`) and :class:`DetectPredictor` (pre-processing, forward, decoding and NMS
in one batched call).

The input convention (size, channel order, mean/std, resize policy) is the weights' own
(:class:`~singleshot.data.input_spec.InputSpec`, metadata keys ``input_size``, ``channel_order``,
``mean``, ``std``, ``resize``): training writes the one it normalised with, converters the
reference's, and the predictor, ``val`` and ``export`` read it back.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from singleshot.data.input_spec import IMAGENET_MEAN, IMAGENET_STD, InputSpec
from singleshot.engine.weights import load_state_into, read_model_weights
from singleshot.errors import ConfigError
from singleshot.models import create_model, model_entry, model_from_meta
from singleshot.models.fuse import fuse_conv_relu
from singleshot.postprocess.detect import DetectPostprocess, postprocess_detections
from singleshot.structures import Detections
from singleshot.tasks.detect.config import DetectConfig

logger = logging.getLogger(__name__)

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "DetectPredictor",
    "arch_kwargs",
    "build_detector",
    "load_detector",
    "model_meta",
    "normalize",
    "postprocess_settings",
    "settings_from_meta",
]

#: DetectConfig key -> (DetectPostprocess field, keys that may hold it in weights metadata).
_THRESHOLDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "conf": ("score_thresh", ("score_thresh",)),
    "iou": ("nms_thresh", ("nms_thresh",)),
    "topk": ("topk_candidates", ("topk_candidates",)),
    "max_det": ("max_detections", ("detections_per_img", "max_detections")),
}


def postprocess_settings(cfg: DetectConfig) -> DetectPostprocess:
    """The thresholds of ``cfg`` (``conf``, ``iou``, ``topk``, ``max_det``) as post-processing settings."""
    return DetectPostprocess(**{field: getattr(cfg, key) for key, (field, _) in _THRESHOLDS.items()})


def settings_from_meta(meta: dict[str, Any], cfg: DetectConfig | None = None) -> DetectPostprocess:
    """Thresholds carried in weights metadata; explicit CLI values (non-default) win."""
    post = meta.get("postprocess", {})
    base = DetectConfig()
    values: dict[str, Any] = {}
    for key, (field, meta_keys) in _THRESHOLDS.items():
        default = getattr(base, key)
        chosen = next((post[k] for k in meta_keys if k in post), default)
        if cfg is not None and getattr(cfg, key) != default:
            chosen = getattr(cfg, key)
        values[field] = type(default)(chosen)
    return DetectPostprocess(**values)


def arch_kwargs(name: str, imgsz: int, priors: str = "") -> dict[str, Any]:
    """Builder arguments for a model name, an input size (0 = the model's default) and, for
    SSD300/SSD512, a prior set (``voc``: the paper's and ssd.pytorch's sizes; ``coco``: torchvision's
    scales 0.07-1.05; ``""``: the builder's default, ``voc``)."""
    if name in ("ssd300", "ssd512"):
        if imgsz not in (0, int(name[3:])):
            raise ConfigError(f"imgsz={imgsz}: {name} takes {name[3:]}x{name[3:]} inputs")
        return {"priors": priors} if priors else {}
    if priors:
        raise ConfigError(f"priors={priors}: a prior set is chosen for ssd300 and ssd512 only ({name} derives its own)")
    return {"image_size": imgsz} if imgsz else {}


def build_detector(name: str, num_classes: int, imgsz: int = 0, priors: str = "") -> tuple[nn.Module, dict[str, Any]]:
    """The registered architecture ``name`` for ``num_classes`` classes (background excluded), input
    side ``imgsz`` (0: the model's default) and prior set ``priors`` (see :func:`arch_kwargs`),
    untrained; returns ``(model, builder kwargs)``."""
    model_entry(name, task="detect")  # refuses another task's model, listing detect's
    kwargs = arch_kwargs(name, imgsz, priors)
    return create_model(name, num_classes, **kwargs), kwargs


def load_detector(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """The detector of a ``.safetensors`` weights file and its metadata.

    Raises:
        WeightsError: unreadable file, metadata naming no detect architecture, or tensors that do
            not fit it.
    """
    state, meta = read_model_weights(path)
    return load_state_into(
        model_from_meta(meta, task="detect", source=path), state, path, meta.get("architecture")
    ), meta


def model_meta(
    model: nn.Module,
    name: str,
    kwargs: dict[str, Any],
    classes: Sequence[str],
    spec: InputSpec | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Metadata written beside the tensors of a model trained here; ``spec`` is the input convention
    it was trained with (default: ImageNet RGB at the model's size, antialiased resize)."""
    size = int(model.image_size)
    spec = spec or InputSpec.named("imagenet", size)
    meta = {
        "task": "detect",
        "architecture": name,
        "arch_kwargs": kwargs,
        "num_classes": len(classes),
        "classes": list(classes),
        **spec.to_meta(),
        "postprocess": {"score_thresh": 0.01, "nms_thresh": 0.45, "topk_candidates": 400, "detections_per_img": 200},
    }
    meta.update(extra)
    return meta


def normalize(images: Tensor, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """(x - mean) / std per channel; images Tensor[B, 3, H, W] float in [0, 1]."""
    m = torch.tensor(mean, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    return (images - m) / s


class DetectPredictor:
    """Raw images in, detections in the original pixels out.

    Pre-processing (:meth:`~singleshot.data.input_spec.InputSpec.prepare` of the weights'
    convention, the same as training's evaluation transform): uint8 RGB scaled to [0, 1], resized to
    the input size (bilinear, aspect ratio not kept; antialiased when shrinking if the metadata's
    ``resize`` says so -- models trained here -- and plain bilinear without the key, as converted
    torchvision, ssd.pytorch and Caffe weights expect), channels flipped for BGR weights, then
    ``(x - mean) / std``.

    Args:
        model: an SSD-style module with ``priors`` and ``forward -> {cls_logits, bbox_regression}``.
        meta: weights metadata (``input_size``, ``channel_order``, ``mean``, ``std``, ``resize``).
        settings: post-processing thresholds.
        device: where to run.
        channels_last: prepare the model for fast inference: channels-last model and inputs, and
            each convolution fused with its ReLU (:func:`singleshot.models.fuse.fuse_conv_relu`);
            off while evaluating during training, to leave the trained model untouched.
    """

    def __init__(
        self,
        model: nn.Module,
        meta: dict[str, Any],
        settings: DetectPostprocess,
        device: str = "cpu",
        channels_last: bool = True,
    ) -> None:
        self.device = torch.device(device)
        self.channels_last = channels_last
        self.model = model.eval().to(self.device)
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
            if isinstance(self.model, nn.Module):
                fuse_conv_relu(self.model)
        #: the input convention; weights without a ``resize`` key resize without antialias
        self.spec = InputSpec.from_meta(meta, size=getattr(model, "image_size", 300), antialias=False)
        self.size = self.spec.size
        self.settings = settings
        self.meta = meta
        self.class_names: list[str] = list(meta.get("classes", []))
        #: COCO category id written for each label (COCO-trained weights), else label + 1.
        self.category_ids: list[int] | None = meta.get("category_ids")

    def preprocess(self, images: Sequence[Tensor]) -> Tensor:
        """images: uint8 Tensor[3, H, W] RGB each -> Tensor[B, 3, S, S] normalised (channels-last
        when the predictor is): ``self.spec.prepare`` of each image."""
        batch = torch.stack([self.spec.prepare(img.to(self.device, non_blocking=True)) for img in images])
        return batch.contiguous(memory_format=torch.channels_last) if self.channels_last else batch

    @torch.inference_mode()
    def __call__(self, images: Sequence[Tensor], image_ids: Sequence[str] | None = None) -> list[Detections]:
        if len(images) == 0:
            return []
        outputs = self.model(self.preprocess(images))
        sizes = [(int(i.shape[-2]), int(i.shape[-1])) for i in images]
        return postprocess_detections(outputs, self.model.priors, sizes, self.settings, image_ids)
