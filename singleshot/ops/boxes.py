"""Box conversions and overlaps.

``xyxy`` boxes are (x1, y1, x2, y2); ``cxcywh`` boxes are (centre x, centre y, width, height). All
functions work on any leading batch shape and any consistent unit (pixels or normalised).
"""

from __future__ import annotations

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


def clip_boxes(boxes: Tensor, height: float, width: float) -> Tensor:
    """Clamp Tensor[..., 4] xyxy boxes into an image of (height, width) in the same unit."""
    x = boxes[..., 0::2].clamp(0, width)
    y = boxes[..., 1::2].clamp(0, height)
    return torch.stack((x[..., 0], y[..., 0], x[..., 1], y[..., 1]), dim=-1)
