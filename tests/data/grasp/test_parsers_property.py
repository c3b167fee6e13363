"""Property tests of the grasp annotation parsers: any mutation of a valid file (truncation, bytes
replaced / inserted / deleted, lines dropped / duplicated / swapped, numbers swapped for text, NaN,
huge or negative values) parses correctly or raises the project's DataError naming the file --
never another exception -- and the dataset check reports such a file as a fault, never crashing."""

from __future__ import annotations

import math
import re
import shutil
import struct
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from singleshot.data.grasp.check import check_grasp_dataset
from singleshot.data.grasp.cornell import find_cornell_samples, load_cornell, parse_cornell_rectangles
from singleshot.data.grasp.dataset import GraspDataset
from singleshot.data.grasp.depth import read_depth_tiff, write_depth_tiff
from singleshot.data.grasp.jacquard import parse_jacquard_grasps
from singleshot.data.grasp.pcd import read_pcd_depth
from singleshot.data.grasp.synthetic import generate_grasp_dataset
from singleshot.errors import DataError

SETTINGS = settings(
    max_examples=80, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

# An independent statement of the number grammar the parsers promise (see singleshot.data.grasp.numbers).
_NUM = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?|[+-]?(nan|inf|infinity)", re.IGNORECASE | re.ASCII)
_ODD = ["abc", "nan", "NaN", "-inf", "1e309", "-5", "0", "", "0x10", "1,5", "\x00", "--1", "1e", "."]
_LOOSE = ["1_0", "\u0661\u0662", "\uff13", "1_000.5", "-2_5"]  # Python's float takes these; a data file should not

_HUGE = ["1e308", "-1e308", "1.7976931348623157e308", "3.5e38", "-1e39"]  # beyond float32, or overflowing sums

CORNELL = "253 319.7 \n309 324 \n307 350 \n251 345.7\n\n30 30\n40 30\n40 38\n30 38\n"
JACQUARD = "470.14815;253.89551;68.2615;25.5;25.6211\n30;30;-36.6;17.5;13.3\n25;20;0;8;4\n"


@st.composite
def mutated(draw: st.DrawFn, text: str) -> bytes:
    """``text`` after 1-3 random mutations, as bytes (some not UTF-8). Half of them swap one
    number for text, NaN, a huge or negative value (keeping the file's shape, so that the values'
    checks are reached); the others damage bytes or lines."""
    data = text.encode()
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["field"] * 5 + ["truncate", "replace", "insert", "delete", "lines"]))
        if kind == "truncate":
            data = data[: draw(st.integers(0, len(data)))]
        elif kind in ("replace", "insert", "delete") and data:
            at = draw(st.integers(0, len(data) - 1))
            blob = draw(st.binary(min_size=1, max_size=4))
            data = {
                "replace": data[:at] + blob + data[at + len(blob) :],
                "insert": data[:at] + blob + data[at:],
                "delete": data[:at] + data[at + draw(st.integers(1, 8)) :],
            }[kind]
        elif kind == "lines":
            lines = data.split(b"\n")
            i, j = draw(st.integers(0, len(lines) - 1)), draw(st.integers(0, len(lines) - 1))
            how = draw(st.sampled_from(["drop", "duplicate", "swap"]))
            if how == "drop":
                del lines[i]
            elif how == "duplicate":
                lines.insert(i, lines[j])
            else:
                lines[i], lines[j] = lines[j], lines[i]
            data = b"\n".join(lines)
        elif kind == "field":
            fields = list(re.finditer(rb"[^\s;]+", data))
            if fields:
                m = fields[draw(st.integers(0, len(fields) - 1))]
                value = draw(
                    st.sampled_from(_ODD)
                    | st.sampled_from(_LOOSE)
                    | st.sampled_from(_HUGE)
                    | st.floats(allow_nan=True).map(repr)
                )
                data = data[: m.start()] + value.encode() + data[m.end() :]
    return data


def _numbers(tokens: list[str]) -> list[float] | None:
    return [float(t) for t in tokens] if all(_NUM.fullmatch(t) for t in tokens) else None


def _cornell_oracle(data: bytes) -> tuple[np.ndarray, list[int]] | None:
    """(corners array[N, 4, 2], first lines) the file should parse to, or None: a DataError."""
    points = []
    for lineno, line in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
        tokens = line.split()
        if not tokens:
            continue
        values = _numbers(tokens)
        if values is None or len(values) != 2:
            return None
        points.append((values, lineno))
    if len(points) % 4:
        return None
    rects = [points[k : k + 4] for k in range(0, len(points), 4)]
    good = [r for r in rects if all(math.isfinite(v) for p, _ in r for v in p)]
    return np.array([[p for p, _ in r] for r in good]).reshape(-1, 4, 2), [r[0][1] for r in good]


@pytest.fixture(scope="module")
def cornell_sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder of one generated 48×64 Cornell sample ``pcd0100``."""
    root = tmp_path_factory.mktemp("cornell")
    generate_grasp_dataset(root, 1, seed=0, size=(48, 64))
    return next(root.glob("*/pcd0100cpos.txt")).parent


@SETTINGS
@given(data=mutated(CORNELL))
def test_cornell_rectangles(cornell_sample: Path, data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for f in cornell_sample.iterdir():
            shutil.copy(f, root / f.name)
        path = root / "pcd0100cpos.txt"
        path.write_bytes(data)
        expected = _cornell_oracle(data)
        try:
            parsed = parse_cornell_rectangles(path)
        except DataError as exc:
            assert str(path) in str(exc)
            assert expected is None, f"rejected a valid file: {exc}"
        else:
            assert expected is not None, "accepted a malformed file"
            np.testing.assert_array_equal(parsed.corners, expected[0])
            assert list(parsed.lines) == expected[1]
        # the check: the file's faults, never an "unreadable" (a checker crash)
        report = check_grasp_dataset(root, workers=1, use_cache=False)
        kinds = {f.kind for f in report.faults if f.file == str(path)}
        assert "unreadable" not in {f.kind for f in report.faults}
        assert _reader_fails(root) <= report.bad_items
        if expected is None:
            assert kinds == {"malformed annotation"}, report.table()
        elif len(expected[0]) == 0:
            assert kinds == {"no valid grasp"}, report.table()
        else:
            assert kinds <= {"invalid grasp", "degenerate grasp", "grasp outside image"}, report.table()


def _reader_fails(root: Path) -> set[str]:
    """The items whose reading (listing, loading, the dataset's item) raises a DataError naming a
    file under ``root``: the check must report each of them. Any other exception fails the test."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            samples = find_cornell_samples(root)
        except DataError as exc:
            assert str(root) in str(exc)
            return {"pcd0100"}
        failed = set()
        for sample in samples:
            try:
                load_cornell(sample)
                GraspDataset([sample], "depth", size=16, crop="gt_center", crop_size=32)[0]
            except DataError as exc:
                assert str(root) in str(exc)
                failed.add(sample.image_id)
        return failed


@SETTINGS
@given(data=mutated(CORNELL))
def test_cornell_negatives(cornell_sample: Path, data: bytes) -> None:
    # cneg.txt is read with the positives: whatever stops the reader, the check reports
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for f in cornell_sample.iterdir():
            shutil.copy(f, root / f.name)
        (root / "pcd0100cneg.txt").write_bytes(data)
        report = check_grasp_dataset(root, workers=1, use_cache=False)
        assert "unreadable" not in {f.kind for f in report.faults}
        assert _reader_fails(root) <= report.bad_items
        assert {f.file for f in report.faults} <= {str(root / "pcd0100cneg.txt")}, report.table()


def _jacquard_oracle(data: bytes) -> tuple[np.ndarray, list[int]] | None:
    rows, lines = [], []
    for lineno, line in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
        if not line.strip():
            continue
        values = _numbers([t.strip() for t in line.strip().split(";")])
        if values is None or len(values) != 5:
            return None
        if all(math.isfinite(v) for v in values):
            rows.append(values)
            lines.append(lineno)
    return np.array(rows).reshape(-1, 5), lines


@SETTINGS
@given(data=mutated(JACQUARD))
def test_jacquard_grasp_lines(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        view = Path(tmp) / "obj"
        view.mkdir()
        path = view / "0_obj_grasps.txt"
        path.write_bytes(data)
        write_depth_tiff(view / "0_obj_perfect_depth.tiff", np.full((48, 48), 0.6, dtype=np.float32))
        expected = _jacquard_oracle(data)
        try:
            parsed = parse_jacquard_grasps(path)
        except DataError as exc:
            assert str(path) in str(exc)
            assert expected is None, f"rejected a valid file: {exc}"
        else:
            assert expected is not None, "accepted a malformed file"
            np.testing.assert_array_equal(parsed.rows, expected[0])
            assert list(parsed.lines) == expected[1]
        report = check_grasp_dataset(Path(tmp), workers=1, use_cache=False)
        kinds = {f.kind for f in report.faults if f.file == str(path)}
        assert "unreadable" not in {f.kind for f in report.faults}
        if expected is None:
            assert kinds == {"malformed annotation"}, report.table()
        elif len(expected[0]) == 0:
            assert kinds == {"no valid grasp"}, report.table()


PCD = (
    "# .PCD v.7 - Point Cloud Data file format\nVERSION .7\nFIELDS x y z rgb index\nSIZE 4 4 4 4 4\n"
    "TYPE F F F F U\nCOUNT 1 1 1 1 1\nWIDTH 3\nHEIGHT 1\nPOINTS 3\nDATA ascii\n"
    "300 400 0 4.2108e+06 0\n600 0 800 4.2108e+06 7\n1 2 2 4.2108e+06 19\n"
)


@SETTINGS
@given(data=mutated(PCD))
def test_pcd_reader(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "pcd0100.txt"
    path.write_bytes(data)
    try:
        with np.errstate(all="ignore"):
            depth = read_pcd_depth(path, (4, 5))
    except DataError as exc:
        assert str(path) in str(exc)
    else:
        assert depth.shape == (4, 5) and depth.dtype == np.float32
        assert np.all(np.isfinite(depth)) and np.all(depth >= 0)


def _tiff_bytes() -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "d.tiff"
        write_depth_tiff(path, np.linspace(0.5, 0.7, 48, dtype=np.float32).reshape(6, 8))
        return path.read_bytes()


TIFF = _tiff_bytes()


@st.composite
def mutated_bytes(draw: st.DrawFn, data: bytes) -> bytes:
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(data) - 1))
        kind = draw(st.sampled_from(["truncate", "replace", "insert", "delete", "header", "word"]))
        if kind == "truncate":
            data = data[:at]
        elif kind == "replace":
            data = data[:at] + draw(st.binary(min_size=1, max_size=4)) + data[at + 1 :]
        elif kind == "insert":
            data = data[:at] + draw(st.binary(min_size=1, max_size=8)) + data[at:]
        elif kind == "delete":
            data = data[:at] + data[at + draw(st.integers(1, 16)) :]
        else:  # the header and the first directory (sizes, offsets, tags): the damage is most varied there
            at = draw(st.integers(0, min(len(data), 256) - 1))
            size = 1 if kind == "header" else 4
            data = data[:at] + draw(st.binary(min_size=size, max_size=size)) + data[at + size :]
        if not data:
            break
    return data


@SETTINGS
@given(data=mutated_bytes(TIFF))
@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::PIL.Image.DecompressionBombWarning")
def test_depth_tiff_reader(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "pcd0100d.tiff"
    path.write_bytes(data)
    try:
        depth = read_depth_tiff(path)
    except DataError as exc:
        assert str(path) in str(exc)
    else:
        assert depth.ndim == 2 and depth.dtype == np.float32 and depth.size > 0


def test_depth_tiff_claiming_a_huge_size(tmp_path: Path) -> None:
    # The first directory's ImageWidth / ImageLength set to 9000 (81 M pixels, under Pillow's
    # bomb limits) or 60000: a DataError, not a 324 MB allocation nor Pillow's DecompressionBombError.
    data = bytearray(TIFF)
    assert data[:4] == b"II*\x00"
    ifd = struct.unpack_from("<I", data, 4)[0]
    for side, message in ((9000, "depth image header claims 9000x9000"), (60000, "DecompressionBombError")):
        for k in range(struct.unpack_from("<H", data, ifd)[0]):
            at = ifd + 2 + 12 * k
            tag, kind = struct.unpack_from("<HH", data, at)
            if tag in (256, 257):
                struct.pack_into("<H" if kind == 3 else "<I", data, at + 8, side)
        path = tmp_path / "d.tiff"
        path.write_bytes(bytes(data))
        with pytest.raises(DataError, match=rf"d\.tiff: .*{message}"):
            read_depth_tiff(path)


def test_valid_files_parse_unchanged(tmp_path: Path) -> None:
    (tmp_path / "c.txt").write_text(CORNELL)
    assert parse_cornell_rectangles(tmp_path / "c.txt").corners.shape == (2, 4, 2)
    (tmp_path / "j.txt").write_text(JACQUARD)
    assert parse_jacquard_grasps(tmp_path / "j.txt").rows.shape == (3, 5)
    (tmp_path / "d.tiff").write_bytes(TIFF)
    assert read_depth_tiff(tmp_path / "d.tiff")[5, 7] == pytest.approx(0.7)
    (tmp_path / "p.txt").write_text(PCD)
    assert read_pcd_depth(tmp_path / "p.txt", (4, 5))[1, 2] == pytest.approx(1.0)
