"""Target building of the YOWO / YOLOv2 region loss, batched over the images of a batch.

Coordinates: ground truths arrive in network-input pixels (xyxy); everything here works in grid
units, where a cell is 1 × 1 and the output map is W × H cells (x = pixels · W / input width).
Anchors are (width, height) in grid units. A prediction is addressed by (image, anchor, row, column).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from singleshot.errors import DataError
from singleshot.ops.boxes import cxcywh_to_xyxy, pairwise_iou, xyxy_to_cxcywh
from singleshot.structures import TubeletTarget

logger = logging.getLogger(__name__)


@dataclass
class RegionTargets:
    """Ground truths of a batch padded to the longest image.

    Attributes:
        boxes: Tensor[B, M, 4] float32 xyxy in network-input pixels (the key frame's boxes).
        labels: Tensor[B, M] int64 0-based class indices (0 where padded).
        valid: Tensor[B, M] bool, False for padding.
    """

    boxes: Tensor
    labels: Tensor
    valid: Tensor


@dataclass
class RegionAssignment:
    """The responsible predictions of a batch and their targets (N = number of them).

    Attributes:
        index: Tensor[4, N] int64 (image, anchor, row, column), row-major order, no duplicates.
        coords: Tensor[N, 4] targets (tx, ty, tw, th): tx = gx − column ∈ [0, 1) (compared with
            sigmoid(tx) of the prediction), tw = log(gw / anchor_w) (compared with the raw tw).
        labels: Tensor[N] int64 0-based classes.
        gt_boxes: Tensor[N, 4] xyxy grid units of the assigned ground truths.
        ignore: Tensor[B, A, H, W] bool, predictions whose best IoU with any ground truth of their
            image exceeds the ignore threshold (no no-object loss for them).
    """

    index: Tensor
    coords: Tensor
    labels: Tensor
    gt_boxes: Tensor
    ignore: Tensor


def pad_region_targets(
    targets: Sequence[TubeletTarget], num_classes: int, device: torch.device | str = "cpu"
) -> RegionTargets:
    """Pad per-clip targets to [B, M] (a copy of ragged inputs; the maths is batched later).

    The key frame is the *last* frame of a :class:`TubeletTarget` (K = 1 for YOWO). Boxes with zero
    or negative width or height are marked invalid with a warning naming the video; a label outside
    [0, num_classes) raises :class:`DataError` naming the video.
    """
    b = len(targets)
    m = max((len(t) for t in targets), default=0)
    boxes = torch.zeros((b, m, 4), dtype=torch.float32)
    labels = torch.zeros((b, m), dtype=torch.int64)
    valid = torch.zeros((b, m), dtype=torch.bool)
    for i, t in enumerate(targets):
        n = len(t)
        if n == 0:
            continue
        key = t.boxes.reshape(n, -1, 4)[:, -1].float().cpu()
        lab = t.labels.reshape(n).long().cpu()
        if bool(((lab < 0) | (lab >= num_classes)).any()):
            raise DataError(f"{t.video or 'clip ' + str(i)}: labels {lab.tolist()} outside [0, {num_classes})")
        ok = (key[:, 2] > key[:, 0]) & (key[:, 3] > key[:, 1])
        if not bool(ok.all()):
            warnings.warn(
                f"{t.video or 'clip ' + str(i)}: {int((~ok).sum())} box(es) with zero or negative size "
                "ignored by the region loss",
                stacklevel=2,
            )
        boxes[i, :n] = key
        labels[i, :n] = lab
        valid[i, :n] = ok
    return RegionTargets(boxes.to(device), labels.to(device), valid.to(device))


def shape_iou(wh_a: Tensor, wh_b: Tensor) -> Tensor:
    """IoU of boxes sharing one centre: Tensor[..., 2] (w, h) and Tensor[..., 2] (broadcast)."""
    inter = torch.minimum(wh_a[..., 0], wh_b[..., 0]) * torch.minimum(wh_a[..., 1], wh_b[..., 1])
    union = wh_a[..., 0] * wh_a[..., 1] + wh_b[..., 0] * wh_b[..., 1] - inter
    return torch.where(union > 0, inter / union.clamp(min=torch.finfo(inter.dtype).tiny), 0.0)


def to_grid(boxes: Tensor, grid_size: tuple[int, int], input_size: tuple[int, int]) -> Tensor:
    """Tensor[..., 4] xyxy input pixels -> xyxy grid units (grid_size and input_size are (h, w))."""
    (gh, gw), (ih, iw) = grid_size, input_size
    scale = torch.tensor([gw / iw, gh / ih, gw / iw, gh / ih], dtype=boxes.dtype, device=boxes.device)
    return boxes * scale


def ignore_mask(pred_xyxy: Tensor, gt_xyxy: Tensor, valid: Tensor, thresh: float) -> Tensor:
    """Predictions overlapping some ground truth of their image by IoU > ``thresh``.

    Args:
        pred_xyxy: Tensor[B, P, 4] predicted boxes, gt_xyxy: Tensor[B, M, 4] (same unit), valid: [B, M].

    Returns:
        Tensor[B, P] bool.
    """
    if gt_xyxy.shape[1] == 0:
        return torch.zeros(pred_xyxy.shape[:2], dtype=torch.bool, device=pred_xyxy.device)
    iou = pairwise_iou(pred_xyxy, gt_xyxy).masked_fill(~valid[:, None, :], 0.0)
    return iou.amax(dim=-1) > thresh


def assign_region_targets(
    targets: RegionTargets,
    pred_boxes: Tensor,
    anchors: Tensor,
    input_size: tuple[int, int],
    ignore_thresh: float,
) -> RegionAssignment:
    """Choose the responsible prediction of every ground truth and encode its targets.

    A ground truth with centre (gx, gy) in grid units goes to the cell (row gj = ⌊gy⌋, column
    gi = ⌊gx⌋) — clamped into the map — and to the anchor of best shape IoU with it (centred, w/h
    only; ties go to the lower anchor index, as YOWO's strict ``>`` scan).
    When several ground truths of an image land on the same (anchor, row, column), the one with the
    highest index in the image's target list wins (YOWO writes them in order, the later overwrites).

    Args:
        targets: padded ground truths (xyxy input pixels).
        pred_boxes: Tensor[B, A, H, W, 4] cxcywh grid units of the (detached) predictions; used for
            the ignore mask.
        anchors: Tensor[A, 2] (w, h) grid units.
        input_size: (height, width) of the network input.
        ignore_thresh: IoU above which a prediction gets no no-object loss.

    Returns:
        :class:`RegionAssignment`.
    """
    b, a, h, w, _ = pred_boxes.shape
    device = pred_boxes.device
    anchors = anchors.to(device=device, dtype=torch.float32)
    gt = to_grid(targets.boxes.to(device=device, dtype=torch.float32), (h, w), input_size)  # [B, M, 4]
    valid = targets.valid.to(device)
    cx, cy, gw, gh = xyxy_to_cxcywh(gt).unbind(-1)  # [B, M] each
    valid = valid & (gw > 0) & (gh > 0)

    pred_xyxy = cxcywh_to_xyxy(pred_boxes)
    ignore = ignore_mask(pred_xyxy.reshape(b, -1, 4), gt, valid, ignore_thresh).reshape(b, a, h, w)

    best = shape_iou(torch.stack((gw, gh), -1)[:, :, None, :], anchors).argmax(dim=-1)  # [B, M]
    col = cx.floor().long().clamp(0, w - 1)
    row = cy.floor().long().clamp(0, h - 1)
    key = (best * h + row) * w + col  # one integer per (anchor, row, column)
    m = key.shape[1]
    later = torch.ones((m, m), dtype=torch.bool, device=device).triu(diagonal=1)  # [m, m'] m' > m
    overwritten = ((key[:, :, None] == key[:, None, :]) & valid[:, None, :] & later).any(dim=-1)
    bi, mi = (valid & ~overwritten).nonzero(as_tuple=True)

    ai, rj, ci = best[bi, mi], row[bi, mi], col[bi, mi]
    anchor_wh = anchors[ai]
    coords = torch.stack(
        (
            cx[bi, mi] - ci.to(cx.dtype),
            cy[bi, mi] - rj.to(cy.dtype),
            torch.log(gw[bi, mi] / anchor_wh[:, 0]),
            torch.log(gh[bi, mi] / anchor_wh[:, 1]),
        ),
        dim=-1,
    )
    return RegionAssignment(
        index=torch.stack((bi, ai, rj, ci)),
        coords=coords,
        labels=targets.labels.to(device)[bi, mi],
        gt_boxes=gt[bi, mi],
        ignore=ignore,
    )
