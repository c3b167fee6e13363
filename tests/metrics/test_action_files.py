"""Action prediction files: JSON round trips, errors naming the file and the entry, ACT's ``.npy``
detections and ``*_tubes.pkl`` tubes (real files and a refused unsafe pickle)."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from singleshot.errors import DataError
from singleshot.metrics.action_files import (
    read_act_detections,
    read_act_tubes,
    read_frame_detections,
    read_frame_predictions,
    read_tube_predictions,
    read_tubes,
    write_frame_detections,
    write_tubes,
)
from singleshot.structures import FrameDets, Tube

REAL_VIDEOS = ["Basketball/v_Basketball_g01_c01", "BasketballDunk/v_BasketballDunk_g01_c01"]


def test_frame_detections_round_trip(tmp_path: Path) -> None:
    dets = FrameDets(
        ["A/a", "B/b"],
        [1, 0, 1],
        [3, 1, 7],
        [2, 0, 1],
        [0.5, 0.25, 1.0],
        [[1, 2, 3, 4], [0, 0, 10.5, 20], [5, 5, 5, 6]],
    )
    path = tmp_path / "frames.json"
    write_frame_detections(path, dets)
    data = json.loads(path.read_text())
    assert data[0] == {"video": "B/b", "frame": 3, "label": 2, "score": 0.5, "box": [1.0, 2.0, 3.0, 4.0]}
    back = read_frame_detections(path)
    assert [back.videos[i] for i in back.video] == ["B/b", "A/a", "B/b"]
    np.testing.assert_array_equal(back.frame, dets.frame)
    np.testing.assert_array_equal(back.label, dets.label)
    np.testing.assert_allclose(back.score, dets.score)
    np.testing.assert_allclose(back.boxes, dets.boxes)
    (tmp_path / "empty.json").write_text("[]")
    assert len(read_frame_detections(tmp_path / "empty.json")) == 0


@pytest.mark.parametrize(
    "entry, message",
    [
        ({"video": "A/a", "frame": 0, "label": 0, "score": 0.5, "box": [0, 0, 1, 1]}, "'frame' must be an integer"),
        ({"video": "A/a", "frame": 2.5, "label": 0, "score": 0.5, "box": [0, 0, 1, 1]}, "'frame'"),
        ({"video": "A/a", "frame": "3", "label": 0, "score": 0.5, "box": [0, 0, 1, 1]}, "'frame'"),
        ({"video": "A/a", "frame": 1, "label": -1, "score": 0.5, "box": [0, 0, 1, 1]}, "'label'"),
        ({"video": "A/a", "frame": 1, "label": 0, "score": None, "box": [0, 0, 1, 1]}, "'score'"),
        ({"video": "A/a", "frame": 1, "label": 0, "score": 0.5, "box": [0, 0, 1]}, "box must be 4"),
        ({"video": "A/a", "frame": 1, "label": 0, "score": 0.5, "box": [5, 0, 1, 1]}, "x2 < x1"),
        ({"video": "", "frame": 1, "label": 0, "score": 0.5, "box": [0, 0, 1, 1]}, "'video'"),
        ({"frame": 1, "label": 0, "score": 0.5, "box": [0, 0, 1, 1]}, "missing key 'video'"),
        ([1, 2], "expected an object"),
    ],
)
def test_malformed_frame_detections_name_file_and_entry(tmp_path: Path, entry: object, message: str) -> None:
    good = {"video": "A/a", "frame": 1, "label": 0, "score": 0.5, "box": [0, 0, 1, 1]}
    path = tmp_path / "bad.json"
    path.write_text(json.dumps([good, good, entry]))
    with pytest.raises(DataError, match=message) as info:
        read_frame_detections(path)
    assert str(path) in str(info.value) and "detection #2" in str(info.value)


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        read_frame_detections(tmp_path / "missing.json")
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(DataError, match="cannot read"):
        read_tubes(tmp_path / "x.json")
    (tmp_path / "d.json").write_text('{"a": 1}')
    with pytest.raises(DataError, match="must be a list"):
        read_frame_detections(tmp_path / "d.json")


def test_tubes_round_trip_and_errors(tmp_path: Path) -> None:
    tubes = [
        Tube(
            "A/a",
            1,
            np.array([3, 4, 6]),
            np.array([[0, 0, 5, 5], [1, 1, 6, 6], [2, 2, 7, 7]], np.float32),
            0.7,
            np.array([0.6, 0.7, 0.8], np.float32),
        ),
        Tube("B/b", 0, np.array([1]), np.array([[0, 0, 5, 5]], np.float32), 0.1),
    ]
    path = tmp_path / "tubes.json"
    write_tubes(path, tubes)
    back = read_tube_predictions(path)
    assert [(t.video, t.label, t.frames.tolist()) for t in back] == [("A/a", 1, [3, 4, 6]), ("B/b", 0, [1])]
    np.testing.assert_allclose(back[0].boxes, tubes[0].boxes)
    np.testing.assert_allclose(back[0].frame_scores, [0.6, 0.7, 0.8], atol=1e-7)
    assert back[1].frame_scores is None and back[0].score == pytest.approx(0.7)
    data = json.loads(path.read_text())
    for mutate, message in [
        (lambda e: e.update(frames=[3, 3, 6]), "strictly increasing"),
        (lambda e: e.update(boxes=e["boxes"][:2]), "one box per frame"),
        (lambda e: e.update(label=1.5), "'label'"),
        (lambda e: e.pop("score"), "missing key 'score'"),
        (lambda e: e.update(frame_scores=[1]), "frame_scores"),
    ]:
        bad = json.loads(json.dumps(data))
        mutate(bad[0])
        path.write_text(json.dumps(bad))
        with pytest.raises(DataError, match=message) as info:
            read_tubes(path)
        assert str(path) in str(info.value) and "tube #0" in str(info.value)


def test_act_detections_npy(tmp_path: Path) -> None:
    rows = np.array([[0, 1, 0, 0.5, 1, 2, 3, 4], [1, 5, 2, 0.25, 0, 0, 9, 9]], np.float32)
    np.save(tmp_path / "dets.npy", rows)
    dets = read_frame_predictions(tmp_path / "dets.npy", ["A/a", "B/b"])
    assert dets.videos == ["A/a", "B/b"] and dets.video.tolist() == [0, 1] and dets.frame.tolist() == [1, 5]
    np.testing.assert_allclose(dets.to_array(), rows)
    with pytest.raises(DataError, match=r"row #1"):
        read_act_detections(tmp_path / "dets.npy", ["A/a"])  # video_idx 1 outside the list
    np.save(tmp_path / "bad.npy", rows[:, :5])
    with pytest.raises(DataError, match=r"\[M, 8\]"):
        read_act_detections(tmp_path / "bad.npy", ["A/a", "B/b"])
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="cannot read"):
        read_act_detections(tmp_path / "obj.npy", ["A/a"])


def test_real_act_files(shared_data) -> None:
    act = shared_data("act")
    dets = read_act_detections(act / "all_dets.npy", REAL_VIDEOS)
    raw = np.load(act / "all_dets.npy")
    assert len(dets) == 2000
    np.testing.assert_allclose(dets.to_array(), raw.astype(np.float64))
    tubes = read_act_tubes(act / "tubes", REAL_VIDEOS)
    one = read_act_tubes(act / "tubes" / "Basketball" / "v_Basketball_g01_c01_tubes.pkl")
    assert {t.video for t in one} == {REAL_VIDEOS[0]}
    assert len(tubes) == len(one) + len([t for t in tubes if t.video == REAL_VIDEOS[1]])
    first = [t for t in one if t.label == 0]
    assert len(first) == 2 and first[0].frames.tolist() == list(range(1, 142))
    assert first[0].score == pytest.approx(0.32043874) and first[0].frame_scores[0] == pytest.approx(0.40043193)
    np.testing.assert_allclose(first[0].boxes[0], [192.12737, 94.07384, 242.4733, 184.06927], rtol=1e-6)
    assert len(read_act_tubes(act / "tubes")) == len(tubes)  # discovering the files finds the same


class _Evil:
    def __reduce__(self) -> tuple:
        return (os.system, ("echo pwned",))


def test_act_tubes_pickles_are_read_safely(tmp_path: Path) -> None:
    folder = tmp_path / "C"
    folder.mkdir()
    tube = np.array([[1, 0, 0, 5, 5, 0.5], [2, 0, 0, 5, 5, 0.7]], np.float32)
    with open(folder / "v_tubes.pkl", "wb") as f:
        pickle.dump({0: [(tube, 0.6)], 1: []}, f, protocol=2)
    got = read_act_tubes(tmp_path, ["C/v"])
    assert len(got) == 1 and got[0].video == "C/v" and got[0].frames.tolist() == [1, 2]
    with open(folder / "w_tubes.pkl", "wb") as f:
        pickle.dump({0: [(_Evil(), 0.5)]}, f)
    with pytest.raises(DataError, match="refused"):
        read_act_tubes(folder / "w_tubes.pkl")
    with open(folder / "x_tubes.pkl", "wb") as f:
        pickle.dump({0: [(tube[:, :3], 0.5)]}, f)
    with pytest.raises(DataError, match=r"\[T, 6\]"):
        read_act_tubes(folder / "x_tubes.pkl")
    with pytest.raises(DataError, match="missing"):
        read_act_tubes(tmp_path, ["C/absent"])
