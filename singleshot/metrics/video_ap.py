"""Video-mAP of action tubes: spatio-temporal IoU, 3D NMS and AP at several thresholds.

Spatio-temporal IoU of two tubes (ACT's ``iou3dt``): the temporal IoU of their frame spans with
inclusive counts, ``(min(e1, e2) - max(s1, s2) + 1) / (max(e1, e2) - min(s1, s2) + 1)``, times the
mean per-frame spatial IoU over the temporal intersection (0 when the spans do not meet). Spatial
IoUs use the +1 pixel convention of both reference scripts unless ``plus_one=False``. A frame of
the intersection where one tube has no box (a tube with a hole) counts as IoU 0; for tubes without
holes this is exactly the reference formula.

Video-AP per class (ACT ``videoAP`` and YOWO ``video_ap_one_class`` agree on it): tubes are 3D-NMSed
at 0.3 within each (video, class), ranked by score across videos (stable sort), and each takes the
ground-truth tube of its class and video of highest ST-IoU among those *not yet matched*; a match
at ST-IoU >= threshold is a true positive. AP form: ACT's trapezoids under the raw curve from
(0, 1) (``protocol="act"``) or the VOC all-point envelope (``protocol="yowo"``; YOWO adds 1e-5 to the
recall denominator, left out here). mAP is over the classes with a ground-truth tube; the 0.5:0.95
figure is the mean of the mAPs at 0.5, 0.55, ..., 0.95. YOWO's ``iou3dt`` returns 0 when two spans
share exactly one frame; this module does not copy that quirk.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from singleshot.metrics.frame_ap import average_precision, evaluation_videos, match_ranked
from singleshot.metrics.voc import box_iou_np
from singleshot.structures import ActionAnnotations, Tube

logger = logging.getLogger(__name__)

__all__ = [
    "COCO_STYLE_THRESHOLDS",
    "VIDEO_AP_FORMS",
    "VIDEO_THRESHOLDS",
    "PackedTubes",
    "nms_3d",
    "pack_tubes",
    "st_iou_pairs",
    "tube_iou",
    "video_ap",
]

COCO_STYLE_THRESHOLDS: tuple[float, ...] = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))
VIDEO_THRESHOLDS: tuple[float, ...] = (0.2, 0.5, 0.75) + COCO_STYLE_THRESHOLDS
VIDEO_AP_FORMS: dict[str, str] = {"act": "trapezoid", "yowo": "voc"}

# Rows of per-frame IoU computed at once in st_iou_pairs.
_MAX_ROWS = 1 << 21


@dataclass
class PackedTubes:
    """Tubes laid out densely over their frame spans, for vectorised ST-IoU.

    Attributes:
        start, end: int64 [N], first and last frame (1-based, inclusive) of each tube.
        offset: int64 [N], row of each tube's first frame in ``boxes``.
        boxes: float64 [R, 4] xyxy pixels, ``R = sum(end - start + 1)``; NaN rows where a tube has
            no box inside its span.
    """

    start: np.ndarray
    end: np.ndarray
    offset: np.ndarray
    boxes: np.ndarray


def pack_tubes(tubes: Sequence[Tube]) -> PackedTubes:
    """Pack tubes (frames strictly increasing, boxes [T, 4] xyxy) into :class:`PackedTubes`."""
    n = len(tubes)
    if n == 0:
        z = np.zeros(0, dtype=np.int64)
        return PackedTubes(z, z, z, np.zeros((0, 4)))
    lengths = np.fromiter((len(t) for t in tubes), dtype=np.int64, count=n)
    if (lengths == 0).any():
        bad = tubes[int(np.flatnonzero(lengths == 0)[0])]
        raise ValueError(f"an empty tube (video {bad.video!r}, label {bad.label})")
    frames = np.concatenate([np.asarray(t.frames, dtype=np.int64).reshape(-1) for t in tubes])
    boxes = np.concatenate([np.asarray(t.boxes, dtype=np.float64).reshape(-1, 4) for t in tubes])
    if boxes.shape[0] != frames.shape[0]:
        raise ValueError("a tube has a different number of frames and boxes")
    first = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    start = frames[first]
    end = frames[first + lengths - 1]
    tube_id = np.repeat(np.arange(n), lengths)
    steps = np.diff(frames)
    inner = np.ones(frames.shape[0] - 1, dtype=bool)
    inner[(first[1:] - 1)] = False  # a step across two tubes is not checked
    if (steps[inner] <= 0).any():
        bad = tubes[int(tube_id[1:][inner & (steps <= 0)][0])]
        raise ValueError(f"a tube's frames are not strictly increasing (video {bad.video!r}, label {bad.label})")
    span = end - start + 1
    offset = np.concatenate(([0], np.cumsum(span)[:-1]))
    dense = np.full((int(span.sum()), 4), np.nan)
    dense[offset[tube_id] + frames - start[tube_id]] = boxes
    return PackedTubes(start, end, offset, dense)


def st_iou_pairs(
    a: PackedTubes, ia: np.ndarray, b: PackedTubes, ib: np.ndarray, plus_one: bool = True
) -> np.ndarray:
    """Spatio-temporal IoU of the pairs ``(a[ia[k]], b[ib[k]])``.

    Returns:
        float64 [P]: temporal IoU (inclusive counts) x mean spatial IoU over the temporal
        intersection (frames where either tube lacks a box count 0); 0 for disjoint spans.
    """
    ia = np.asarray(ia, dtype=np.int64).reshape(-1)
    ib = np.asarray(ib, dtype=np.int64).reshape(-1)
    out = np.zeros(ia.shape[0], dtype=np.float64)
    if ia.size == 0:
        return out
    s = np.maximum(a.start[ia], b.start[ib])
    e = np.minimum(a.end[ia], b.end[ib])
    inter = e - s + 1
    union = np.maximum(a.end[ia], b.end[ib]) - np.minimum(a.start[ia], b.start[ib]) + 1
    live = np.flatnonzero(inter > 0)
    cum = np.cumsum(inter[live])
    begin = 0
    while begin < live.shape[0]:
        base = cum[begin - 1] if begin else 0
        stop = max(begin + 1, int(np.searchsorted(cum, base + _MAX_ROWS, side="right")))
        idx = live[begin:stop]
        n_rows = inter[idx]
        pair = np.repeat(np.arange(idx.shape[0]), n_rows)
        pos = np.arange(int(n_rows.sum())) - np.repeat(np.cumsum(n_rows) - n_rows, n_rows)
        ra = a.offset[ia[idx]][pair] + (s[idx] - a.start[ia[idx]])[pair] + pos
        rb = b.offset[ib[idx]][pair] + (s[idx] - b.start[ib[idx]])[pair] + pos
        iou = box_iou_np(a.boxes[ra], b.boxes[rb], plus_one)  # NaN rows give 0
        spatial = np.bincount(pair, weights=iou, minlength=idx.shape[0]) / n_rows
        out[idx] = spatial * n_rows / union[idx]
        begin = stop
    return out


def tube_iou(a: Tube, b: Tube, plus_one: bool = True) -> float:
    """Spatio-temporal IoU of two tubes (see the module doc)."""
    pa, pb = pack_tubes([a]), pack_tubes([b])
    return float(st_iou_pairs(pa, np.zeros(1, np.int64), pb, np.zeros(1, np.int64), plus_one)[0])


def _group_codes(tubes: Sequence[Tube]) -> np.ndarray:
    """int64 [N]: one code per distinct (video, label)."""
    index: dict[tuple[str, int], int] = {}
    return np.fromiter((index.setdefault((t.video, int(t.label)), len(index)) for t in tubes), np.int64, len(tubes))


def nms_3d(tubes: Sequence[Tube], thresh: float = 0.3, plus_one: bool = True) -> np.ndarray:
    """Greedy 3D NMS within each (video, label): the best-scored tube is kept and every tube of
    ST-IoU > ``thresh`` with a kept one is dropped (ACT ``nms3dt`` / YOWO ``nms_3d``).

    Returns:
        int64 indices of the kept tubes, ascending (input order). Equal scores keep the given order.
    """
    n = len(tubes)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    group = _group_codes(tubes)
    score = np.fromiter((float(t.score) for t in tubes), np.float64, n)
    order = np.lexsort((np.arange(n), -score, group))  # by group, then score desc, then input order
    g_sorted = group[order]
    first = np.concatenate(([True], g_sorted[1:] != g_sorted[:-1]))
    starts = np.flatnonzero(first)
    sizes = np.diff(np.concatenate((starts, [n])))
    rank = np.arange(n) - np.repeat(starts, sizes)
    if sizes.max() == 1:
        return np.arange(n, dtype=np.int64)
    # All (higher, lower) pairs within a group, in sorted positions.
    big = np.flatnonzero(sizes > 1)
    hi_list, lo_list = [], []
    for size in np.unique(sizes[big]):
        iu, ju = np.triu_indices(int(size), k=1)
        base = starts[big[sizes[big] == size]]
        hi_list.append((base[:, None] + iu[None, :]).reshape(-1))
        lo_list.append((base[:, None] + ju[None, :]).reshape(-1))
    hi, lo = np.concatenate(hi_list), np.concatenate(lo_list)
    packed = pack_tubes([tubes[i] for i in order])
    over = st_iou_pairs(packed, hi, packed, lo, plus_one) > thresh
    hi, lo = hi[over], lo[over]
    by_lo_rank = np.argsort(rank[lo], kind="stable")
    hi, lo = hi[by_lo_rank], lo[by_lo_rank]
    bounds = np.searchsorted(rank[lo], np.arange(int(sizes.max()) + 1))
    kept = np.ones(n, dtype=bool)
    for r in range(1, int(sizes.max())):
        sl = slice(bounds[r], bounds[r + 1])
        suppress = lo[sl][kept[hi[sl]]]
        kept[suppress] = False
    return np.sort(order[kept])


def _thresholds(thresholds: Sequence[float] | None) -> list[float]:
    values = VIDEO_THRESHOLDS if thresholds is None else thresholds
    return sorted({round(float(t), 6) for t in values})


def video_ap(
    gt: ActionAnnotations,
    tubes: Sequence[Tube],
    protocol: str = "act",
    thresholds: Sequence[float] | None = None,
    videos: Sequence[str] | None = None,
    *,
    nms_thresh: float | None = 0.3,
    ap: str | None = None,
    plus_one: bool = True,
) -> dict:
    """Video-mAP of detected tubes.

    Args:
        gt: ground truth with tubes (frames 1-based, boxes xyxy pixels).
        tubes: detected tubes (any videos; those outside the evaluated list are left out, a video
            unknown to ``gt`` is a ValueError).
        protocol: ``"act"`` (trapezoid AP) or ``"yowo"`` (VOC all-point AP); ``ap`` overrides the form.
        thresholds: ST-IoU thresholds (default 0.2, 0.5, 0.75 and 0.5:0.05:0.95).
        videos: evaluated videos (default: ``gt.test_videos``, else all).
        nms_thresh: 3D NMS threshold within (video, class); None skips NMS.
        plus_one: +1 pixel convention in the spatial IoUs.

    Returns:
        ``{"video_map@0.2", "video_map@0.5", "video_map@0.75", "video_map@0.5:0.95"}`` (each key
        present when its thresholds were evaluated) plus ``"video_map_by_threshold": {"0.2": mAP,
        ...}``, ``"per_class": {name: {"0.2": AP, ...}}`` (AP ``nan`` without ground truth) and
        ``"n_tubes"`` (after NMS).
    """
    if protocol not in VIDEO_AP_FORMS:
        raise ValueError(f"unknown video-mAP protocol {protocol!r} (use one of {sorted(VIDEO_AP_FORMS)})")
    form = ap or VIDEO_AP_FORMS[protocol]
    ths = _thresholds(thresholds)
    vids = evaluation_videos(gt, videos)
    vid_index = {v: i for i, v in enumerate(vids)}
    unknown = sorted({t.video for t in tubes} - set(gt.videos))
    if unknown:
        raise ValueError(f"tubes name {len(unknown)} videos absent from the ground truth, e.g. {unknown[0]!r}")
    n_cls = len(gt.classes)
    bad = [t for t in tubes if not 0 <= int(t.label) < n_cls]
    if bad:
        raise ValueError(f"a tube of video {bad[0].video!r} has label {bad[0].label} outside 0..{n_cls - 1}")
    dets = [t for t in tubes if t.video in vid_index]
    if len(dets) < len(tubes):
        logger.info("video-mAP: %d tubes on videos outside the evaluated list left out", len(tubes) - len(dets))
    if nms_thresh is not None and dets:
        dets = [dets[i] for i in nms_3d(dets, nms_thresh, plus_one)]
    gts = [t for v in vids for t in gt.videos[v].tubes]
    d_label = np.fromiter((int(t.label) for t in dets), np.int64, len(dets))
    d_video = np.fromiter((vid_index[t.video] for t in dets), np.int64, len(dets))
    d_score = np.fromiter((float(t.score) for t in dets), np.float64, len(dets))
    g_label = np.fromiter((int(t.label) for t in gts), np.int64, len(gts))
    g_video = np.fromiter((vid_index[t.video] for t in gts), np.int64, len(gts))
    packed_d, packed_g = pack_tubes(dets), pack_tubes(gts)

    per_class: dict[str, dict[str, float]] = {}
    for c, name in enumerate(gt.classes):
        gi = np.flatnonzero(g_label == c)
        gi = gi[np.argsort(g_video[gi], kind="stable")]
        di = np.flatnonzero(d_label == c)
        di = di[np.argsort(-d_score[di], kind="stable")]
        if gi.size == 0:
            per_class[name] = {f"{t:g}": math.nan for t in ths}
            continue
        gv = g_video[gi]
        uniq, first, counts = np.unique(gv, return_index=True, return_counts=True)
        pos = np.minimum(np.searchsorted(uniq, d_video[di]), uniq.shape[0] - 1)
        has = uniq[pos] == d_video[di]
        row = np.where(has, pos, uniq.shape[0])
        n_pair = np.where(has, counts[pos], 0)
        pair_d = np.repeat(np.arange(di.shape[0]), n_pair)
        pair_s = np.arange(int(n_pair.sum())) - np.repeat(np.cumsum(n_pair) - n_pair, n_pair)
        pair_g = first[pos][pair_d] + pair_s
        iou = np.full((di.shape[0], int(counts.max())), -1.0)
        iou[pair_d, pair_s] = st_iou_pairs(packed_d, di[pair_d], packed_g, gi[pair_g], plus_one)
        per_class[name] = {
            f"{t:g}": average_precision(match_ranked(row, iou, uniq.shape[0], t, "remaining"), gi.shape[0], form)
            for t in ths
        }
    by_thresh: dict[str, float] = {}
    for t in ths:
        vals = [pc[f"{t:g}"] for pc in per_class.values() if not math.isnan(pc[f"{t:g}"])]
        by_thresh[f"{t:g}"] = float(np.mean(vals)) if vals else 0.0
    if not gts:
        logger.warning("video-mAP: the evaluated videos have no ground-truth tube; mAP set to 0")
    out: dict = {}
    for t in (0.2, 0.5, 0.75):
        if f"{t:g}" in by_thresh:
            out[f"video_map@{t:g}"] = by_thresh[f"{t:g}"]
    if all(f"{t:g}" in by_thresh for t in COCO_STYLE_THRESHOLDS):
        out["video_map@0.5:0.95"] = float(np.mean([by_thresh[f"{t:g}"] for t in COCO_STYLE_THRESHOLDS]))
    out.update({"video_map_by_threshold": by_thresh, "per_class": per_class, "n_tubes": len(dets)})
    return out
