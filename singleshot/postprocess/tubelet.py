"""ACT post-processing: decode anchor cuboids into tubelets, per-class tubelet NMS, and per-frame
detections from the overlapping tubelets of a video.

Tubelet detection (ACT's ``ACTDetectionOutput`` layer): softmax over C + 1 classes; per sample and
class keep the ``topk_candidates`` (400) best cuboids scoring above ``score_thresh`` (0.01);
greedy NMS where the overlap of two tubelets is the mean over the K frames of their IoU (a
tubelet is suppressed when that mean exceeds ``nms_thresh``, 0.45); keep the ``max_detections``
(200) best of the sample over all classes. As in ACT the boxes are decoded without clipping,
suppressed, then scaled to the original frame's pixels and clipped to it.

Per-frame detections (ACT's ``load_frame_detections`` used by its frame-mAP): every tubelet
contributes its k-th box, with the tubelet's score and label, to the k-th frame it covers; each
frame's pooled boxes are then suppressed per class at IoU 0.3 with the +1 pixel convention of
ACT's ``nms2d``. Nothing else is capped.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor
from torchvision.ops import batched_nms

from singleshot.errors import ConfigError
from singleshot.ops.boxes import pairwise_iou
from singleshot.ops.coders import DEFAULT_VARIANCES
from singleshot.ops.cuboids import decode_tubelets
from singleshot.structures import Detections

logger = logging.getLogger(__name__)

__all__ = [
    "TubeletDetections",
    "TubeletPostprocess",
    "VideoFrameDetections",
    "tubelet_nms_sorted",
    "postprocess_tubelets",
    "frames_from_tubelets",
]


def _empty_long() -> Tensor:
    return torch.zeros((0,), dtype=torch.int64)


@dataclass
class TubeletDetections:
    """Tubelets detected on one K-frame sample, sorted by descending score.

    Attributes:
        boxes: Tensor[N, K, 4] float32, xyxy pixels of the original frames, frame-major.
        scores: Tensor[N] float32. labels: Tensor[N] int64 0-based class indices.
        video: the video's name. frames: Tensor[K] int64 1-based frame numbers of the sample
            (empty when unknown; :func:`frames_from_tubelets` needs them).
    """

    boxes: Tensor = field(default_factory=lambda: torch.zeros((0, 1, 4), dtype=torch.float32))
    scores: Tensor = field(default_factory=lambda: torch.zeros((0,), dtype=torch.float32))
    labels: Tensor = field(default_factory=_empty_long)
    video: str = ""
    frames: Tensor = field(default_factory=_empty_long)

    def __len__(self) -> int:
        return int(self.boxes.shape[0])


@dataclass(frozen=True)
class TubeletPostprocess:
    """ACT's test settings: conf 0.01, top 400 per class, tubelet NMS 0.45, keep 200 per sample;
    per-frame NMS 0.3 (+1 pixel convention) when tubelets are turned into frame detections."""

    score_thresh: float = 0.01
    nms_thresh: float = 0.45
    topk_candidates: int = 400
    max_detections: int = 200
    frame_nms_thresh: float = 0.3
    frame_plus_one: bool = True
    variances: tuple[float, float] = DEFAULT_VARIANCES


def _mean_iou_to_one(a: Tensor, b: Tensor) -> Tensor:
    """Mean per-frame IoU of tubelet ``a[g]`` with each tubelet ``b[g, j]``.

    a: Tensor[G, K, 4], b: Tensor[G, M, K, 4], xyxy -> Tensor[G, M].
    """
    # Per frame k: IoU of a[g, k] (one box) with the M boxes b[g, :, k] -> [G, K, 1, M].
    iou = pairwise_iou(a[:, :, None], b.transpose(1, 2))
    # Averaged over K from the [G, M, K] layout, as the frames are summed in that order.
    return iou[:, :, 0].transpose(1, 2).contiguous().mean(dim=-1)


def tubelet_nms_sorted(boxes: Tensor, valid: Tensor, iou_threshold: float) -> Tensor:
    """Greedy NMS of many independent groups of score-sorted tubelets at once.

    Within each group the candidates must already be sorted by descending score; candidate j is
    kept unless a kept candidate before it overlaps it by a mean per-frame IoU above
    ``iou_threshold`` (ACT's rule). One step per candidate rank, vectorised over the groups (all
    the images and classes of a batch), and overlaps are computed only from the candidates that
    are kept, to the ones after them: no G·n·n matrix is held.

    Args:
        boxes: Tensor[G, n, K, 4] xyxy tubelets. valid: Tensor[G, n] bool (False = not a candidate).
        iou_threshold: suppression threshold on the mean IoU.

    Returns:
        Tensor[G, n] bool, True for the kept candidates.
    """
    g, n = valid.shape
    boxes = boxes.detach()
    keep = torch.zeros_like(valid)
    suppressed = ~valid
    for i in range(n):
        cur = ~suppressed[:, i]
        keep[:, i] = cur
        if i + 1 == n:
            break
        groups = cur.nonzero().squeeze(1)
        if groups.numel() == 0:
            continue
        over = _mean_iou_to_one(boxes[groups, i], boxes[groups, i + 1 :]) > iou_threshold
        suppressed[groups, i + 1 :] |= over
    return keep


@torch.no_grad()
def postprocess_tubelets(
    outputs: dict[str, Tensor],
    priors: Tensor,
    frame_sizes: Sequence[tuple[int, int]],
    settings: TubeletPostprocess = TubeletPostprocess(),
    videos: Sequence[str] | None = None,
    frames: Sequence[Tensor] | None = None,
) -> list[TubeletDetections]:
    """Tubelet detections of a batch in the pixels of each sample's original frames.

    Args:
        outputs: ``loc`` Tensor[B, P, 4K] and ``conf`` Tensor[B, P, C+1] of an ACT detector.
        priors: Tensor[P, 4] cxcywh normalised.
        frame_sizes: (height, width) of each sample's original frames (the network input is the
            whole frame resized, so normalised boxes scale straight to these).
        settings: thresholds.
        videos, frames: optional video names and Tensor[K] 1-based frame numbers per sample,
            copied into the results.

    Returns:
        One :class:`TubeletDetections` per sample, at most ``settings.max_detections``.
    """
    logits = outputs["conf"].float()
    loc = outputs["loc"].float()
    b, p, c1 = logits.shape
    if loc.shape[:2] != (b, p) or loc.shape[2] % 4:
        raise ConfigError(f"loc of shape {tuple(loc.shape)} does not fit conf of shape {tuple(logits.shape)}")
    if len(frame_sizes) != b:
        raise ConfigError(f"{len(frame_sizes)} frame sizes for a batch of {b} samples")
    k = loc.shape[2] // 4
    device = logits.device
    scores = logits.softmax(dim=-1)[..., 1:].transpose(1, 2)  # [B, C, P]
    top = min(settings.topk_candidates, p)
    top_scores, top_idx = scores.topk(top, dim=2)  # [B, C, top], descending
    valid = top_scores > settings.score_thresh
    n = int(valid.sum(dim=2).max()) if valid.numel() else 0  # valid candidates form a prefix
    top_scores, top_idx, valid = top_scores[..., :n], top_idx[..., :n], valid[..., :n]
    tubes = decode_tubelets(loc.unflatten(-1, (k, 4)), priors.to(device), settings.variances)  # [B, P, K, 4]
    sizes = torch.tensor([[w, h, w, h] for h, w in frame_sizes], dtype=torch.float32, device=device)  # [B, 4]
    bidx = torch.arange(b, device=device)[:, None, None]
    cand = tubes[bidx, top_idx] * sizes[:, None, None, None, :]  # [B, C, n, K, 4] pixels
    keep = tubelet_nms_sorted(cand.flatten(0, 1), valid.flatten(0, 1), settings.nms_thresh)
    bi, ci, ji = keep.view(b, c1 - 1, n).nonzero(as_tuple=True)
    sel_scores = top_scores[bi, ci, ji]
    # Per sample: by descending score (stable), then cap.
    order = torch.argsort(sel_scores, descending=True, stable=True)
    order = order[torch.argsort(bi[order], stable=True)]
    bi, ci, ji, sel_scores = bi[order], ci[order], ji[order], sel_scores[order]
    counts = torch.bincount(bi, minlength=b)
    rank = torch.arange(bi.numel(), device=device) - (torch.cumsum(counts, 0) - counts)[bi]
    cap = rank < settings.max_detections
    bi, ci, ji, sel_scores = bi[cap], ci[cap], ji[cap], sel_scores[cap]
    heights = sizes[bi, 3][:, None, None]
    widths = sizes[bi, 2][:, None, None]
    sel_boxes = cand[bi, ci, ji]  # [N, K, 4]
    x = torch.minimum(sel_boxes[..., 0::2].clamp(min=0), widths)
    y = torch.minimum(sel_boxes[..., 1::2].clamp(min=0), heights)
    sel_boxes = torch.stack((x[..., 0], y[..., 0], x[..., 1], y[..., 1]), dim=-1)
    per_sample = torch.bincount(bi, minlength=b).tolist()
    names = list(videos) if videos is not None else [""] * b
    frame_ids = list(frames) if frames is not None else [_empty_long()] * b
    return [
        TubeletDetections(boxes=bx, scores=sc, labels=lb, video=names[i], frames=frame_ids[i])
        for i, (bx, sc, lb) in enumerate(
            zip(sel_boxes.split(per_sample), sel_scores.split(per_sample), ci.split(per_sample))
        )
    ]


@dataclass
class VideoFrameDetections:
    """Per-frame detections of one video, ordered by frame then descending score.

    Attributes:
        video: the video's name. frames: Tensor[N] int64 1-based frame numbers.
        boxes: Tensor[N, 4] float32 xyxy pixels. scores: Tensor[N] float32. labels: Tensor[N] int64.
    """

    video: str
    frames: Tensor
    boxes: Tensor
    scores: Tensor
    labels: Tensor

    def __len__(self) -> int:
        return int(self.frames.shape[0])

    def per_frame(self) -> dict[int, Detections]:
        """``{frame: Detections}`` for the frames that have detections (image_id ``"video/frame"``)."""
        out: dict[int, Detections] = {}
        if len(self) == 0:
            return out
        uniq, counts = torch.unique_consecutive(self.frames, return_counts=True)
        parts = zip(
            self.boxes.split(counts.tolist()), self.scores.split(counts.tolist()), self.labels.split(counts.tolist())
        )
        for f, (bx, sc, lb) in zip(uniq.tolist(), parts):
            out[f] = Detections(boxes=bx, scores=sc, labels=lb, image_id=f"{self.video}/{f}")
        return out

    def records(self) -> list[dict[str, object]]:
        """Rows of the per-frame detections JSON: ``{"video", "frame", "label", "score", "box"}``."""
        return [
            {"video": self.video, "frame": f, "label": lb, "score": sc, "box": bx}
            for f, lb, sc, bx in zip(
                self.frames.tolist(), self.labels.tolist(), self.scores.tolist(), self.boxes.tolist()
            )
        ]


def frames_from_tubelets(
    tubelets: Sequence[TubeletDetections],
    nms_thresh: float = 0.3,
    plus_one: bool = True,
    video: str | None = None,
) -> VideoFrameDetections:
    """Per-frame detections of a video from all its (overlapping) tubelet detections, ACT's way.

    Every tubelet gives its k-th box, score and label to frame ``frames[k]``; each frame's pooled
    boxes are then suppressed per class (greedy NMS at ``nms_thresh``; ``plus_one`` counts widths
    as x2 - x1 + 1 as ACT's ``nms2d`` does).

    Args:
        tubelets: the detections of the video's samples (each with its ``frames``), e.g. one per
            start frame 1 … T - K + 1.
        nms_thresh: per-frame, per-class IoU threshold (0.3 in ACT's frame-mAP).
        plus_one: +1 pixel convention in the NMS overlaps.
        video: the video's name; defaults to the tubelets' common ``video``.

    Returns:
        :class:`VideoFrameDetections` ordered by frame, then descending score.
    """
    names = {t.video for t in tubelets if t.video}
    if video is None:
        if len(names) > 1:
            raise ConfigError(
                f"frames_from_tubelets got tubelets of several videos {sorted(names)}; pass one video at a time"
            )
        video = names.pop() if names else ""
    nonempty = [t for t in tubelets if len(t)]
    for t in nonempty:
        if t.frames.numel() != t.boxes.shape[1]:
            raise ConfigError(
                f"tubelets of video {t.video!r} have K={t.boxes.shape[1]} boxes but frames={t.frames.tolist()}"
            )
    if not nonempty:
        z = torch.zeros((0,), dtype=torch.int64)
        return VideoFrameDetections(video, z, torch.zeros((0, 4)), torch.zeros((0,)), z.clone())
    boxes = torch.cat([t.boxes.reshape(-1, 4) for t in nonempty]).float()
    frames = torch.cat([t.frames.to(boxes.device)[None].expand(len(t), -1).reshape(-1) for t in nonempty])
    scores = torch.cat([t.scores.repeat_interleave(t.boxes.shape[1]) for t in nonempty]).float()
    labels = torch.cat([t.labels.repeat_interleave(t.boxes.shape[1]) for t in nonempty])
    nms_boxes = boxes + boxes.new_tensor([0.0, 0.0, 1.0, 1.0]) if plus_one else boxes
    groups = (frames - frames.min()) * (int(labels.max()) + 1) + labels
    keep = batched_nms(nms_boxes, scores, groups, nms_thresh)  # descending score
    keep = keep[torch.argsort(frames[keep], stable=True)]
    return VideoFrameDetections(video, frames[keep], boxes[keep], scores[keep], labels[keep])
