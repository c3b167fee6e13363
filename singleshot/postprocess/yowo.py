"""YOWO (YOLOv2 region head) decoding and inference, batched.

The head's output ``out`` is Tensor[B, A·(5+C), H, W]; viewed as [B, A, 5+C, H, W] each anchor's
channels are the raw ``(tx, ty, tw, th, conf, class_0 … class_{C-1})``. Decoding, as in YOWO's
``get_region_boxes`` (ref: wei-tim/YOWO core/utils.py): boxes by the region coder of
:mod:`singleshot.ops.region` (:func:`~singleshot.ops.region.region_grid_boxes`), and

    objectness = sigmoid(conf),  class probabilities = softmax(class logits)

Predictions are flattened anchor-major, ``n = a·H·W + i·W + j``, the order of YOWO's index.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor

from singleshot.ops.boxes import cxcywh_to_xyxy
from singleshot.ops.region import region_grid_boxes, split_region_output
from singleshot.postprocess.detect import grouped_nms
from singleshot.structures import Detections

logger = logging.getLogger(__name__)


def decode_region(
    out: Tensor, anchors: Tensor, num_classes: int, input_size: tuple[int, int]
) -> tuple[Tensor, Tensor, Tensor]:
    """Decode a region head's output into boxes and probabilities.

    Args:
        out: Tensor[B, A·(5+C), H, W] raw head output.
        anchors: Tensor[A, 2] anchor (width, height) in grid cells.
        num_classes: C.
        input_size: (height, width) of the network input in pixels.

    Returns:
        boxes: Tensor[B, N, 4] xyxy in network-input pixels, N = A·H·W (anchor-major order).
        conf: Tensor[B, N] objectness, sigmoid of the conf channel.
        cls_prob: Tensor[B, N, C] softmax over the class channels.
    """
    raw = split_region_output(out.float(), int(anchors.shape[0]), num_classes)
    b, a, _, h, w = raw.shape
    in_h, in_w = input_size
    scale = torch.tensor([in_w / w, in_h / h, in_w / w, in_h / h], dtype=raw.dtype, device=raw.device)
    boxes = cxcywh_to_xyxy(region_grid_boxes(raw, anchors)) * scale
    conf = raw[:, :, 4].sigmoid().reshape(b, a * h * w)
    logits = raw[:, :, 5:]
    # exp(x − logsumexp(x)) equals softmax and avoids the CPU softmax kernel's slow threading on small maps.
    cls_prob = (logits - logits.logsumexp(dim=2, keepdim=True)).exp()
    cls_prob = cls_prob.permute(0, 1, 3, 4, 2).reshape(b, a * h * w, num_classes)
    return boxes.reshape(b, a * h * w, 4), conf, cls_prob


def yowo_postprocess(
    outputs: dict[str, Tensor],
    anchors: Tensor,
    num_classes: int,
    input_size: tuple[int, int],
    orig_sizes: Sequence[tuple[int, int]],
    conf_thresh: float = 0.005,
    nms_thresh: float = 0.4,
    max_det: int = 0,
    mode: Literal["yowo", "per_class"] = "yowo",
    all_classes: bool = False,
    clip: bool = True,
    image_ids: Sequence[str] | None = None,
) -> list[Detections]:
    """Detections of a batch of key frames, in the pixels of each original frame.

    Two ways of choosing the detections:

    - ``mode="yowo"`` (YOWO's test path, ref: wei-tim/YOWO core/optimization.py and core/utils.py):
      a prediction is a candidate when objectness × its best class probability > ``conf_thresh``
      (YOWO tests at 0.005); candidates go through class-agnostic NMS ranked by *objectness* at IoU
      ``nms_thresh`` (0.4; suppression when IoU > threshold); each kept box gives one detection, its
      best class with score objectness × probability. ``all_classes=True`` adds, for every kept box,
      each other class whose objectness × probability > ``conf_thresh`` (YOWO's ``validation`` boxes;
      YOWO's writer then labels all of them with the best class, a bug not reproduced here).
    - ``mode="per_class"``: every (prediction, class) with score = objectness × probability >
      ``conf_thresh`` is a candidate; NMS runs per image and class, ranked by that score.

    Args:
        outputs: ``{"out": Tensor[B, A·(5+C), H, W]}``.
        anchors: Tensor[A, 2] grid units. num_classes: C.
        input_size: (height, width) of the network input.
        orig_sizes: (height, width) of each original frame; boxes are scaled from the input to it.
        max_det: when > 0, detections kept per image, the highest scores; 0 (default) keeps all, as
            YOWO does (at most one per prediction in ``yowo`` mode, A·H·W).
        clip: clamp boxes into the frame (YOWO does not; it only changes boxes that leave the frame).
        image_ids: optional identifiers copied into the results.

    Returns:
        One :class:`Detections` per image: boxes xyxy float pixels of the original frame, scores,
        0-based labels, by descending score.
    """
    out = outputs["out"]
    b = out.shape[0]
    if len(orig_sizes) != b:
        raise ValueError(f"yowo_postprocess: {len(orig_sizes)} original sizes for a batch of {b}")
    boxes, conf, cls_prob = decode_region(out, anchors, num_classes, input_size)
    device = boxes.device
    in_h, in_w = input_size
    ratio = torch.tensor(
        [[w / in_w, h / in_h, w / in_w, h / in_h] for h, w in orig_sizes], dtype=boxes.dtype, device=device
    ).reshape(b, 4)
    if mode == "yowo":
        best_prob, best_cls = cls_prob.max(dim=-1)  # [B, N]
        bi, ni = (conf * best_prob > conf_thresh).nonzero(as_tuple=True)
        keep = grouped_nms(boxes[bi, ni], conf[bi, ni], bi, nms_thresh)
        bi, ni = bi[keep], ni[keep]
        labels = best_cls[bi, ni]
        if all_classes:
            extra_k, extra_c = (conf[bi, ni, None] * cls_prob[bi, ni] > conf_thresh).nonzero(as_tuple=True)
            other = extra_c != labels[extra_k]
            bi = torch.cat((bi, bi[extra_k[other]]))
            ni = torch.cat((ni, ni[extra_k[other]]))
            labels = torch.cat((labels, extra_c[other]))
    elif mode == "per_class":
        bi, ni, labels = (conf[..., None] * cls_prob > conf_thresh).nonzero(as_tuple=True)
        cand_scores = conf[bi, ni] * cls_prob[bi, ni, labels]
        keep = grouped_nms(boxes[bi, ni], cand_scores, bi * num_classes + labels, nms_thresh)
        bi, ni, labels = bi[keep], ni[keep], labels[keep]
    else:
        raise ValueError(f"yowo_postprocess: unknown mode {mode!r} (expected 'yowo' or 'per_class')")
    scores = conf[bi, ni] * cls_prob[bi, ni, labels]
    sel_boxes = boxes[bi, ni] * ratio[bi]
    if clip:
        limits = ratio[bi] * torch.tensor([in_w, in_h, in_w, in_h], dtype=boxes.dtype, device=device)
        sel_boxes = torch.minimum(sel_boxes.clamp(min=0.0), limits)
    # Group by image, by descending score inside an image, and cap each image at max_det (if > 0).
    order = torch.argsort(scores, descending=True, stable=True)
    order = order[torch.argsort(bi[order], stable=True)]
    if max_det > 0:
        img = bi[order]
        counts = torch.bincount(img, minlength=b)
        starts = torch.cumsum(counts, 0) - counts
        rank = torch.arange(img.numel(), device=device) - starts[img]
        order = order[rank < max_det]
    per_image = torch.bincount(bi[order], minlength=b).tolist()
    ids = list(image_ids) if image_ids is not None else [""] * b
    return [
        Detections(boxes=bx, scores=sc, labels=lb, image_id=ids[i])
        for i, (bx, sc, lb) in enumerate(
            zip(sel_boxes[order].split(per_image), scores[order].split(per_image), labels[order].split(per_image))
        )
    ]
