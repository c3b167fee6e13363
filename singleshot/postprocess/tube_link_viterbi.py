"""YOWO's video linking: Viterbi paths through per-frame detections (wei-tim/YOWO
``link_bbxes_between_frames``), batched over every (video, class) at once.

Per video and class, over frames 1 … T (T = the video's frame count, or its last detected frame):

* a frame without a detection of the class borrows the detections of the nearest frame that has
  some (the earlier one on a tie);
* the edge between detection i of frame t and j of frame t + 1 scores
  ``w_iou · IoU(i, j) + w_score · (s_i + s_j) + w_product · s_i · s_j`` (1, 1, 0.5; IoU without the
  +1 pixel convention, as YOWO's ``bbox_iou``, computed in float32 like the whole edge table);
* the path of highest total edge score is taken (ties to the lowest slot; slots within a frame are
  ordered by descending score), its detections are removed from their frames, and the search
  repeats, at most ``max_paths`` (3) times and only while every frame still has a detection;
* each path is a tube over all T frames (no temporal trimming) scored by its mean detection score;
  tubes of one (video, class) are then 3D-NMSed at 0.3 (:func:`singleshot.ops.tubes.nms_3d`).

The dynamic programme runs frame pair by frame pair over all (video, class) groups together
(groups sorted by length, so the groups still running at a step are a prefix), in batches of
groups with a similar number of detections per frame.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np

from singleshot.ops.boxes import box_iou_np
from singleshot.ops.tubes import nms_3d
from singleshot.structures import FrameDets, Tube

logger = logging.getLogger(__name__)

__all__ = ["link_viterbi"]

# Edge scores (frames x groups x width x width) of one batch of groups: 64 MB of float32.
_MAX_EDGES = 1 << 24


def link_viterbi(
    dets: FrameDets,
    num_frames: Mapping[str, int] | None = None,
    *,
    max_paths: int = 3,
    nms_thresh: float | None = 0.3,
    weights: tuple[float, float, float] = (1.0, 1.0, 0.5),
    plus_one: bool = False,
) -> list[Tube]:
    """Link per-frame detections into tubes, per video and class (see the module doc).

    Args:
        dets: detections (boxes xyxy pixels, frames 1-based, labels 0-based).
        num_frames: ``{video: frame count}``; a video missing here (or with 0) ends at its last
            detected frame (over all classes).
        max_paths: paths per (video, class).
        nms_thresh: 3D NMS within each (video, class) at this ST-IoU (None: none).
        weights: (w_iou, w_score, w_product) of the edge score.
        plus_one: +1 pixel convention in the edge IoU (YOWO: False).

    Returns:
        Tubes ordered by video, class, then path; ``frames`` 1 … T, ``frame_scores`` the linked
        detections' scores, ``score`` their mean.
    """
    if len(dets) == 0:
        return []
    n_lab = int(dets.label.max()) + 1
    key = dets.video * n_lab + dets.label
    groups, det_group = np.unique(key, return_inverse=True)
    g_video, g_label = groups // n_lab, groups % n_lab
    last_det = np.zeros(len(dets.videos), dtype=np.int64)
    np.maximum.at(last_det, dets.video, dets.frame)
    known = np.array([int((num_frames or {}).get(v, 0) or 0) for v in dets.videos], dtype=np.int64)
    g_len = np.maximum(known, last_det)[g_video]
    if dets.frame.min() < 1:
        raise ValueError(f"detection frame {int(dets.frame.min())} is not 1-based")

    # Distinct (group, frame) cells holding detections, and each detection's slot (score order).
    cell_key = det_group * (int(g_len.max()) + 1) + dets.frame
    order = np.lexsort((-dets.score, cell_key))
    src_keys, src_of_det_sorted, src_count = np.unique(cell_key[order], return_inverse=True, return_counts=True)
    slot_sorted = np.arange(order.shape[0]) - (np.cumsum(src_count) - src_count)[src_of_det_sorted]
    src_group = src_keys // (int(g_len.max()) + 1)
    g_width = np.zeros(groups.shape[0], dtype=np.int64)
    np.maximum.at(g_width, src_group, src_count)

    tubes_per_group: list[list[tuple[np.ndarray, np.ndarray]]] = [[] for _ in range(groups.shape[0])]
    width_bucket = 1 << np.ceil(np.log2(g_width)).astype(np.int64)
    for width in np.unique(width_bucket):
        members = np.flatnonzero(width_bucket == width)
        members = members[np.argsort(-g_len[members], kind="stable")]
        begin = 0
        while begin < members.shape[0]:
            # The batch's edge table is [its longest length, groups, width, width] float32.
            per_group = int(g_len[members[begin]]) * int(width) ** 2
            stop = begin + max(1, _MAX_EDGES // per_group)
            batch = members[begin:stop]
            _link_batch(
                batch,
                int(width),
                g_len,
                dets,
                order,
                src_keys,
                src_of_det_sorted,
                slot_sorted,
                src_group,
                int(g_len.max()) + 1,
                max_paths,
                weights,
                plus_one,
                tubes_per_group,
            )
            begin = stop

    tubes: list[Tube] = []
    for g in np.lexsort((g_label, g_video)):
        video, label = dets.videos[int(g_video[g])], int(g_label[g])
        frames = np.arange(1, int(g_len[g]) + 1, dtype=np.int64)
        for boxes, scores in tubes_per_group[g]:
            tubes.append(
                Tube(video, label, frames, boxes.astype(np.float32), float(scores.mean()), scores.astype(np.float32))
            )
    if nms_thresh is not None and tubes:
        tubes = [tubes[i] for i in nms_3d(tubes, nms_thresh)]
    return tubes


def _link_batch(
    batch: np.ndarray,
    width: int,
    g_len: np.ndarray,
    dets: FrameDets,
    order: np.ndarray,
    src_keys: np.ndarray,
    src_of_det_sorted: np.ndarray,
    slot_sorted: np.ndarray,
    src_group: np.ndarray,
    stride: int,
    max_paths: int,
    weights: tuple[float, float, float],
    plus_one: bool,
    out: list[list[tuple[np.ndarray, np.ndarray]]],
) -> None:
    """Viterbi paths of the groups ``batch`` (sorted by length, descending), appended to ``out``."""
    n_g = batch.shape[0]
    lens = g_len[batch]
    cell_off = np.concatenate(([0], np.cumsum(lens)[:-1]))
    n_cells = int(lens.sum())
    # Source cells of this batch, keyed by (position in batch, frame).
    pos_of_group = np.full(g_len.shape[0], -1, dtype=np.int64)
    pos_of_group[batch] = np.arange(n_g)
    src_sel = np.flatnonzero(pos_of_group[src_group] >= 0)
    src_pos = pos_of_group[src_group[src_sel]]
    src_frame = src_keys[src_sel] % stride
    skey = src_pos * stride + src_frame
    s_order = np.argsort(skey)
    skey, src_sel = skey[s_order], src_sel[s_order]
    # Every cell takes the source cell of its group nearest in time (the earlier on a tie).
    cell_pos = np.repeat(np.arange(n_g), lens)
    cell_frame = np.arange(n_cells) - np.repeat(cell_off, lens) + 1
    q = cell_pos * stride + cell_frame
    right = np.searchsorted(skey, q)
    left = right - 1
    r_ok = (right < skey.shape[0]) & (skey[np.minimum(right, skey.shape[0] - 1)] // stride == cell_pos)
    l_ok = (left >= 0) & (skey[np.maximum(left, 0)] // stride == cell_pos)
    d_left = q - skey[np.maximum(left, 0)]
    d_right = skey[np.minimum(right, skey.shape[0] - 1)] - q
    take_left = l_ok & (~r_ok | (d_left <= d_right))
    cell_src = np.where(take_left, left, right)  # index into the batch's sorted source list

    # Slot tables of the batch's source cells.
    local = np.full(src_keys.shape[0], -1, dtype=np.int64)
    local[src_sel] = np.arange(src_sel.shape[0])
    in_batch = np.flatnonzero(local[src_of_det_sorted] >= 0)
    rows, slots, det_idx = local[src_of_det_sorted[in_batch]], slot_sorted[in_batch], order[in_batch]
    s_boxes = np.zeros((src_sel.shape[0], width, 4), dtype=np.float64)
    s_scores = np.zeros((src_sel.shape[0], width), dtype=np.float64)
    s_valid = np.zeros((src_sel.shape[0], width), dtype=bool)
    s_boxes[rows, slots] = dets.boxes[det_idx]
    s_scores[rows, slots] = dets.score[det_idx]
    s_valid[rows, slots] = True
    # End-aligned layout: row r of the group at position g holds its frame lens[g] - r, so the
    # groups still running at a step of the backward pass are a prefix of every row.
    n_rows = int(lens.max())
    row_of_cell = np.repeat(lens, lens) - cell_frame
    boxes = np.zeros((n_rows, n_g, width, 4), dtype=np.float32)
    scores = np.zeros((n_rows, n_g, width), dtype=np.float32)
    valid = np.zeros((n_rows, n_g, width), dtype=bool)
    boxes[row_of_cell, cell_pos] = s_boxes[cell_src]
    scores[row_of_cell, cell_pos] = s_scores[cell_src]
    valid[row_of_cell, cell_pos] = s_valid[cell_src]

    # Edge scores between row r (frame t) and row r - 1 (frame t + 1), the same for every path.
    w_iou, w_sum, w_mul = weights
    pair = np.zeros((n_rows, n_g, width, width), dtype=np.float32)
    for r in range(1, n_rows):
        k = _n_longer(lens, r)
        s1, s2 = scores[r, :k, :, None], scores[r - 1, :k, None, :]
        iou = box_iou_np(boxes[r, :k, :, None, :], boxes[r - 1, :k, None, :, :], plus_one, dtype=np.float32)
        pair[r, :k] = w_iou * iou + w_sum * (s1 + s2) + w_mul * s1 * s2

    members = batch
    for _ in range(max_paths):
        if members.size == 0:
            break
        n_a = members.shape[0]
        cols = np.arange(n_a)
        best = np.full((n_rows, n_a, width), -np.inf, dtype=np.float32)
        back = np.zeros((n_rows, n_a, width), dtype=np.int32)
        best[0] = np.where(valid[0], 0.0, -np.inf)
        for r in range(1, int(lens[0])):
            k = _n_longer(lens, r)
            edge = pair[r, :k] + best[r - 1, :k, None, :]
            arg = edge.argmax(axis=2)
            back[r, :k] = arg
            best[r, :k] = np.where(valid[r, :k], np.take_along_axis(edge, arg[:, :, None], 2)[:, :, 0], -np.inf)
        path = np.zeros((n_rows, n_a), dtype=np.int64)
        first = lens - 1
        path[first, cols] = best[first, cols].argmax(axis=1)
        for step in range(int(lens[0]) - 1):
            k = _n_longer(lens, step + 1)
            r = first[:k] - step
            path[r - 1, cols[:k]] = back[r, cols[:k], path[r, cols[:k]]]
        # Cells in group order, frames ascending (rows descending).
        counts = lens
        starts = np.cumsum(counts) - counts
        g_idx = np.repeat(cols, counts)
        r_idx = np.repeat(first, counts) - (np.arange(int(counts.sum())) - np.repeat(starts, counts))
        slot = path[r_idx, g_idx]
        chosen_boxes = boxes[r_idx, g_idx, slot].astype(np.float64)
        chosen_scores = scores[r_idx, g_idx, slot].astype(np.float64)
        valid[r_idx, g_idx, slot] = False
        for g, b, sc in zip(members.tolist(), np.split(chosen_boxes, starts[1:]), np.split(chosen_scores, starts[1:])):
            out[g].append((b, sc))
        left = valid.any(axis=2) | (np.arange(n_rows)[:, None] >= lens[None, :])
        still = left.all(axis=0)
        if not still.all():
            members, lens = members[still], lens[still]
            boxes, scores, valid, pair = boxes[:, still], scores[:, still], valid[:, still], pair[:, still]
            n_rows = int(lens.max()) if lens.size else 0
            boxes, scores, valid, pair = boxes[:n_rows], scores[:n_rows], valid[:n_rows], pair[:n_rows]


def _n_longer(lens: np.ndarray, r: int) -> int:
    """How many of ``lens`` (sorted descending) exceed ``r``."""
    return int(np.searchsorted(-lens, -r, side="left"))
