"""Batched SSD matching of ground-truth boxes to priors."""

from __future__ import annotations

import torch
from torch import Tensor

from singleshot.ops.boxes import pairwise_iou


def match_priors(gt_boxes: Tensor, gt_valid: Tensor, priors_xyxy: Tensor, iou_threshold: float = 0.5) -> Tensor:
    """Assign each prior to a ground truth, for a whole batch at once.

    A prior takes the ground truth it overlaps most when that IoU is at least ``iou_threshold``.
    Then every ground truth is forced onto its best prior, even when that IoU is below the
    threshold (the force-best-prior rule of the paper, ssd.pytorch and torchvision's
    ``SSDMatcher``); when two ground truths share a best prior, the later one keeps it.

    Args:
        gt_boxes: Tensor[B, M, 4] ground truths, xyxy in the priors' unit (padded).
        gt_valid: Tensor[B, M] bool, False for padding.
        priors_xyxy: Tensor[P, 4] or Tensor[B, P, 4] priors, xyxy. Matching in each image's
            pixels (priors scaled per image) gives the same IoU ties as torchvision.
        iou_threshold: minimum IoU of a regular (not forced) match.

    Returns:
        Tensor[B, P] int64: index into M of the matched ground truth, -1 for background.
    """
    b, m = gt_valid.shape
    p = priors_xyxy.shape[-2]
    if m == 0:
        return torch.full((b, p), -1, dtype=torch.int64, device=priors_xyxy.device)
    iou = pairwise_iou(gt_boxes, priors_xyxy)  # [B, M, P]
    iou = iou.masked_fill(~gt_valid[:, :, None], -1.0)
    best_iou, best_gt = iou.max(dim=1)  # [B, P]
    matched = torch.where(best_iou >= iou_threshold, best_gt, torch.full_like(best_gt, -1))
    best_prior = iou.max(dim=2).indices  # [B, M]
    gt_index = torch.arange(m, device=iou.device).expand(b, m)
    gt_index = torch.where(gt_valid, gt_index, torch.full_like(gt_index, -1))
    forced = torch.full((b, p), -1, dtype=torch.int64, device=iou.device)
    forced = forced.scatter_reduce(1, best_prior, gt_index, reduce="amax")
    return torch.where(forced >= 0, forced, matched)
