"""Tube geometry: spatio-temporal IoU of action tubes and greedy 3D NMS (NumPy).

A tube (:class:`singleshot.structures.Tube`) holds 1-based frame numbers ``frames`` int [T],
strictly increasing, and one box per frame ``boxes`` [T, 4], xyxy pixels of the video's frames.

Spatio-temporal IoU of two tubes (ACT's ``iou3dt``): the temporal IoU of their frame spans with
inclusive counts, ``(min(e1, e2) - max(s1, s2) + 1) / (max(e1, e2) - min(s1, s2) + 1)``, times the
mean per-frame spatial IoU (:func:`singleshot.ops.boxes.box_iou_np`) over the temporal intersection
(0 when the spans do not meet). Spatial IoUs use the +1 pixel convention of both reference scripts
unless ``plus_one=False``. A frame of the intersection where one tube has no box (a tube with a
hole) counts as IoU 0; for tubes without holes this is exactly the reference formula. YOWO's
``iou3dt`` returns 0 when two spans share exactly one frame; this module does not copy that quirk.

3D NMS (ACT ``nms3dt`` / YOWO ``nms_3d``) is greedy within each (video, label), by descending score.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from singleshot.ops.boxes import box_iou_np
from singleshot.structures import Tube

__all__ = ["PackedTubes", "nms_3d", "pack_tubes", "st_iou_pairs", "tube_iou"]

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
    """Pack tubes into :class:`PackedTubes`.

    Args:
        tubes: N tubes, each with ``frames`` int [T] (1-based, strictly increasing) and ``boxes``
            [T, 4] (xyxy pixels); T >= 1.

    Raises:
        ValueError: an empty tube, frames and boxes of different lengths, or frames not increasing.
    """
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


def st_iou_pairs(a: PackedTubes, ia: np.ndarray, b: PackedTubes, ib: np.ndarray, plus_one: bool = True) -> np.ndarray:
    """Spatio-temporal IoU of the pairs ``(a[ia[k]], b[ib[k]])``.

    Args:
        a, b: packed tubes (:func:`pack_tubes`), boxes xyxy pixels.
        ia, ib: int [P], indices into ``a`` and ``b`` of each pair.
        plus_one: +1 pixel convention in the per-frame spatial IoU.

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
    """Spatio-temporal IoU (see the module doc) of two tubes (frames 1-based, boxes [T, 4] xyxy pixels)."""
    pa, pb = pack_tubes([a]), pack_tubes([b])
    return float(st_iou_pairs(pa, np.zeros(1, np.int64), pb, np.zeros(1, np.int64), plus_one)[0])


def _group_codes(tubes: Sequence[Tube]) -> np.ndarray:
    """int64 [N]: one code per distinct (video, label)."""
    index: dict[tuple[str, int], int] = {}
    return np.fromiter((index.setdefault((t.video, int(t.label)), len(index)) for t in tubes), np.int64, len(tubes))


def nms_3d(tubes: Sequence[Tube], thresh: float = 0.3, plus_one: bool = True) -> np.ndarray:
    """Greedy 3D NMS within each (video, label): the best-scored tube is kept and every tube of
    ST-IoU > ``thresh`` with a kept one is dropped (ACT ``nms3dt`` / YOWO ``nms_3d``).

    Args:
        tubes: N tubes (frames 1-based, boxes [T, 4] xyxy pixels) with their ``video``, ``label``
            and ``score``.
        thresh: ST-IoU above which a lower-scored tube is suppressed.
        plus_one: +1 pixel convention in the spatial IoUs.

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
