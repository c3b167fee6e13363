"""Grasp maps → grasp rectangles, batched in torch (dougsm/ggcnn ``post_process_output`` and
``detect_grasps``).

1. ``angle = atan2(sin, cos) / 2`` (radians, in (−π/2, π/2]); ``width = width × 150`` pixels.
2. Gaussian smoothing of quality, angle and width with σ = 2, 2, 1 (``skimage.filters.gaussian``
   = ``scipy.ndimage.gaussian_filter``: kernel radius ``int(4σ + 0.5)``, border mode ``nearest``;
   reproduced here with separable convolutions and replicate padding). As in the reference, the
   angle itself is smoothed (not its cos/sin), so smoothing across the ±π/2 wrap mixes angles.
3. Peaks as ``skimage.feature.peak_local_max(q, min_distance=20, threshold_abs=0.2, num_peaks=k)``
   (exclude_border = min_distance, Chebyshev distance): a pixel is a candidate when it equals the
   maximum of its (2·20 + 1)² window (separable max-pooling; out-of-image pixels never win, as with
   ``mode="nearest"``), is strictly above the threshold and lies at least 20 pixels from every
   border; an image whose pixels are all equal has no peaks. Candidates are ranked by quality
   (ties in row-major order, as skimage's stable sort) and greedily thinned so that no two kept
   peaks are closer than 20 pixels in Chebyshev distance (``torchvision.ops.batched_nms`` on
   20 × 20 squares centred on the peaks with IoU threshold 0: two such squares overlap with a
   positive area exactly when their centres are closer than 20 in both x and y). The first k per
   image are kept. Difference from skimage: skimage thins candidates in blocks of 2,000 when there
   are more than 2,000 of them, which can keep a few extra near-duplicates; here the greedy
   thinning always runs over all candidates.
4. Each peak (row r, column c) gives the grasp ``(cx = c, cy = r, angle, opening = width,
   jaw = opening / 2)`` read from the smoothed maps, scored by the smoothed quality.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import batched_nms

from singleshot.structures import Grasps

logger = logging.getLogger(__name__)

__all__ = ["GraspPostprocess", "find_peaks", "gaussian_blur", "maps_to_grasps", "smooth_maps"]


def _gaussian_kernel(sigma: float, truncate: float, device: torch.device) -> Tensor:
    radius = int(truncate * sigma + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=torch.float64, device=device)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def gaussian_blur(img: Tensor, sigma: float, truncate: float = 4.0) -> Tensor:
    """Gaussian smoothing as ``scipy.ndimage.gaussian_filter(img, sigma, mode="nearest")``.

    Args:
        img: Tensor[B, H, W] (float).
        sigma: standard deviation in pixels (0 returns ``img`` unchanged).
        truncate: the kernel reaches ``int(truncate · sigma + 0.5)`` pixels each side.

    Returns:
        Tensor[B, H, W] of ``img``'s dtype.
    """
    if sigma <= 0:
        return img
    k = _gaussian_kernel(sigma, truncate, img.device).to(img.dtype)
    r = (k.numel() - 1) // 2
    x = img[:, None]
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1))
    x = F.conv2d(F.pad(x, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1))
    return x[:, 0]


def smooth_maps(
    outputs: Mapping[str, Tensor],
    sigmas: tuple[float, float, float] = (2.0, 2.0, 1.0),
    width_scale: float = 150.0,
) -> tuple[Tensor, Tensor, Tensor]:
    """Quality, angle and width images from raw grasp maps (steps 1–2 of the module docstring).

    Args:
        outputs: ``{"pos", "cos", "sin", "width"}`` each Tensor[B, 1, H, W].
        sigmas: Gaussian σ of quality, angle and width.
        width_scale: pixels per unit of the ``width`` map.

    Returns:
        (quality, angle radians, width pixels), each Tensor[B, H, W] float32.
    """
    q = outputs["pos"][:, 0].float()
    ang = torch.atan2(outputs["sin"][:, 0].float(), outputs["cos"][:, 0].float()) / 2
    width = outputs["width"][:, 0].float() * width_scale
    return gaussian_blur(q, sigmas[0]), gaussian_blur(ang, sigmas[1]), gaussian_blur(width, sigmas[2])


def find_peaks(
    q: Tensor,
    min_distance: int = 20,
    threshold: float = 0.2,
    exclude_border: int | bool = True,
    num_peaks: int | None = None,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Local maxima of a batch of images (step 3 of the module docstring).

    Args:
        q: Tensor[B, H, W] quality images.
        min_distance: peaks are at least this far apart (Chebyshev) and are maxima of a
            (2·min_distance + 1)² window.
        threshold: peaks are strictly above this value.
        exclude_border: True for ``min_distance``, an int for that many pixels, False for none.
        num_peaks: keep at most this many peaks per image (None: all).

    Returns:
        (image index, row, column) Tensor[K] int64 and scores Tensor[K], grouped by image in
        ascending order and by descending score within an image.
    """
    b, h, w = q.shape
    dev = q.device
    empty = torch.zeros(0, dtype=torch.int64, device=dev)
    if b == 0 or h == 0 or w == 0:
        return empty, empty, empty, q.new_zeros(0)
    border = int(min_distance) if exclude_border is True else int(exclude_border or 0)
    size = 2 * int(min_distance) + 1
    if size > 1:
        # the square window's maximum as a row pass then a column pass: the same values, with
        # 2·size instead of size² comparisons per pixel (41² = 1681 for the reference settings)
        pooled = F.max_pool2d(q[:, None], (1, size), stride=1, padding=(0, size // 2))
        pooled = F.max_pool2d(pooled, (size, 1), stride=1, padding=(size // 2, 0))[:, 0]
        cand = q == pooled
        trivial = cand.flatten(1).all(dim=1)  # a constant image has no peaks
        cand &= ~trivial[:, None, None]
    else:
        cand = torch.ones_like(q, dtype=torch.bool)
    cand &= q > threshold
    if border > 0:
        cand[:, :border] = False
        cand[:, max(h - border, 0) :] = False
        cand[:, :, :border] = False
        cand[:, :, max(w - border, 0) :] = False
    bi, ri, ci = cand.nonzero(as_tuple=True)  # row-major order
    scores = q[bi, ri, ci]
    order = torch.argsort(scores, descending=True, stable=True)
    bi, ri, ci, scores = bi[order], ri[order], ci[order], scores[order]
    if min_distance > 1 and bi.numel():
        # squares of side min_distance with their corner (not centre) on the peak: the same
        # overlaps, and non-negative coordinates as batched_nms's per-image offsets require
        pts = torch.stack((ci, ri, ci, ri), dim=1).to(torch.float32)
        squares = pts + torch.tensor([0.0, 0.0, float(min_distance), float(min_distance)], device=dev)
        rank = torch.arange(bi.numel(), 0, -1, device=dev, dtype=torch.float32)  # unambiguous ranking
        keep = batched_nms(squares, rank, bi, 0.0)
        keep = keep.sort().values  # back to (score desc, row-major) order
        bi, ri, ci, scores = bi[keep], ri[keep], ci[keep], scores[keep]
    # group by image (stable: keeps the score order inside an image), then cut to num_peaks
    by_image = torch.argsort(bi, stable=True)
    bi, ri, ci, scores = bi[by_image], ri[by_image], ci[by_image], scores[by_image]
    if num_peaks is not None:
        counts = torch.bincount(bi, minlength=b)
        starts = torch.cumsum(counts, 0) - counts
        rank_in_image = torch.arange(bi.numel(), device=dev) - starts[bi]
        sel = rank_in_image < num_peaks
        bi, ri, ci, scores = bi[sel], ri[sel], ci[sel], scores[sel]
    return bi, ri, ci, scores


def maps_to_grasps(
    outputs: Mapping[str, Tensor],
    num_grasps: int | None = 1,
    *,
    min_distance: int = 20,
    threshold: float = 0.2,
    exclude_border: int | bool = True,
    sigmas: tuple[float, float, float] = (2.0, 2.0, 1.0),
    width_scale: float = 150.0,
    image_ids: Sequence[str] | None = None,
) -> list[Grasps]:
    """Grasps of each image of a batch from raw maps (the whole module docstring).

    Args:
        outputs: ``{"pos", "cos", "sin", "width"}`` each Tensor[B, 1, H, W].
        num_grasps: grasps kept per image (the reference's ``no_grasps``; None: every peak).
        min_distance, threshold, exclude_border: see :func:`find_peaks`.
        sigmas, width_scale: see :func:`smooth_maps`.
        image_ids: optional identifiers copied into the results.

    Returns:
        One :class:`Grasps` per image, in the pixels of the maps (size (H, W)), sorted by
        descending quality; ``grasps`` rows ``(cx, cy, angle, opening, jaw = opening / 2)``.
    """
    q, ang, width = smooth_maps(outputs, sigmas, width_scale)
    b, h, w = q.shape
    bi, ri, ci, scores = find_peaks(q, min_distance, threshold, exclude_border, num_grasps)
    opening = width[bi, ri, ci]
    rows = torch.stack((ci.float(), ri.float(), ang[bi, ri, ci], opening, opening / 2), dim=1)
    counts = torch.bincount(bi, minlength=b).tolist()
    ids = list(image_ids) if image_ids is not None else [""] * b
    return [
        Grasps(grasps=g, scores=s, image_id=ids[i], size=(h, w))
        for i, (g, s) in enumerate(zip(rows.split(counts), scores.float().split(counts)))
    ]


@dataclass
class GraspPostprocess:
    """Settings of :func:`maps_to_grasps` as one callable: ``post(outputs, image_ids=None)``.

    Defaults are the reference's: top-1 grasp, min distance 20 px, threshold 0.2, border excluded,
    σ = (2, 2, 1), width × 150.
    """

    num_grasps: int | None = 1
    min_distance: int = 20
    threshold: float = 0.2
    exclude_border: int | bool = True
    sigmas: tuple[float, float, float] = (2.0, 2.0, 1.0)
    width_scale: float = 150.0

    def __call__(self, outputs: Mapping[str, Tensor], image_ids: Sequence[str] | None = None) -> list[Grasps]:
        return maps_to_grasps(
            outputs,
            self.num_grasps,
            min_distance=self.min_distance,
            threshold=self.threshold,
            exclude_border=self.exclude_border,
            sigmas=self.sigmas,
            width_scale=self.width_scale,
            image_ids=image_ids,
        )
