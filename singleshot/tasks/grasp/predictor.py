"""The ``grasp`` task's models and predictor: GG-CNN, GG-CNN2 and the PSPNet grasp nets.

Pieces: :func:`build_grasp_model` (a registered grasp architecture, ``create_model(name,
in_channels=..., aux=...)``, for an input kind), weights metadata (:func:`model_meta`), the
peak-finding settings (:func:`postprocess_from`), weights files (:func:`load_grasp_weights`) and
:class:`GraspPredictor`: a depth (and/or RGB) image in, grasps in the original image's pixels out
(view -> normalise -> model -> :func:`~singleshot.postprocess.grasp.maps_to_grasps` -> back through
the view's matrix). The CLI modes are in :mod:`singleshot.tasks.grasp` (its ``MODES``).

Pixel conventions are the project's (:class:`~singleshot.structures.Grasps`): ``(cx, cy, angle,
opening, jaw)`` with x right, y down, angle in radians counter-clockwise on screen.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from singleshot.data.grasp.augment import choose_crop, transform_grasps, view_matrix, warp
from singleshot.data.grasp.depth import normalise_depth, normalise_rgb
from singleshot.data.grasp.records import GraspImage
from singleshot.data.input_spec import size_hw
from singleshot.errors import ConfigError, DataError
from singleshot.models import create_model, list_models, model_from_meta
from singleshot.models.psp_grasp import strip_aux
from singleshot.postprocess.grasp import GraspPostprocess
from singleshot.structures import GRASP_INPUT_CHANNELS, Grasps
from singleshot.tasks.grasp.config import GraspConfig

logger = logging.getLogger(__name__)

__all__ = [
    "GraspPredictor",
    "build_grasp_model",
    "grasps_to_original",
    "input_channels",
    "load_grasp_weights",
    "model_meta",
    "postprocess_from",
]


def input_channels(kind: str) -> int:
    """Channels of an input kind (``depth`` 1, ``rgb`` 3, ``rgbd`` 4)."""
    if kind not in GRASP_INPUT_CHANNELS:
        raise ConfigError(f"input: expected one of {', '.join(GRASP_INPUT_CHANNELS)}, got {kind!r}")
    return GRASP_INPUT_CHANNELS[kind]


def build_grasp_model(name: str, input: str = "depth", aux: bool = False) -> nn.Module:
    """The grasp model registered as ``name`` (``list_models(task="grasp")``) for the input kind
    ``input``; ``aux`` adds PSPNet's auxiliary head (training only; ignored by GG-CNN).

    Raises:
        ConfigError: unknown name (or one of another task) or input kind.
    """
    names = list_models(task="grasp")
    if name not in names:
        raise ConfigError(f"model: unknown grasp model {name!r}; valid names: {', '.join(names)}")
    return create_model(name, in_channels=input_channels(input), aux=aux)


def postprocess_from(cfg: GraspConfig | None = None, meta: dict[str, Any] | None = None) -> GraspPostprocess:
    """Peak-finding settings: the weights' metadata, overridden by non-default CLI values."""
    base, chosen = GraspConfig(), dict((meta or {}).get("postprocess", {}))
    for key in ("num_grasps", "min_distance", "threshold"):
        if cfg is not None and getattr(cfg, key) != getattr(base, key):
            chosen[key] = getattr(cfg, key)
        chosen.setdefault(key, getattr(cfg or base, key))
    return GraspPostprocess(
        num_grasps=int(chosen["num_grasps"]),
        min_distance=int(chosen["min_distance"]),
        threshold=float(chosen["threshold"]),
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


def load_grasp_weights(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """``(model in eval mode, metadata)`` of a grasp ``.safetensors`` file; auxiliary-head tensors
    are dropped (with a log line), everything else must fit strictly."""
    from singleshot.engine.weights import load_state_into, read_model_weights

    path = Path(path)
    if path.suffix == ".onnx":
        raise ConfigError(f"weights={path}: already ONNX; export reads a .safetensors file")
    state, meta = read_model_weights(path)
    kept = strip_aux(state)
    if len(kept) != len(state):
        logger.info("%s: dropped %d auxiliary-head tensors for export", path, len(state) - len(kept))
    return load_state_into(
        model_from_meta(meta, task="grasp", source=path), kept, path, meta.get("architecture")
    ).eval(), meta


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
        self.size = size_hw(size)[0]
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
