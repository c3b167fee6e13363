"""The ``grasp`` task: GG-CNN, GG-CNN2 and the PSPNet grasp nets on Cornell and Jacquard.

Pieces: :class:`GraspConfig` (every key the CLI accepts), :data:`GRASP_MODELS` (name -> builder
taking the input channels), weights metadata, and :class:`GraspPredictor`: a depth (and/or RGB)
image in, grasps in the original image's pixels out (view -> normalise -> model ->
:func:`~singleshot.postprocess.grasp.maps_to_grasps` -> back through the view's matrix).
The CLI modes live in :mod:`singleshot.tasks.grasp_modes`.

Pixel conventions are the project's (:class:`~singleshot.structures.Grasps`): ``(cx, cy, angle,
opening, jaw)`` with x right, y down, angle in radians counter-clockwise on screen.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from singleshot.data.grasp.augment import choose_crop, transform_grasps, view_matrix, warp
from singleshot.data.grasp.dataset import INPUT_CHANNELS
from singleshot.data.grasp.depth import normalise_depth, normalise_rgb
from singleshot.data.grasp.records import GraspImage
from singleshot.errors import ConfigError, DataError, WeightsError
from singleshot.postprocess.grasp import GraspPostprocess
from singleshot.structures import Grasps

logger = logging.getLogger(__name__)

__all__ = [
    "GRASP_MODELS",
    "GraspConfig",
    "GraspPredictor",
    "build_grasp_model",
    "grasps_to_original",
    "model_from_meta",
    "model_meta",
    "postprocess_from",
]


@dataclass
class GraspConfig:
    """Every ``key=value`` the ``grasp`` modes accept (each mode reads the keys it needs)."""

    # model and data
    model: str = "ggcnn"
    weights: str = ""
    data: str = ""
    layout: str = "auto"  # dataset layout: auto, cornell or jacquard
    depth: str = "perfect"  # Jacquard depth images: perfect or stereo
    object_map: str = ""  # Cornell image -> object file (default: <data>/objects.txt when present)
    input: str = "depth"  # depth, rgb or rgbd
    size: int = 300  # network input side S (GG-CNN: a multiple of 12 keeps the maps exact)
    crop: str = "center"  # center (honest) or gt_center (the reference's label-centred Cornell crop)
    crop_size: int | None = None  # crop side in source pixels (None: the image's short side)
    # split (train, val, score)
    split: str = "image"  # image, object, reference, kfold or all
    k: int | None = None  # folds (kfold defaults to 5)
    fold: int = 0
    test_fraction: float = 0.1
    split_seed: int = 0
    # training
    epochs: int = 50
    batch: int = 8
    lr: float = 1e-3
    optimizer: str = "adam"
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "constant"
    milestones: tuple[int, ...] = ()  # epochs
    warmup: int = 0
    accumulate: int = 1
    clip_grad: float | None = None
    loss: str = "mse"  # mse (GG-CNN) or smooth_l1 (GR-ConvNet)
    aux: bool = False  # PSPNet auxiliary head on layer3 (training only)
    aux_weight: float = 0.4
    # distillation (train): a trained grasp net's .safetensors; see singleshot/tasks/grasp_distill.py
    teacher: str = ""
    kd_weight: float = 1.0  # weight of the map distillation term
    kd_loss: str = "mse"  # mse or smooth_l1, per map against the teacher's
    augment: bool = True
    rotate90: bool = True  # random multiple of 90 degrees (the reference)
    max_angle: float = 0.0  # plus a rotation uniform in [-max_angle, max_angle] degrees
    zoom: tuple[float, ...] | None = (0.5, 1.0)  # zoom range (the reference: uniform(0.5, 1))
    hflip: float = 0.0
    vflip: float = 0.0
    cache: bool = False  # keep decoded images in memory
    workers: int = 2
    threads: int = 0  # intra-op threads (0: torch's default)
    device: str = "cpu"
    seed: int = 0
    data_seed: int = 0  # demo: seed of the generated dataset (seed= varies the training only)
    resume: bool = False
    eval_every: int = 1
    amp: bool = False
    ema: float | None = None
    patience: int | None = None
    checkpoint_every: int = 1000
    plot_every: int = 1
    channels_last: bool | None = None
    project: str = "runs/grasp"
    name: str = "train"
    # inference and evaluation
    source: str = ""  # predict: a depth TIFF (or RGB image for rgb models) or a folder
    rgb: str = ""  # predict: the RGB image (or folder) that goes with source
    format: str = "json"  # predict output: json, or jacquard (also jacquard_output.txt)
    num_grasps: int = 1
    min_distance: int = 20
    threshold: float = 0.2
    iou: str = "polygon"  # polygon (exact) or raster (the reference's pixel count)
    iou_thresh: float = 0.25
    angle_thresh: float = 30.0
    top_k: int = 1
    # score and convert
    gt: str = ""
    pred: str = ""
    from_: str = ""  # convert: pcd (Cornell clouds -> d.tiff) or ggcnn (dougsm/ggcnn state dict)
    src: str = ""
    dst: str = ""
    overwrite: bool = False
    # demo
    n_images: int = 400
    image_height: int = 120
    image_width: int = 160


def _ggcnn(in_channels: int, aux: bool) -> nn.Module:
    from singleshot.models.ggcnn import ggcnn

    return ggcnn(in_channels)


def _ggcnn2(in_channels: int, aux: bool) -> nn.Module:
    from singleshot.models.ggcnn import ggcnn2

    return ggcnn2(in_channels)


def _psp(backbone: str) -> Callable[[int, bool], nn.Module]:
    def build(in_channels: int, aux: bool) -> nn.Module:
        from singleshot.models.psp_grasp import PSPGrasp

        return PSPGrasp(backbone, in_channels, aux)

    return build


#: Model name -> ``builder(in_channels, aux) -> nn.Module`` (``aux`` only matters for PSPNet).
GRASP_MODELS: dict[str, Callable[[int, bool], nn.Module]] = {
    "ggcnn": _ggcnn,
    "ggcnn2": _ggcnn2,
    "psp_resnet18": _psp("resnet18"),
    "psp_resnet50": _psp("resnet50"),
    "psp_resnet101": _psp("resnet101"),
}


def input_channels(kind: str) -> int:
    """Channels of an input kind (``depth`` 1, ``rgb`` 3, ``rgbd`` 4)."""
    if kind not in INPUT_CHANNELS:
        raise ConfigError(f"input: expected one of {', '.join(INPUT_CHANNELS)}, got {kind!r}")
    return INPUT_CHANNELS[kind]


def build_grasp_model(name: str, input: str = "depth", aux: bool = False) -> nn.Module:
    """The model ``name`` of :data:`GRASP_MODELS` for the input kind ``input``.

    Raises:
        ConfigError: unknown name or input kind.
    """
    if name not in GRASP_MODELS:
        raise ConfigError(f"model: unknown grasp model {name!r}; valid names: {', '.join(GRASP_MODELS)}")
    return GRASP_MODELS[name](input_channels(input), aux)


def postprocess_from(cfg: GraspConfig | None = None, meta: dict[str, Any] | None = None) -> GraspPostprocess:
    """Peak-finding settings: the weights' metadata, overridden by non-default CLI values."""
    base, chosen = GraspConfig(), dict((meta or {}).get("postprocess", {}))
    for key in ("num_grasps", "min_distance", "threshold"):
        if cfg is not None and getattr(cfg, key) != getattr(base, key):
            chosen[key] = getattr(cfg, key)
        chosen.setdefault(key, getattr(cfg or base, key))
    return GraspPostprocess(
        num_grasps=int(chosen["num_grasps"]), min_distance=int(chosen["min_distance"]), threshold=float(chosen["threshold"])
    )


def model_meta(cfg: GraspConfig, **extra: Any) -> dict[str, Any]:
    """Metadata written beside the tensors of a grasp model trained (or converted) here."""
    meta: dict[str, Any] = {
        "task": "grasp",
        "architecture": cfg.model,
        "input": cfg.input,
        "in_channels": input_channels(cfg.input),
        "input_size": [cfg.size, cfg.size],
        "crop": cfg.crop,
        "crop_size": cfg.crop_size,
        "normalise": "depth: minus its mean, clipped to [-1, 1]; rgb: /255 minus its mean (GG-CNN)",
        "outputs": ["pos", "cos", "sin", "width"],
        "width_scale": 150.0,
        "postprocess": {"num_grasps": cfg.num_grasps, "min_distance": cfg.min_distance, "threshold": cfg.threshold},
    }
    meta.update(extra)
    return meta


def model_from_meta(meta: dict[str, Any]) -> nn.Module:
    """Build the architecture described by weights metadata (without loading weights)."""
    if meta.get("task", "grasp") != "grasp":
        raise WeightsError(f"weights are for the {meta.get('task')!r} task, not grasp")
    try:
        arch, kind = str(meta["architecture"]), str(meta.get("input", "depth"))
    except KeyError as e:
        raise WeightsError(f"weights metadata lacks {e}; it must name the architecture") from None
    try:
        return build_grasp_model(arch, kind, aux=False)
    except ConfigError as exc:
        raise WeightsError(f"weights metadata: {exc}") from None


def grasps_to_original(pred: Grasps, matrix: np.ndarray, size: tuple[int, int]) -> Grasps:
    """Grasps of a view (output pixels) back to the source image through the inverse of ``matrix``.

    Args:
        pred: grasps in the view's pixels.
        matrix: array[3, 3] source -> view map (:func:`~singleshot.data.grasp.augment.view_matrix`).
        size: (height, width) of the source image.
    """
    back = transform_grasps(pred.grasps.detach().cpu().numpy(), np.linalg.inv(matrix))
    return Grasps(grasps=torch.from_numpy(back), scores=pred.scores.detach().cpu(), image_id=pred.image_id, size=size)


class GraspPredictor:
    """Grasp images in, grasps in the original pixels out.

    Pre-processing is :class:`~singleshot.data.grasp.dataset.GraspDataset`'s for the un-augmented
    view: a square crop (``crop``/``crop_size`` of the metadata; ``gt_center`` needs labels, so
    images without them use ``center``), resampled to ``S × S``, depth minus its mean clipped to
    [-1, 1], RGB / 255 minus its mean.

    Args:
        model: returns ``{"pos", "cos", "sin", "width"}`` (Tensor[B, 1, S, S] each).
        meta: weights metadata (``input``, ``input_size``, ``crop``, ``crop_size``).
        post: peak-finding settings.
        device: where to run.
        channels_last: run the network in channels-last memory format (the model is converted in
            place, so leave it off for a model that is still being trained). On this project's
            CPU it makes GG-CNN's 9×9 transposed convolution, its largest cost, ~1.7× faster.
    """

    def __init__(
        self,
        model: nn.Module,
        meta: dict[str, Any],
        post: GraspPostprocess,
        device: str = "cpu",
        channels_last: bool = False,
    ) -> None:
        self.device = torch.device(device)
        self.model = model.eval().to(self.device)
        self.channels_last = channels_last and isinstance(self.model, nn.Module)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.meta = meta
        self.input = str(meta.get("input", "depth"))
        size = meta.get("input_size", 300)
        self.size = int(size[0]) if isinstance(size, (list, tuple)) else int(size)
        self.crop = str(meta.get("crop", "center"))
        crop_size = meta.get("crop_size")
        self.crop_size = int(crop_size) if crop_size else None
        self.post = post

    def view(self, image: GraspImage, crop: str | None = None) -> tuple[Tensor, np.ndarray]:
        """Network input Tensor[C, S, S] and source -> view matrix array[3, 3] of one image.

        ``crop`` defaults to the metadata's; ``gt_center`` falls back to ``center`` when the image
        carries no grasps.
        """
        crop = crop or self.crop
        if crop == "gt_center" and len(image.grasps) == 0:
            crop = "center"
        need_depth, need_rgb = self.input != "rgb", self.input != "depth"
        if (need_depth and image.depth is None) or (need_rgb and image.rgb is None):
            what = "a depth image" if need_depth and image.depth is None else "an RGB image"
            raise DataError(f"{image.image_id}: the model takes {self.input!r} input and needs {what}")
        m = view_matrix(choose_crop(image.size, image.grasps, crop, self.crop_size), self.size)
        shape = (self.size, self.size)
        parts = []
        if need_depth:
            parts.append(normalise_depth(warp(image.depth, m, shape))[None])  # type: ignore[arg-type]
        if need_rgb:
            parts.append(normalise_rgb(warp(image.rgb, m, shape)))  # type: ignore[arg-type]
        return torch.from_numpy(np.concatenate(parts, axis=0).astype(np.float32, copy=False)), m

    @torch.inference_mode()
    def predict_views(self, x: Tensor, image_ids: Sequence[str] | None = None) -> list[Grasps]:
        """Grasps of network inputs x (Tensor[B, C, S, S]) in the views' pixels, by descending quality."""
        x = x.to(self.device, dtype=torch.float32)
        outputs = self.model(x.contiguous(memory_format=torch.channels_last) if self.channels_last else x)
        return self.post(outputs, image_ids)

    def __call__(self, images: Sequence[GraspImage], crop: str | None = None) -> list[Grasps]:
        """Grasps of each image in its original pixels (``size`` = the image's (H, W))."""
        if len(images) == 0:
            return []
        views = [self.view(img, crop) for img in images]
        preds = self.predict_views(torch.stack([v[0] for v in views]), [img.image_id for img in images])
        return [grasps_to_original(p, m, img.size) for p, (_, m), img in zip(preds, views, images)]
