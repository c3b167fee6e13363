"""SSD post-processing: softmax, decode, per-class top-k and NMS, batched."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor
from torchvision.ops import nms

from singleshot.ops.coders import DEFAULT_VARIANCES, decode
from singleshot.structures import Detections


@dataclass(frozen=True)
class DetectPostprocess:
    """Settings of SSD inference (the paper's: conf 0.01, NMS 0.45, 200 per image; torchvision keeps
    400 candidates per class before NMS)."""

    score_thresh: float = 0.01
    nms_thresh: float = 0.45
    topk_candidates: int = 400
    max_detections: int = 200
    variances: tuple[float, float] = DEFAULT_VARIANCES


def grouped_nms(boxes: Tensor, scores: Tensor, groups: Tensor, iou_threshold: float) -> Tensor:
    """NMS run independently inside each group.

    Each group is suppressed on its own (cost grows with the square of a group's size, not of the
    whole set), which is what makes batch-wide inference cheap.

    Args:
        boxes: Tensor[N, 4] xyxy. scores: Tensor[N]. groups: Tensor[N] int64 group ids.

    Returns:
        Tensor[K] int64 indices of the kept boxes, sorted by descending score.
    """
    if boxes.numel() == 0:
        return torch.zeros((0,), dtype=torch.int64, device=boxes.device)
    order = torch.argsort(groups, stable=True)
    counts = torch.unique_consecutive(groups[order], return_counts=True)[1].tolist()
    kept = [idx[nms(boxes[idx], scores[idx], iou_threshold)] for idx in order.split(counts)]
    keep = torch.cat(kept)
    return keep[torch.argsort(scores[keep], descending=True, stable=True)]


def postprocess_detections(
    outputs: dict[str, Tensor],
    priors: Tensor,
    image_sizes: Sequence[tuple[int, int]],
    settings: DetectPostprocess = DetectPostprocess(),
    image_ids: Sequence[str] | None = None,
) -> list[Detections]:
    """Detections of a batch in the pixels of each original image.

    Args:
        outputs: ``cls_logits`` Tensor[B, P, C+1] (index 0 = background) and ``bbox_regression``
            Tensor[B, P, 4].
        priors: Tensor[P, 4] cxcywh normalised.
        image_sizes: (height, width) per image, to scale the normalised boxes to pixels.
        settings: thresholds.
        image_ids: optional identifiers copied into the results.

    Returns:
        One :class:`Detections` per image, at most ``settings.max_detections``, by descending score.
    """
    logits = outputs["cls_logits"].float()
    b, p, c1 = logits.shape
    scores = logits.softmax(dim=-1)[..., 1:].transpose(1, 2)  # [B, C, P]
    boxes = decode(outputs["bbox_regression"].float(), priors.to(logits.device), settings.variances).clamp(0.0, 1.0)
    k = min(settings.topk_candidates, p)
    top_scores, top_idx = scores.topk(k, dim=2)  # [B, C, k]
    bi, ci, ji = (top_scores > settings.score_thresh).nonzero(as_tuple=True)
    sel_scores = top_scores[bi, ci, ji]
    sizes = torch.tensor([[w, h, w, h] for h, w in image_sizes], dtype=torch.float32, device=logits.device)
    sel_boxes = boxes[bi, top_idx[bi, ci, ji]] * sizes[bi]
    keep = grouped_nms(sel_boxes, sel_scores, bi * (c1 - 1) + ci, settings.nms_thresh)
    # Order kept detections by image (stable, so by score within an image) and cap each image.
    keep = keep[torch.argsort(bi[keep], stable=True)]
    img = bi[keep]
    counts = torch.bincount(img, minlength=b)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(img.numel(), device=img.device) - starts[img]
    keep = keep[rank < settings.max_detections]
    per_image = torch.bincount(bi[keep], minlength=b).tolist()
    ids = list(image_ids) if image_ids is not None else [""] * b
    return [
        Detections(boxes=bx, scores=sc, labels=lb, image_id=ids[i])
        for i, (bx, sc, lb) in enumerate(
            zip(sel_boxes[keep].split(per_image), sel_scores[keep].split(per_image), ci[keep].split(per_image))
        )
    ]
