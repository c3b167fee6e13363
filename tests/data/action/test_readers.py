"""Action ground-truth readers on the real sample files: ACT pickles, UCF101-24 finalAnnots.mat and
pyannot.pkl, YOWO's J-HMDB ground-truth zip; the ACT writer; the dispatcher's errors."""

from __future__ import annotations

import pickle
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest

from singleshot.data.action.readers import (
    JHMDB_CLASSES,
    UCF24_CLASSES,
    frame_ground_truth_to_annotations,
    load_action_annotations,
    read_act_pickle,
    read_ucf24_mat,
    read_ucf24_pyannot,
    read_yowo_groundtruth_dir,
    write_act_pickle,
)
from singleshot.data.action.readers_ucf import xywh1_to_xyxy
from singleshot.errors import DataError
from singleshot.structures import ActionAnnotations

SHARED_DATA = Path(__file__).resolve().parents[3] / ".." / "shared" / "data"
BASKETBALL = "Basketball/v_Basketball_g01_c01"


def _shared(*parts: str) -> Path:
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real sample data not found: {path} (the ../shared/data folder is absent)")
    return path


def _plain_pickle(path: Path) -> dict:
    with open(path, "rb") as f:
        return pickle.load(f, encoding="latin1")  # trusted sample file: the reference reader


@pytest.fixture(scope="module")
def mat() -> ActionAnnotations:
    return read_ucf24_mat(_shared("ucf101-24", "finalAnnots.mat"))


@pytest.fixture(scope="module")
def pyannot() -> ActionAnnotations:
    return read_ucf24_pyannot(_shared("ucf101-24", "pyannot.pkl"))


def _assert_same_videos(a: ActionAnnotations, b: ActionAnnotations, videos: list[str]) -> None:
    for v in videos:
        va, vb = a.videos[v], b.videos[v]
        assert (va.num_frames, va.size, len(va.tubes)) == (vb.num_frames, vb.size, len(vb.tubes)), v
        for ta, tb in zip(va.tubes, vb.tubes):
            assert ta.label == tb.label, v
            np.testing.assert_array_equal(ta.frames, tb.frames, err_msg=v)
            np.testing.assert_array_equal(ta.boxes, tb.boxes, err_msg=v)


def test_act_pickle_matches_plain_unpickling() -> None:
    path = _shared("act", "tube_sample.pkl")
    ref = _plain_pickle(path)
    ann = read_act_pickle(path)
    assert ann.classes == list(ref["labels"]) and len(ann.classes) == 24
    assert ann.train_videos == ref["train_videos"][0] and ann.test_videos == ref["test_videos"][0]
    assert ann.keyframes is None
    for video, per_label in ref["gttubes"].items():
        va = ann.videos[video]
        assert va.num_frames == ref["nframes"][video] and va.size == tuple(ref["resolution"][video])
        expected = [(label, arr) for label in sorted(per_label) for arr in per_label[label]]
        assert len(va.tubes) == len(expected)
        for tube, (label, arr) in zip(va.tubes, expected):
            assert tube.label == label and tube.video == video
            assert tube.frames.dtype == np.int64 and tube.boxes.dtype == np.float32
            np.testing.assert_array_equal(tube.frames, arr[:, 0].astype(np.int64))
            np.testing.assert_array_equal(tube.boxes, arr[:, 1:5])
    assert read_act_pickle(path, split=3).test_videos == ref["test_videos"][2]
    with pytest.raises(DataError, match="split=4"):
        read_act_pickle(path, split=4)


def test_mat_conversion_and_frames_agree_with_act_gt_tubes(mat: ActionAnnotations) -> None:
    """sf/ef in the .mat are 1-based inclusive: Basketball's tube covers frames 9-52 as in ACT."""
    np.testing.assert_array_equal(xywh1_to_xyxy(np.array([[189, 102, 47, 78]], np.uint8)), [[188, 101, 235, 179]])
    # uint8 storage must not wrap: 200 + 100 - 1 = 299.
    np.testing.assert_array_equal(xywh1_to_xyxy(np.array([[200, 10, 100, 20]], np.uint8)), [[199, 9, 299, 29]])
    act = _plain_pickle(_shared("act", "gt_tubes.pkl"))
    for video in (BASKETBALL, "BasketballDunk/v_BasketballDunk_g01_c01"):
        ((label, arrays),) = act[video].items()
        (ref,) = arrays
        (tube,) = mat.videos[video].tubes
        assert tube.label == label and mat.classes[label] == video.split("/")[0]
        np.testing.assert_array_equal(tube.frames, ref[:, 0].astype(np.int64))
        np.testing.assert_array_equal(tube.boxes, ref[:, 1:])
    tube = mat.videos[BASKETBALL].tubes[0]
    assert (tube.start, tube.end, len(tube)) == (9, 52, 44)
    assert mat.videos[BASKETBALL].num_frames == 141 and mat.videos[BASKETBALL].size == (240, 320)


def test_mat_matches_real_act_pickle_and_class_order(mat: ActionAnnotations) -> None:
    act = read_act_pickle(_shared("act", "tube_sample.pkl"))
    assert mat.classes == act.classes == UCF24_CLASSES
    assert len(mat.videos) == 3194
    _assert_same_videos(act, mat, list(act.videos))  # several tubes per video, same order


def test_mat_split_from_testlist_beside_it(mat: ActionAnnotations) -> None:
    lines = [ln.strip() for ln in _shared("ucf101-24", "testlist01.txt").read_text().splitlines() if ln.strip()]
    expected = [v for v in dict.fromkeys(lines) if v in mat.videos]
    assert mat.test_videos == expected and len(expected) > 900
    assert set(mat.train_videos) == set(mat.videos) - set(expected)


def test_pyannot_agrees_with_mat_on_every_video(mat: ActionAnnotations, pyannot: ActionAnnotations) -> None:
    """pyannot.pkl stores sf 0-based and ef exclusive; after conversion both sources agree exactly."""
    assert pyannot.classes == mat.classes
    assert set(pyannot.videos) == set(mat.videos)
    _assert_same_videos(mat, pyannot, sorted(mat.videos))
    assert pyannot.test_videos == mat.test_videos


def test_dispatch_on_real_files(mat: ActionAnnotations) -> None:
    assert load_action_annotations(_shared("act", "tube_sample.pkl")).classes == UCF24_CLASSES
    assert len(load_action_annotations(_shared("ucf101-24", "pyannot.pkl")).videos) == 3194
    ann = load_action_annotations(_shared("ucf101-24", "finalAnnots.mat"))
    assert ann.test_videos == mat.test_videos


def test_jhmdb_groundtruth_zip() -> None:
    path = _shared("yowo-jhmdb", "groundtruths_jhmdb.zip")
    gt = read_yowo_groundtruth_dir(path)
    assert gt.classes == JHMDB_CLASSES == sorted(JHMDB_CLASSES) and len(gt.classes) == 21
    with zipfile.ZipFile(path) as z:
        files = [n for n in z.namelist() if n.endswith(".txt")]
        content = z.read("groundtruths_jhmdb/clap_Boom_Snap_Clap_clap_u_nm_np1_fr_med_1_00038.txt").decode()
    assert len(gt.frames) == len(files) == 9126
    assert len(gt.videos) == 268
    boxes, labels = gt.frames[("clap/Boom_Snap_Clap_clap_u_nm_np1_fr_med_1", 38)]
    cls, *xyxy = (float(v) for v in content.split())
    assert JHMDB_CLASSES[int(cls) - 1] == "clap"
    np.testing.assert_array_equal(labels, [JHMDB_CLASSES.index("clap")])
    np.testing.assert_array_equal(boxes, [xyxy])
    ann = frame_ground_truth_to_annotations(gt)
    assert ann.test_videos == gt.videos and sum(len(fs) for fs in ann.keyframes.values()) == 9126
    video = ann.videos["clap/Boom_Snap_Clap_clap_u_nm_np1_fr_med_1"]
    assert [t.label for t in video.tubes] == [2] and 38 in video.tubes[0].frames


def test_groundtruth_dir_prefix_parsing(tmp_path: Path) -> None:
    (tmp_path / "shoot_bow_my_video_3_00012.txt").write_text("14 1 2 30 40\n")
    (tmp_path / "shoot_ball_x_00001.txt").write_text("")
    gt = read_yowo_groundtruth_dir(tmp_path)
    boxes, labels = gt.frames[("shoot_bow/my_video_3", 12)]
    np.testing.assert_array_equal(labels, [13])
    np.testing.assert_array_equal(boxes, [[1, 2, 30, 40]])
    assert gt.frames[("shoot_ball/x", 1)][0].shape == (0, 4)
    # The longest class name that prefixes the file name wins.
    custom = tmp_path / "custom"
    custom.mkdir()
    (custom / "a_b_vid_00002.txt").write_text("2 0 0 5 5\n")
    gt = read_yowo_groundtruth_dir(custom, classes=["a", "a_b"])
    assert list(gt.frames) == [("a_b/vid", 2)]
    (custom / "zzz_vid_00001.txt").write_text("1 0 0 5 5\n")
    with pytest.raises(DataError, match="zzz_vid_00001.txt"):
        read_yowo_groundtruth_dir(custom, classes=["a", "a_b"])


def test_groundtruth_dir_bad_lines(tmp_path: Path) -> None:
    bad = tmp_path / "clap_v_00003.txt"
    bad.write_text("3 1 2 30 40\n3 1 2 30\n")
    with pytest.raises(DataError, match=r"clap_v_00003.txt:2"):
        read_yowo_groundtruth_dir(tmp_path)
    bad.write_text("22 1 2 30 40\n")
    with pytest.raises(DataError, match=r"clap_v_00003.txt:1: class id 22 outside \[1, 21\]"):
        read_yowo_groundtruth_dir(tmp_path)
    bad.write_text("3 30 2 10 40\n3 1 2 30 40\n")
    with pytest.warns(UserWarning, match="line 1 has x2 <= x1"):
        gt = read_yowo_groundtruth_dir(tmp_path)
    np.testing.assert_array_equal(gt.frames[("clap/v", 3)][0], [[1, 2, 30, 40]])


def test_act_writer_round_trip(tmp_path: Path) -> None:
    src = read_act_pickle(_shared("act", "tube_sample.pkl"))
    out = tmp_path / "UCF101v2-GT.pkl"
    write_act_pickle(src, out)
    raw = out.read_bytes()
    assert raw[:2] == b"\x80\x02"  # protocol 2, as ACT's files
    assert b"numpy.core.multiarray" in raw and b"numpy._core" not in raw  # NumPy 1 can load it
    ref = _plain_pickle(out)
    assert set(ref) == {"labels", "gttubes", "nframes", "train_videos", "test_videos", "resolution"}
    arrays = [a for per in ref["gttubes"].values() for arrs in per.values() for a in arrs]
    assert arrays and all(a.dtype == np.float32 and a.shape[1] == 5 for a in arrays)
    assert ref["train_videos"] == [src.train_videos] and ref["test_videos"] == [src.test_videos]
    back = read_act_pickle(out)
    assert back.classes == src.classes and back.train_videos == src.train_videos
    _assert_same_videos(src, back, list(src.videos))


def test_dispatch_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        load_action_annotations(tmp_path / "nothing.pkl")
    odd = tmp_path / "notes.json"
    odd.write_text("{}")
    with pytest.raises(DataError) as info:
        load_action_annotations(odd)
    message = str(info.value)
    assert "notes.json" in message and "YOWO-layout" in message and "finalAnnots.mat" in message
    with pytest.raises(DataError, match="folder is not a supported"):
        load_action_annotations(tmp_path)
    other = tmp_path / "other.pkl"
    other.write_bytes(pickle.dumps({"a": [1, 2]}, protocol=2))
    with pytest.raises(DataError, match="neither an ACT"):
        load_action_annotations(other)
    broken = tmp_path / "broken-GT.pkl"
    broken.write_bytes(
        pickle.dumps(
            {
                "labels": ["a"],
                "gttubes": {"a/v": {0: [np.zeros((3, 4))]}},
                "nframes": {"a/v": 5},
                "resolution": {"a/v": (4, 4)},
            },
            protocol=2,
        )
    )
    with pytest.raises(DataError, match=r"broken-GT.pkl: video 'a/v' label 0 tube 0: expected an array \[n, 5\]"):
        load_action_annotations(broken)


def test_split_list_overrides_act_test_split(tmp_path: Path) -> None:
    src = _shared("act", "tube_sample.pkl")
    listed = tmp_path / "mylist.txt"
    listed.write_text("SalsaSpin/v_SalsaSpin_g11_c02/00005.txt\nWalkingWithDog/v_WalkingWithDog_g05_c02\nNo/such\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ann = load_action_annotations(src, split_list=listed)
    assert any("No/such" in str(w.message) for w in caught)
    assert ann.test_videos == ["SalsaSpin/v_SalsaSpin_g11_c02", "WalkingWithDog/v_WalkingWithDog_g05_c02"]
    assert ann.train_videos == ["TrampolineJumping/v_TrampolineJumping_g09_c05"]
    assert ann.keyframes == {"SalsaSpin/v_SalsaSpin_g11_c02": [5]}
