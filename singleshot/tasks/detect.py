"""The ``detect`` task: SSD on Pascal VOC and COCO.

Pieces: :class:`DetectConfig` (every key the CLI accepts), model building from names or from weights
metadata, data loaders, :class:`DetectPredictor` (pre-processing, forward, decoding and NMS in one
batched call), and evaluators. The CLI modes live in :mod:`singleshot.tasks.detect_modes`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from singleshot.errors import ConfigError, WeightsError
from singleshot.models import build_model
from singleshot.models.fuse import fuse_conv_relu
from singleshot.postprocess.detect import DetectPostprocess, postprocess_detections
from singleshot.structures import BoxTarget, Detections

logger = logging.getLogger(__name__)

#: ImageNet RGB mean and std in [0, 1] units, used by models trained here.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class DetectConfig:
    """Every ``key=value`` the ``detect`` modes accept (each mode reads the keys it needs)."""

    # model and data
    model: str = "ssd300"
    weights: str = ""
    data: str = ""
    images: str = ""
    classes: tuple[str, ...] = ()
    train_set: str = "trainval"
    val_set: str = "test"
    years: tuple[str, ...] = ("2007",)
    val_years: tuple[str, ...] = ()  # years of the evaluation split (default: ``years``)
    imgsz: int = 0
    # training
    epochs: int = 120
    batch: int = 32
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 5e-4
    optimizer: str = "sgd"
    schedule: str = "multistep"
    milestones: tuple[int, ...] = ()
    warmup: int = 500
    accumulate: int = 1
    clip_grad: float | None = None
    augment: bool = True
    workers: int = 2
    device: str = "cpu"
    seed: int = 0
    resume: bool = False
    eval_every: int = 1
    amp: bool = False  # mixed precision: bfloat16 autocast on CPU, float16 + gradient scaler on CUDA
    ema: float | None = None  # decay of an EMA of the weights (e.g. 0.9998), used for evaluation and saved
    patience: int | None = None  # early stopping: epochs without a better metric
    checkpoint_every: int = 1000  # also write last.pt every N iterations (0: at epoch ends only)
    plot_every: int = 1  # redraw results.png every N epochs (0: never)
    channels_last: bool | None = None  # channels-last model and inputs (None: on for CUDA)
    project: str = "runs/detect"
    name: str = "train"
    pretrained: str = ""
    # distillation and auxiliary head (singleshot/tasks/detect_distill.py)
    teacher: str = ""  # weights of a trained detector whose soft class scores the student learns
    kd_weight: float = 1.0
    kd_temperature: float = 2.0
    kd_mask: str = "matched"  # priors of the KD term: matched (positives + hard negatives), positive, all
    feat_weight: float = 0.0  # feature imitation of the stride-8/16 maps through a 1x1 adapter
    aux: bool = False  # auxiliary SSD head on intermediate maps, training only
    aux_weight: float = 0.4
    # inference
    source: str = ""
    conf: float = 0.01
    iou: float = 0.45
    topk: int = 400
    max_det: int = 200
    show_conf: float = 0.3
    metric: str = "voc07"
    plus_one: bool = True
    # score and convert
    gt: str = ""
    pred: str = ""
    from_: str = ""
    src: str = ""
    dst: str = ""
    prototxt: str = ""  # convert from=caffe: the net definition
    caffemodel: str = ""  # convert from=caffe: the weights
    # demo
    n_train: int = 800
    n_val: int = 200


#: DetectConfig key -> (DetectPostprocess field, keys that may hold it in weights metadata).
_THRESHOLDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "conf": ("score_thresh", ("score_thresh",)),
    "iou": ("nms_thresh", ("nms_thresh",)),
    "topk": ("topk_candidates", ("topk_candidates",)),
    "max_det": ("max_detections", ("detections_per_img", "max_detections")),
}


def postprocess_settings(cfg: DetectConfig) -> DetectPostprocess:
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


def arch_kwargs(name: str, imgsz: int) -> dict[str, Any]:
    """Builder arguments for a model name and an input size (0 = the model's default)."""
    if name in ("ssd300", "ssd512"):
        if imgsz not in (0, int(name[3:])):
            raise ConfigError(f"imgsz={imgsz}: {name} takes {name[3:]}x{name[3:]} inputs")
        return {}
    return {"image_size": imgsz} if imgsz else {}


def model_from_meta(meta: dict[str, Any]) -> nn.Module:
    """Build the architecture described by weights metadata (without loading weights)."""
    try:
        arch, num_classes = meta["architecture"], int(meta["num_classes"])
    except KeyError as e:
        raise WeightsError(f"weights metadata lacks {e}; it must name the architecture and num_classes") from None
    kwargs = dict(meta.get("arch_kwargs", {}))
    if "priors" in meta and arch in ("ssd300", "ssd512") and "priors" not in kwargs:
        kwargs["priors"] = str(meta["priors"]).rstrip("0123456789")
    return build_model(arch, num_classes, **kwargs)


def model_meta(model: nn.Module, name: str, kwargs: dict[str, Any], classes: Sequence[str], **extra: Any) -> dict[str, Any]:
    """Metadata written beside the tensors of a model trained here."""
    size = int(getattr(model, "image_size"))
    meta = {
        "task": "detect",
        "architecture": name,
        "arch_kwargs": kwargs,
        "num_classes": len(classes),
        "classes": list(classes),
        "input_size": [size, size],
        "channel_order": "RGB",
        "mean": list(IMAGENET_MEAN),
        "std": list(IMAGENET_STD),
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

    Pre-processing follows torchvision's SSD transform: scale to [0, 1], normalise with the
    weights' mean/std, resize to the input size with bilinear interpolation (no antialias, aspect
    ratio not kept). BGR weights (ssd.pytorch, Caffe) get their channels swapped first.

    Args:
        model: an SSD-style module with ``priors`` and ``forward -> {cls_logits, bbox_regression}``.
        meta: weights metadata (``input_size``, ``mean``, ``std``, ``channel_order``).
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
        size = meta.get("input_size", getattr(model, "image_size", 300))
        self.size = (int(size[0]), int(size[1])) if isinstance(size, (list, tuple)) else (int(size), int(size))
        self.mean = [float(v) for v in meta.get("mean", IMAGENET_MEAN)]
        self.std = [float(v) for v in meta.get("std", IMAGENET_STD)]
        self.bgr = str(meta.get("channel_order", "RGB")).upper() == "BGR"
        self.settings = settings
        self.class_names: list[str] = list(meta.get("classes", []))
        #: COCO category id written for each label (COCO-trained weights), else label + 1.
        self.category_ids: list[int] | None = meta.get("category_ids")

    def preprocess(self, images: Sequence[Tensor]) -> Tensor:
        """images: uint8 Tensor[3, H, W] RGB each -> Tensor[B, 3, S, S] normalised, channels-last."""
        out = []
        for img in images:
            x = img.to(self.device, non_blocking=True).float().div_(255.0)
            if self.bgr:
                x = x.flip(0)
            x = normalize(x[None], self.mean, self.std)
            out.append(F.interpolate(x, size=self.size, mode="bilinear", align_corners=False))
        batch = torch.cat(out)
        return batch.contiguous(memory_format=torch.channels_last) if self.channels_last else batch

    @torch.inference_mode()
    def __call__(self, images: Sequence[Tensor], image_ids: Sequence[str] | None = None) -> list[Detections]:
        if len(images) == 0:
            return []
        outputs = self.model(self.preprocess(images))
        sizes = [(int(i.shape[-2]), int(i.shape[-1])) for i in images]
        return postprocess_detections(outputs, self.model.priors, sizes, self.settings, image_ids)


def collate_raw(batch: Sequence[tuple[Tensor, BoxTarget]]) -> tuple[list[Tensor], list[BoxTarget]]:
    """Keep raw images of different sizes as a list (evaluation and prediction)."""
    return [b[0] for b in batch], [b[1] for b in batch]
