"""Clip augmentation: one random draw per clip, applied identically to every frame.

A clip is a stacked tensor ``Tensor[T, 3, H, W]`` (uint8 in 0..255, or float in [0, 1]); its boxes
are ``Tensor[N, 4]`` (one box per object, e.g. YOWO's key frame) or ``Tensor[N, K, 4]`` (one box per
frame of a K-frame tubelet), xyxy pixels of the clip's frames; ``labels`` is ``Tensor[N]``. Every
callable here maps ``(clip, boxes, labels)`` to ``(clip float32 [T, 3, h, w] in [0, 1], boxes,
labels)`` with the boxes in the output's pixels and the same rank as given.

Two training recipes:

- :class:`YowoClipAugment` (YOWO / YOLOv2 ``data_augmentation``): jitter crop (each side moved
  inwards or outwards by up to ``jitter`` of the frame size, independently; area outside the frame
  is padded with ``fill``), horizontal flip with probability 0.5, resize to the input size, and an
  HSV distortion: hue shifted by ``U(-hue, hue)`` turns, saturation and value multiplied by a factor
  drawn from ``[1, s]`` and inverted with probability 0.5 (so within ``[1/s, s]``), then clamped.
- :class:`ActClipAugment` (ACT, from SSD): photometric distortion, zoom-out up to 4x on a canvas
  filled with the mean, an IoU-constrained crop whose constraint is the *mean over the K frames* of
  a tubelet's IoU with the crop (:class:`TubeletIoUCrop`), flip, resize. ACT keeps a tubelet only when
  its box centre lies inside the crop on every frame. The photometric step is torchvision's SSD
  setting (:func:`singleshot.data.transforms.photometric_distort`), which also permutes the colour
  channels with probability 0.5 where ACT does not; ACT's own code always puts the original image
  in the bottom-right corner of the zoom-out canvas, the position is random here as in SSD.

Boxes are clipped to the output; a box under ``min_size`` output pixels wide or high is dropped,
and a K-frame tubelet is dropped with its label when *any* of its K boxes is (its frames are
supervised together). The default ``min_size = 1`` pixel is close to YOWO's own rule (it drops boxes
under 0.001 of the image side, 0.2 pixel at 224) and equals the detect family's sanitiser.

Random numbers come from torch's global generator (the ``v2`` transforms use it), which
:class:`~singleshot.engine.sampler.SeededDataset` seeds per sample. Everything is picklable.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from singleshot.data.input_spec import resize_image, size_hw
from singleshot.data.transforms import ResizeToFloat, horizontal_flip, photometric_distort, zoom_out
from singleshot.ops.boxes import box_iou_np

logger = logging.getLogger(__name__)

__all__ = [
    "ActClipAugment",
    "ClipResize",
    "ClipToBGR",
    "TubeletIoUCrop",
    "YowoClipAugment",
    "crop_clip",
    "flip_clip",
    "hsv_distort",
    "hsv_to_rgb",
    "resize_clip",
    "rgb_to_hsv",
    "sanitize_tubelets",
]

Size = int | Sequence[int]


def _to_float(clip: Tensor) -> Tensor:
    """uint8 -> float32 ``x / 255`` (divided, as these clip transforms always have: within one ulp of
    :func:`~singleshot.data.input_spec.to_unit_float`'s ``x · (1/255)``, and bit-identical to the
    clips earlier runs trained on); float -> float32 as it is."""
    return clip.to(torch.float32) / 255.0 if clip.dtype == torch.uint8 else clip.to(torch.float32)


def crop_clip(
    clip: Tensor, boxes: Tensor, top: int, left: int, height: int, width: int, fill: float | Sequence[float] = 0
) -> tuple[Tensor, Tensor]:
    """Crop every frame to rows ``top ... top + height - 1`` and columns ``left ... left + width - 1``.

    The window may extend past the frame: that area is filled with ``fill`` (a scalar or one value
    per channel, in the clip's value range). Boxes are shifted and clipped to the window.

    Returns:
        (clip Tensor[T, 3, height, width], boxes of the same shape as given).
    """
    h, w = int(clip.shape[-2]), int(clip.shape[-1])
    pads = [max(0, -left), max(0, -top), max(0, left + width - w), max(0, top + height - h)]
    if any(pads):
        fill_arg = [float(v) for v in fill] if isinstance(fill, Sequence) else float(fill)
        clip = F.pad(clip, pads, fill=fill_arg)
    clip = F.crop(clip, top + pads[1], left + pads[0], height, width)
    shift = boxes.new_tensor([left, top, left, top])
    limit = boxes.new_tensor([width, height, width, height])
    return clip, torch.minimum((boxes - shift).clamp(min=0), limit)


def resize_clip(clip: Tensor, boxes: Tensor, size: Size, antialias: bool = True) -> tuple[Tensor, Tensor]:
    """Resize every frame to ``size`` with :func:`~singleshot.data.input_spec.resize_image` (bilinear,
    antialiased when shrinking if ``antialias``; the clip's dtype kept) and scale the boxes to match."""
    h, w = int(clip.shape[-2]), int(clip.shape[-1])
    oh, ow = size_hw(size)
    out = resize_image(clip, (oh, ow), antialias)
    scale = boxes.new_tensor([ow / w, oh / h, ow / w, oh / h])
    return out, boxes * scale


def flip_clip(clip: Tensor, boxes: Tensor) -> tuple[Tensor, Tensor]:
    """Mirror every frame left-right: boxes become ``[W - x2, y1, W - x1, y2]``."""
    w = float(clip.shape[-1])
    flipped = torch.stack((w - boxes[..., 2], boxes[..., 1], w - boxes[..., 0], boxes[..., 3]), dim=-1)
    return F.horizontal_flip(clip), flipped


def _hue_sector(rgb: Tensor, maxc: Tensor, argmax: Tensor, delta: Tensor) -> Tensor:
    """Hue in sector units [0, 6) before the modulo (values of grey pixels are arbitrary)."""
    r, g, b = rgb.unbind(dim=-3)
    inv = 1.0 / delta.clamp(min=1e-12)
    return torch.where(argmax == 0, (g - b) * inv, torch.where(argmax == 1, (b - r) * inv + 2.0, (r - g) * inv + 4.0))


def _from_hsv(sector: Tensor, s: Tensor, v: Tensor) -> Tensor:
    """RGB ``[..., 3, H, W]`` from hue (sector units, any real), saturation and value ``[..., H, W]``.

    Channel ``c`` with offset ``n_c`` = 5, 3, 1 (R, G, B) is ``v * (1 - s * clamp(min(k, 4 - k), 0, 1))``
    where ``k = (n_c + 6 h) mod 6``: the piecewise-linear form of the usual six-sector table.
    """
    offsets = torch.tensor([5.0, 3.0, 1.0], dtype=v.dtype, device=v.device).view(3, *([1] * v.dim()))
    k = (offsets + sector.unsqueeze(0)).remainder_(6.0)
    ramp = torch.minimum(k, 4.0 - k).clamp_(0.0, 1.0)
    return ramp.mul_(s.unsqueeze(0)).neg_().add_(1.0).mul_(v.unsqueeze(0)).movedim(0, -3)


def rgb_to_hsv(rgb: Tensor) -> Tensor:
    """RGB -> HSV for float tensors ``[..., 3, H, W]`` in [0, 1]; hue in [0, 1) turns (0 for greys)."""
    maxc, argmax = rgb.max(dim=-3)
    delta = maxc - rgb.amin(dim=-3)
    hue = _hue_sector(rgb, maxc, argmax, delta)
    hue = torch.where(delta > 0, hue, torch.zeros_like(hue)).div_(6.0).remainder_(1.0)
    return torch.stack((hue, delta / maxc.clamp(min=1e-12), maxc), dim=-3)


def hsv_to_rgb(hsv: Tensor) -> Tensor:
    """HSV -> RGB, inverse of :func:`rgb_to_hsv` (hue taken modulo 1)."""
    h, s, v = hsv.unbind(dim=-3)
    return _from_hsv(h * 6.0, s, v)


def hsv_distort(clip: Tensor, hue: float, saturation: float, exposure: float) -> Tensor:
    """YOLOv2's colour distortion of a float clip ``[..., 3, H, W]`` in [0, 1].

    Hue is shifted by ``hue`` turns (wrapping), saturation and value are multiplied by
    ``saturation`` and ``exposure`` and clamped to [0, 1]. Same result as
    ``hsv_to_rgb`` of the modified ``rgb_to_hsv``, in fewer passes over the pixels.
    """
    rgb = clip.clamp(0.0, 1.0)
    maxc, argmax = rgb.max(dim=-3)
    delta = maxc - rgb.amin(dim=-3)
    sector = _hue_sector(rgb, maxc, argmax, delta).add_(6.0 * hue)
    sat = (delta / maxc.clamp(min=1e-12)).mul_(saturation).clamp_(0.0, 1.0)
    return _from_hsv(sector, sat, maxc.mul(exposure).clamp_(0.0, 1.0))


def sanitize_tubelets(boxes: Tensor, labels: Tensor, min_size: float = 1.0) -> tuple[Tensor, Tensor]:
    """Drop the objects whose box (on any frame, for ``[N, K, 4]``) is under ``min_size`` wide or high."""
    wh = boxes[..., 2:] - boxes[..., :2]
    ok = (wh >= min_size).all(dim=-1)
    if boxes.dim() == 3:
        ok = ok.all(dim=-1)
    return boxes[ok], labels[ok]


def _rand_uniform(lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand(()))


def _rand_scale(s: float) -> float:
    """A factor in [1, s], inverted with probability 0.5 (darknet's rand_scale)."""
    scale = _rand_uniform(1.0, s)
    return scale if float(torch.rand(())) < 0.5 else 1.0 / scale


class YowoClipAugment:
    """YOWO's training augmentation of a clip (see the module docstring).

    Args:
        size: output ``int`` (square) or ``(height, width)``.
        jitter: largest move of each crop side, as a fraction of the frame's width/height (0.2).
        hue: largest hue shift in turns (0.1).
        saturation, exposure: largest saturation / value factor ``s``, factors in ``[1/s, s]`` (1.5).
        flip_p: probability of the horizontal flip (0.5).
        min_size: boxes narrower or shorter than this (output pixels) are dropped (1.0).
        fill: value of the padded area in 0..255 units (YOWO pads with black: 0).
        antialias: the resize policy of :func:`resize_clip`.

    ``__call__(clip [T, 3, H, W] uint8 or float, boxes [N, 4] | [N, K, 4], labels [N])`` returns
    ``(float32 [T, 3, h, w] in [0, 1], boxes, labels)``.
    """

    def __init__(
        self,
        size: Size,
        jitter: float = 0.2,
        hue: float = 0.1,
        saturation: float = 1.5,
        exposure: float = 1.5,
        flip_p: float = 0.5,
        min_size: float = 1.0,
        fill: float | Sequence[float] = 0,
        antialias: bool = True,
    ) -> None:
        if not 0.0 <= jitter < 0.5:
            raise ValueError(f"jitter must lie in [0, 0.5), got {jitter}")
        if saturation < 1.0 or exposure < 1.0:
            raise ValueError(f"saturation and exposure must be >= 1, got {saturation}, {exposure}")
        self.size = size_hw(size)
        self.jitter, self.hue, self.saturation, self.exposure = jitter, hue, saturation, exposure
        self.flip_p, self.min_size, self.fill = flip_p, min_size, fill
        self.antialias = bool(antialias)

    def __call__(self, clip: Tensor, boxes: Tensor, labels: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        h, w = int(clip.shape[-2]), int(clip.shape[-1])
        dw, dh = int(w * self.jitter), int(h * self.jitter)
        left, right = (int(v) for v in torch.randint(-dw, dw + 1, (2,)))
        top, bottom = (int(v) for v in torch.randint(-dh, dh + 1, (2,)))
        flip = float(torch.rand(())) < self.flip_p
        dhue = _rand_uniform(-self.hue, self.hue)
        dsat, dexp = _rand_scale(self.saturation), _rand_scale(self.exposure)

        boxes = boxes.to(torch.float32)
        fill = self.fill if clip.dtype == torch.uint8 else _scaled_fill(self.fill)
        clip, boxes = crop_clip(clip, boxes, top, left, h - top - bottom, w - left - right, fill)
        # the colour distortion is per pixel: run it at the smaller of the crop and output sizes
        small_first = clip.shape[-2] * clip.shape[-1] <= self.size[0] * self.size[1]
        if small_first:
            clip = hsv_distort(_to_float(clip), dhue, dsat, dexp)
        clip, boxes = resize_clip(clip, boxes, self.size, self.antialias)
        if not small_first:
            clip = hsv_distort(_to_float(clip), dhue, dsat, dexp)
        if flip:
            clip, boxes = flip_clip(clip, boxes)
        boxes, labels = sanitize_tubelets(boxes, labels, self.min_size)
        return clip, boxes, labels

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(size={self.size}, jitter={self.jitter}, hue={self.hue}, "
            f"saturation={self.saturation}, exposure={self.exposure}, flip_p={self.flip_p})"
        )


def _scaled_fill(fill: float | Sequence[float]) -> float | list[float]:
    """A 0..255 fill value for a float clip in [0, 1]."""
    if isinstance(fill, Sequence):
        return [float(v) / 255.0 for v in fill]
    return float(fill) / 255.0


class TubeletIoUCrop(v2.RandomIoUCrop):
    """SSD's IoU-constrained crop for K-frame tubelets (ACT).

    Expects one ``BoundingBoxes`` of ``N * K`` rows (tubelet-major: rows ``n*K ... n*K + K - 1`` are
    tubelet ``n``'s frames). A minimum IoU is drawn from ``sampler_options`` (1.0 = keep the whole
    frame); up to ``trials`` crops with sides in ``[min_scale, 1]`` of the frame and aspect in
    ``[0.5, 2]`` are drawn at once, and the first one that contains at least one tubelet whose box
    centre is strictly inside on all K frames, and whose best mean-over-frames IoU among those
    tubelets reaches the minimum, is taken. Tubelets not wholly inside are zeroed on every frame
    (removed afterwards by :func:`sanitize_tubelets`); the others are clipped to the crop.
    """

    def __init__(self, frames: int, **kwargs: Any) -> None:
        kwargs.setdefault("sampler_options", [0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0])
        super().__init__(**kwargs)
        if frames < 1:
            raise ValueError(f"frames must be >= 1, got {frames}")
        self.frames = int(frames)

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        boxes = next(x for x in flat_inputs if isinstance(x, tv_tensors.BoundingBoxes))
        orig_h, orig_w = boxes.canvas_size
        xyxy = boxes.as_subclass(Tensor).reshape(-1, 4).to(torch.float32)
        k = self.frames
        if xyxy.shape[0] % k:
            raise ValueError(f"TubeletIoUCrop: {xyxy.shape[0]} boxes are not a multiple of K = {k}")
        n = xyxy.shape[0] // k
        # The random numbers come from torch's generator (seeded samples stay reproducible); the
        # arithmetic on these few dozen values runs in NumPy float32, the same IEEE operations in
        # the same order as torch's, at a fraction of the per-call overhead.
        gt = xyxy.numpy()
        cx, cy = np.float32(0.5) * (gt[:, 0] + gt[:, 2]), np.float32(0.5) * (gt[:, 1] + gt[:, 3])
        lo, span = np.float32(self.min_scale), np.float32(self.max_scale - self.min_scale)
        while True:
            min_iou = self.options[int(torch.randint(0, len(self.options), (1,)))]
            if min_iou >= 1.0 or n == 0:  # keep the frame; without boxes nothing else can end the loop
                return {}
            scale = lo + span * torch.rand(self.trials, 2).numpy()
            new_w, new_h = np.floor(np.float32(orig_w) * scale[:, 0]), np.floor(np.float32(orig_h) * scale[:, 1])
            pos = torch.rand(self.trials, 2).numpy()
            left = np.floor((np.float32(orig_w) - new_w) * pos[:, 0])
            top = np.floor((np.float32(orig_h) - new_h) * pos[:, 1])
            right, bottom = left + new_w, top + new_h
            aspect = new_w / np.maximum(new_h, np.float32(1))
            ok = (new_w > 0) & (new_h > 0) & (aspect >= self.min_aspect_ratio) & (aspect <= self.max_aspect_ratio)
            inside = (left[:, None] < cx) & (cx < right[:, None]) & (top[:, None] < cy) & (cy < bottom[:, None])
            inside = inside.reshape(self.trials, n, k).all(axis=2)  # [trials, N]
            crops = np.stack((left, top, right, bottom), axis=1)  # [trials, 4] xyxy pixels
            iou = box_iou_np(crops[:, None], gt[None], dtype=np.float32)  # [trials, N * K]
            mean_iou = _mean_last(iou.reshape(self.trials, n, k))
            best = np.where(inside, mean_iou, np.float32(-1.0)).max(axis=1)
            ok &= inside.any(axis=1) & (best >= min_iou)
            if bool(ok.any()):
                t = int(np.flatnonzero(ok)[0])
                return dict(
                    top=int(top[t]),
                    left=int(left[t]),
                    height=int(new_h[t]),
                    width=int(new_w[t]),
                    is_within_crop_area=torch.from_numpy(inside[t]).repeat_interleave(k),
                )


def _mean_last(x: np.ndarray) -> np.ndarray:
    """Mean over the last axis, summed left to right in float32 (as torch's CPU ``mean`` over a short axis)."""
    total = x[..., 0].copy()
    for i in range(1, x.shape[-1]):
        total += x[..., i]
    return total / np.float32(x.shape[-1])


class ActClipAugment:
    """ACT's (SSD's) training augmentation of a K-frame clip (see the module docstring).

    Args:
        size: output ``int`` (square) or ``(height, width)``.
        frames: K, the number of boxes per tubelet (the clip's T).
        mean: RGB mean in [0, 1], the zoom-out fill.
        max_zoom: largest zoom-out side ratio (4).
        photometric: apply the photometric distortion (brightness, contrast, saturation, hue,
            channel order; each with probability 0.5, the same for all frames).
        min_size: tubelets with a box under this many output pixels wide or high are dropped.
        antialias: the resize policy (:func:`~singleshot.data.input_spec.resize_image` on uint8,
            then scaled to [0, 1], as :class:`ClipResize` and the ACT predictor).

    ``__call__(clip uint8 [K, 3, H, W], boxes [N, K, 4], labels [N])`` returns ``(float32
    [K, 3, h, w] in [0, 1], boxes [N', K, 4], labels [N'])``.
    """

    def __init__(
        self,
        size: Size,
        frames: int,
        mean: Sequence[float] = (0.485, 0.456, 0.406),
        max_zoom: float = 4.0,
        photometric: bool = True,
        min_size: float = 1.0,
        antialias: bool = True,
    ) -> None:
        self.size, self.frames, self.min_size = size_hw(size), int(frames), min_size
        stages: list[v2.Transform] = [photometric_distort()] if photometric else []
        stages += [zoom_out(mean, max_zoom), TubeletIoUCrop(self.frames), horizontal_flip()]
        stages += [ResizeToFloat(self.size, antialias, resize_uint8=True)]
        self.transform = v2.Compose(stages)

    def __call__(self, clip: Tensor, boxes: Tensor, labels: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        if clip.dtype != torch.uint8:
            raise TypeError(f"ActClipAugment expects a uint8 clip, got {clip.dtype}")
        shape = boxes.shape
        if boxes.dim() == 2:
            shape = (shape[0], 1, 4)
        if shape[1] != self.frames:
            raise ValueError(f"ActClipAugment(frames={self.frames}) got boxes of shape {tuple(boxes.shape)}")
        h, w = int(clip.shape[-2]), int(clip.shape[-1])
        flat = tv_tensors.BoundingBoxes(boxes.to(torch.float32).reshape(-1, 4), format="XYXY", canvas_size=(h, w))
        out, out_boxes = self.transform(tv_tensors.Image(clip), flat)
        out_boxes = out_boxes.as_subclass(Tensor).reshape(shape)
        out_boxes, labels = sanitize_tubelets(out_boxes, labels, self.min_size)
        return out.as_subclass(Tensor), out_boxes.reshape(-1, *boxes.shape[1:]), labels

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.transform!r})"


class ClipToBGR:
    """A clip transform whose float output is turned to BGR order, every frame (for weights whose
    ``channel_order`` is BGR: the dataset then normalises with their BGR-ordered mean/std, as the
    action predictors do after flipping their resized frames).

    Args:
        transform: a clip transform ``(clip, boxes, labels) -> (float [T, 3, h, w] RGB, boxes, labels)``.
    """

    def __init__(self, transform: Any) -> None:
        self.transform = transform

    def __call__(self, clip: Tensor, boxes: Tensor, labels: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        out, boxes, labels = self.transform(clip, boxes, labels)
        return out.flip(-3), boxes, labels

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.transform!r})"


class ClipResize:
    """Test-time transform: resize to ``size`` (:func:`resize_clip` with the policy ``antialias``, on
    the clip's dtype: uint8 frames, as the action predictors) and scale to float32 [0, 1]; every box
    is kept."""

    def __init__(self, size: Size, antialias: bool = True) -> None:
        self.size = size_hw(size)
        self.antialias = bool(antialias)

    def __call__(self, clip: Tensor, boxes: Tensor, labels: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        clip, boxes = resize_clip(clip, boxes.to(torch.float32), self.size, self.antialias)
        return _to_float(clip), boxes, labels

    def __repr__(self) -> str:
        return f"{type(self).__name__}(size={self.size}, antialias={self.antialias})"
