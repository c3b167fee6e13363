"""YOWO's region loss (YOLOv2 region layer with a softmax focal loss on classes), batched.

What it computes, per batch (ref: wei-tim/YOWO core/region_loss.py, FocalLoss.py; targets built in
:mod:`singleshot.losses.region_targets`):

- ``loss_coord = coord_scale · Σ_resp Σ_{x,y,w,h} smoothL1(p, t) / 2`` with p = (sigmoid(tx),
  sigmoid(ty), tw, th) of the responsible prediction and t = (gx − gi, gy − gj, log(gw/aw),
  log(gh/ah)); smooth-L1 with beta 1.
- ``loss_conf = Σ_all λ · (sigmoid(conf) − t)² / 2`` with t = IoU(predicted box, ground truth)
  (YOWO; darknet's ``rescore=1``) or t = 1 (``rescore=False``, darknet's ``rescore=0``) and
  λ = ``object_scale`` at responsible predictions; t = 0 and λ = ``noobject_scale`` elsewhere,
  except λ = 0 for predictions whose best IoU with a ground truth of their image > ``ignore_thresh``.
- ``loss_cls = class_scale · Σ_resp −(1 − p_t)^γ · log p_t``, p_t the softmax probability of the true
  class (YOWO's ``FocalLoss``: softmax, alpha = 1, γ = 2, summed).

Normalisation: YOWO sums over the batch and divides by nothing (not by the batch size nor by the
number of objects; its gradient accumulation also sums; its first release instead divided the SGD
learning rate by the batch size). ``reduction="sum"`` (default) matches it, so the loss of a batch
equals the sum of the per-clip losses; ``reduction="mean"`` divides all three terms by the batch size.

Assignment: a ground truth goes to the cell holding its centre and to the anchor of best centred
shape IoU there; when two ground truths of a clip fall on the same (cell, anchor), the later one in
the clip's target list wins, deterministically (YOWO's loop overwrites in the same order).

Prior warm-up (YOWO's first release, YOLOv2's region layer): while ``seen < prior_warmup_samples``,
every prediction that is not responsible for a ground truth gets coordinate targets (0.5, 0.5, 0, 0)
— box centred in its cell with the anchor's size — weighted ``prior_scale`` (YOWO: 1, the same as
responsible ones; darknet uses 0.01). The caller passes ``seen``, the number of training samples
seen *including* this batch (YOWO adds the batch size to its counter before computing the loss);
with ``seen=None`` (the default) there is no warm-up, as in YOWO's current code.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from singleshot.losses.region_targets import RegionTargets, assign_region_targets, pad_region_targets
from singleshot.ops.boxes import cxcywh_to_xyxy, pairwise_iou
from singleshot.ops.region import region_grid_boxes, split_region_output
from singleshot.structures import TubeletTarget

logger = logging.getLogger(__name__)


def softmax_focal_loss(logits: Tensor, labels: Tensor, gamma: float = 2.0) -> Tensor:
    """Summed softmax focal loss −(1 − p_t)^γ log p_t (alpha = 1).

    Args:
        logits: Tensor[N, C] raw class scores. labels: Tensor[N] int64 0-based.

    Returns:
        Scalar tensor (0 when N = 0).
    """
    # x − logsumexp(x) rather than F.log_softmax: same values, and the CPU log_softmax kernel is
    # orders of magnitude slower on tiny inputs when its thread pool competes for cores.
    log_pt = (logits - logits.logsumexp(dim=-1, keepdim=True)).gather(1, labels[:, None]).squeeze(1)
    return (-(1.0 - log_pt.exp()).pow(gamma) * log_pt).sum()


class RegionLoss:
    """YOWO's region loss; see the module docstring for the exact terms and normalisation.

    Args:
        num_classes: C.
        anchors: Tensor[A, 2] anchor (width, height) in grid cells.
        object_scale / noobject_scale / class_scale / coord_scale: term weights (YOWO: 5, 1, 1, 1).
        ignore_thresh: predictions whose best IoU with a ground truth exceeds it get no no-object
            loss (0.6).
        focal_gamma: γ of the class focal loss.
        prior_warmup_samples: length of the prior warm-up in samples (active only when ``seen`` is
            given to :meth:`__call__`).
        prior_scale: weight of the warm-up coordinate terms.
        reduction: ``"sum"`` (YOWO) or ``"mean"`` (÷ batch size).
        rescore: confidence target of a responsible prediction: its IoU with the ground truth
            (True, YOWO) or 1 (False, darknet's region layer with ``rescore=0``).
    """

    def __init__(
        self,
        num_classes: int,
        anchors: Tensor,
        object_scale: float = 5.0,
        noobject_scale: float = 1.0,
        class_scale: float = 1.0,
        coord_scale: float = 1.0,
        ignore_thresh: float = 0.6,
        focal_gamma: float = 2.0,
        prior_warmup_samples: int = 12800,
        prior_scale: float = 1.0,
        reduction: Literal["sum", "mean"] = "sum",
        rescore: bool = True,
    ) -> None:
        anchors = torch.as_tensor(anchors, dtype=torch.float32)
        if anchors.dim() != 2 or anchors.shape[1] != 2 or not bool((anchors > 0).all()):
            raise ValueError(f"RegionLoss: anchors must be a positive Tensor[A, 2], got {anchors.tolist()}")
        if reduction not in ("sum", "mean"):
            raise ValueError(f"RegionLoss: reduction must be 'sum' or 'mean', got {reduction!r}")
        self.num_classes = num_classes
        self.anchors = anchors
        self.object_scale = object_scale
        self.noobject_scale = noobject_scale
        self.class_scale = class_scale
        self.coord_scale = coord_scale
        self.ignore_thresh = ignore_thresh
        self.focal_gamma = focal_gamma
        self.prior_warmup_samples = prior_warmup_samples
        self.prior_scale = prior_scale
        self.reduction = reduction
        self.rescore = bool(rescore)

    def __call__(
        self,
        outputs: dict[str, Tensor],
        targets: Sequence[TubeletTarget] | RegionTargets,
        input_size: tuple[int, int],
        seen: int | None = None,
    ) -> dict[str, Tensor]:
        """Loss of a batch.

        Args:
            outputs: ``{"out": Tensor[B, A·(5+C), H, W]}`` raw head output.
            targets: one :class:`TubeletTarget` per clip (boxes xyxy in network-input pixels; the
                last frame's boxes are used) or an already padded :class:`RegionTargets`.
            input_size: (height, width) of the network input.
            seen: training samples seen including this batch, for the prior warm-up (None: none).

        Returns:
            ``{"loss_coord", "loss_conf", "loss_cls"}`` scalar tensors; their sum is the loss.
        """
        raw = split_region_output(outputs["out"].float(), int(self.anchors.shape[0]), self.num_classes)
        b, a, _, h, w = raw.shape
        device = raw.device
        anchors = self.anchors.to(device)
        if not isinstance(targets, RegionTargets):
            if len(targets) != b:
                raise ValueError(f"RegionLoss: {len(targets)} targets for a batch of {b}")
            targets = pad_region_targets(targets, self.num_classes, device)
        with torch.no_grad():
            pred_boxes = region_grid_boxes(raw.detach(), anchors)  # [B, A, H, W, 4] cxcywh
            assign = assign_region_targets(targets, pred_boxes, anchors, input_size, self.ignore_thresh)
            bi, ai, rj, ci = assign.index
            pred_resp = cxcywh_to_xyxy(pred_boxes[bi, ai, rj, ci])
            iou = pairwise_iou(pred_resp[:, None], assign.gt_boxes[:, None])[:, 0, 0]  # [N]

        # Coordinates: (sigmoid tx, sigmoid ty, tw, th) against the targets.
        xy = raw[:, :, 0:2].sigmoid()
        coords = torch.cat((xy, raw[:, :, 2:4]), dim=2).permute(0, 1, 3, 4, 2)  # [B, A, H, W, 4]
        if seen is not None and seen < self.prior_warmup_samples:
            target = coords.new_tensor([0.5, 0.5, 0.0, 0.0]).expand(b, a, h, w, 4).clone()
            weight = coords.new_full((b, a, h, w), self.prior_scale)
            target[bi, ai, rj, ci] = assign.coords
            weight[bi, ai, rj, ci] = 1.0
            per_elem = F.smooth_l1_loss(coords, target, reduction="none", beta=1.0)
            loss_coord = (per_elem * weight[..., None]).sum()
        else:
            loss_coord = F.smooth_l1_loss(coords[bi, ai, rj, ci], assign.coords, reduction="sum", beta=1.0)
        loss_coord = self.coord_scale * loss_coord / 2.0

        # Confidence: IoU target at responsible predictions, 0 elsewhere unless ignored.
        conf = raw[:, :, 4].sigmoid()  # [B, A, H, W]
        conf_weight = torch.where(assign.ignore, 0.0, self.noobject_scale).to(conf.dtype)
        conf_weight[bi, ai, rj, ci] = self.object_scale
        conf_target = torch.zeros_like(conf)
        conf_target[bi, ai, rj, ci] = iou if self.rescore else 1.0
        loss_conf = (conf_weight * (conf - conf_target).square()).sum() / 2.0

        # Classes: softmax focal loss at responsible predictions.
        logits = raw[bi, ai, 5:, rj, ci]  # [N, C]
        loss_cls = self.class_scale * softmax_focal_loss(logits, assign.labels, self.focal_gamma)

        norm = float(b) if self.reduction == "mean" else 1.0
        return {"loss_coord": loss_coord / norm, "loss_conf": loss_conf / norm, "loss_cls": loss_cls / norm}
