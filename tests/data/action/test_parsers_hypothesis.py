"""Property tests of every action annotation parser: a valid file, randomly mutated (truncated,
bytes replaced, inserted or deleted, lines dropped or duplicated, numbers swapped for text, NaN,
huge or negative values, structure fields replaced or removed), is either parsed into well-formed
ground truth or refused with a DataError naming the file, never another exception; and the dataset
check reports such a file rather than crashing."""

from __future__ import annotations

import pickle
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.io
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from singleshot.data.action.check import check_action_data
from singleshot.data.action.csv_table import parse_box_csv, read_box_csv
from singleshot.data.action.readers import read_act_pickle, read_ucf24_mat, read_ucf24_pyannot, read_yowo_root
from singleshot.data.action.readers_common import parse_label_text, parse_list_lines, read_list_file
from singleshot.errors import DataError
from singleshot.structures import ActionAnnotations

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NASTY = ["nan", "inf", "-inf", "-1", "0", "1e308", "99999999999", "abc", "", "1.5", "²", "\x00", ",", "1_0", "-0"]
NASTY_VALUES: list[Any] = [
    np.nan,
    np.inf,
    -1,
    0,
    10**12,
    2.5,
    "x",
    None,
    [],
    {},
    np.zeros((2, 3)),
    np.array([[np.nan] * 5]),
]


def mutate_text(data: st.DataObject, text: str) -> str:
    """``text`` after 1-4 random edits (see the module docstring)."""
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["truncate", "replace", "insert", "delete", "dup", "drop", "token"]))
        lines = text.splitlines(keepends=True)
        if op == "truncate":
            text = text[: data.draw(st.integers(0, len(text)))]
        elif op in ("replace", "insert", "delete") and text:
            i = data.draw(st.integers(0, len(text) - 1))
            piece = data.draw(st.text(max_size=3)) if op != "delete" else ""
            text = text[:i] + piece + text[i + (0 if op == "insert" else 1) :]
        elif op in ("dup", "drop") and lines:
            i = data.draw(st.integers(0, len(lines) - 1))
            lines[i : i + 1] = [lines[i]] * (2 if op == "dup" else 0)
            text = "".join(lines)
        elif op == "token":
            tokens = re.split(r"([ ,\n])", text)
            numeric = [i for i, t in enumerate(tokens) if re.fullmatch(r"-?[\d.]+", t)]
            if numeric:
                tokens[data.draw(st.sampled_from(numeric))] = data.draw(st.sampled_from(NASTY))
                text = "".join(tokens)
    return text


def mutate_bytes(data: st.DataObject, blob: bytes) -> bytes:
    for _ in range(data.draw(st.integers(1, 3))):
        op = data.draw(st.sampled_from(["truncate", "replace", "insert", "delete"]))
        if op == "truncate":
            blob = blob[: data.draw(st.integers(0, len(blob)))]
        elif blob:
            i = data.draw(st.integers(0, len(blob) - 1))
            piece = data.draw(st.binary(min_size=1, max_size=4)) if op != "delete" else b""
            blob = blob[:i] + piece + blob[i + (0 if op == "insert" else len(piece) if op == "replace" else 1) :]
    return blob


def _paths(obj: Any, path: tuple = ()) -> list[tuple]:
    """Every path into nested dicts and lists (and the elements of small arrays)."""
    out = [path]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, (*path, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _paths(v, (*path, i))
    elif isinstance(obj, np.ndarray) and obj.size and obj.size <= 40:
        out += [(*path, ("at", i)) for i in range(obj.size)]
    return out


def mutate_structure(data: st.DataObject, obj: Any) -> Any:
    """A deep copy of ``obj`` with one to three nodes replaced by a nasty value or removed."""
    obj = pickle.loads(pickle.dumps(obj))
    for _ in range(data.draw(st.integers(1, 3))):
        paths = [p for p in _paths(obj) if p]
        if not paths:
            break
        path = data.draw(st.sampled_from(paths))
        if isinstance(path[-1], tuple) and path[-1][0] == "at":  # one number of an array (made float)
            holder = obj
            for k in path[:-2]:
                holder = holder[k]
            values = np.array(holder[path[-2]], dtype=np.float64)
            values.reshape(-1)[path[-1][1]] = data.draw(st.sampled_from([np.nan, -1.0, 1e12, 0.0]))
            holder[path[-2]] = values
            continue
        parent = obj
        for k in path[:-1]:
            parent = parent[k]
        last = path[-1]
        if data.draw(st.booleans()) and isinstance(parent, (dict, list)):
            del parent[last]
        else:
            parent[last] = data.draw(st.sampled_from(NASTY_VALUES))
    return obj


def assert_well_formed(ann: ActionAnnotations) -> None:
    for va in ann.videos.values():
        assert isinstance(va.num_frames, int) and va.num_frames >= 1
        assert all(isinstance(s, int) and s >= 1 for s in va.size)
        for t in va.tubes:
            assert t.frames.dtype == np.int64 and t.frames.ndim == 1 and len(t.frames) >= 1
            assert (t.frames >= 1).all() and (np.diff(t.frames) > 0).all()
            assert t.boxes.shape == (len(t.frames), 4) and np.isfinite(t.boxes).all()
            assert 0 <= t.label < len(ann.classes)


def read_or_refuse(read: Callable[[], ActionAnnotations], names: str) -> bool:
    """True when ``read()`` parsed well-formed ground truth, False when it raised a DataError whose
    message names ``names``; any other exception fails the test."""
    try:
        ann = read()
    except DataError as exc:
        assert names in str(exc), str(exc)
        return False
    assert_well_formed(ann)
    return True


def check_agrees(path: Path, parsed: bool, **kwargs: Any) -> None:
    """The dataset check runs through the file and reports a fault when the reader refused it."""
    report = check_action_data(path, use_cache=False, **kwargs)
    assert parsed or report.faults, "the reader refused the file but the check found nothing"


@pytest.fixture(scope="module")
def workdir() -> Any:
    with tempfile.TemporaryDirectory() as folder:
        yield Path(folder)


# ---------------------------------------------------------------- YOWO label lines and list lines
def _yowo_root(root: Path) -> None:
    for video in ("A/v1", "B/v2"):
        (root / "rgb-images" / video).mkdir(parents=True, exist_ok=True)
        (root / "labels" / video).mkdir(parents=True, exist_ok=True)
        for f in (1, 2, 3):
            Image.new("RGB", (32, 24), (f * 40, 90, 20)).save(root / "rgb-images" / video / f"{f:05d}.jpg")
    (root / "labels/B/v2/00002.txt").write_text("2 3 4 20 22\n")


LABEL_TEXT = "1 2 2 10 12\n2 1.5 1 5 5\n"
LIST_TEXT = "A/v1/00002.txt\nlabels/B/v2/00002.txt\n# comment\nrgb-images/A/v1/00002.jpg\nB/v2\n"


@SETTINGS
@given(data=st.data())
def test_yowo_label_lines(workdir: Path, data: st.DataObject) -> None:
    text = mutate_text(data, LABEL_TEXT)
    try:
        labels, boxes, lines = parse_label_text(text, "00002.txt", 2)
        assert ((labels >= 0) & (labels < 2)).all() and boxes.shape == (len(labels), 4) and len(lines) == len(labels)
    except DataError as exc:
        assert "00002.txt" in str(exc)
    root = workdir / "labels"
    _yowo_root(root)
    (root / "labels/A/v1/00002.txt").write_text(text)
    parsed = read_or_refuse(lambda: read_yowo_root(root, classes=["A", "B"]), "00002.txt")
    check_agrees(root, parsed, classes=["A", "B"])


@SETTINGS
@given(data=st.data())
def test_yowo_list_lines(workdir: Path, data: st.DataObject) -> None:
    text = mutate_text(data, LIST_TEXT)
    for video, frame in parse_list_lines(text.splitlines()):
        assert isinstance(video, str) and (frame is None or isinstance(frame, int))
    root = workdir / "lists"
    _yowo_root(root)
    (root / "labels/A/v1/00002.txt").write_text(LABEL_TEXT)
    raw = mutate_bytes(data, text.encode())
    (root / "testlist.txt").write_bytes(raw)
    try:
        read_list_file(root / "testlist.txt")
    except DataError as exc:
        assert "testlist.txt" in str(exc)
    parsed = read_or_refuse(lambda: read_yowo_root(root, classes=["A", "B"]), "testlist.txt")
    check_agrees(root, parsed, classes=["A", "B"])


# ---------------------------------------------------------------- ACT pickles
ACT = {
    "labels": ["Jump", "Run"],
    "gttubes": {
        "Jump/v1": {0: [np.array([[2, 1, 1, 9, 9], [3, 2, 1, 10, 9]], np.float32)]},
        "Run/v2": {1: [np.array([[1, 5, 5, 20, 30]], np.float32), np.array([[4, 0, 0, 4, 4]], np.float32)]},
    },
    "nframes": {"Jump/v1": 5, "Run/v2": 6},
    "resolution": {"Jump/v1": (24, 32), "Run/v2": (24, 32)},
    "train_videos": [["Jump/v1"]],
    "test_videos": [["Run/v2"]],
}


@SETTINGS
@given(data=st.data(), structural=st.booleans())
def test_act_pickle(workdir: Path, data: st.DataObject, structural: bool) -> None:
    path = workdir / "act-GT.pkl"
    blob = pickle.dumps(mutate_structure(data, ACT) if structural else ACT, protocol=2)
    path.write_bytes(blob if structural else mutate_bytes(data, blob))
    parsed = read_or_refuse(lambda: read_act_pickle(path), str(path))
    check_agrees(path, parsed)


# ---------------------------------------------------------------- UCF101-24 finalAnnots.mat and pyannot.pkl
UCF = [
    ("Jump/v1", 10, [(2, 4, 1, [[3, 3, 10, 10], [4, 3, 10, 10], [5, 3, 10, 10]])]),
    ("Run/v2", 12, [(1, 2, 2, [[1, 1, 5, 5], [2, 2, 5, 5]]), (5, 5, 2, [[9, 9, 3, 3]])]),
]


def _ucf_structure() -> dict:
    return {
        name: {
            "num_imgs": n,
            "tubes": [{"sf": sf, "ef": ef, "class": c, "boxes": np.array(b, np.uint16)} for sf, ef, c, b in tubes],
        }
        for name, n, tubes in UCF
    }


def _savemat(path: Path, videos: dict) -> bool:
    try:
        annot = np.empty((1, len(videos)), dtype=[("num_imgs", "O"), ("name", "O"), ("tubes", "O")])
        for i, (name, entry) in enumerate(videos.items()):
            entry = entry if isinstance(entry, dict) else {}
            tubes = entry.get("tubes", [])
            tubes = tubes if isinstance(tubes, list) else []
            fields = sorted({k for t in tubes if isinstance(t, dict) for k in t}) or ["sf"]
            struct = np.empty((1, max(1, len(tubes))), dtype=[(k, "O") for k in fields])
            for j, t in enumerate(tubes):
                for k in fields:
                    struct[0, j][k] = t.get(k, 0) if isinstance(t, dict) else 0
            annot[0, i]["num_imgs"] = entry.get("num_imgs", 0)
            annot[0, i]["name"] = np.array([str(name)])
            annot[0, i]["tubes"] = struct
        scipy.io.savemat(path, {"annot": annot})
    except (TypeError, ValueError, AttributeError):
        return False
    return True


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), structural=st.booleans())
def test_ucf_mat(workdir: Path, data: st.DataObject, structural: bool) -> None:
    path = workdir / "finalAnnots.mat"
    if structural:
        if not _savemat(path, mutate_structure(data, _ucf_structure())):
            return  # a structure scipy cannot write as MATLAB: nothing to read
    else:
        assert _savemat(path, _ucf_structure())
        path.write_bytes(mutate_bytes(data, path.read_bytes()))
    parsed = read_or_refuse(lambda: read_ucf24_mat(path), str(path))
    check_agrees(path, parsed)


@SETTINGS
@given(data=st.data())
def test_ucf_pyannot(workdir: Path, data: st.DataObject) -> None:
    valid = {
        name: {
            "numf": n,
            "label": tubes[0][2] - 1,
            "annotations": [
                {"sf": sf - 1, "ef": ef, "label": c - 1, "boxes": np.array(b, np.uint8)} for sf, ef, c, b in tubes
            ],
        }
        for name, n, tubes in UCF
    }
    path = workdir / "pyannot.pkl"
    path.write_bytes(pickle.dumps(mutate_structure(data, valid), protocol=2))
    parsed = read_or_refuse(lambda: read_ucf24_pyannot(path), str(path))
    if path.stat().st_size:
        check_agrees(path, parsed)


# ---------------------------------------------------------------- the box table
CSV_TEXT = "video,frame,x1,y1,x2,y2,label,actor\nv1,1,2,2,10,12,Jump,a\nv1,2,3,2,11,12,Jump,a\nv2,5,1,1,8,9,Run,\n"


@SETTINGS
@given(data=st.data())
def test_box_table(workdir: Path, data: st.DataObject) -> None:
    text = mutate_text(data, CSV_TEXT)
    rows, problems = parse_box_csv(text, "boxes.csv")
    for r in rows:
        assert r.frame >= 1 and r.box[2] > r.box[0] and r.box[3] > r.box[1] and np.isfinite(r.box).all()
        assert r.video and r.label and ".." not in r.video.split("/")
    assert all(isinstance(line, int) and message for line, _, message in problems)
    path = workdir / "boxes.csv"
    path.write_bytes(mutate_bytes(data, text.encode()) if data.draw(st.booleans()) else text.encode())
    try:
        table = read_box_csv(path)
        assert table.rows
    except DataError as exc:
        assert str(path) in str(exc)
    check_action_data(path, use_cache=False)  # reports, never raises
