"""Box conversions and overlaps: the box IoU of the package, in torch and in NumPy.

``xyxy`` boxes are (x1, y1, x2, y2); ``cxcywh`` boxes are (centre x, centre y, width, height). All
functions work on any leading batch shape and any consistent unit (pixels or normalised).

Two IoUs, each with the ``plus_one`` switch (widths ``x2 - x1 + 1``, the VOC devkit's and ACT's
inclusive-pixel convention; ``False``: continuous ``x2 - x1``):

* :func:`pairwise_iou` (torch): every box of ``a`` [..., N, 4] with every box of ``b`` [..., M, 4];
  differentiable, or into reusable buffers.
* :func:`box_iou_np` (NumPy): elementwise with broadcasting, ``a`` [..., 4] with ``b`` [..., 4]
  (pairwise: ``box_iou_np(a[:, None], b[None])``), in float64 or, with ``dtype``, float32.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def xyxy_to_cxcywh(boxes: Tensor) -> Tensor:
    """Tensor[..., 4] xyxy -> Tensor[..., 4] cxcywh."""
    x1, y1, x2, y2 = boxes.unbind(-1)
    return torch.stack(((x1 + x2) * 0.5, (y1 + y2) * 0.5, x2 - x1, y2 - y1), dim=-1)


def cxcywh_to_xyxy(boxes: Tensor) -> Tensor:
    """Tensor[..., 4] cxcywh -> Tensor[..., 4] xyxy."""
    cx, cy, w, h = boxes.unbind(-1)
    return torch.stack((cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h), dim=-1)


def box_area(boxes: Tensor, plus_one: bool = False) -> Tensor:
    """Area of Tensor[..., 4] xyxy boxes; ``plus_one`` uses the VOC devkit's inclusive-pixel widths."""
    one = 1.0 if plus_one else 0.0
    return (boxes[..., 2] - boxes[..., 0] + one).clamp(min=0) * (boxes[..., 3] - boxes[..., 1] + one).clamp(min=0)


def pairwise_iou(
    a: Tensor,
    b: Tensor,
    plus_one: bool = False,
    out: Tensor | None = None,
    work: tuple[Tensor, Tensor] | None = None,
) -> Tensor:
    """IoU of every box of ``a`` with every box of ``b``.

    Args:
        a: Tensor[..., N, 4] xyxy.
        b: Tensor[..., M, 4] xyxy (leading dims broadcast against ``a``'s).
        plus_one: count widths as x2 - x1 + 1 (VOC devkit convention for integer pixel boxes).
        out: optional buffer of the result's shape [..., N, M] and dtype.
        work: optional two scratch buffers like ``out``. Reusing buffers avoids allocating (and
            page-faulting) fresh large temporaries; neither is differentiable.

    Returns:
        Tensor[..., N, M] IoU in [0, 1]; 0 where the union is empty (``out`` when given).
    """
    one = 1.0 if plus_one else 0.0
    # Coordinates as contiguous rows, and few large temporaries reused in place: strided inputs
    # and fresh [..., N, M] buffers for every step made this several times slower.
    ax1, ay1, ax2, ay2 = (c.contiguous()[..., :, None] for c in a.unbind(-1))
    bx1, by1, bx2, by2 = (c.contiguous()[..., None, :] for c in b.unbind(-1))
    tiny = torch.finfo(a.dtype).tiny
    area_a, area_b = box_area(a, plus_one)[..., :, None], box_area(b, plus_one)[..., None, :]
    if torch.is_grad_enabled() and (a.requires_grad or b.requires_grad):  # differentiable, out of place
        if out is not None or work is not None:
            raise ValueError("pairwise_iou: out/work buffers are not differentiable; call it under no_grad")
        iw = (torch.minimum(ax2, bx2) - torch.maximum(ax1, bx1) + one).clamp(min=0)
        ih = (torch.minimum(ay2, by2) - torch.maximum(ay1, by1) + one).clamp(min=0)
        inter = iw * ih
        return inter / (area_a + area_b - inter).clamp(min=tiny)
    t1, t2 = work if work is not None else (None, None)
    iw = torch.minimum(ax2, bx2) if out is None else torch.minimum(ax2, bx2, out=out)
    tmp = torch.maximum(ax1, bx1) if t1 is None else torch.maximum(ax1, bx1, out=t1)
    iw.sub_(tmp).add_(one).clamp_(min=0)
    ih = torch.minimum(ay2, by2, out=tmp)
    ih.sub_(torch.maximum(ay1, by1) if t2 is None else torch.maximum(ay1, by1, out=t2)).add_(one).clamp_(min=0)
    inter = iw.mul_(ih)
    union = torch.add(area_a, area_b, out=tmp)
    # inter <= union, so an empty union (two empty boxes) gives 0 / tiny = 0.
    return inter.div_(union.sub_(inter).clamp_(min=tiny))


def box_iou_np(
    a: np.ndarray, b: np.ndarray, plus_one: bool = False, dtype: type[np.floating] = np.float64
) -> np.ndarray:
    """IoU of xyxy boxes, elementwise with NumPy broadcasting.

    Args:
        a: float array [..., 4], xyxy (pixels or normalised).
        b: float array [..., 4], xyxy, broadcastable against ``a``.
        plus_one: add 1 to widths and heights (the devkit's inclusive-pixel convention).
        dtype: the float type of the computation and the result: ``np.float64`` (default) or
            ``np.float32`` where a caller must reproduce a float32 computation bit for bit.

    Returns:
        array of ``dtype`` with the broadcast shape without the last axis. Boxes that do not overlap
        (intersection width or height <= 0), an empty union and NaN coordinates give IoU 0.
    """
    one = 1.0 if plus_one else 0.0
    a = np.asarray(a, dtype=dtype)
    b = np.asarray(b, dtype=dtype)
    iw = np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]) + one
    ih = np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]) + one
    overlap = (iw > 0) & (ih > 0)
    inter = np.where(overlap, iw * ih, 0.0)
    area_a = (a[..., 2] - a[..., 0] + one) * (a[..., 3] - a[..., 1] + one)
    area_b = (b[..., 2] - b[..., 0] + one) * (b[..., 3] - b[..., 1] + one)
    union = area_a + area_b - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(overlap & (union > 0), inter / union, 0.0)
    return iou.astype(dtype, copy=False)


def clip_boxes(boxes: Tensor, height: float, width: float) -> Tensor:
    """Clamp Tensor[..., 4] xyxy boxes into an image of (height, width) in the same unit."""
    x = boxes[..., 0::2].clamp(0, width)
    y = boxes[..., 1::2].clamp(0, height)
    return torch.stack((x[..., 0], y[..., 0], x[..., 1], y[..., 1]), dim=-1)
