"""The action dataset check: planted faults in a YOWO root, an ACT pickle, UCF101-24 files and a box
table are each listed with their video; the result is cached while the files are unchanged; the
real sample files check clean."""

from __future__ import annotations

import os
import pickle
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from singleshot.data.action.check import check_action_data
from singleshot.data.action.readers import load_action_annotations
from singleshot.data.action.safe_pickle import safe_load_pickle
from singleshot.data.action.synthetic import SYNTH_PICKLE, generate_action_dataset
from singleshot.errors import DataError

SHARED_DATA = Path(__file__).resolve().parents[3] / ".." / "shared" / "data"


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SINGLESHOT_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def clean_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synth") / "data"
    generate_action_dataset(root, 4, 2, size=(48, 64), num_frames=(12, 14), seed=0)
    return root


def plant_faults(root: Path) -> None:
    """3 corrupt images, 1 malformed label line, 1 box outside, 1 unknown class, 1 missing frame,
    1 list line naming no video; v_Spin_0004 (train) and v_Bounce_0005 (test) stay clean."""
    frames, labels = root / "rgb-images", root / "labels"
    (frames / "Bounce/v_Bounce_0001/00003.jpg").write_bytes(b"not a jpeg")
    data = (frames / "Bounce/v_Bounce_0001/00005.jpg").read_bytes()
    (frames / "Bounce/v_Bounce_0001/00005.jpg").write_bytes(data[: len(data) // 2])
    (frames / "Pulse/v_Pulse_0006/00002.jpg").write_bytes(b"")
    (labels / "Pulse/v_Pulse_0002/00004.txt").write_text("2 1 2 3\n")
    (labels / "Slide/v_Slide_0003/00005.txt").write_text("3 10 10 500 20\n")
    (labels / "Pulse/v_Pulse_0006/00003.txt").write_text("9 1 1 5 5\n")
    (frames / "Slide/v_Slide_0003/00006.jpg").unlink()
    with open(root / "testlist.txt", "a") as f:
        f.write("Nope/v_none/00001.txt\n")


@pytest.fixture()
def faulty_root(clean_root: Path, tmp_path: Path) -> Path:
    root = tmp_path / "faulty"
    shutil.copytree(clean_root, root)
    plant_faults(root)
    return root


def test_planted_faults_are_each_listed(faulty_root: Path) -> None:
    report = check_action_data(faulty_root)
    kinds = Counter(f.kind for f in report.faults)
    assert kinds == {
        "unreadable image": 3,
        "malformed annotation": 1,
        "box outside image": 1,
        "unknown class": 1,
        "missing frame": 1,
        "unknown video": 1,
    }
    assert report.n_items == 6 and not report.fatal
    assert report.bad_items == {
        "Bounce/v_Bounce_0001",
        "Pulse/v_Pulse_0002",
        "Pulse/v_Pulse_0006",
        "Slide/v_Slide_0003",
        "Nope/v_none",
    }
    table = report.table()
    for words in ("00003.jpg", "00005.jpg", "00002.jpg", "00004.txt:1", "500", "class id 9", "frames 6 missing"):
        assert words in table, words
    last = len((faulty_root / "testlist.txt").read_text().splitlines())  # the planted line
    assert f"line {last}: 'Nope/v_none' is no video of the root" in table
    # the readers stop on what the check reports, and read the rest when the faulty videos are left out
    with pytest.raises(DataError):
        load_action_annotations(faulty_root)
    ann = load_action_annotations(faulty_root, skip=report.bad_items)
    assert sorted(ann.videos) == ["Bounce/v_Bounce_0005", "Spin/v_Spin_0004"]


def test_result_is_cached_until_a_file_changes(faulty_root: Path) -> None:
    first = check_action_data(faulty_root)
    again = check_action_data(faulty_root)
    assert not first.from_cache and again.from_cache and again.faults == first.faults
    label = faulty_root / "labels/Pulse/v_Pulse_0002/00004.txt"
    label.write_text("2 1 2 3 4\n")  # fixed
    stamp = label.stat().st_mtime_ns + 1_000_000
    os.utime(label, ns=(stamp, stamp))
    fixed = check_action_data(faulty_root)
    assert not fixed.from_cache and len(fixed.faults) == len(first.faults) - 1
    assert check_action_data(faulty_root, use_cache=False).from_cache is False


def test_clean_root_and_pickle_check_clean(clean_root: Path) -> None:
    for data in (clean_root, clean_root / SYNTH_PICKLE):
        report = check_action_data(data)
        assert report.ok and report.n_items == 6, report.table()


def test_missing_folders_and_paths_are_fatal(tmp_path: Path) -> None:
    (tmp_path / "root" / "labels").mkdir(parents=True)
    report = check_action_data(tmp_path / "root")
    assert [(f.kind, f.item) for f in report.faults] == [("missing file", "")] and report.fatal
    assert check_action_data(tmp_path / "nothing.pkl").fatal


def test_act_pickle_faults_and_frames_beside(clean_root: Path, tmp_path: Path) -> None:
    data = safe_load_pickle(clean_root / SYNTH_PICKLE)
    tubes = data["gttubes"]
    tubes["Bounce/v_Bounce_0001"][0][0][3, 1] = np.nan  # malformed
    tubes["Pulse/v_Pulse_0002"] = {7: tubes["Pulse/v_Pulse_0002"][1]}  # unknown class
    tubes["Slide/v_Slide_0003"][2][0][2, 3] = 100.0  # box outside the 48-pixel height
    tubes["Spin/v_Spin_0004"][3][0][1, 1:] = [5, 5, 5, 9]  # degenerate
    data["nframes"]["Bounce/v_Bounce_0005"] = 13  # its tube reaches frame 14
    data["nframes"]["Pulse/v_Pulse_0006"] = 16  # more frames than the 12 on disk
    data["test_videos"][0].append("Nope/v_none")
    path = clean_root / "edited-GT.pkl"  # beside rgb-images/: the frames are checked too
    path.write_bytes(pickle.dumps(data, protocol=2))
    try:
        report = check_action_data(path)
    finally:
        path.unlink()
    found = sorted((f.item, f.kind) for f in report.faults)
    assert found == [
        ("Bounce/v_Bounce_0001", "malformed annotation"),
        ("Bounce/v_Bounce_0005", "frame beyond video"),
        ("Nope/v_none", "unknown video"),
        ("Pulse/v_Pulse_0002", "unknown class"),
        ("Pulse/v_Pulse_0006", "missing frame"),
        ("Slide/v_Slide_0003", "box outside image"),
        ("Spin/v_Spin_0004", "degenerate box"),
    ], report.table()
    (tmp_path / "broken-GT.pkl").write_bytes(pickle.dumps(data, protocol=2)[:100])
    report = check_action_data(tmp_path / "broken-GT.pkl")
    assert [f.kind for f in report.fatal] == ["unreadable annotation"]


def _struct(fields: dict[str, object]) -> np.ndarray:
    out = np.empty((1, 1), dtype=[(k, "O") for k in fields])
    for k, v in fields.items():
        out[0, 0][k] = v
    return out


def test_ucf_mat_and_pyannot_faults(tmp_path: Path) -> None:
    def tube(sf: int, ef: int, cls: int, rows: int, box: tuple[int, ...] = (10, 10, 20, 30)) -> np.ndarray:
        return _struct(
            {
                "sf": np.array([[sf]], np.uint8),
                "ef": np.array([[ef]], np.uint8),
                "class": np.array([[cls]], np.uint8),
                "boxes": np.tile(np.array(box, np.uint16), (rows, 1)),
            }
        )

    videos = [
        ("A/v_A_1", 20, tube(2, 10, 1, 9)),  # clean
        ("A/v_A_2", 20, tube(2, 10, 1, 5)),  # box count != ef - sf + 1
        ("B/v_B_1", 20, tube(2, 10, 5, 9)),  # class 5 of 2
        ("B/v_B_2", 8, tube(2, 10, 2, 9)),  # past num_imgs
        ("B/v_B_3", 20, tube(2, 10, 2, 9, (300, 10, 40, 30))),  # x + w - 1 = 339 > 320
    ]
    annot = np.empty((1, len(videos)), dtype=[("num_imgs", "O"), ("name", "O"), ("tubes", "O")])
    for i, (name, n, t) in enumerate(videos):
        annot[0, i]["num_imgs"] = np.array([[n]], np.uint8)
        annot[0, i]["name"] = np.array([name])
        annot[0, i]["tubes"] = t
    scipy.io.savemat(tmp_path / "finalAnnots.mat", {"annot": annot})
    (tmp_path / "testlist01.txt").write_text("A/v_A_1\nC/v_C_9\n")
    want = [
        ("A/v_A_2", "malformed annotation"),
        ("B/v_B_1", "unknown class"),
        ("B/v_B_2", "frame beyond video"),
        ("B/v_B_3", "box outside image"),
        ("C/v_C_9", "unknown video"),
    ]
    report = check_action_data(tmp_path / "finalAnnots.mat")
    assert sorted((f.item, f.kind) for f in report.faults) == want, report.table()
    pyannot = {
        name: {
            "numf": n,
            "label": 0,
            "annotations": [
                {
                    "sf": int(t[0, 0]["sf"][0, 0]) - 1,
                    "ef": int(t[0, 0]["ef"][0, 0]),
                    "label": int(t[0, 0]["class"][0, 0]) - 1,
                    "boxes": t[0, 0]["boxes"],
                }
            ],
        }
        for name, n, t in videos
    }
    (tmp_path / "pyannot.pkl").write_bytes(pickle.dumps(pyannot, protocol=2))
    report = check_action_data(tmp_path / "pyannot.pkl")
    assert sorted((f.item, f.kind) for f in report.faults) == want, report.table()


def test_box_table_with_its_frames(clean_root: Path, tmp_path: Path) -> None:
    frames = clean_root / "rgb-images"  # frame folders <Class>/<video>/00001.jpg
    lines = [
        "video,frame,x1,y1,x2,y2,label,actor",
        "v_Spin_0004,3,1,1,20,20,Spin,",  # 2: clean
        "v_Spin_0004,3,2,2,20,20,Spin,",  # 3: a second box of the track on frame 3
        "v_Pulse_0002,x,1,1,20,20,Pulse,",  # 4: malformed
        "v_Pulse_0002,40,1,1,20,20,Pulse,",  # 5: past its 14 frames
        "v_Slide_0003,2,100,1,120,20,Slide,",  # 6: wholly outside 64 pixels
        "v_Missing,2,1,1,20,20,Slide,",  # 7: no such video
        "v_Bounce_0001,2,1,1,20,20,Jump,",  # 8: not in classes
    ]
    (tmp_path / "boxes.csv").write_text("\n".join(lines) + "\n")
    report = check_action_data(tmp_path / "boxes.csv", frames=frames, classes=["Bounce", "Pulse", "Slide", "Spin"])
    found = sorted((f.item, f.kind, f.message.split(":")[0]) for f in report.faults)
    assert found == [
        ("v_Bounce_0001", "unknown class", "line 8"),
        ("v_Missing", "unknown video", "line 7"),
        ("v_Pulse_0002", "frame beyond video", "line 5"),
        ("v_Pulse_0002", "malformed annotation", "line 4"),
        ("v_Slide_0003", "box outside image", "line 6"),
        ("v_Spin_0004", "duplicate box", "line 3"),
    ], report.table()
    rows_only = check_action_data(tmp_path / "boxes.csv")
    assert {f.kind for f in rows_only.faults} == {"malformed annotation", "duplicate box"}


def _shared(*parts: str) -> Path:
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real sample data not found: {path} (the ../shared/data folder is absent)")
    return path


def test_real_act_pickle_and_yowo_groundtruth_check_clean() -> None:
    # act/gt_tubes.pkl is left out: it is not a whole ACT ground truth (no labels, nframes, ...)
    for path in (_shared("act", "tube_sample.pkl"), _shared("yowo-jhmdb", "groundtruths_jhmdb.zip")):
        report = check_action_data(path)
        assert report.ok and report.n_items > 0, report.table()


@pytest.mark.slow
def test_real_ucf101_24_annotations_check_clean() -> None:
    """All 3194 videos of finalAnnots.mat and pyannot.pkl, with the split-1 test list beside them."""
    for name in ("finalAnnots.mat", "pyannot.pkl"):
        report = check_action_data(_shared("ucf101-24", name))
        assert report.ok and report.n_items == 3194, report.table()
