"""Anchor cuboids, tubelet overlaps, cuboid matching and the tubelet coder (ACT).

An *anchor cuboid* is an SSD prior repeated over the K frames of a sample: the same box in every
frame. A *tubelet* is a sequence of K boxes, one per frame, held as Tensor[..., K, 4] (frame-major;
``xyxy`` unless said otherwise). The overlap of two tubelets is the mean over the K frames of the
per-frame IoU, as in ACT (Kalogeiton et al., ICCV 2017), which uses it both to match anchor
cuboids to ground truth (mean IoU >= 0.5) and for tubelet NMS.

Matching follows this project's SSD matcher (:func:`singleshot.ops.matcher.match_priors`): a
prior takes the ground truth it overlaps most when that overlap reaches the threshold, then every
ground truth is forced onto its best prior. (ACT's Caffe layer makes the forced assignment by a
greedy bipartite pass instead; the two differ only when two ground truths share a best prior.)
"""

from __future__ import annotations

import torch
from torch import Tensor

from singleshot.ops.boxes import pairwise_iou
from singleshot.ops.coders import DECODE_CLAMP, DEFAULT_VARIANCES, decode, encode

__all__ = [
    "anchor_cuboids",
    "tubelet_iou",
    "match_from_iou",
    "match_cuboids",
    "encode_tubelets",
    "decode_tubelets",
]


def anchor_cuboids(priors: Tensor, k: int) -> Tensor:
    """Repeat every prior over ``k`` frames.

    Args:
        priors: Tensor[P, 4] (any box format and unit).
        k: frames per tubelet K.

    Returns:
        Tensor[P, K, 4], a broadcast view (no copy) whose frame ``j`` is ``priors``.
    """
    if k < 1:
        raise ValueError(f"K must be >= 1, got {k}")
    return priors[:, None, :].expand(priors.shape[0], k, 4)


def tubelet_iou(a: Tensor, b: Tensor, plus_one: bool = False) -> Tensor:
    """Mean over frames of the per-frame IoU of every tubelet of ``a`` with every tubelet of ``b``.

    Args:
        a: Tensor[..., N, K, 4] xyxy tubelets.
        b: Tensor[..., M, K, 4] xyxy tubelets (same K; leading dims broadcast against ``a``'s).
        plus_one: count widths as ``x2 - x1 + 1`` (the pixel convention of ACT's Python tools).

    Returns:
        Tensor[..., N, M] mean IoU in [0, 1].
    """
    if a.shape[-2] != b.shape[-2]:
        raise ValueError(f"tubelets of different lengths: K={a.shape[-2]} and K={b.shape[-2]}")
    # [..., K, N, 4] against [..., K, M, 4] -> [..., K, N, M]
    per_frame = pairwise_iou(a.transpose(-3, -2), b.transpose(-3, -2), plus_one=plus_one)
    return per_frame.mean(dim=-3)


def match_from_iou(iou: Tensor, gt_valid: Tensor, iou_threshold: float = 0.5) -> Tensor:
    """SSD matching rule applied to a precomputed overlap matrix, for a whole batch.

    A prior takes its best ground truth when that overlap is at least ``iou_threshold``; then
    each valid ground truth is forced onto the prior it overlaps most (the later ground truth
    keeps a prior two of them share), which is the rule of ``match_priors``.

    Args:
        iou: Tensor[B, M, P] overlap of ground truth m with prior p.
        gt_valid: Tensor[B, M] bool, False for padding.
        iou_threshold: minimum overlap of a regular match.

    Returns:
        Tensor[B, P] int64 index into M of each prior's ground truth, -1 for background.
    """
    b, m, p = iou.shape
    if m == 0:
        return torch.full((b, p), -1, dtype=torch.int64, device=iou.device)
    iou = iou.masked_fill(~gt_valid[:, :, None], -1.0)
    best_iou, best_gt = iou.max(dim=1)  # [B, P]
    matched = torch.where(best_iou >= iou_threshold, best_gt, torch.full_like(best_gt, -1))
    best_prior = iou.argmax(dim=2)  # [B, M]
    gt_index = torch.arange(m, device=iou.device).expand(b, m)
    gt_index = torch.where(gt_valid, gt_index, torch.full_like(gt_index, -1))
    forced = torch.full((b, p), -1, dtype=torch.int64, device=iou.device)
    forced = forced.scatter_reduce(1, best_prior, gt_index, reduce="amax")
    return torch.where(forced >= 0, forced, matched)


def match_cuboids(gt_boxes: Tensor, gt_valid: Tensor, priors_xyxy: Tensor, iou_threshold: float = 0.5) -> Tensor:
    """Assign every anchor cuboid to a ground-truth tubelet, for a whole batch at once.

    The overlap of a cuboid (a prior repeated over the K frames) with a ground-truth tubelet is
    the mean over frames of IoU(prior, gt box of that frame).

    Args:
        gt_boxes: Tensor[B, M, K, 4] ground-truth tubelets, xyxy in the priors' unit (padded).
        gt_valid: Tensor[B, M] bool, False for padding.
        priors_xyxy: Tensor[P, 4] or Tensor[B, P, 4] priors, xyxy (per image when the images have
            different sizes and the priors were scaled to pixels).
        iou_threshold: minimum mean IoU of a regular (not forced) match (0.5 in ACT).

    Returns:
        Tensor[B, P] int64 index into M of the matched tubelet, -1 for background.
    """
    b, m = gt_valid.shape
    p = priors_xyxy.shape[-2]
    if m == 0:
        return torch.full((b, p), -1, dtype=torch.int64, device=priors_xyxy.device)
    priors = priors_xyxy if priors_xyxy.dim() == 3 else priors_xyxy[None]
    # [B, K, M, 4] against [B|1, 1, P, 4] -> [B, K, M, P], averaged over K.
    iou = pairwise_iou(gt_boxes.transpose(1, 2), priors[:, None]).mean(dim=1)
    return match_from_iou(iou, gt_valid, iou_threshold)


def encode_tubelets(
    boxes_xyxy: Tensor, priors_cxcywh: Tensor, variances: tuple[float, float] = DEFAULT_VARIANCES
) -> Tensor:
    """Encode tubelets against their anchor cuboids: the SSD variance coder applied per frame.

    Args:
        boxes_xyxy: Tensor[..., P, K, 4] matched tubelets, xyxy normalised to [0, 1].
        priors_cxcywh: Tensor[P, 4] the cuboids' prior (the same box in every frame), cxcywh normalised.
        variances: (centre variance, size variance).

    Returns:
        Tensor[..., P, K, 4] offsets (dx, dy, dw, dh) per frame; ``.flatten(-2)`` gives the
        network's [..., P, 4K] layout (frame-major).
    """
    return encode(boxes_xyxy.transpose(-3, -2), priors_cxcywh, variances).transpose(-3, -2)


def decode_tubelets(
    deltas: Tensor,
    priors_cxcywh: Tensor,
    variances: tuple[float, float] = DEFAULT_VARIANCES,
    clamp: float = DECODE_CLAMP,
) -> Tensor:
    """Invert :func:`encode_tubelets`.

    Args:
        deltas: Tensor[..., P, K, 4] offsets (the ACT head's Tensor[..., P, 4K] output is
            ``loc.unflatten(-1, (K, 4))``).
        priors_cxcywh: Tensor[P, 4] priors, cxcywh normalised.
        variances: (centre variance, size variance).
        clamp: upper bound of the log-size deltas before ``exp``.

    Returns:
        Tensor[..., P, K, 4] tubelets, xyxy normalised (not clipped).
    """
    return decode(deltas.transpose(-3, -2), priors_cxcywh, variances, clamp).transpose(-3, -2)
