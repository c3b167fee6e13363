"""``score_action``: ground truth and predictions from files, Viterbi linking without trimming,
the ``linking`` note under the ACT protocol, errors naming the file and entry, real ACT files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from singleshot.errors import ConfigError, DataError
from singleshot.metrics.action_files import write_frame_detections, write_tubes
from singleshot.metrics.action_score import ACTION_METRIC_KEYS, score_action
from singleshot.postprocess.tube_link_viterbi import link_viterbi
from singleshot.structures import ActionAnnotations, FrameDets, Tube, VideoAnnotation

REAL_VIDEOS = ["Basketball/v_Basketball_g01_c01", "BasketballDunk/v_BasketballDunk_g01_c01"]


def _synthetic(tmp_path: Path) -> tuple[Path, ActionAnnotations]:
    """Two 10-frame videos: class 0 in frames 3..10 of A/a, class 1 in frames 1..10 of B/b."""
    from singleshot.data.action.readers_act import write_act_pickle

    ta = Tube("A/a", 0, np.arange(3, 11), np.tile(np.float32([10, 10, 40, 50]), (8, 1)))
    tb = Tube("B/b", 1, np.arange(1, 11), np.float32([[20 + i, 5, 60 + i, 45] for i in range(10)]))
    gt = ActionAnnotations(
        ["run", "jump"],
        {"A/a": VideoAnnotation("A/a", 10, (100, 120), [ta]), "B/b": VideoAnnotation("B/b", 10, (100, 120), [tb])},
        test_videos=["A/a", "B/b"],
    )
    path = tmp_path / "toy-GT.pkl"
    write_act_pickle(gt, path)
    return path, gt


def _perfect(gt: ActionAnnotations) -> FrameDets:
    rows = [
        (v, f, t.label, 0.9, b)
        for v, va in gt.videos.items()
        for t in va.tubes
        for f, b in zip(t.frames.tolist(), t.boxes.tolist())
    ]
    videos = list(gt.videos)
    return FrameDets(
        videos,
        [videos.index(r[0]) for r in rows],
        [r[1] for r in rows],
        [r[2] for r in rows],
        [r[3] for r in rows],
        [r[4] for r in rows],
    )


@pytest.mark.parametrize("protocol", ["yowo", "act"])
def test_perfect_detections_from_files(tmp_path: Path, protocol: str) -> None:
    gt_path, gt = _synthetic(tmp_path)
    pred = tmp_path / "frames.json"
    write_frame_detections(pred, _perfect(gt))
    res = score_action(gt_path, pred, None, protocol, link=link_viterbi)
    assert set(ACTION_METRIC_KEYS) <= set(res)
    assert res["frame_map"] == pytest.approx(1.0)
    # Viterbi tubes are not trimmed: A/a's tube spans frames 1..10 against a ground truth of 3..10,
    # ST-IoU 8/10: a match up to the threshold 0.8, a miss above. B/b matches everywhere.
    assert res["video_map@0.2"] == pytest.approx(1.0)
    assert res["video_map@0.75"] == pytest.approx(1.0)
    assert res["per_class"]["run"]["video_ap@0.5:0.95"] == pytest.approx(7 / 10)
    assert res["per_class"]["jump"]["video_ap@0.5:0.95"] == pytest.approx(1.0)
    assert res["video_map@0.5:0.95"] == pytest.approx((0.7 + 1.0) / 2)
    assert res["per_class"]["run"]["frame_ap"] == pytest.approx(1.0)
    assert res["linking"].startswith("viterbi") and res["n_tubes"] == 2
    if protocol == "act":
        assert "ACT linking needs K-frame tubelets" in res["linking"]
    else:
        assert res["linking"] == "viterbi"


def test_given_tubes_and_tubes_only(tmp_path: Path) -> None:
    gt_path, gt = _synthetic(tmp_path)
    tubes = tmp_path / "tubes.json"
    exact = [Tube(t.video, t.label, t.frames, t.boxes, 0.8) for va in gt.videos.values() for t in va.tubes]
    write_tubes(tubes, exact + [Tube("B/b", 0, np.arange(1, 5), np.float32([[0, 0, 9, 9]] * 4), 0.95)])
    res = score_action(gt_path, None, tubes, "act")
    assert res["frame_map"] is None and res["linking"] == "given"
    # class "run": the extra tube (a false positive) ranks first: FP, TP -> precision 0, 1/2 at
    # recall 0, 1 -> ACT trapezoids 0 + 1 * (0 + 1/2) / 2; the VOC envelope gives 1/2
    assert res["per_class"]["run"]["video_ap@0.5"] == pytest.approx(0.25)
    assert res["per_class"]["jump"]["video_ap@0.5:0.95"] == pytest.approx(1.0)
    assert res["video_map@0.5:0.95"] == pytest.approx((0.25 + 1.0) / 2)
    yowo = score_action(gt_path, None, tubes, "yowo")
    assert yowo["video_map@0.5"] == pytest.approx((0.5 + 1.0) / 2)
    with pytest.raises(ConfigError):
        score_action(gt_path, None, None)
    with pytest.raises(ConfigError, match="protocol"):
        score_action(gt_path, None, tubes, "ucf")


def test_errors_name_the_file_and_entry(tmp_path: Path) -> None:
    gt_path, gt = _synthetic(tmp_path)
    dets = _perfect(gt)
    bad = FrameDets(
        dets.videos + ["Z/z"],
        np.r_[dets.video, 2],
        np.r_[dets.frame, 1],
        np.r_[dets.label, 0],
        np.r_[dets.score, 0.5],
        np.r_[dets.boxes, [[0, 0, 5, 5]]],
    )
    path = tmp_path / "frames.json"
    write_frame_detections(path, bad)
    with pytest.raises(DataError, match=rf"detection #{len(dets)}: video 'Z/z'") as info:
        score_action(gt_path, path)
    assert str(path) in str(info.value)
    late = FrameDets(dets.videos, [0], [11], [0], [0.5], [[0, 0, 5, 5]])
    write_frame_detections(path, late)
    with pytest.raises(DataError, match="detection #0: frame 11 beyond the 10 frames"):
        score_action(gt_path, path)
    write_frame_detections(path, FrameDets(dets.videos, [0], [1], [2], [0.5], [[0, 0, 5, 5]]))
    with pytest.raises(DataError, match="label 2 outside"):
        score_action(gt_path, path)
    tubes = tmp_path / "tubes.json"
    write_tubes(tubes, [Tube("Q/q", 0, np.array([1]), np.float32([[0, 0, 1, 1]]), 0.5)])
    with pytest.raises(DataError, match=r"tube #0: video 'Q/q'"):
        score_action(gt_path, None, tubes)


def test_real_act_files(shared_data, tmp_path: Path) -> None:
    from singleshot.data.action.readers_act import act_dict_to_annotations, write_act_pickle
    from singleshot.data.action.readers_yowo_gt import UCF24_CLASSES
    from singleshot.data.action.safe_pickle import safe_load_pickle

    act = shared_data("act")
    gt = act_dict_to_annotations(
        {
            "labels": list(UCF24_CLASSES),
            "gttubes": safe_load_pickle(act / "gt_tubes.pkl"),
            "nframes": {REAL_VIDEOS[0]: 141, REAL_VIDEOS[1]: 61},
            "resolution": {v: (240, 320) for v in REAL_VIDEOS},
            "test_videos": [REAL_VIDEOS],
        },
        "gt_tubes.pkl",
    )
    gt_path = tmp_path / "UCF101v2-GT.pkl"
    write_act_pickle(gt, gt_path)
    res = score_action(gt_path, act / "all_dets.npy", act / "tubes", "act")
    # Only Basketball and BasketballDunk have ground truth; the published ACT-protocol values of
    # these files (mmaction2, without ACT's +1 pixel) are checked in test_frame_ap / test_video_ap.
    assert res["video_map@0.2"] == pytest.approx(1.0) and res["video_map@0.5"] == 0.0
    assert 0.15 < res["frame_map"] < 0.25
    assert res["per_class"]["Biking"] == {
        "frame_ap": None,
        "video_ap@0.2": None,
        "video_ap@0.5": None,
        "video_ap@0.75": None,
        "video_ap@0.5:0.95": None,
    }
    assert res["n_videos"] == 2 and res["n_detections"] == 2000
    yowo = score_action(gt_path, act / "all_dets.npy", None, "yowo", link=link_viterbi)
    assert yowo["linking"] == "viterbi" and yowo["frame_map"] > res["frame_map"]
