"""The YOLOv2 region coder of YOWO's head: raw region output -> boxes in grid units.

The head's output ``out`` is Tensor[B, A·(5+C), H, W]; viewed as [B, A, 5+C, H, W]
(:func:`split_region_output`) each anchor's channels are the raw
``(tx, ty, tw, th, conf, class_0 … class_{C-1})``. Boxes decode as in YOWO's ``get_region_boxes``
(ref: wei-tim/YOWO core/utils.py):

    cx = j + sigmoid(tx),  cy = i + sigmoid(ty)          (grid units, cell (i, j) = (row, column))
    w  = anchor_w · exp(tw),  h = anchor_h · exp(th)     (anchors in grid units)

A grid cell is 1 × 1 and the map is W × H; multiply by (input width / W, input height / H) for
network-input pixels. Used by the region loss (targets, IoU rescoring), its distillation terms and
the postprocess.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["MAX_LOG_SCALE", "region_grid_boxes", "split_region_output"]

#: Largest exponent used when decoding tw, th (exp(10) ≈ 22000 cells): keeps untrained or diverging
#: outputs from producing inf boxes (and NaN IoUs). YOWO does not clamp; trained outputs never reach it.
MAX_LOG_SCALE = 10.0


def split_region_output(out: Tensor, num_anchors: int, num_classes: int) -> Tensor:
    """View Tensor[B, A·(5+C), H, W] as Tensor[B, A, 5+C, H, W] (raw values, no activation)."""
    if out.dim() != 4 or out.shape[1] != num_anchors * (5 + num_classes):
        raise ValueError(
            f"region output of shape {tuple(out.shape)} does not fit {num_anchors} anchors and "
            f"{num_classes} classes: expected [B, {num_anchors * (5 + num_classes)}, H, W]"
        )
    b, _, h, w = out.shape
    return out.view(b, num_anchors, 5 + num_classes, h, w)


def region_grid_boxes(raw: Tensor, anchors: Tensor) -> Tensor:
    """Predicted boxes in grid units.

    Args:
        raw: Tensor[B, A, 5+C, H, W] raw head output (see :func:`split_region_output`).
        anchors: Tensor[A, 2] anchor (width, height) in grid cells.

    Returns:
        Tensor[B, A, H, W, 4] cxcywh in grid units (a cell is 1 × 1; the map is W × H).
    """
    _, a, _, h, w = raw.shape
    anchors = anchors.to(device=raw.device, dtype=raw.dtype)
    cols = torch.arange(w, device=raw.device, dtype=raw.dtype).view(1, 1, 1, w)
    rows = torch.arange(h, device=raw.device, dtype=raw.dtype).view(1, 1, h, 1)
    cx = raw[:, :, 0].sigmoid() + cols
    cy = raw[:, :, 1].sigmoid() + rows
    bw = raw[:, :, 2].clamp(max=MAX_LOG_SCALE).exp() * anchors[:, 0].view(1, a, 1, 1)
    bh = raw[:, :, 3].clamp(max=MAX_LOG_SCALE).exp() * anchors[:, 1].view(1, a, 1, 1)
    return torch.stack((cx, cy, bw, bh), dim=-1)
