"""Video-mAP: AP by hand under both protocols, and ACT's real tubes against mmaction2's published
numbers (spatio-temporal IoU and 3D NMS: tests/ops/test_tubes.py)."""

from __future__ import annotations

import numpy as np
import pytest

from singleshot.metrics.video_ap import video_ap
from singleshot.structures import ActionAnnotations, Tube, VideoAnnotation

REAL_VIDEOS = ["Basketball/v_Basketball_g01_c01", "BasketballDunk/v_BasketballDunk_g01_c01"]


def _tube(video: str, label: int, frames: list[int], boxes: list | np.ndarray, score: float = 1.0) -> Tube:
    b = np.asarray(boxes, dtype=np.float32)
    if b.ndim == 1:
        b = np.tile(b, (len(frames), 1))
    return Tube(video, label, np.asarray(frames, dtype=np.int64), b, score)


def _gt(tubes: dict[str, list[Tube]], n_classes: int = 2) -> ActionAnnotations:
    return ActionAnnotations(
        [f"c{i}" for i in range(n_classes)],
        {v: VideoAnnotation(v, 20, (100, 100), ts) for v, ts in tubes.items()},
        test_videos=list(tubes),
    )


def test_video_ap_by_hand_under_both_protocols() -> None:
    box = [0, 0, 9, 9]
    g1 = _tube("C/v", 0, list(range(1, 11)), box)
    g2 = _tube("C/w", 0, list(range(1, 11)), box)
    gt = _gt({"C/v": [g1], "C/w": [g2]})
    dets = [
        _tube("C/v", 0, list(range(1, 11)), box, 0.9),  # ST-IoU 1: TP
        _tube("C/w", 0, list(range(1, 5)), box, 0.8),  # ST-IoU 0.4: TP at 0.2, FP at 0.5
        _tube("C/w", 0, list(range(3, 11)), box, 0.7),  # ST-IoU 0.8 (but suppressed by NMS? ST-IoU 2/10 < 0.3: no)
    ]
    res = video_ap(gt, dets, "act")
    # at 0.5: TP, FP, TP -> precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1
    assert res["video_map@0.5"] == pytest.approx(0.5 * (1 + 1) / 2 + 0.5 * (0.5 + 2 / 3) / 2)
    # at 0.2: TP, TP, FP -> recall reaches 1 at precision 1
    assert res["video_map@0.2"] == pytest.approx(1.0)
    # at 0.75: the third (0.8) still matches -> same as 0.5; at 0.85: TP, FP, FP
    assert res["video_map_by_threshold"]["0.75"] == pytest.approx(res["video_map@0.5"])
    assert res["video_map_by_threshold"]["0.85"] == pytest.approx(0.5)
    ths = [round(0.5 + 0.05 * i, 2) for i in range(10)]
    assert res["video_map@0.5:0.95"] == pytest.approx(np.mean([res["video_map_by_threshold"][f"{t:g}"] for t in ths]))
    assert np.isnan(res["per_class"]["c1"]["0.5"])
    yowo = video_ap(gt, dets, "yowo")
    assert yowo["video_map@0.5"] == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)  # VOC envelope


def test_video_ap_matches_remaining_ground_truth() -> None:
    box_a, box_b = [0, 0, 10, 10], [4, 0, 14, 10]
    gt = _gt({"C/v": [_tube("C/v", 0, [1, 2, 3], box_a), _tube("C/v", 0, [1, 2, 3], box_b)]})
    dets = [_tube("C/v", 0, [1, 2, 3], box_a, 0.9), _tube("C/v", 0, [1, 2, 3], [1, 0, 12, 10], 0.8)]
    # the second detection's best tube (box_a, IoU 0.75) is taken; it matches box_b (0.615) instead
    res = video_ap(gt, dets, "act", thresholds=[0.5], nms_thresh=None, plus_one=False)
    assert res["video_map@0.5"] == pytest.approx(1.0)
    assert "video_map@0.2" not in res and "video_map@0.5:0.95" not in res


def test_video_ap_errors() -> None:
    gt = _gt({"C/v": [_tube("C/v", 0, [1, 2], [0, 0, 9, 9])]})
    with pytest.raises(ValueError, match="absent from the ground truth"):
        video_ap(gt, [_tube("Z/z", 0, [1], [0, 0, 9, 9])])
    with pytest.raises(ValueError, match="outside"):
        video_ap(gt, [_tube("C/v", 7, [1], [0, 0, 9, 9])])
    with pytest.raises(ValueError, match="strictly increasing"):
        video_ap(gt, [_tube("C/v", 0, [2, 1], [0, 0, 9, 9])])


# --- real ACT tubes --------------------------------------------------------------------------------


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


def _video_ap_loop(gt: ActionAnnotations, tubes: list[Tube], th: float) -> float:
    """ACT's videoAP written plainly: per video and class NMS at 0.3, then per class in score order
    each tube takes the remaining ground-truth tube of its video of highest ST-IoU."""
    aps = []
    for c in range(len(gt.classes)):
        dets = []
        for v in REAL_VIDEOS:
            ts = sorted([t for t in tubes if t.video == v and t.label == c], key=lambda t: -t.score)
            kept: list[Tube] = []
            for t in ts:
                if all(_iou3dt_loop(t, k) <= 0.3 for k in kept):
                    kept.append(t)
            dets += kept
        remaining = {v: [t for t in gt.videos[v].tubes if t.label == c] for v in REAL_VIDEOS}
        n_pos = sum(len(x) for x in remaining.values())
        tp = fp = 0
        pr = [(1.0, 0.0)]
        for t in sorted(dets, key=lambda t: -t.score):
            hit = False
            if remaining[t.video]:
                ious = [_iou3dt_loop(g, t) for g in remaining[t.video]]
                best = int(np.argmax(ious))
                if ious[best] >= th:
                    hit = True
                    del remaining[t.video][best]
            tp += hit
            fp += not hit
            pr.append((tp / (tp + fp), tp / n_pos))
        aps.append(sum((r1 - r0) * (p1 + p0) / 2 for (p0, r0), (p1, r1) in zip(pr, pr[1:])))
    return float(np.mean(aps))


@pytest.fixture()
def real(shared_data) -> tuple[ActionAnnotations, list[Tube]]:
    from singleshot.data.action.readers_act import act_dict_to_annotations
    from singleshot.data.action.safe_pickle import safe_load_pickle
    from singleshot.metrics.action_files import read_act_tubes

    shared = shared_data("act")
    gt = act_dict_to_annotations(
        {
            "labels": ["Basketball", "BasketballDunk"],
            "gttubes": safe_load_pickle(shared / "gt_tubes.pkl"),
            "nframes": {REAL_VIDEOS[0]: 141, REAL_VIDEOS[1]: 61},
            "resolution": {v: (240, 320) for v in REAL_VIDEOS},
            "test_videos": [REAL_VIDEOS],
        },
        "gt_tubes.pkl",
    )
    tubes = [t for t in read_act_tubes(shared / "tubes", REAL_VIDEOS) if t.label < 2]
    return gt, tubes


@pytest.mark.parametrize("th, published", [(0.5, 0.0), (0.3, 0.5), (0.25, 0.5), (0.2, 1.0)])
def test_real_act_tubes(real, th: float, published: float) -> None:
    """mmaction2's tests (``tests/test_metrics/test_accuracy.py``) publish these video mAPs for the
    same files; the loop implementation of ACT's videoAP must agree too."""
    gt, tubes = real
    res = video_ap(gt, tubes, "act", thresholds=[th])
    assert res["video_map_by_threshold"][f"{th:g}"] == pytest.approx(published)
    assert res["video_map_by_threshold"][f"{th:g}"] == pytest.approx(_video_ap_loop(gt, tubes, th), abs=1e-12)


def test_real_act_tubes_nms_and_all_thresholds(real) -> None:
    gt, tubes = real
    res = video_ap(gt, tubes, "act")
    for t in (0.2, 0.5, 0.55, 0.75, 0.95):
        assert res["video_map_by_threshold"][f"{t:g}"] == pytest.approx(_video_ap_loop(gt, tubes, t), abs=1e-12)
    assert set(res) >= {"video_map@0.2", "video_map@0.5", "video_map@0.75", "video_map@0.5:0.95"}
    assert len(tubes) == 2 + 0 + 2 + 10 and res["n_tubes"] <= len(tubes)  # per video: label 0, label 1
