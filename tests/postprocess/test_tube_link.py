"""Tube linking: ACT's tubelet linking on hand-made sequences, YOWO's Viterbi against brute force and
against a straightforward loop implementation of YOWO's ``link_bbxes_between_frames``."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from singleshot.postprocess.tube_link import (
    ACTLinkParams,
    link_act,
    link_viterbi,
    moc_link_params,
    nms_tubelets,
    tubelets_from_act_rows,
    tubelets_from_moc_dict,
)
from singleshot.structures import FrameDets


def _tubelet(box: list[float], k: int, dx: float = 0.0) -> np.ndarray:
    """[K, 4] boxes moving by ``dx`` pixels per frame."""
    b = np.asarray(box, dtype=np.float64)
    return np.stack([b + np.array([dx * i, 0, dx * i, 0]) for i in range(k)])


def _one(boxes: np.ndarray, score: float) -> tuple[np.ndarray, np.ndarray]:
    return boxes[None], np.array([score])


# --- ACT linking -----------------------------------------------------------------------------------


def test_two_overlapping_tubelets_make_one_tube_with_averaged_boxes() -> None:
    k = 3
    a = _tubelet([0, 0, 10, 10], k)
    b = _tubelet([2, 0, 12, 10], k)
    tubes = link_act({1: {0: _one(a, 0.5)}, 2: {0: _one(b, 0.7)}}, "C/v", k, ACTLinkParams(min_length=1))
    assert len(tubes) == 1
    t = tubes[0]
    assert t.frames.tolist() == [1, 2, 3, 4]
    expected = np.stack([a[0], (a[1] + b[0]) / 2, (a[2] + b[1]) / 2, b[2]])
    np.testing.assert_allclose(t.boxes, expected, rtol=0, atol=1e-5)
    assert t.score == pytest.approx(0.6)
    np.testing.assert_allclose(t.frame_scores, [0.5, 0.6, 0.6, 0.7], atol=1e-6)
    assert t.video == "C/v" and t.label == 0


def test_a_gap_of_five_links_and_a_gap_of_six_closes_the_tube() -> None:
    k = 6
    box = _tubelet([0, 0, 10, 10], k)
    params = ACTLinkParams(min_length=1)
    linked = link_act({1: {0: _one(box, 0.5)}, 6: {0: _one(box, 0.5)}}, "C/v", k, params)
    assert len(linked) == 1 and linked[0].frames.tolist() == list(range(1, 12))
    split = link_act({1: {0: _one(box, 0.5)}, 7: {0: _one(box, 0.5)}}, "C/v", k, params)
    assert sorted(t.frames.tolist()[0] for t in split) == [1, 7]
    assert all(len(t) == 6 for t in split)


def test_short_and_low_scored_tubes_are_dropped() -> None:
    k = 6
    box = _tubelet([0, 0, 10, 10], k)
    tubelets = {1: {0: _one(box, 0.5)}, 6: {0: _one(box, 0.5)}}  # one tube of 11 frames
    assert link_act(tubelets, "C/v", k) == []  # default min length 15
    assert len(link_act(tubelets, "C/v", k, ACTLinkParams(min_length=11))) == 1
    assert link_act(tubelets, "C/v", k, ACTLinkParams(min_length=12)) == []
    weak = {1: {0: _one(box, 0.009)}, 6: {0: _one(box, 0.009)}}
    assert link_act(weak, "C/v", k, ACTLinkParams(min_length=1)) == []
    assert len(link_act(weak, "C/v", k, ACTLinkParams(min_length=1, min_score=0.005))) == 1


def test_tubelet_nms_and_link_threshold() -> None:
    k = 2
    a = _tubelet([0, 0, 10, 10], k)
    a2 = _tubelet([0, 0, 10, 11], k)  # mean IoU with a about 0.9: suppressed
    far = _tubelet([50, 50, 60, 60], k)
    boxes = np.stack([a2, a, far])
    scores = np.array([0.8, 0.9, 0.1])
    assert nms_tubelets(boxes, scores, 0.3, 10).tolist() == [1, 2]
    assert nms_tubelets(boxes, scores, 0.3, 1).tolist() == [1]
    tubes = link_act({1: {0: (boxes, scores)}}, "C/v", k, ACTLinkParams(min_length=1))
    assert sorted(round(t.score, 6) for t in tubes) == [0.1, 0.9]
    # Link IoU: a tubelet shifted so that the shared frame has IoU 1/3 links at 0.2, not at 0.5.
    b = _tubelet([5, 0, 15, 10], k)  # IoU(a[1], b[0]) = 5*10 / (100 + 100 - 50) = 1/3 (no +1)
    seq = {1: {0: _one(a, 0.5)}, 2: {0: _one(b, 0.5)}}
    assert len(link_act(seq, "C/v", k, ACTLinkParams(min_length=1, plus_one=False))) == 1
    assert len(link_act(seq, "C/v", k, ACTLinkParams(min_length=1, plus_one=False, link_iou=0.5))) == 2


def test_the_best_scored_tube_takes_the_tubelet_first() -> None:
    k = 2
    low = _tubelet([0, 0, 10, 10], k)
    high = _tubelet([1, 0, 11, 10], k)
    nxt = _tubelet([0, 0, 11, 10], k)  # overlaps both
    seq = {1: {0: (np.stack([low, high]), np.array([0.2, 0.8]))}, 2: {0: _one(nxt, 0.5)}}
    tubes = link_act(seq, "C/v", k, ACTLinkParams(min_length=1, nms_thresh=0.99))
    by_score = {round(t.score, 6): t for t in tubes}
    assert set(by_score) == {0.2, 0.65}
    assert by_score[0.65].frames.tolist() == [1, 2, 3]


def test_converters_and_moc_preset() -> None:
    k = 2
    rows = np.array([[0, 0, 10, 10, 1, 1, 11, 11, 0.1, 0.6, 0.3]])  # 4K boxes, background, 2 classes
    t = tubelets_from_act_rows({1: rows}, k)
    assert set(t[1]) == {0, 1}
    np.testing.assert_allclose(t[1][1][1], [0.3])
    np.testing.assert_allclose(t[1][0][0][0, 1], [1, 1, 11, 11])
    m = tubelets_from_moc_dict({1: {1: rows[:, [0, 1, 2, 3, 4, 5, 6, 7, 9]]}}, k)
    assert list(m[1]) == [0] and m[1][0][1].tolist() == [0.6]
    p = moc_link_params(7)
    assert (p.link_iou, p.max_gap, p.min_score, p.nms_thresh) == (0.5, 7, 0.005, 0.6)


# --- YOWO Viterbi ----------------------------------------------------------------------------------


def _iou(a: list[float], b: list[float]) -> float:
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def _edge(a: list[float], sa: float, b: list[float], sb: float) -> float:
    return _iou(a, b) + sa + sb + 0.5 * sa * sb


def _dets(rows: list[tuple[str, int, int, float, list[float]]]) -> FrameDets:
    videos = sorted({r[0] for r in rows})
    return FrameDets(
        videos,
        [videos.index(r[0]) for r in rows],
        [r[1] for r in rows],
        [r[2] for r in rows],
        [r[3] for r in rows],
        [r[4] for r in rows],
    )


def test_viterbi_takes_the_best_path_of_a_hand_case() -> None:
    boxes = {
        1: [[0, 0, 10, 10], [30, 30, 40, 40]],
        2: [[1, 0, 11, 10], [30, 31, 40, 41]],
        3: [[2, 0, 12, 10], [60, 60, 70, 70]],
    }
    scores = {1: [0.3, 0.9], 2: [0.4, 0.8], 3: [0.7, 0.2]}
    rows = [("C/v", f, 0, scores[f][i], boxes[f][i]) for f in (1, 2, 3) for i in range(2)]
    tubes = link_viterbi(_dets(rows), {"C/v": 3}, nms_thresh=None)
    best, best_path = -1.0, None
    for path in itertools.product(range(2), repeat=3):
        total = sum(
            _edge(boxes[f][path[f - 1]], scores[f][path[f - 1]], boxes[f + 1][path[f]], scores[f + 1][path[f]])
            for f in (1, 2)
        )
        if total > best:
            best, best_path = total, path
    assert len(tubes) == 2  # two detections per frame: the second path takes what is left
    first = tubes[0]
    assert first.frames.tolist() == [1, 2, 3]
    np.testing.assert_allclose(first.boxes, [boxes[f][best_path[f - 1]] for f in (1, 2, 3)])
    assert first.score == pytest.approx(np.mean([scores[f][best_path[f - 1]] for f in (1, 2, 3)]))
    second = [1 - i for i in best_path]
    np.testing.assert_allclose(tubes[1].boxes, [boxes[f][second[f - 1]] for f in (1, 2, 3)])


def test_viterbi_fills_missing_frames_and_stops_when_a_frame_runs_out() -> None:
    rows = [("C/v", 1, 0, 0.9, [0, 0, 10, 10]), ("C/v", 1, 0, 0.5, [20, 0, 30, 10]), ("C/v", 3, 0, 0.8, [4, 0, 14, 10])]
    tubes = link_viterbi(_dets(rows), {"C/v": 4}, nms_thresh=None)
    assert len(tubes) == 1  # frames 3 and 4 hold one detection only
    t = tubes[0]
    assert t.frames.tolist() == [1, 2, 3, 4]
    # frame 2 is equally far from frames 1 and 3: it borrows frame 1's detections; frame 4 borrows 3's
    np.testing.assert_allclose(t.boxes, [[0, 0, 10, 10], [0, 0, 10, 10], [4, 0, 14, 10], [4, 0, 14, 10]])
    np.testing.assert_allclose(t.frame_scores, [0.9, 0.9, 0.8, 0.8], atol=1e-6)


def _yowo_loop(per_frame: list[np.ndarray], max_paths: int = 3) -> list[np.ndarray]:
    """Straightforward YOWO linking of one (video, class): per_frame[t] is [n_t, 5] (x1 y1 x2 y2 s),
    rows ordered by descending score. Returns paths as [T, 5] arrays."""
    filled = [f for f in per_frame if f.shape[0]]
    present = [t for t, f in enumerate(per_frame) if f.shape[0]]
    if not present:
        return []
    det = []
    for t, f in enumerate(per_frame):
        if f.shape[0]:
            det.append(f.copy())
        else:
            dist = [abs(p - t) for p in present]
            det.append(per_frame[present[dist.index(min(dist))]].copy())
    del filled
    n = len(det)
    out = []
    while len(out) < max_paths and all(d.shape[0] for d in det):
        score = [np.zeros(d.shape[0]) for d in det]
        back = [np.zeros(d.shape[0], dtype=int) for d in det]
        for t in range(n - 2, -1, -1):
            for i in range(det[t].shape[0]):
                a, nxt = det[t][i], det[t + 1]
                vals = [_edge(list(a[:4]), a[4], list(b[:4]), b[4]) + score[t + 1][j] for j, b in enumerate(nxt)]
                back[t][i] = int(np.argmax(vals))
                score[t][i] = max(vals)
        idx = [int(np.argmax(score[0]))]
        for t in range(n - 1):
            idx.append(back[t][idx[t]])
        out.append(np.stack([det[t][idx[t]] for t in range(n)]))
        det = [np.delete(det[t], idx[t], axis=0) for t in range(n)]
    return out


@pytest.mark.parametrize("one_group_per_batch", [False, True])
def test_viterbi_matches_a_loop_implementation_on_random_videos(one_group_per_batch: bool, monkeypatch) -> None:
    if one_group_per_batch:
        monkeypatch.setattr("singleshot.postprocess.tube_link_viterbi._MAX_EDGES", 1)
    rng = np.random.default_rng(3)
    rows = []
    lengths = {"A/a": 9, "B/b": 4, "C/c": 12, "D/d": 1}
    for video, length in lengths.items():
        for label in range(3):
            for frame in range(1, length + 1):
                for _ in range(int(rng.integers(0, 6)) if rng.random() < 0.8 else 0):
                    xy = rng.uniform(0, 20, 2)
                    wh = rng.uniform(10, 30, 2)
                    rows.append((video, frame, label, float(rng.uniform(0.01, 1)), [*xy, *(xy + wh)]))
    dets = _dets(rows)
    tubes = link_viterbi(dets, lengths, nms_thresh=None)
    got: dict[tuple[str, int], list[np.ndarray]] = {}
    for t in tubes:
        got.setdefault((t.video, t.label), []).append(np.concatenate([t.boxes, t.frame_scores[:, None]], 1))
    n_expected = 0
    for video, length in lengths.items():
        for label in range(3):
            per_frame = []
            for frame in range(1, length + 1):
                r = [[*b, s] for v, f, c, s, b in rows if v == video and f == frame and c == label]
                r = np.array(r).reshape(-1, 5)
                per_frame.append(r[np.argsort(-r[:, 4], kind="stable")])
            ref = _yowo_loop(per_frame)
            n_expected += len(ref)
            mine = got.get((video, label), [])
            assert len(mine) == len(ref), (video, label)
            for a, b in zip(mine, ref):
                np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-4)
    assert n_expected == len(tubes) > 10


def _iou1(a: np.ndarray, b: np.ndarray) -> float:
    """+1 pixel IoU of two boxes, as ACT's iou2d."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]) + 1)
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]) + 1)
    inter = iw * ih
    return inter / ((a[2] - a[0] + 1) * (a[3] - a[1] + 1) + (b[2] - b[0] + 1) * (b[3] - b[1] + 1) - inter)


def _build_tubes_loop(
    tubelets: dict[int, tuple[np.ndarray, np.ndarray]], k: int, last: int, p: ACTLinkParams
) -> list[tuple[list[int], np.ndarray, float]]:
    """ACT's BuildTubes for one class written plainly (frames 1..last, hard NMS, greedy linking)."""
    current: list[list[tuple[int, np.ndarray, float]]] = []
    finished: list[list[tuple[int, np.ndarray, float]]] = []
    for frame in range(1, last + 1):
        boxes, scores = tubelets.get(frame, (np.zeros((0, k, 4)), np.zeros(0)))
        order = sorted(range(len(scores)), key=lambda i: -scores[i])
        kept: list[int] = []
        for i in order:
            if len(kept) == p.top_k:
                break
            if all(np.mean([_iou1(boxes[i][f], boxes[j][f]) for f in range(k)]) <= p.nms_thresh for j in kept):
                kept.append(i)
        avail = [(boxes[i], float(scores[i])) for i in kept]
        current.sort(key=lambda t: -np.mean([s for _, _, s in t]))
        still = []
        for tube in current:
            last_frame, last_boxes, _ = tube[-1]
            offset = frame - last_frame
            ious = []
            for b, _ in avail:
                if offset < k:
                    ious.append(np.mean([_iou1(b[f], last_boxes[f + offset]) for f in range(k - offset)]))
                else:
                    ious.append(_iou1(b[0], last_boxes[k - 1]))
            valid = [i for i, v in enumerate(ious) if v >= p.link_iou]
            if valid:
                j = max(valid, key=lambda i: (avail[i][1], -i))
                tube.append((frame, *avail.pop(j)))
                still.append(tube)
            elif offset >= p.max_gap:
                finished.append(tube)
            else:
                still.append(tube)
        current = still + [[(frame, b, s)] for b, s in avail]
    out = []
    for tube in finished + current:
        score = float(np.mean([s for _, _, s in tube]))
        first, end = tube[0][0], tube[-1][0] + k - 1
        if score < p.min_score or end - first + 1 < p.min_length:
            continue
        acc = np.zeros((end - first + 1, 4))
        cnt = np.zeros(end - first + 1)
        for f, b, _ in tube:
            acc[f - first : f - first + k] += b
            cnt[f - first : f - first + k] += 1
        assert (cnt > 0).all()  # no holes: offsets stay below K when max_gap <= K
        out.append((list(range(first, end + 1)), acc / cnt[:, None], score))
    return out


@pytest.mark.parametrize("params", [ACTLinkParams(min_length=8, min_score=0.2), moc_link_params(6)])
def test_act_linking_matches_a_loop_implementation(params: ACTLinkParams) -> None:
    rng = np.random.default_rng(5)
    k, last = 6, 40
    centers = rng.uniform(0, 60, (4, 2))
    tubelets: dict[int, dict[int, tuple[np.ndarray, np.ndarray]]] = {}
    for start in range(1, last + 1):
        if rng.random() < 0.15:
            continue  # a start frame without tubelets
        n = int(rng.integers(1, 14))
        pick = rng.integers(0, 4, n)
        xy = centers[pick] + start * 0.7 + rng.normal(0, 4, (n, 2))
        wh = rng.uniform(15, 30, (n, 2))
        boxes = np.stack([np.concatenate([xy + f, xy + f + wh], 1) for f in range(k)], 1)
        tubelets[start] = {c: (boxes, rng.uniform(0, 1, n)) for c in range(2)}
    tubes = link_act(tubelets, "C/v", k, params)
    for c in range(2):
        ref = _build_tubes_loop({s: v[c] for s, v in tubelets.items()}, k, last, params)
        mine = [t for t in tubes if t.label == c]
        key = lambda x: (x[0][0], round(x[2], 9))  # noqa: E731
        ref = sorted(ref, key=key)
        mine_t = sorted([(t.frames.tolist(), t.boxes, t.score) for t in mine], key=key)
        assert len(mine_t) == len(ref) > 2
        for (f1, b1, s1), (f2, b2, s2) in zip(mine_t, ref):
            assert f1 == f2 and s1 == pytest.approx(s2)
            np.testing.assert_allclose(b1, b2, rtol=1e-5, atol=1e-3)


def _random_tubelets(
    seed: int, frames: int, k: int, labels: int
) -> dict[int, dict[int, tuple[np.ndarray, np.ndarray]]]:
    """Tubelets of a few moving actors plus clutter, with gaps, some labels absent at times."""
    rng = np.random.default_rng(seed)
    out: dict[int, dict[int, tuple[np.ndarray, np.ndarray]]] = {}
    spans = [(1, frames // 2), (frames // 3, frames), (1, frames)]  # the first actor leaves half-way
    actors = [(rng.uniform(20, 200, 2), rng.uniform(-3, 3, 2), int(rng.integers(labels)), span) for span in spans]
    for start in range(1, frames - k + 2):
        if rng.random() < 0.1:  # a start frame without tubelets
            continue
        per_label: dict[int, tuple[list, list]] = {}
        for pos, vel, label, (first, last) in actors:
            if not first <= start <= last:
                continue
            t = np.arange(start, start + k)[:, None]
            xy = pos + vel * t + rng.normal(0, 2, (k, 2))
            per_label.setdefault(label, ([], []))[0].append(np.concatenate([xy, xy + 40], axis=1))
            per_label[label][1].append(rng.uniform(0.2, 0.9))
        for _ in range(int(rng.integers(0, 4))):
            label = int(rng.integers(labels))
            xy = rng.uniform(0, 250, 2) + np.zeros((k, 2))
            per_label.setdefault(label, ([], []))[0].append(np.concatenate([xy, xy + 30], axis=1))
            per_label[label][1].append(rng.uniform(0.0, 0.5))
        out[start] = {lab: (np.array(b, np.float64), np.array(s)) for lab, (b, s) in per_label.items()}
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("k", [2, 6])
def test_online_linking_gives_the_offline_tubes(seed: int, k: int) -> None:
    from singleshot.postprocess.tube_link_act import OnlineACTLinker

    tubelets = _random_tubelets(seed, 70, k, 3)
    offline = link_act(tubelets, "v", k)
    online = OnlineACTLinker("v", k, 3)
    got, closed_at = [], []
    for start in sorted(tubelets):
        new = online.step(start, tubelets[start])
        got += new
        closed_at += [start] * len(new)
    early = len(got)
    got += online.finish()
    key = lambda t: (t.label, int(t.frames[0]), round(t.score, 9))
    assert sorted(map(key, got)) == sorted(map(key, offline))
    by_key = {key(t): t for t in offline}
    for t in got:
        ref = by_key[key(t)]
        np.testing.assert_array_equal(t.frames, ref.frames)
        np.testing.assert_allclose(t.boxes, ref.boxes)
    assert early > 0  # some tubes were handed out before the video ended
    for t, at in zip(got[:early], closed_at):
        assert at >= int(t.frames[-1]) - k + 1 + 5  # closed once max_gap (5) starts passed without a successor
