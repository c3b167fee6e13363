"""ACT's tubelet (cuboid) loss: SSD's multibox loss over anchor cuboids, batched.

L = (L_conf + L_loc / K) / N, N = positives in the batch (ACT: ``loc_weight = (neg_pos_ratio + 1)
/ 4 / K = 1/K`` with Caffe's VALID normalisation). Anchor cuboids are matched to ground-truth
tubelets by mean per-frame IoU >= 0.5 plus the force-best rule (:func:`match_cuboids`); L_loc is
smooth-L1 summed over the 4K offsets of every positive; L_conf is softmax cross-entropy over
positives and, per sample, the ``3 × positives`` negatives with the highest background loss
(:func:`singleshot.losses.multibox.hard_negative_mask`). With K = 1 this is exactly
:class:`singleshot.losses.multibox.MultiBoxLoss`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from singleshot.errors import ConfigError, DataError
from singleshot.losses.multibox import background_loss, hard_negative_mask
from singleshot.ops.boxes import cxcywh_to_xyxy
from singleshot.ops.coders import DEFAULT_VARIANCES
from singleshot.ops.cuboids import encode_tubelets, match_cuboids
from singleshot.structures import TubeletTarget

logger = logging.getLogger(__name__)

__all__ = ["PaddedTubelets", "pad_tubelet_targets", "assign_cuboids", "TubeletLoss"]


@dataclass
class PaddedTubelets:
    """Ground-truth tubelets of a batch padded to the sample with the most.

    Attributes:
        boxes: Tensor[B, M, K, 4] xyxy pixels of each sample's network input.
        labels: Tensor[B, M] int64 0-based classes (0 where padded).
        valid: Tensor[B, M] bool.
        scale: Tensor[B, 4] (w, h, w, h) of each sample's input, to normalise the boxes.
    """

    boxes: Tensor
    labels: Tensor
    valid: Tensor
    scale: Tensor


def _sample_name(t: TubeletTarget, i: int) -> str:
    if t.video:
        frames = t.frames.tolist() if t.frames.numel() else []
        return f"video {t.video!r} frames {frames}"
    return f"sample {i} of the batch"


def pad_tubelet_targets(targets: Sequence[TubeletTarget], k: int, device: torch.device) -> PaddedTubelets:
    """Pad a batch's tubelets to [B, M, K, 4] (a copy of ragged inputs; no per-sample maths).

    Raises:
        DataError: a sample's tubelets do not have K frames or its size is unset.
    """
    b = len(targets)
    m = max((len(t) for t in targets), default=0)
    boxes = torch.zeros((b, m, k, 4), dtype=torch.float32)
    labels = torch.zeros((b, m), dtype=torch.int64)
    valid = torch.zeros((b, m), dtype=torch.bool)
    for i, t in enumerate(targets):
        n = len(t)
        if n and (t.boxes.dim() != 3 or t.boxes.shape[1:] != (k, 4)):
            raise DataError(
                f"{_sample_name(t, i)}: ground-truth tubelets of shape {tuple(t.boxes.shape)}, "
                f"expected [N, {k}, 4] for a K={k} detector"
            )
        if n and (t.size[0] <= 0 or t.size[1] <= 0):
            raise DataError(f"{_sample_name(t, i)}: TubeletTarget.size {t.size} is not a valid (height, width)")
        boxes[i, :n] = t.boxes.float()
        labels[i, :n] = t.labels
        valid[i, :n] = True
    scale = torch.tensor([[t.size[1], t.size[0], t.size[1], t.size[0]] for t in targets], dtype=torch.float32)
    return PaddedTubelets(boxes.to(device), labels.to(device), valid.to(device), scale.reshape(b, 4).to(device))


def assign_cuboids(padded: PaddedTubelets, priors_cxcywh: Tensor, iou_threshold: float = 0.5) -> tuple[Tensor, Tensor]:
    """Match anchor cuboids to ground-truth tubelets (in each sample's pixels).

    Returns:
        labels: Tensor[B, P] int64, 0 = background, 1..C = class + 1.
        matched: Tensor[B, P] int64 index into M of each cuboid's tubelet (-1 = background).
    """
    priors_px = cxcywh_to_xyxy(priors_cxcywh)[None] * padded.scale[:, None, :]  # [B, P, 4]
    matched = match_cuboids(padded.boxes, padded.valid, priors_px, iou_threshold)
    if padded.boxes.shape[1] == 0:
        return torch.zeros_like(matched), matched
    labels = torch.where(matched >= 0, padded.labels.gather(1, matched.clamp(min=0)) + 1, 0)
    return labels, matched


class TubeletLoss:
    """ACT's cuboid loss over a batch, ``{"loss_loc": L_loc / (K N), "loss_conf": L_conf / N}``.

    Args:
        priors: Tensor[P, 4] cxcywh normalised, in the order of the model's outputs.
        k: frames per tubelet K.
        neg_pos_ratio: hard negatives per positive (3).
        iou_threshold: mean-IoU matching threshold (0.5).
        loc_weight: weight of the localisation sum; ``None`` gives ACT's 1/K.
        variances: coder variances (0.1, 0.2).
    """

    def __init__(
        self,
        priors: Tensor,
        k: int,
        neg_pos_ratio: float = 3.0,
        iou_threshold: float = 0.5,
        loc_weight: float | None = None,
        variances: tuple[float, float] = DEFAULT_VARIANCES,
    ) -> None:
        if int(k) < 1:
            raise ConfigError(f"K must be >= 1, got {k}")
        self.priors = priors
        self.k = int(k)
        self.neg_pos_ratio = float(neg_pos_ratio)
        self.iou_threshold = float(iou_threshold)
        self.loc_weight = 1.0 / self.k if loc_weight is None else float(loc_weight)
        self.variances = variances

    def __call__(self, outputs: dict[str, Tensor], targets: Sequence[TubeletTarget]) -> dict[str, Tensor]:
        """Args: ``outputs`` of :class:`~singleshot.models.act.ACTDetector` (``loc`` Tensor[B, P, 4K],
        ``conf`` Tensor[B, P, C+1]); one :class:`TubeletTarget` per sample, boxes in the pixels of
        the network input. Returns scalar ``loss_loc`` and ``loss_conf``."""
        logits = outputs["conf"].float()
        loc = outputs["loc"].float()
        b, p, _ = logits.shape
        if loc.shape != (b, p, 4 * self.k):
            raise ConfigError(
                f"TubeletLoss for K={self.k} expects loc of shape [{b}, {p}, {4 * self.k}], got {tuple(loc.shape)}"
            )
        if len(targets) != b:
            raise ConfigError(f"{len(targets)} targets for a batch of {b} samples")
        device = logits.device
        priors = self.priors.to(device)
        if priors.shape[0] != p:
            raise ConfigError(f"the loss has {priors.shape[0]} priors but the model predicts for {p}")
        padded = pad_tubelet_targets(targets, self.k, device)
        with torch.no_grad():
            labels, matched = assign_cuboids(padded, priors, self.iou_threshold)
            bi, pi = (matched >= 0).nonzero(as_tuple=True)
            tubes = padded.boxes[bi, matched[bi, pi]] / padded.scale[bi, None, :]  # [N, K, 4] normalised
            deltas = encode_tubelets(tubes, priors[pi], self.variances)  # [N, K, 4]
            positive = labels > 0
            # Mining ranks every cuboid's background loss, without a gradient through it.
            negative = hard_negative_mask(background_loss(logits.detach()), positive, self.neg_pos_ratio)
        num_pos = positive.sum().clamp(min=1).float()
        loss_loc = F.smooth_l1_loss(loc[bi, pi].view(-1, self.k, 4), deltas, reduction="sum", beta=1.0)
        # Cross-entropy only over the chosen cuboids: positives against their class, mined
        # negatives against the background.
        si, sp = (positive | negative).nonzero(as_tuple=True)
        loss_conf = F.cross_entropy(logits[si, sp], labels[si, sp], reduction="sum")
        return {"loss_loc": self.loc_weight * loss_loc / num_pos, "loss_conf": loss_conf / num_pos}
