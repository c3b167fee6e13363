"""Batched SSD matching of ground-truth boxes to priors."""

from __future__ import annotations

import torch
from torch import Tensor

from singleshot.ops.boxes import pairwise_iou


def match_priors(
    gt_boxes: Tensor, gt_valid: Tensor, priors_xyxy: Tensor, iou_threshold: float = 0.5, chunk_elements: int = 1 << 18
) -> Tensor:
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
        chunk_elements: about how many IoU values are computed at a time (memory, not results).

    Returns:
        Tensor[B, P] int64: index into M of the matched ground truth, -1 for background.
    """
    b, m = gt_valid.shape
    p = priors_xyxy.shape[-2]
    device = priors_xyxy.device
    matched = torch.full((b, p), -1, dtype=torch.int64, device=device)
    if m == 0 or b == 0:
        return matched
    # Padding becomes an empty box: its IoU with every prior is exactly 0, so no [B, M, P] mask
    # pass is needed; where it could still win (a threshold <= 0) the candidates are masked below.
    gt_boxes = gt_boxes.masked_fill(~gt_valid[..., None], 0.0)
    best_prior = torch.empty((b, m), dtype=torch.int64, device=device)
    # A few images at a time in three reused buffers that stay in cache: fresh [B, M, P]
    # temporaries cost more in memory traffic and page faults than the arithmetic.
    step = max(1, chunk_elements // (m * p))
    iou_buf = torch.empty((min(step, b), m, p), dtype=priors_xyxy.dtype, device=device)
    work = (torch.empty_like(iou_buf), torch.empty_like(iou_buf))
    best_iou = torch.empty((b, p), dtype=priors_xyxy.dtype, device=device)
    with torch.no_grad():
        for start in range(0, b, step):
            stop = min(b, start + step)
            n = stop - start
            priors = priors_xyxy if priors_xyxy.dim() == 2 else priors_xyxy[start:stop]
            iou = pairwise_iou(gt_boxes[start:stop], priors, out=iou_buf[:n], work=(work[0][:n], work[1][:n]))
            best_prior[start:stop] = iou.max(dim=2).indices  # [n, M]
            # PyTorch's max-with-index over the short M axis is slow; the value-only amax is not.
            torch.amax(iou, dim=1, out=best_iou[start:stop])
        # Only the few priors above the threshold need to know which ground truth won: their
        # IoUs are recomputed (the same arithmetic, so the same values) on a small [K, M] table.
        bi, pi = (best_iou >= iou_threshold).nonzero(as_tuple=True)
        prior_boxes = priors_xyxy[pi] if priors_xyxy.dim() == 2 else priors_xyxy[bi, pi]
        cand = pairwise_iou(gt_boxes[bi], prior_boxes[:, None])[..., 0]  # [K, M]
        value, winner = cand.masked_fill_(~gt_valid[bi], -1.0).max(dim=1)  # first index on ties
        keep = value >= iou_threshold
        matched[bi[keep], pi[keep]] = winner[keep]
    # Force every ground truth onto its best prior. Where several share one, the highest index
    # wins; that winner is found on the small [B, M, M] table, so every write below is the same
    # value and the scatter's order cannot matter.
    shared = (best_prior[:, :, None] == best_prior[:, None, :]) & gt_valid[:, None, :]  # [B, M, M]
    index = torch.arange(m, device=device)
    winner = torch.where(shared, index, -1).amax(dim=2)  # [B, M]
    bi, gi = gt_valid.nonzero(as_tuple=True)
    matched[bi, best_prior[bi, gi]] = winner[bi, gi]
    return matched
