"""Tube geometry: spatio-temporal IoU by hand and against ACT's ``iou3dt`` written plainly, 3D NMS."""

from __future__ import annotations

import numpy as np
import pytest

from singleshot.ops.tubes import nms_3d, pack_tubes, st_iou_pairs, tube_iou
from singleshot.structures import Tube


def _tube(video: str, label: int, frames: list[int], boxes: list | np.ndarray, score: float = 1.0) -> Tube:
    b = np.asarray(boxes, dtype=np.float32)
    if b.ndim == 1:
        b = np.tile(b, (len(frames), 1))
    return Tube(video, label, np.asarray(frames, dtype=np.int64), b, score)


def test_st_iou_by_hand() -> None:
    a = _tube("C/v", 0, [1, 2, 3, 4], [0, 0, 10, 10])
    b = _tube("C/v", 0, [3, 4, 5, 6], [[0, 0, 10, 10], [0, 0, 10, 5], [0, 0, 10, 10], [0, 0, 10, 10]])
    # temporal IoU 2/6; spatial IoU 1 on frame 3 and 50/100 on frame 4
    assert tube_iou(a, b, plus_one=False) == pytest.approx(2 / 6 * (1 + 0.5) / 2)
    # +1: frame 4 is 11*6 / 11*11
    assert tube_iou(a, b) == pytest.approx(2 / 6 * (1 + 66 / 121) / 2)
    assert tube_iou(a, _tube("C/v", 0, [5, 6], [0, 0, 10, 10])) == 0.0
    assert tube_iou(a, _tube("C/v", 0, [4, 5], [0, 0, 10, 10])) == pytest.approx(1 / 5)
    # a hole in the temporal intersection counts as IoU 0
    holed = _tube("C/v", 0, [1, 3], [0, 0, 10, 10])
    assert tube_iou(holed, _tube("C/v", 0, [1, 2, 3], [0, 0, 10, 10])) == pytest.approx(2 / 3)


def _iou3dt_loop(a: Tube, b: Tube) -> float:
    """ACT's iou3dt for tubes without holes, written plainly (+1 pixel)."""
    tmin, tmax = max(a.start, b.start), min(a.end, b.end)
    if tmax < tmin:
        return 0.0
    ious = []
    for f in range(tmin, tmax + 1):
        x, y = a.boxes[a.frames.tolist().index(f)].astype(float), b.boxes[b.frames.tolist().index(f)].astype(float)
        iw = max(0.0, min(x[2], y[2]) - max(x[0], y[0]) + 1)
        ih = max(0.0, min(x[3], y[3]) - max(x[1], y[1]) + 1)
        inter = iw * ih
        ious.append(inter / ((x[2] - x[0] + 1) * (x[3] - x[1] + 1) + (y[2] - y[0] + 1) * (y[3] - y[1] + 1) - inter))
    return float(np.mean(ious)) * (tmax - tmin + 1) / (max(a.end, b.end) - min(a.start, b.start) + 1)


def _random_tubes(rng: np.random.Generator, n: int, video: str = "C/v", label: int = 0) -> list[Tube]:
    out = []
    for _ in range(n):
        start = int(rng.integers(1, 30))
        length = int(rng.integers(1, 25))
        xy = rng.uniform(0, 40, 2) + np.cumsum(rng.normal(0, 2, (length, 2)), axis=0)
        wh = rng.uniform(10, 40, 2)
        out.append(
            _tube(
                video, label, list(range(start, start + length)), np.concatenate([xy, xy + wh], 1), float(rng.uniform())
            )
        )
    return out


def test_st_iou_pairs_match_act_iou3dt() -> None:
    rng = np.random.default_rng(1)
    a, b = _random_tubes(rng, 30), _random_tubes(rng, 20)
    ia, ib = np.meshgrid(np.arange(30), np.arange(20), indexing="ij")
    got = st_iou_pairs(pack_tubes(a), ia.ravel(), pack_tubes(b), ib.ravel())
    ref = np.array([_iou3dt_loop(a[i], b[j]) for i, j in zip(ia.ravel(), ib.ravel())])
    np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-12)
    assert (ref > 0.2).sum() > 3 and (ref == 0).sum() > 3


def test_nms_3d_is_greedy_within_video_and_class() -> None:
    a = _tube("C/v", 0, [1, 2, 3, 4], [0, 0, 10, 10], 0.9)
    b = _tube("C/v", 0, [1, 2, 3, 4], [0, 4, 10, 14], 0.8)  # ST-IoU with a = 60/140: suppressed
    c = _tube("C/v", 0, [1, 2, 3, 4], [0, 8, 10, 18], 0.7)  # with a 20/180, with b 60/140
    e = _tube("C/v", 1, [1, 2, 3, 4], [0, 0, 10, 10], 0.5)  # other class: kept
    f = _tube("D/w", 0, [1, 2, 3, 4], [0, 0, 10, 10], 0.4)  # other video: kept
    assert tube_iou(a, b, plus_one=False) == pytest.approx(60 / 140)
    assert tube_iou(a, c, plus_one=False) == pytest.approx(20 / 180)
    # greedy: c survives because b, the only tube that overlaps it enough, was itself dropped
    keep = nms_3d([b, a, c, e, f], 0.3, plus_one=False)
    assert keep.tolist() == [1, 2, 3, 4]
    assert nms_3d([b, a, c], 0.45, plus_one=False).tolist() == [0, 1, 2]
    assert nms_3d([], 0.3).size == 0
