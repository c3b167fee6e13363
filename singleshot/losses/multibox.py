"""SSD's multibox loss with 3:1 hard negative mining, batched over the images of a batch, and the
auxiliary multibox loss of the SSD auxiliary head (:class:`AuxMultiBoxLoss`, for
:class:`singleshot.models.aux_heads.WithAuxHead`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn.utils.rnn import pad_sequence

from singleshot.ops.boxes import cxcywh_to_xyxy
from singleshot.ops.coders import DEFAULT_VARIANCES, encode
from singleshot.ops.matcher import match_priors
from singleshot.structures import BoxTarget


@dataclass
class PaddedTargets:
    """Ground truths of a batch padded to the longest image.

    Attributes:
        boxes: Tensor[B, M, 4] xyxy pixels of each image.
        labels: Tensor[B, M] int64, 0-based class indices (0 where padded).
        valid: Tensor[B, M] bool.
        scale: Tensor[B, 4] (w, h, w, h) of each image, to normalise the boxes.
    """

    boxes: Tensor
    labels: Tensor
    valid: Tensor
    scale: Tensor


# A class-sum below this has lost precision to subnormal exponentials (float32's smallest normal
# number is 1.2e-38): such rows take the exact path.
_SMALLEST_SAFE_SUM = 1e-30
_LARGEST_SAFE_SUM = float(torch.finfo(torch.float32).max)


def pad_targets(targets: Sequence[BoxTarget], device: torch.device) -> PaddedTargets:
    """Pad the ground truths of a batch to [B, M] (a copy of ragged inputs, no per-image maths)."""
    b = len(targets)
    lengths = torch.tensor([len(t) for t in targets], dtype=torch.int64)
    m = int(lengths.max()) if b else 0
    if b and m:
        boxes = pad_sequence([t.boxes.float() for t in targets], batch_first=True)
        labels = pad_sequence([t.labels.long() for t in targets], batch_first=True)
    else:
        boxes, labels = torch.zeros((b, m, 4)), torch.zeros((b, m), dtype=torch.int64)
    valid = torch.arange(m)[None] < lengths[:, None]
    scale = torch.tensor([[t.size[1], t.size[0], t.size[1], t.size[0]] for t in targets], dtype=torch.float32)
    return PaddedTargets(boxes.to(device), labels.to(device), valid.to(device), scale.reshape(b, 4).to(device))


def match_targets(padded: PaddedTargets, priors_cxcywh: Tensor, iou_threshold: float = 0.5) -> Tensor:
    """Match priors to ground truths (:func:`match_priors` in each image's pixels).

    Returns:
        Tensor[B, P] int64 index into M of each prior's ground truth (-1 = background).
    """
    priors_xyxy = cxcywh_to_xyxy(priors_cxcywh)
    if padded.scale.shape[0] > 0 and bool((padded.scale == padded.scale[:1]).all()):
        # One network input size for the whole batch (the usual case): scale the priors once,
        # the same products as per image, without a [B, P, 4] copy.
        priors_px = priors_xyxy * padded.scale[0]  # [P, 4]
    else:
        priors_px = priors_xyxy[None] * padded.scale[:, None, :]  # [B, P, 4]
    return match_priors(padded.boxes, padded.valid, priors_px, iou_threshold)


def matched_labels(padded: PaddedTargets, image: Tensor, matched: Tensor) -> Tensor:
    """Class targets (0 = background, 1..C = object class + 1) of priors whose image index and
    matched ground truth (-1 = background) are given as equal-shaped int64 tensors."""
    return torch.where(matched >= 0, padded.labels[image, matched.clamp(min=0)] + 1, 0)


def assign_targets(
    padded: PaddedTargets,
    priors_cxcywh: Tensor,
    iou_threshold: float = 0.5,
) -> tuple[Tensor, Tensor]:
    """Match priors to ground truths.

    Returns:
        labels: Tensor[B, P] int64, 0 = background, 1..C = object class + 1.
        matched: Tensor[B, P] int64 index into M of each prior's ground truth (-1 = background).
    """
    matched = match_targets(padded, priors_cxcywh, iou_threshold)
    if padded.boxes.shape[1] == 0:
        return torch.zeros_like(matched), matched
    image = torch.arange(matched.shape[0], device=matched.device)[:, None].expand_as(matched)
    return matched_labels(padded, image, matched), matched


def positive_targets(
    padded: PaddedTargets,
    matched: Tensor,
    priors_cxcywh: Tensor,
    variances: tuple[float, float] = DEFAULT_VARIANCES,
) -> tuple[Tensor, Tensor]:
    """Regression targets of the positive priors only (encoding the background is wasted work).

    Returns:
        index: Tensor[2, N] (image, prior) of the N positive priors, in row-major order.
        deltas: Tensor[N, 4] encoded matched boxes.
    """
    bi, pi = (matched >= 0).nonzero(as_tuple=True)
    gi = matched[bi, pi]
    boxes = padded.boxes[bi, gi] / padded.scale[bi]
    return torch.stack((bi, pi)), encode(boxes, priors_cxcywh[pi], variances)


def background_loss(logits: Tensor, chunk_elements: int = 1 << 20) -> Tensor:
    """Per-prior background cross-entropy ``logsumexp(x) − x[0]`` of Tensor[B, P, C+1] logits.

    Returns Tensor[B, P]. Built for speed, since mining needs it for every prior of the batch:

    - no per-prior shift: ``exp`` of the raw logits is summed over classes as a matrix product
      (PyTorch's reductions over a short last dimension are slow).
    - a few images at a time in one reused buffer of about ``chunk_elements`` values, which stays
      in cache: a fresh [B, P, C+1] temporary costs more in page faults than the arithmetic.
    - rows where that is not exact enough — a logit above ~88 (``exp`` overflows), a NaN, or a
      sum so small that it underflowed or lost precision to subnormal numbers — are recomputed
      with the exact, shifted ``logsumexp``. Trained logits lie far inside that range, and one
      ``aminmax`` over the sums tells whether any row needs it.
    """
    b, p, c = logits.shape
    ones = torch.ones((c, 1), dtype=logits.dtype, device=logits.device)
    sums = torch.empty((b, p, 1), dtype=logits.dtype, device=logits.device)
    loss = torch.empty((b, p), dtype=logits.dtype, device=logits.device)
    step = max(1, chunk_elements // max(1, p * c))
    work = torch.empty((min(step, b), p, c), dtype=logits.dtype, device=logits.device)
    for start in range(0, b, step):
        stop = min(b, start + step)
        chunk = logits[start:stop]
        torch.matmul(torch.exp(chunk, out=work[: stop - start]), ones, out=sums[start:stop])
        torch.log(sums[start:stop, :, 0], out=loss[start:stop]).sub_(chunk[..., 0])  # chunk still in cache
    if b * p:
        low, high = torch.aminmax(sums)  # NaN propagates into both
        if not (float(low) >= _SMALLEST_SAFE_SUM and float(high) <= _LARGEST_SAFE_SUM):
            sums = sums.squeeze(-1)
            bad = ~((sums >= _SMALLEST_SAFE_SUM) & (sums <= _LARGEST_SAFE_SUM))
            loss[bad] = torch.logsumexp(logits[bad], dim=-1) - logits[bad][:, 0]
    return loss


def hard_negative_mask(ce: Tensor, positive: Tensor, neg_pos_ratio: float) -> Tensor:
    """Choose, per image, the ``neg_pos_ratio × positives`` background priors with the highest loss.

    One ``topk`` over the batch (k = the largest quota of any image) replaces the double sort of
    torchvision; ties between equal losses may be broken differently, which leaves the loss value
    unchanged.

    Args:
        ce: Tensor[B, P] per-prior background classification loss.
        positive: Tensor[B, P] bool.
        neg_pos_ratio: negatives per positive (3 in SSD). An image with no positives gets none.

    Returns:
        Tensor[B, P] bool mask of the mined negatives (disjoint from ``positive``).
    """
    b, p = ce.shape
    num_pos = positive.sum(dim=1, keepdim=True)
    num_neg = torch.minimum((num_pos * neg_pos_ratio).long(), p - num_pos)  # [B, 1]
    k = int(num_neg.max()) if b else 0
    negative = torch.zeros_like(positive)
    if k == 0:
        return negative
    idx = ce.detach().masked_fill(positive, float("-inf")).topk(k, dim=1, sorted=True).indices
    return negative.scatter_(1, idx, torch.arange(k, device=ce.device)[None] < num_neg)


class MultiBoxLoss:
    """L = (L_conf + alpha · L_loc) / N over a batch, N = number of positive priors.

    ``L_loc`` is smooth-L1 (beta 1) over positive priors; ``L_conf`` is softmax cross-entropy over
    positives and the hard negatives of :func:`hard_negative_mask`.

    Args:
        priors: Tensor[P, 4] cxcywh normalised, in the order of the model's outputs.
        neg_pos_ratio: hard negatives per positive.
        iou_threshold: matching threshold.
        alpha: weight of the localisation term.
        variances: coder variances.
    """

    def __init__(
        self,
        priors: Tensor,
        neg_pos_ratio: float = 3.0,
        iou_threshold: float = 0.5,
        alpha: float = 1.0,
        variances: tuple[float, float] = DEFAULT_VARIANCES,
    ) -> None:
        self.priors = priors
        self.neg_pos_ratio = neg_pos_ratio
        self.iou_threshold = iou_threshold
        self.alpha = alpha
        self.variances = variances

    def __call__(self, outputs: dict[str, Tensor], targets: Sequence[BoxTarget]) -> dict[str, Tensor]:
        """Args: outputs with ``cls_logits`` [B, P, C+1] and ``bbox_regression`` [B, P, 4]; targets
        in the pixels of the network input. Returns ``{"loc": ..., "conf": ...}`` scalars."""
        logits = outputs["cls_logits"].float()
        regression = outputs["bbox_regression"].float()
        device = logits.device
        priors = self.priors.to(device)
        padded = pad_targets(targets, device)
        with torch.no_grad():
            matched = match_targets(padded, priors, self.iou_threshold)
            (bi, pi), deltas = positive_targets(padded, matched, priors, self.variances)
            positive = matched >= 0
            # Mining needs the background loss of every prior but no gradient through it.
            negative = hard_negative_mask(background_loss(logits.detach()), positive, self.neg_pos_ratio)
            # Class targets only where the cross-entropy is taken: positives against their
            # class, mined negatives against the background.
            si, sp = (positive | negative).nonzero(as_tuple=True)
            labels = matched_labels(padded, si, matched[si, sp]) if padded.boxes.shape[1] else torch.zeros_like(si)
        num_pos = positive.sum().clamp(min=1).float()
        loc = F.smooth_l1_loss(regression[bi, pi], deltas, reduction="sum", beta=1.0)
        # The exact cross-entropy (and its gradient) only over the chosen priors.
        conf = F.cross_entropy(logits[si, sp], labels, reduction="sum")
        return {"loc": self.alpha * loc / num_pos, "conf": conf / num_pos}


class AuxMultiBoxLoss:
    """Multibox loss of the auxiliary head on the main head's matched priors.

    Matching (``assign_targets``) runs over all ``priors`` and is then restricted to
    ``prior_index``; smooth-L1 over the positives there, cross-entropy over them and the
    ``neg_pos_ratio`` x hardest negatives among the same priors (ranked by the auxiliary logits),
    both divided by the number of those positives (at least 1).

    Args:
        priors: Tensor[P, 4] cxcywh normalised, all priors of the detector.
        prior_index: Tensor[Pa] int64, the priors the auxiliary outputs predict, in their order.

    ``__call__(outputs, targets)``: outputs with ``aux_cls_logits`` [B, Pa, C+1] and
    ``aux_bbox_regression`` [B, Pa, 4]; targets in network-input pixels. Returns ``{"loc", "conf"}``.
    """

    def __init__(
        self,
        priors: Tensor,
        prior_index: Tensor,
        neg_pos_ratio: float = 3.0,
        iou_threshold: float = 0.5,
        variances: tuple[float, float] = DEFAULT_VARIANCES,
    ) -> None:
        self.priors = priors
        self.prior_index = prior_index
        self.neg_pos_ratio = neg_pos_ratio
        self.iou_threshold = iou_threshold
        self.variances = variances

    def __call__(self, outputs: Mapping[str, Tensor], targets: Sequence[BoxTarget]) -> dict[str, Tensor]:
        logits = outputs["aux_cls_logits"].float()
        regression = outputs["aux_bbox_regression"].float()
        device = logits.device
        priors = self.priors.to(device)
        index = self.prior_index.to(device)
        padded = pad_targets(targets, device)
        with torch.no_grad():
            labels, matched = assign_targets(padded, priors, self.iou_threshold)
            labels, matched = labels[:, index], matched[:, index]
            (bi, pi), deltas = positive_targets(padded, matched, priors[index], self.variances)
            positive = labels > 0
            negative = hard_negative_mask(background_loss(logits.detach()), positive, self.neg_pos_ratio)
        num_pos = positive.sum().clamp(min=1).float()
        loc = F.smooth_l1_loss(regression[bi, pi], deltas, reduction="sum", beta=1.0)
        si, sp = (positive | negative).nonzero(as_tuple=True)
        conf = F.cross_entropy(logits[si, sp], labels[si, sp], reduction="sum")
        return {"loc": loc / num_pos, "conf": conf / num_pos}
