"""What ``action val`` draws beside its metrics: the frame-AP precision-recall curves of each class
and the videos whose ground truth the detections cover least. Neither changes a metric.

* :func:`frame_pr_curves`: the matching of :func:`~singleshot.metrics.frame_ap.frame_ap` (same
  protocol switches), as curves whose ``ap`` is frame-AP's ``per_class`` entry.
* :func:`video_recalls`: per video, the share of its ground-truth boxes (every annotated frame)
  that some detection of the same class on the same frame, scoring at least ``conf``, covers at
  IoU >= ``iou``, and the frames where a box was missed. Coverage, not one-to-one matching: it
  answers "what did the model not see", not a precision question.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from singleshot.metrics.curves import PRCurve, envelope_curve, trapezoid_curve
from singleshot.metrics.frame_ap import (
    FRAME_PROTOCOLS,
    FrameAPProtocol,
    average_precision,
    evaluation_videos,
    gather_gt_boxes,
    rank_frame_detections,
)
from singleshot.ops.boxes import box_iou_np
from singleshot.structures import ActionAnnotations, as_frame_dets

__all__ = ["VideoRecall", "frame_pr_curves", "video_recalls"]

# The IoU block computed at once (ground-truth boxes x detections of the busiest frame and class).
_MAX_BLOCK = 1 << 22


def frame_pr_curves(
    gt: ActionAnnotations,
    detections: Any,
    protocol: str | FrameAPProtocol = "yowo",
    iou_thresh: float = 0.5,
    videos: Sequence[str] | None = None,
) -> dict[str, PRCurve]:
    """Each class's frame-level precision-recall curve (arguments as
    :func:`~singleshot.metrics.frame_ap.frame_ap`).

    Returns:
        ``{class name: PRCurve}``, ``ap`` equal to ``frame_ap``'s ``per_class`` entry: the staircase
        of the precision envelope under ``ap="voc"`` (its area is the AP), the raw curve from (0, 1)
        under ``ap="trapezoid"`` (its trapezoidal area is the AP); empty for a class without boxes.
    """
    settings = protocol if isinstance(protocol, FrameAPProtocol) else FRAME_PROTOCOLS.get(protocol)
    if settings is None:
        raise ValueError(f"unknown frame-mAP protocol {protocol!r} (use one of {sorted(FRAME_PROTOCOLS)})")
    ranked, _, _ = rank_frame_detections(gt, detections, settings, iou_thresh, videos)
    curves: dict[str, PRCurve] = {}
    for name, (tp, n_pos) in ranked.items():
        value = average_precision(tp, n_pos, settings.ap)
        if n_pos <= 0:
            curves[name] = PRCurve(np.zeros(0), np.zeros(0), value)
            continue
        ctp = np.cumsum(tp, dtype=np.float64)
        precision = ctp / np.arange(1, tp.shape[0] + 1, dtype=np.float64)
        recall = ctp / float(n_pos)
        drawn = envelope_curve(recall, precision) if settings.ap == "voc" else trapezoid_curve(recall, precision)
        curves[name] = PRCurve(*drawn, value)
    return curves


@dataclass
class VideoRecall:
    """Coverage of one video's ground truth (see the module doc).

    Attributes:
        video: ``"Class/video"``. boxes: its ground-truth boxes. found: those covered.
        missed_frames: int64 [M], sorted 1-based frames with at least one missed box.
    """

    video: str
    boxes: int
    found: int
    missed_frames: np.ndarray

    @property
    def recall(self) -> float:
        """``found / boxes`` (1.0 for a video without boxes)."""
        return self.found / self.boxes if self.boxes else 1.0


def video_recalls(
    gt: ActionAnnotations,
    detections: Any,
    videos: Sequence[str] | None = None,
    conf: float = 0.3,
    iou: float = 0.5,
    plus_one: bool = False,
) -> list[VideoRecall]:
    """Coverage of each evaluated video's ground truth, lowest recall first (ties: more missed boxes,
    then the video order).

    Args:
        gt: ground truth (boxes xyxy pixels, frames 1-based).
        detections: any form :func:`~singleshot.structures.as_frame_dets` reads.
        videos: evaluated videos (default: the test split, else all).
        conf: detections scoring below it are ignored.
        iou: a box is covered at IoU >= ``iou``.
        plus_one: the +1 pixel convention in the IoU.
    """
    vids = evaluation_videos(gt, videos)
    dets, _ = as_frame_dets(detections, vids).reindex(vids)
    dets = dets.select(dets.score >= conf)
    g_vid, g_frame, g_label, g_box = gather_gt_boxes(gt, vids)
    n_cls = max(len(gt.classes), int(dets.label.max(initial=-1)) + 1, 1)
    stride = int(max(g_frame.max(initial=0), dets.frame.max(initial=0))) + 2
    d_key = (dets.video * stride + dets.frame) * n_cls + dets.label
    g_key = (g_vid * stride + g_frame) * n_cls + g_label
    found = _covered(g_key, g_box, d_key, dets.boxes, iou, plus_one)
    out = []
    for i, name in enumerate(vids):
        mine = g_vid == i
        missed = np.unique(g_frame[mine & ~found])
        out.append(VideoRecall(name, int(mine.sum()), int((mine & found).sum()), missed))
    order = sorted(range(len(out)), key=lambda k: (out[k].recall, -(out[k].boxes - out[k].found), k))
    return [out[k] for k in order]


def _covered(
    g_key: np.ndarray, g_box: np.ndarray, d_key: np.ndarray, d_box: np.ndarray, thresh: float, plus_one: bool
) -> np.ndarray:
    """bool [G]: a detection of the same key has IoU >= ``thresh`` with the box."""
    found = np.zeros(g_key.shape[0], dtype=bool)
    if g_key.shape[0] == 0 or d_key.shape[0] == 0:
        return found
    order = np.argsort(d_key, kind="stable")
    keys, row, counts = np.unique(d_key[order], return_inverse=True, return_counts=True)
    slot = np.arange(order.shape[0]) - np.concatenate(([0], np.cumsum(counts)[:-1]))[row]
    s = int(counts.max())
    padded = np.zeros((keys.shape[0] + 1, s, 4), dtype=np.float64)
    valid = np.zeros((keys.shape[0] + 1, s), dtype=bool)  # last row: keys without detections
    padded[row, slot] = d_box[order]
    valid[row, slot] = True
    pos = np.minimum(np.searchsorted(keys, g_key), keys.shape[0] - 1)
    g_row = np.where(keys[pos] == g_key, pos, keys.shape[0])
    chunk = max(1, _MAX_BLOCK // s)
    for start in range(0, g_key.shape[0], chunk):
        sl = slice(start, start + chunk)
        r = g_row[sl]
        ious = box_iou_np(g_box[sl, None, :], padded[r], plus_one)
        found[sl] = (valid[r] & (ious >= thresh)).any(axis=1)
    return found
