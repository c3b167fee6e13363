"""Synthetic action dataset: real YOWO layout + ACT pickle, read back by the real readers;
deterministic; the class shows in the motion of the boxes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from singleshot.data.action.readers import load_action_annotations
from singleshot.data.action.synthetic import SYNTH_ACTION_CLASSES, SYNTH_PICKLE, generate_action_dataset
from singleshot.data.image_io import read_image_rgb
from singleshot.errors import DataError
from singleshot.structures import ActionAnnotations

SIZE = (60, 80)


def _digest(root: Path) -> dict[str, str]:
    files = sorted(p for p in root.rglob("*") if p.is_file())
    return {str(p.relative_to(root)): hashlib.md5(p.read_bytes()).hexdigest() for p in files}


def _same_tubes(a: ActionAnnotations, b: ActionAnnotations) -> None:
    assert a.classes == b.classes and set(a.videos) == set(b.videos)
    for name, va in a.videos.items():
        vb = b.videos[name]
        assert va.num_frames == vb.num_frames and tuple(va.size) == tuple(vb.size), name
        ta = sorted(va.tubes, key=lambda t: (t.label, t.start))
        tb = sorted(vb.tubes, key=lambda t: (t.label, t.start))
        assert len(ta) == len(tb), name
        for x, y in zip(ta, tb):
            assert x.label == y.label
            np.testing.assert_array_equal(x.frames, y.frames)
            np.testing.assert_array_equal(x.boxes, y.boxes)


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ActionAnnotations]:
    root = tmp_path_factory.mktemp("synth") / "a"
    return root, generate_action_dataset(root, 8, 4, size=SIZE, num_frames=(14, 20), seed=3)


def test_layout_and_readers_agree(generated: tuple[Path, ActionAnnotations]) -> None:
    root, ann = generated
    assert ann.classes == list(SYNTH_ACTION_CLASSES) == sorted(SYNTH_ACTION_CLASSES)
    assert len(ann.train_videos) == 8 and len(ann.test_videos) == 4
    for name in ann.videos:
        cls = name.split("/")[0]
        assert all(t.label == ann.classes.index(cls) for t in ann.videos[name].tubes)
        frames = sorted((root / "rgb-images" / name).glob("*.jpg"))
        assert len(frames) == ann.videos[name].num_frames and frames[0].name == "00001.jpg"
    first = ann.train_videos[0]
    assert tuple(read_image_rgb(root / "rgb-images" / first / "00001.jpg").shape) == (3, *SIZE)
    key = int(ann.videos[first].tubes[0].frames[0])
    line = (root / "labels" / first / f"{key:05d}.txt").read_text().split()
    assert int(line[0]) == ann.videos[first].tubes[0].label + 1  # 1-based class in the label files
    listed = (root / "testlist.txt").read_text().split()
    assert all(entry.endswith(".txt") and entry.split("/")[0] in SYNTH_ACTION_CLASSES for entry in listed)

    from_root = load_action_annotations(root)
    from_pickle = load_action_annotations(root / SYNTH_PICKLE)
    _same_tubes(from_root, from_pickle)
    _same_tubes(from_pickle, ann)
    assert from_root.train_videos == from_pickle.train_videos == ann.train_videos
    assert from_root.test_videos == from_pickle.test_videos == ann.test_videos
    assert from_root.keyframes == ann.keyframes


def test_boxes_are_tight_and_actions_start_inside(generated: tuple[Path, ActionAnnotations]) -> None:
    root, ann = generated
    inner = 0
    for va in ann.videos.values():
        for tube in va.tubes:
            inner += tube.start > 1 or tube.end < va.num_frames
            b = tube.boxes
            assert (b[:, 0] >= 0).all() and (b[:, 2] <= SIZE[1]).all() and (b[:, 3] <= SIZE[0]).all()
            assert (b[:, 2:] > b[:, :2]).all() and np.array_equal(b, np.round(b))
    assert inner >= 3
    # the drawn shape stands out from the background inside its box on a frame with one actor
    name = next(
        v
        for v, va in ann.videos.items()
        if len(va.tubes) == 1 and (va.tubes[0].start > 1 or va.tubes[0].end < va.num_frames)
    )
    tube = ann.videos[name].tubes[0]
    f = int(tube.frames[len(tube) // 2])
    x1, y1, x2, y2 = (int(v) for v in tube.boxes[len(tube) // 2])
    folder = root / "rgb-images" / name
    img = read_image_rgb(folder / f"{f:05d}.jpg").float()
    idle = tube.start - 1 if tube.start > 1 else tube.end + 1  # the actor exists only during its action
    empty = read_image_rgb(folder / f"{idle:05d}.jpg").float()
    diff = (img - empty).abs().mean(0)
    assert diff[y1:y2, x1:x2].mean() > 3 * diff.mean()


def _motion_features(boxes: np.ndarray) -> dict[str, float]:
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    wh = boxes[:, 2:] - boxes[:, :2]
    steps = np.linalg.norm(np.diff(centre, axis=0), axis=1)
    return {
        "speed": float(steps.mean()),
        "x_range": float(np.ptp(centre[:, 0])),
        "y_range": float(np.ptp(centre[:, 1])),
        "size_range": float(np.ptp(np.log(wh.prod(1)))),
        "aspect_range": float(np.ptp(np.log(wh[:, 0] / wh[:, 1]))),
    }


def test_class_is_in_the_motion(tmp_path: Path) -> None:
    ann = generate_action_dataset(tmp_path / "m", 16, 0, size=(120, 160), num_frames=(24, 30), seed=1)
    for va in ann.videos.values():
        for tube in va.tubes:
            if len(tube) < 10:
                continue
            m = _motion_features(tube.boxes)
            cls = ann.classes[tube.label]
            if cls == "Slide":  # fast, mostly sideways, same size
                assert m["speed"] >= 2.0 and m["x_range"] > m["y_range"] / 2 and m["size_range"] < 0.4, m
            elif cls == "Pulse":  # still centre, size swings
                assert m["speed"] <= 1.0 and m["size_range"] > 0.8, m
            elif cls == "Bounce":  # vertical hops, same size
                assert m["x_range"] <= 1.0 and m["y_range"] >= 10.0 and m["size_range"] < 0.2, m
            else:  # Spin: the shape turns in place (a triangle's box centre circles a little)
                assert m["x_range"] <= 12.0 and m["y_range"] <= 12.0 and m["aspect_range"] > 0.3, m


def test_motion_is_visible_within_four_frames(tmp_path: Path) -> None:
    """What a K = 4 tubelet sees: slides and bounces move, pulses change size, spins change shape."""
    ann = generate_action_dataset(tmp_path / "k", 16, 0, size=(120, 160), num_frames=(24, 30), seed=2)
    for va in ann.videos.values():
        for tube in va.tubes:
            cls = ann.classes[tube.label]
            windows = [_motion_features(tube.boxes[i : i + 4]) for i in range(len(tube) - 3)]
            if cls == "Slide":
                assert np.median([w["speed"] for w in windows]) >= 2.0
            elif cls == "Bounce":
                assert np.median([w["y_range"] for w in windows]) >= 5.0
            elif cls == "Pulse":
                assert np.median([w["size_range"] for w in windows]) >= 0.15
            else:
                assert np.median([w["aspect_range"] for w in windows]) >= 0.1


def test_deterministic_given_seed(tmp_path: Path) -> None:
    kwargs = dict(size=(48, 64), num_frames=(12, 13))
    generate_action_dataset(tmp_path / "a", 3, 1, seed=7, **kwargs)
    generate_action_dataset(tmp_path / "b", 3, 1, seed=7, **kwargs)
    generate_action_dataset(tmp_path / "c", 3, 1, seed=8, **kwargs)
    da, db, dc = _digest(tmp_path / "a"), _digest(tmp_path / "b"), _digest(tmp_path / "c")
    assert da == db and len(da) > 40
    assert da != dc


def test_refuses_to_overwrite_without_flag(tmp_path: Path) -> None:
    generate_action_dataset(tmp_path, 1, 1, size=(48, 48), num_frames=(12, 12), seed=0)
    with pytest.raises(DataError, match="overwrite"):
        generate_action_dataset(tmp_path, 1, 1, size=(48, 48), num_frames=(12, 12), seed=0)
    ann = generate_action_dataset(tmp_path, 2, 0, size=(48, 48), num_frames=(12, 12), seed=1, overwrite=True)
    assert len(list((tmp_path / "rgb-images").glob("*/*"))) == 2 and ann.test_videos == []
    with pytest.raises(ValueError):
        generate_action_dataset(tmp_path / "x", 1, 1, size=(20, 20))
