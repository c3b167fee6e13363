"""Frame-mAP of spatio-temporal action detection under the YOWO and the ACT protocols.

A detection is one box on one frame of one video, with a 0-based label and a score (held as
:class:`singleshot.structures.FrameDets`, or any form :func:`singleshot.structures.as_frame_dets`
accepts). Per class, detections are ranked by descending score (stable sort: ties keep the given
order) and matched to the ground-truth boxes of their class on their own frame. The two published
protocols differ in four places, each a switch of :class:`FrameAPProtocol`:

=================  ==========================================  ==========================================
switch             ``"yowo"`` (wei-tim/YOWO, VOC devkit port)   ``"act"`` (vkalogeiton ACT, MOC-Detector)
=================  ==========================================  ==========================================
``frames``         ``"keyframes"``: only annotated key frames   ``"all"``: every frame of the evaluated
                   (``ActionAnnotations.keyframes``; without    videos; a detection on a frame without a
                   a list, the frames with at least one box)    box of its class is a false positive
``ap``             ``"voc"``: all-point area under the          ``"trapezoid"``: trapezoids under the raw
                   monotone precision envelope                  curve starting at (recall 0, precision 1)
``plus_one``       True (width = x2 - x1 + 1)                   True: ACT's ``area2d``/``overlap2d`` add 1
``duplicates``     ``"best"``: the box of highest IoU, a false  ``"remaining"``: the best of the boxes not
                   positive when it is already matched          yet matched
=================  ==========================================  ==========================================

mAP is the mean over the classes that have at least one ground-truth box among the scored frames
(a class without one has AP ``nan`` in ``per_class``). ACT's own script averages over every class
(0 for a class without boxes); YOWO's over the classes present.

Differences from the reference scripts, on purpose: ranks are computed with a stable sort (the
scripts use NumPy's default quicksort, whose order of equal scores is arbitrary) and in float64
(ACT stores precision/recall in float32).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from singleshot.metrics.voc import voc_ap
from singleshot.ops.boxes import box_iou_np
from singleshot.structures import ActionAnnotations, as_frame_dets

logger = logging.getLogger(__name__)

__all__ = [
    "FRAME_PROTOCOLS",
    "FrameAPProtocol",
    "average_precision",
    "evaluation_videos",
    "frame_ap",
    "gather_gt_boxes",
    "match_ranked",
    "rank_frame_detections",
]

# The IoU block computed at once is (detections x boxes of the busiest frame); keep it below this.
_MAX_BLOCK = 1 << 22


@dataclass(frozen=True)
class FrameAPProtocol:
    """The switches on which the frame-mAP protocols differ (see the module doc)."""

    frames: str = "keyframes"  # "keyframes" | "all"
    ap: str = "voc"  # "voc" | "trapezoid"
    plus_one: bool = True
    duplicates: str = "best"  # "best" | "remaining"

    def __post_init__(self) -> None:
        if self.frames not in ("keyframes", "all"):
            raise ValueError(f"frames must be 'keyframes' or 'all', not {self.frames!r}")
        if self.ap not in ("voc", "trapezoid"):
            raise ValueError(f"ap must be 'voc' or 'trapezoid', not {self.ap!r}")
        if self.duplicates not in ("best", "remaining"):
            raise ValueError(f"duplicates must be 'best' or 'remaining', not {self.duplicates!r}")


FRAME_PROTOCOLS: dict[str, FrameAPProtocol] = {
    "yowo": FrameAPProtocol(frames="keyframes", ap="voc", plus_one=True, duplicates="best"),
    "act": FrameAPProtocol(frames="all", ap="trapezoid", plus_one=True, duplicates="remaining"),
}


def evaluation_videos(gt: ActionAnnotations, videos: Sequence[str] | None = None) -> list[str]:
    """The videos an evaluation covers: ``videos`` when given (each must be in ``gt``), else the
    ground truth's test split, else every annotated video (sorted)."""
    if videos is None:
        videos = gt.test_videos if gt.test_videos else sorted(gt.videos)
    missing = [v for v in videos if v not in gt.videos]
    if missing:
        raise ValueError(
            f"{len(missing)} evaluated videos are not in the ground truth {gt.source!r}, e.g. {missing[0]!r}"
        )
    return list(videos)


def gather_gt_boxes(gt: ActionAnnotations, videos: Sequence[str]) -> tuple[np.ndarray, ...]:
    """Every ground-truth box of ``videos`` as flat arrays.

    Returns:
        (video int64 [G] index into ``videos``, frame int64 [G], label int64 [G], boxes float64 [G, 4] xyxy).
    """
    vid, frame, label, boxes = [], [], [], []
    for i, name in enumerate(videos):
        for tube in gt.videos[name].tubes:
            n = len(tube)
            vid.append(np.full(n, i, dtype=np.int64))
            frame.append(np.asarray(tube.frames, dtype=np.int64))
            label.append(np.full(n, tube.label, dtype=np.int64))
            boxes.append(np.asarray(tube.boxes, dtype=np.float64).reshape(-1, 4))
    if not vid:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 4))
    return np.concatenate(vid), np.concatenate(frame), np.concatenate(label), np.concatenate(boxes)


def average_precision(tp: np.ndarray, n_pos: int, form: str) -> float:
    """AP of one ranked list.

    Args:
        tp: bool [D], True positives in ranked order (every other detection is a false positive).
        n_pos: number of ground-truth instances.
        form: ``"voc"`` (area under the precision envelope) or ``"trapezoid"`` (ACT's ``pr_to_ap``:
            trapezoids under the raw curve, which starts at recall 0, precision 1).

    Returns:
        AP in [0, 1]; ``nan`` when ``n_pos`` is 0.
    """
    if n_pos <= 0:
        return math.nan
    tp = np.asarray(tp, dtype=bool).reshape(-1)
    ctp = np.cumsum(tp, dtype=np.float64)
    precision = ctp / np.arange(1, tp.shape[0] + 1, dtype=np.float64)
    recall = ctp / float(n_pos)
    if form == "voc":
        return voc_ap(recall, precision, use_07=False)
    if form == "trapezoid":
        r = np.concatenate(([0.0], recall))
        p = np.concatenate(([1.0], precision))
        return float(np.sum((r[1:] - r[:-1]) * (p[1:] + p[:-1]) * 0.5))
    raise ValueError(f"unknown AP form {form!r} (use 'voc' or 'trapezoid')")


def _rank_within_group(group: np.ndarray) -> np.ndarray:
    """int64 [n]: the position of each element among the elements of its group, in given order."""
    order = np.argsort(group, kind="stable")
    sorted_group = group[order]
    first = np.ones(sorted_group.shape[0], dtype=bool)
    first[1:] = sorted_group[1:] != sorted_group[:-1]
    idx = np.arange(sorted_group.shape[0])
    run_start = np.maximum.accumulate(np.where(first, idx, 0))
    rank = np.empty_like(idx)
    rank[order] = idx - run_start
    return rank


def match_ranked(group: np.ndarray, iou: np.ndarray, n_groups: int, thresh: float, rule: str) -> np.ndarray:
    """Greedy matching of ranked detections to the ground truth of their group.

    Args:
        group: int64 [D], the group (frame or video) of each detection, in ranked order; groups are
            ``0..n_groups-1`` and ``n_groups`` means "no ground truth here".
        iou: float [D, S], IoU of each detection with slot ``s`` of its group's ground truth; ``-1``
            marks slots that hold nothing.
        thresh: minimum IoU of a match.
        rule: ``"best"``: take the slot of highest IoU; a true positive if that IoU reaches
            ``thresh`` and the slot is still free (VOC). ``"remaining"``: take the highest-IoU slot
            among the free ones (ACT).

    Returns:
        bool [D], True positives (ranked order). Ties in IoU go to the lowest slot, as ``argmax``.
    """
    group = np.asarray(group, dtype=np.int64).reshape(-1)
    n_det = group.shape[0]
    tp = np.zeros(n_det, dtype=bool)
    if n_det == 0 or iou.shape[1] == 0:
        return tp
    n_slots = iou.shape[1]
    if rule == "best":
        j = iou.argmax(axis=1)
        best = iou[np.arange(n_det), j]
        hit = np.flatnonzero((best >= thresh) & (best >= 0))
        _, first = np.unique(group[hit] * n_slots + j[hit], return_index=True)
        tp[hit[first]] = True
        return tp
    if rule != "remaining":
        raise ValueError(f"unknown duplicate rule {rule!r} (use 'best' or 'remaining')")
    cand = np.flatnonzero((iou >= thresh).any(axis=1) & (iou >= 0).any(axis=1))
    if cand.size == 0:
        return tp
    rank = _rank_within_group(group[cand])
    by_rank = np.argsort(rank, kind="stable")
    bounds = np.searchsorted(rank[by_rank], np.arange(int(rank.max()) + 2))
    matched = np.zeros((n_groups + 1, n_slots), dtype=bool)
    for r in range(bounds.shape[0] - 1):
        sel = cand[by_rank[bounds[r] : bounds[r + 1]]]
        rows = group[sel]
        free = np.where(matched[rows], -1.0, iou[sel])
        j = free.argmax(axis=1)
        ok = free[np.arange(sel.shape[0]), j] >= thresh
        tp[sel[ok]] = True
        matched[rows[ok], j[ok]] = True
    return tp


def _pad_by_key(keys: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ground truth padded into one row per key: (sorted unique keys [F], boxes [F + 1, S, 4],
    valid [F + 1, S]); the extra last row is empty (for detections on keys without boxes)."""
    order = np.argsort(keys, kind="stable")
    uniq, row, counts = np.unique(keys[order], return_inverse=True, return_counts=True)
    slot = np.arange(keys.shape[0]) - np.concatenate(([0], np.cumsum(counts)[:-1]))[row]
    s = int(counts.max()) if counts.size else 0
    padded = np.zeros((uniq.shape[0] + 1, s, 4), dtype=np.float64)
    valid = np.zeros((uniq.shape[0] + 1, s), dtype=bool)
    padded[row, slot] = boxes[order]
    valid[row, slot] = True
    return uniq, padded, valid


def _class_tp(
    d_key: np.ndarray,
    d_box: np.ndarray,
    g_key: np.ndarray,
    g_box: np.ndarray,
    thresh: float,
    plus_one: bool,
    rule: str,
) -> np.ndarray:
    """True positives of one class's detections (already in ranked order) against its boxes."""
    n_det = d_key.shape[0]
    if n_det == 0 or g_key.shape[0] == 0:
        return np.zeros(n_det, dtype=bool)
    uniq, padded, valid = _pad_by_key(g_key, g_box)
    pos = np.minimum(np.searchsorted(uniq, d_key), uniq.shape[0] - 1)
    row = np.where(uniq[pos] == d_key, pos, uniq.shape[0])
    s = padded.shape[1]
    iou = np.empty((n_det, s), dtype=np.float64)
    chunk = max(1, _MAX_BLOCK // max(s, 1))
    for start in range(0, n_det, chunk):
        sl = slice(start, start + chunk)
        r = row[sl]
        iou[sl] = np.where(valid[r], box_iou_np(d_box[sl, None, :], padded[r], plus_one), -1.0)
    return match_ranked(row, iou, uniq.shape[0], thresh, rule)


def _resolve_protocol(protocol: str | FrameAPProtocol, overrides: dict[str, Any]) -> FrameAPProtocol:
    if isinstance(protocol, FrameAPProtocol):
        base = protocol
    elif protocol in FRAME_PROTOCOLS:
        base = FRAME_PROTOCOLS[protocol]
    else:
        raise ValueError(f"unknown frame-mAP protocol {protocol!r} (use one of {sorted(FRAME_PROTOCOLS)})")
    given = {k: v for k, v in overrides.items() if v is not None}
    return replace(base, **given) if given else base


def frame_ap(
    gt: ActionAnnotations,
    detections: Any,
    protocol: str | FrameAPProtocol = "yowo",
    iou_thresh: float = 0.5,
    videos: Sequence[str] | None = None,
    *,
    frames: str | None = None,
    ap: str | None = None,
    plus_one: bool | None = None,
    duplicates: str | None = None,
) -> dict:
    """Frame-mAP of per-frame detections.

    Args:
        gt: ground truth (boxes xyxy pixels, frames 1-based).
        detections: see :func:`singleshot.structures.as_frame_dets`; ACT rows index ``videos``
            (default: the evaluated videos, i.e. ``gt.test_videos``, or all videos when the split
            is empty).
        protocol: ``"yowo"``, ``"act"`` or a :class:`FrameAPProtocol`; ``frames``, ``ap``,
            ``plus_one`` and ``duplicates`` override single switches.
        iou_thresh: minimum IoU of a match.
        videos: the videos evaluated (all must be in ``gt``). Detections on other annotated videos
            are left out (logged); a detection on a video unknown to ``gt`` is a ValueError.

    Returns:
        ``{"frame_map": float, "per_class": {name: AP or nan}, "protocol": {switches},
        "n_detections": detections scored, "n_positives": ground-truth boxes scored}``.
    """
    settings = _resolve_protocol(protocol, dict(frames=frames, ap=ap, plus_one=plus_one, duplicates=duplicates))
    ranked, n_det, n_pos = rank_frame_detections(gt, detections, settings, iou_thresh, videos)
    per_class = {name: average_precision(tp, n, settings.ap) for name, (tp, n) in ranked.items()}
    valid = [v for v in per_class.values() if not math.isnan(v)]
    if not valid:
        logger.warning("frame-mAP: no class has a ground-truth box on the scored frames; mAP set to 0")
    return {
        "frame_map": float(np.mean(valid)) if valid else 0.0,
        "per_class": per_class,
        "protocol": {
            "frames": settings.frames,
            "ap": settings.ap,
            "plus_one": settings.plus_one,
            "duplicates": settings.duplicates,
            "iou_thresh": float(iou_thresh),
        },
        "n_detections": n_det,
        "n_positives": n_pos,
    }


def rank_frame_detections(
    gt: ActionAnnotations,
    detections: Any,
    settings: FrameAPProtocol,
    iou_thresh: float,
    videos: Sequence[str] | None,
) -> tuple[dict[str, tuple[np.ndarray, int]], int, int]:
    """The matching behind :func:`frame_ap` (``settings`` resolved, other arguments as there).

    Returns:
        (``{class name: (tp bool [D] in ranked order, ground-truth boxes on the scored frames)}``,
        detections scored, ground-truth boxes scored).
    """
    vids = evaluation_videos(gt, videos)
    dets = as_frame_dets(detections, vids)
    unknown = sorted({dets.videos[i] for i in np.unique(dets.video)} - set(gt.videos))
    if unknown:
        raise ValueError(f"detections name {len(unknown)} videos absent from the ground truth, e.g. {unknown[0]!r}")
    dets, kept = dets.reindex(vids)
    if not kept.all():
        logger.info("frame-mAP: %d detections on videos outside the evaluated list left out", int((~kept).sum()))
    g_vid, g_frame, g_label, g_box = gather_gt_boxes(gt, vids)
    n_cls = len(gt.classes)
    if len(dets) and (dets.label.min() < 0 or dets.label.max() >= n_cls):
        bad = dets.label[(dets.label < 0) | (dets.label >= n_cls)][0]
        raise ValueError(f"detection label {int(bad)} outside 0..{n_cls - 1}")
    stride = int(max(g_frame.max(initial=0), dets.frame.max(initial=0))) + 2
    d_key = dets.video * stride + dets.frame
    g_key = g_vid * stride + g_frame
    d_keep = np.ones(len(dets), dtype=bool)
    if settings.frames == "keyframes":
        if gt.keyframes is not None:
            kf = [np.asarray(gt.keyframes.get(v, []), dtype=np.int64) + i * stride for i, v in enumerate(vids)]
            scored = np.unique(np.concatenate(kf)) if kf else np.zeros(0, np.int64)
        else:
            scored = np.unique(g_key)
        d_keep = np.isin(d_key, scored)
        g_in = np.isin(g_key, scored)
        g_key, g_label, g_box = g_key[g_in], g_label[g_in], g_box[g_in]
    d_key, d_label, d_score, d_box = d_key[d_keep], dets.label[d_keep], dets.score[d_keep], dets.boxes[d_keep]

    d_sort = np.argsort(d_label, kind="stable")
    g_sort = np.argsort(g_label, kind="stable")
    d_bounds = np.searchsorted(d_label[d_sort], np.arange(n_cls + 1))
    g_bounds = np.searchsorted(g_label[g_sort], np.arange(n_cls + 1))
    ranked: dict[str, tuple[np.ndarray, int]] = {}
    for c, name in enumerate(gt.classes):
        di = d_sort[d_bounds[c] : d_bounds[c + 1]]
        gi = g_sort[g_bounds[c] : g_bounds[c + 1]]
        di = di[np.argsort(-d_score[di], kind="stable")]
        tp = _class_tp(d_key[di], d_box[di], g_key[gi], g_box[gi], iou_thresh, settings.plus_one, settings.duplicates)
        ranked[name] = (tp, int(gi.shape[0]))
    return ranked, int(d_key.shape[0]), int(g_key.shape[0])
