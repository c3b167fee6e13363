"""YOWO layout: writer/reader round trip on generated data, tube linking, bad input, and one real
video end to end (decoded into the layout, labelled from finalAnnots.mat, read back)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from singleshot.data.action.frames import extract_video_to_yowo, read_clip_frames
from singleshot.data.action.readers import (
    link_boxes_into_tubes,
    load_action_annotations,
    read_act_pickle,
    read_ucf24_mat,
    read_yowo_root,
    write_act_pickle,
    write_yowo_labels,
)
from singleshot.data.action.readers_common import make_tube, parse_list_lines
from singleshot.errors import DataError
from singleshot.structures import ActionAnnotations, VideoAnnotation

SHARED_DATA = Path(__file__).resolve().parents[3] / ".." / "shared" / "data"
H, W = 24, 32


def _shared(*parts: str) -> Path:
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real sample data not found: {path} (the ../shared/data folder is absent)")
    return path


def _frames(root: Path, video: str, n: int, ext: str = "png", size: tuple[int, int] = (H, W)) -> None:
    folder = root / "rgb-images" / video
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(1, n + 1):
        Image.new("RGB", (size[1], size[0]), (i, 0, 0)).save(folder / f"{i:05d}.{ext}")


def _labels(root: Path, video: str, frame: int, text: str) -> Path:
    path = root / "labels" / video / f"{frame:05d}.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _tube(video: str, label: int, start: int, boxes: list[list[float]]):
    return make_tube(video, label, np.arange(start, start + len(boxes)), np.asarray(boxes, np.float32))


def _source() -> ActionAnnotations:
    """Two classes; Jump/v1 has two same-class actors, Jump/v2 a gap and a fast jump, Run/v3 no actor."""
    v1 = [
        _tube("Jump/v1", 0, 1, [[1 + f, 2, 8 + f, 12.5] for f in range(10)]),
        _tube("Jump/v1", 0, 3, [[20 - 0.5 * f, 10, 30 - 0.5 * f, 22] for f in range(10)]),
    ]
    v2 = [
        _tube("Jump/v2", 0, 1, [[0, 0, 4, 4], [10, 10, 14, 14], [10.25, 10, 14, 14.75]]),  # IoU 0 at frame 2
        _tube("Jump/v2", 0, 6, [[5, 5, 9, 9]] * 3),  # frames 4-5 have no box: a second tube
    ]
    videos = {
        "Jump/v1": VideoAnnotation("Jump/v1", 12, (H, W), v1),
        "Jump/v2": VideoAnnotation("Jump/v2", 8, (H, W), v2),
        "Run/v3": VideoAnnotation("Run/v3", 6, (H, W), []),
    }
    return ActionAnnotations(
        classes=["Jump", "Run"],
        videos=videos,
        train_videos=["Jump/v1"],
        test_videos=["Jump/v2", "Run/v3"],
        keyframes={"Jump/v1": [2, 5], "Jump/v2": [1, 7], "Run/v3": [3]},
    )


def _layout(root: Path, src: ActionAnnotations, prefix: bool = False) -> None:
    for video, va in src.videos.items():
        _frames(root, video, va.num_frames)
    write_yowo_labels(src, root, prefix_labels=prefix)


def _assert_same(a: ActionAnnotations, b: ActionAnnotations) -> None:
    assert a.classes == b.classes and set(a.videos) == set(b.videos)
    for v, va in a.videos.items():
        vb = b.videos[v]
        assert (va.num_frames, va.size, len(va.tubes)) == (vb.num_frames, vb.size, len(vb.tubes)), v
        for ta, tb in zip(va.tubes, vb.tubes):
            assert ta.label == tb.label
            np.testing.assert_array_equal(ta.frames, tb.frames)
            np.testing.assert_array_equal(ta.boxes, tb.boxes)


@pytest.mark.parametrize("prefix", [False, True])
def test_round_trip_through_yowo_layout(tmp_path: Path, prefix: bool) -> None:
    src = _source()
    _layout(tmp_path, src, prefix)
    first = (tmp_path / "testlist.txt").read_text().splitlines()[0]
    assert first == ("labels/" if prefix else "") + "Jump/v2/00001.txt"
    assert (tmp_path / "labels/Jump/v1/00001.txt").read_text() == "1 1 2 8 12.5\n"
    with pytest.warns(UserWarning, match=r"empty label files .*Run/v3/00003.txt"):
        back = read_yowo_root(tmp_path)
    _assert_same(src, back)
    assert back.train_videos == src.train_videos and back.test_videos == src.test_videos
    assert back.keyframes == src.keyframes
    # Through an ACT pickle too.
    write_act_pickle(back, tmp_path / "x-GT.pkl")
    _assert_same(src, read_act_pickle(tmp_path / "x-GT.pkl"))


def test_counts_and_sizes_come_from_disk_and_classes_from_folders(tmp_path: Path) -> None:
    _frames(tmp_path, "Walk/a", 5, ext="jpg", size=(10, 14))
    _frames(tmp_path, "Clap/b", 3)
    _labels(tmp_path, "Walk/a", 2, "2 1 1 5 5\n")
    ann = load_action_annotations(tmp_path)
    assert ann.classes == ["Clap", "Walk"] and ann.keyframes is None and ann.test_videos == []
    assert (ann.videos["Walk/a"].num_frames, ann.videos["Walk/a"].size) == (5, (10, 14))
    assert ann.videos["Clap/b"].tubes == [] and ann.videos["Walk/a"].tubes[0].label == 1
    (tmp_path / "classes.txt").write_text("Walk\nClap\n")
    with pytest.warns(UserWarning, match="another class than the video's folder"):
        swapped = read_yowo_root(tmp_path, classes=tmp_path / "classes.txt")
    assert swapped.classes == ["Walk", "Clap"] and swapped.videos["Walk/a"].tubes[0].label == 1


def test_linking_two_actors_listed_in_any_order(tmp_path: Path) -> None:
    _frames(tmp_path, "Jump/v", 4)
    a = [[1, 1, 9, 9], [2, 1, 10, 9], [3, 1, 11, 9], [4, 1, 12, 9]]
    b = [[15, 10, 25, 20], [14, 10, 24, 20], [13, 10, 23, 20], [12, 10, 22, 20]]
    for f in range(4):
        rows = [a[f], b[f]] if f % 2 == 0 else [b[f], a[f]]
        _labels(tmp_path, "Jump/v", f + 1, "".join("1 " + " ".join(map(str, r)) + "\n" for r in rows))
    tubes = read_yowo_root(tmp_path).videos["Jump/v"].tubes
    assert len(tubes) == 2
    got = sorted(t.boxes.tolist() for t in tubes)
    assert got == sorted([a, b])


def test_linking_prefers_best_total_iou() -> None:
    """Tubes A = [0, 10], B = [6, 16] (x extent, height 10) meet boxes c = [4, 14], d = [9, 19].
    By hand: IoU(B, c) = 8/12, IoU(A, c) = 6/14, IoU(B, d) = 7/13, IoU(A, d) = 1/19. Highest-first
    would link B-c then A-d (total 0.72); the best one-to-one assignment is A-c, B-d (0.97)."""
    frames = np.array([1, 1, 2, 2])
    boxes = np.array([[0, 0, 10, 10], [6, 0, 16, 10], [4, 0, 14, 10], [9, 0, 19, 10]], np.float32)
    tubes = link_boxes_into_tubes("v", frames, np.zeros(4, np.int64), boxes)
    assert sorted(t.boxes[:, 0].tolist() for t in tubes) == [[0.0, 4.0], [6.0, 9.0]]
    assert all(t.frames.tolist() == [1, 2] for t in tubes)


def test_list_line_forms() -> None:
    lines = [
        "Basketball/v_Basketball_g01_c01/00009.txt",
        "labels/Basketball/v_Basketball_g01_c01/00010.txt",
        "rgb-images/A/v/00003.jpg",
        "Basketball/v_Basketball_g01_c02",
        "A/v.avi",
        "",
        "# note",
    ]
    assert parse_list_lines(lines) == [
        ("Basketball/v_Basketball_g01_c01", 9),
        ("Basketball/v_Basketball_g01_c01", 10),
        ("A/v", 3),
        ("Basketball/v_Basketball_g01_c02", None),
        ("A/v", None),
    ]


def test_bad_label_lines(tmp_path: Path) -> None:
    _frames(tmp_path, "Jump/v", 3)
    (tmp_path / "rgb-images" / "Run").mkdir()
    bad = _labels(tmp_path, "Jump/v", 2, "1 1 1 5 5\n1 2 3 4\n")
    with pytest.raises(DataError, match=r"00002\.txt:2: expected 'cls x1 y1 x2 y2'"):
        read_yowo_root(tmp_path)
    bad.write_text("1 1 1 5 5\n1 a 3 4 5\n")
    with pytest.raises(DataError, match=r"00002\.txt:2"):
        read_yowo_root(tmp_path)
    for cid in ("3", "0"):
        bad.write_text(f"{cid} 1 1 5 5\n")
        with pytest.raises(DataError, match=rf"00002\.txt:1: class id {cid} outside \[1, 2\]"):
            read_yowo_root(tmp_path)
    bad.write_text("1.5 1 1 5 5\n")
    with pytest.raises(DataError, match="not an integer"):
        read_yowo_root(tmp_path)


def test_degenerate_and_outside_boxes(tmp_path: Path) -> None:
    _frames(tmp_path, "Jump/v", 2)
    _labels(tmp_path, "Jump/v", 1, "1 9 1 5 5\n1 1 1 5 5\n")
    _labels(tmp_path, "Jump/v", 2, f"1 -2 1 5 {H + 6}\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ann = read_yowo_root(tmp_path)
    text = " | ".join(str(w.message) for w in caught)
    assert "00001.txt line 1 has x2 <= x1" in text and "00002.txt line 1 extends outside" in text
    (tube,) = ann.videos["Jump/v"].tubes
    np.testing.assert_array_equal(tube.boxes, [[1, 1, 5, 5], [0, 1, 5, H]])


def test_list_entries_to_missing_files_and_videos(tmp_path: Path) -> None:
    _frames(tmp_path, "Jump/v", 3)
    _labels(tmp_path, "Jump/v", 1, "1 1 1 5 5\n")
    (tmp_path / "testlist.txt").write_text("Jump/v/00001.txt\nJump/v/00003.txt\nJump/nope/00001.txt\n")
    with pytest.warns(UserWarning, match=r"2 entries point to missing .*labels/Jump/v/00003.txt"):
        ann = read_yowo_root(tmp_path)
    assert ann.test_videos == ["Jump/v"] and ann.keyframes == {"Jump/v": [1]}
    other = tmp_path / "mine.txt"
    other.write_text("labels/Jump/v/00001.txt\n")
    assert read_yowo_root(tmp_path, split_list=other).keyframes == {"Jump/v": [1]}
    with pytest.raises(DataError, match="absent.txt"):
        read_yowo_root(tmp_path, split_list=tmp_path / "absent.txt")


def test_missing_frames_are_errors(tmp_path: Path) -> None:
    _labels(tmp_path, "Jump/v", 1, "1 1 1 5 5\n")
    with pytest.raises(DataError, match="rgb-images"):
        read_yowo_root(tmp_path)
    (tmp_path / "rgb-images" / "Jump").mkdir(parents=True)
    with pytest.raises(DataError, match=r"rgb-images/Jump/v: no frame images"):
        read_yowo_root(tmp_path)


def test_real_video_end_to_end(tmp_path: Path) -> None:
    """The real Basketball clip decoded into the layout, labelled from finalAnnots.mat, read back."""
    mat = read_ucf24_mat(_shared("ucf101-24", "finalAnnots.mat"))
    video = "Basketball/v_Basketball_g01_c01"
    extract_video_to_yowo(_shared("video", "v_Basketball_g01_c01.avi"), tmp_path, video)
    one = ActionAnnotations(classes=mat.classes, videos={video: mat.videos[video]}, test_videos=[video])
    for name in mat.classes:  # all 24 class folders, so the class list is derived in full
        (tmp_path / "labels" / name).mkdir(parents=True, exist_ok=True)
    write_yowo_labels(one, tmp_path)
    assert (tmp_path / "labels" / video / "00009.txt").read_text() == "1 188 101 235 179\n"
    back = read_yowo_root(tmp_path)
    assert back.classes == mat.classes
    _assert_same(one, back)
    assert back.keyframes == {video: list(range(9, 53))}
    clip = read_clip_frames(tmp_path, video, [1, 1, 9])
    assert clip.shape == (3, 3, 240, 320)
