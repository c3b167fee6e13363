"""SSD data augmentation on ``(image, BoxTarget)`` pairs, built from ``torchvision.transforms.v2``.

Training pipeline (the SSD paper, ssd.pytorch ``SSDAugmentation`` and torchvision's detection
references, in this order):

1. photometric distortion: brightness, contrast, saturation, hue and a channel permutation, each
   applied with probability 0.5 (``v2.RandomPhotometricDistort``);
2. zoom-out: with probability 0.5 the image is placed at a random position on a canvas up to 4x its
   side, filled with the input convention's mean (``v2.RandomZoomOut``);
3. IoU-constrained random crop (``v2.RandomIoUCrop``'s rule; :class:`BatchedIoUCrop` draws its 40
   trials as one batch of tensor ops, ~5x faster on small images): pick a minimum IoU from
   {0 (any crop), 0.1, 0.3, 0.5, 0.7, 0.9, keep the whole image}; sample up to 40 crops with each side in [0.3, 1] of the
   image and aspect ratio in [0.5, 2]; a crop is accepted when at least one box has its centre
   strictly inside it and the best IoU of those boxes with the crop reaches the minimum. Boxes whose
   centre lies inside the crop are kept and clipped to it; the others are zeroed and then removed
   by step 6;
4. horizontal flip with probability 0.5 (``x1' = W - x2``, ``x2' = W - x1``, no pixel shift);
5. uint8 -> float32 in [0, 1], then resize to ``size x size`` (bilinear; antialiased when shrinking
   unless ``antialias=False``) by :func:`singleshot.data.input_spec.resize_image`, the resize the
   predictor uses too (:meth:`singleshot.data.input_spec.InputSpec.prepare`);
6. ``v2.SanitizeBoundingBoxes``: drops boxes narrower or shorter than 1 pixel, with their labels and
   difficult flags.

All random numbers come from torch's generator, which ``DataLoader`` seeds differently per worker.
Every object here is picklable (no lambdas), so the transforms work in worker processes.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torchvision import tv_tensors
from torchvision.transforms import v2

from singleshot.data.input_spec import resize_image, resize_unit_float, to_unit_float
from singleshot.ops.boxes import pairwise_iou
from singleshot.structures import BoxTarget

logger = logging.getLogger(__name__)

__all__ = [
    "BatchedIoUCrop",
    "DetectionTransform",
    "build_train_transform",
    "build_eval_transform",
    "photometric_distort",
    "zoom_out",
    "iou_crop",
    "horizontal_flip",
    "ResizeToFloat",
    "resize_to_float",
    "sanitize_boxes",
]


def _labels_and_difficult(inputs: Any) -> tuple[Tensor, Tensor]:
    """labels_getter for SanitizeBoundingBoxes: the per-box tensors filtered with the boxes."""
    target = inputs[1]
    return target["labels"], target["difficult"]


class DetectionTransform:
    """Apply a ``torchvision.transforms.v2`` transform to ``(image, BoxTarget)``.

    Args:
        transform: a v2 transform called on ``(tv_tensors.Image, {"boxes": BoundingBoxes(XYXY),
            "labels": Tensor[N], "difficult": Tensor[N]})``.

    ``__call__(image, target)``: image Tensor[3, H, W] (uint8 or float), target a BoxTarget whose
    boxes are xyxy pixels of this image. Returns ``(image Tensor[3, H', W'], BoxTarget)`` with boxes
    in the new pixel frame, ``size = (H', W')``, ``orig_size`` and ``image_id`` unchanged, and labels
    and difficult flags filtered with the boxes.
    """

    def __init__(self, transform: v2.Transform) -> None:
        self.transform = transform

    def __call__(self, image: Tensor, target: BoxTarget) -> tuple[Tensor, BoxTarget]:
        height, width = int(image.shape[-2]), int(image.shape[-1])
        boxes = tv_tensors.BoundingBoxes(
            target.boxes.to(torch.float32).reshape(-1, 4), format="XYXY", canvas_size=(height, width)
        )
        sample = (
            tv_tensors.Image(image),
            {"boxes": boxes, "labels": target.labels, "difficult": target.difficult},
        )
        out_image, out = self.transform(*sample)
        out_image = out_image.as_subclass(Tensor)
        return out_image, BoxTarget(
            boxes=out["boxes"].as_subclass(Tensor).to(torch.float32).reshape(-1, 4),
            labels=out["labels"],
            difficult=out["difficult"],
            image_id=target.image_id,
            size=(int(out_image.shape[-2]), int(out_image.shape[-1])),
            orig_size=target.orig_size,
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.transform!r})"


def photometric_distort(p: float = 0.5) -> v2.Transform:
    """Brightness x[0.875, 1.125], contrast and saturation x[0.5, 1.5], hue +-0.05 turn, channel
    permutation; each with probability ``p`` (torchvision's SSD settings)."""
    return v2.RandomPhotometricDistort(p=p)


def zoom_out(mean: Sequence[float], max_scale: float = 4.0, p: float = 0.5) -> v2.Transform:
    """Place the image on a canvas of side ratio uniform in [1, max_scale] filled with ``mean``.

    Args:
        mean: RGB mean in [0, 1]; the fill of a uint8 image is ``round(255 * mean)``.
    """
    if len(mean) != 3:
        raise ValueError(f"mean must have 3 values (RGB in [0, 1]), got {mean!r}")
    fill = [int(round(255.0 * float(m))) for m in mean]
    return v2.RandomZoomOut(fill={tv_tensors.Image: fill, "others": 0}, side_range=(1.0, max_scale), p=p)


class BatchedIoUCrop(v2.RandomIoUCrop):
    """``v2.RandomIoUCrop`` whose trials for one minimum-IoU option are sampled and tested at once.

    Same rule and distribution as torchvision's sequential loop (trials are independent, and the
    first valid one in sampling order is taken); only the random stream differs. Torchvision's
    version spends ~10 ms per small image in Python when the high-IoU options fail all 40 trials.
    """

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        boxes = next(x for x in flat_inputs if isinstance(x, tv_tensors.BoundingBoxes))  # check_inputs ensures one
        orig_h, orig_w = boxes.canvas_size
        xyxy = (
            v2.functional.convert_bounding_box_format(
                boxes.as_subclass(Tensor), boxes.format, tv_tensors.BoundingBoxFormat.XYXY
            )
            .reshape(-1, 4)
            .to(torch.float32)
        )
        cx = 0.5 * (xyxy[:, 0] + xyxy[:, 2])
        cy = 0.5 * (xyxy[:, 1] + xyxy[:, 3])
        while True:
            min_iou = self.options[int(torch.randint(low=0, high=len(self.options), size=(1,)))]
            if min_iou >= 1.0:  # the "keep the whole image" option
                return {}
            scale = self.min_scale + (self.max_scale - self.min_scale) * torch.rand(self.trials, 2)
            new_w = (orig_w * scale[:, 0]).floor()
            new_h = (orig_h * scale[:, 1]).floor()
            pos = torch.rand(self.trials, 2)
            left = ((orig_w - new_w) * pos[:, 0]).floor()
            top = ((orig_h - new_h) * pos[:, 1]).floor()
            right, bottom = left + new_w, top + new_h
            aspect = new_w / new_h.clamp(min=1)
            ok = (new_w > 0) & (new_h > 0) & (aspect >= self.min_aspect_ratio) & (aspect <= self.max_aspect_ratio)
            inside = (  # [trials, N]: box centre strictly inside the crop
                (left[:, None] < cx) & (cx < right[:, None]) & (top[:, None] < cy) & (cy < bottom[:, None])
            )
            ious = pairwise_iou(torch.stack((left, top, right, bottom), dim=1), xyxy)  # [trials, N]
            if xyxy.shape[0] == 0:
                ok &= False  # no box centre can lie inside: only the "keep" option ends the loop
            else:
                best = torch.where(inside, ious, torch.full_like(ious, -1.0)).amax(dim=1)
                ok &= inside.any(dim=1) & (best >= min_iou)
            if bool(ok.any()):
                k = int(ok.nonzero()[0, 0])
                return dict(
                    top=int(top[k]),
                    left=int(left[k]),
                    height=int(new_h[k]),
                    width=int(new_w[k]),
                    is_within_crop_area=inside[k],
                )


def iou_crop() -> v2.Transform:
    """SSD's IoU-constrained crop (see the module docstring); must be followed by sanitize_boxes()."""
    return BatchedIoUCrop(
        min_scale=0.3,
        max_scale=1.0,
        min_aspect_ratio=0.5,
        max_aspect_ratio=2.0,
        sampler_options=[0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0],
        trials=40,
    )


def horizontal_flip(p: float = 0.5) -> v2.Transform:
    """Mirror left-right with probability ``p``; boxes become ``[W - x2, y1, W - x1, y2]``."""
    return v2.RandomHorizontalFlip(p=p)


class ResizeToFloat(v2.Transform):
    """Images to float32 in [0, 1] resized to ``size`` with :func:`~singleshot.data.input_spec.resize_image`
    (the one resize policy of training and inference); boxes scaled to match.

    Args:
        size: output ``int`` (square) or ``(height, width)``.
        antialias: the resize policy (bilinear, antialiased when shrinking, or plain bilinear).
        resize_uint8: resize uint8 images before scaling them to [0, 1] (the action family, whose
            predictors keep resized uint8 frames); default: scale first and resize in float32 (the
            detect family, as :meth:`~singleshot.data.input_spec.InputSpec.prepare`).
    """

    def __init__(self, size: int | Sequence[int], antialias: bool = True, resize_uint8: bool = False) -> None:
        super().__init__()
        self.size = (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))
        self.antialias = bool(antialias)
        self.resize_uint8 = bool(resize_uint8)

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if isinstance(inpt, tv_tensors.BoundingBoxes):
            return v2.functional.resize(inpt, list(self.size))
        if isinstance(inpt, tv_tensors.Image):
            x = inpt.as_subclass(Tensor)
            if self.resize_uint8:
                out = to_unit_float(resize_image(x, self.size, self.antialias))
            else:
                out = resize_unit_float(x, self.size, self.antialias)
            return tv_tensors.wrap(out, like=inpt)
        return inpt

    def extra_repr(self) -> str:
        return f"size={self.size}, antialias={self.antialias}, resize_uint8={self.resize_uint8}"


def resize_to_float(size: int, antialias: bool = True) -> v2.Transform:
    """Scale to float32 in [0, 1], then resize to ``size x size`` (bilinear; ``antialias``: antialiased
    when shrinking) -- exactly the pixels :meth:`~singleshot.data.input_spec.InputSpec.prepare` gives."""
    return ResizeToFloat(size, antialias)


def sanitize_boxes() -> v2.Transform:
    """Drop boxes under 1 pixel wide or high (and zeroed crop leftovers) with their labels/difficult."""
    return v2.SanitizeBoundingBoxes(min_size=1.0, labels_getter=_labels_and_difficult)


def build_train_transform(
    size: int,
    mean: tuple[float, float, float],
    strong: bool = True,
    *,
    max_zoom: float = 4.0,
    antialias: bool = True,
) -> DetectionTransform:
    """SSD training augmentation.

    Args:
        size: output side in pixels.
        mean: RGB mean in [0, 1], the zoom-out fill (the input convention's mean in RGB order,
            :meth:`~singleshot.data.input_spec.InputSpec.rgb_mean`).
        strong: the full SSD pipeline (photometric, zoom-out, IoU crop, flip); ``False`` keeps only
            the horizontal flip.
        max_zoom: largest zoom-out side ratio (4 in SSD).
        antialias: the resize policy of :func:`resize_to_float` (the weights' ``resize`` metadata).

    Returns:
        callable ``(image uint8 Tensor[3, H, W], BoxTarget) -> (float32 Tensor[3, size, size] in
        [0, 1], BoxTarget in the size x size frame)``.
    """
    stages: list[v2.Transform] = []
    if strong:
        stages += [photometric_distort(), zoom_out(mean, max_zoom), iou_crop()]
    stages += [horizontal_flip(), resize_to_float(size, antialias), sanitize_boxes()]
    return DetectionTransform(v2.Compose(stages))


def build_eval_transform(size: int, antialias: bool = True) -> DetectionTransform:
    """Scale to float32 [0, 1] and resize to ``size x size`` (``antialias``: the resize policy); every
    box is kept (none is filtered). Normalised with the weights' :class:`~singleshot.data.input_spec.InputSpec`,
    its output is what :class:`~singleshot.tasks.detect.predictor.DetectPredictor` feeds the model."""
    return DetectionTransform(resize_to_float(size, antialias))
