"""The grasp dataset check on generated Cornell and Jacquard data with planted faults, and on the
real samples (which check clean)."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from singleshot.data.grasp.check import check_grasp_dataset
from singleshot.data.grasp.depth import write_depth_tiff
from singleshot.data.grasp.synthetic import generate_grasp_dataset
from singleshot.errors import ConfigError

pytestmark = pytest.mark.filterwarnings("ignore:.*inpainted")


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SINGLESHOT_CACHE", str(tmp_path / "cache"))


def _cornell(root: Path, n: int = 10) -> dict[str, Path]:
    """``n`` generated Cornell samples (48×64): id -> the folder holding its files."""
    generate_grasp_dataset(root, n, seed=0, size=(48, 64))
    return {p.name[: -len("cpos.txt")]: p.parent for p in sorted(root.glob("*/pcd*cpos.txt"))}


def _faults(report) -> set[tuple[str, str, str]]:  # type: ignore[no-untyped-def]
    """(file name, kind, item) of every fault."""
    return {(Path(f.file).name, f.kind, f.item) for f in report.faults}


def test_real_samples_check_clean(shared_data) -> None:  # type: ignore[no-untyped-def]
    for inp in ("depth", "rgb", "rgbd"):
        report = check_grasp_dataset(shared_data("cornell"), input=inp, use_cache=False)
        assert report.ok and report.n_items == 3, report.table()
        report = check_grasp_dataset(shared_data("jacquard"), input=inp, use_cache=False)
        assert report.ok and report.n_items == 3, report.table()
    # Only one of the three real views carries a stereo depth image: the other two are faults.
    report = check_grasp_dataset(shared_data("jacquard"), depth="stereo", use_cache=False)
    assert {f.kind for f in report.faults} == {"missing file"} and len(report.bad_items) == 2


def test_cornell_planted_faults(tmp_path: Path) -> None:
    root = tmp_path / "cornell"
    ids = _cornell(root, 12)
    assert check_grasp_dataset(root, input="rgbd").ok
    i = iter(sorted(ids))

    def at(suffix: str) -> tuple[str, Path]:
        item = next(i)
        return item, ids[item] / f"{item}{suffix}"

    corrupt = []
    for _ in range(2):  # truncated depth images
        item, f = at("d.tiff")
        f.write_bytes(f.read_bytes()[:300])
        corrupt.append((f.name, "unreadable depth", item))
    item, f = at("r.png")  # a PNG with a damaged chunk
    data = bytearray(f.read_bytes())
    data[60] ^= 0xFF
    f.write_bytes(bytes(data))
    corrupt.append((f.name, "unreadable image", item))
    item, f = at("cpos.txt")
    f.write_text("10 10\n20 x\n20 20\n10 20\n")
    corrupt.append((f.name, "malformed annotation", item))
    item, f = at("cpos.txt")
    f.write_text("10 10\n20 10\n20 20\n10 20\n11 11\n")  # 5 lines: not a multiple of 4
    corrupt.append((f.name, "malformed annotation", item))
    item, f = at("cpos.txt")
    f.write_text("NaN 10\n20 10\n20 20\n10 20\n")
    corrupt.append((f.name, "no valid grasp", item))
    item, f = at("cpos.txt")
    f.write_text("10 10\n20 10\n20 20\n10 20\n500 10\n510 10\n510 20\n500 20\n")
    corrupt.append((f.name, "grasp outside image", item))
    item, f = at("d.tiff")
    f.unlink()
    corrupt.append((f.name, "missing file", item))
    item, f = at("d.tiff")
    write_depth_tiff(f, np.full((48, 64), np.nan, dtype=np.float32))
    corrupt.append((f.name, "empty depth", item))
    item, f = at("r.png")
    Image.new("RGB", (32, 24)).save(f)
    corrupt.append((f.name, "size mismatch", item))
    item, f = at("cneg.txt")
    f.write_text("1 2 3\n")
    corrupt.append((f.name, "malformed annotation", item))
    item = next(i)  # the same id in a second folder
    (root / "99").mkdir()
    for suffix in ("cpos.txt", "cneg.txt", "d.tiff", "r.png"):
        shutil.copy(ids[item] / f"{item}{suffix}", root / "99" / f"{item}{suffix}")
    corrupt.append((f"{item}cpos.txt", "duplicate id", item))

    report = check_grasp_dataset(root, input="rgbd")
    assert _faults(report) == set(corrupt), report.table()
    assert report.n_items == 13 and not report.fatal and not report.from_cache
    table = report.table()
    for name, kind, _ in corrupt:
        assert name in table and kind in table
    # depth input: the RGB faults are none of its business
    depth_only = _faults(check_grasp_dataset(root, input="depth"))
    assert depth_only == {c for c in corrupt if c[1] not in ("unreadable image", "size mismatch")}


def test_cornell_nan_rectangle_beside_valid_ones_is_not_a_fault(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ids = _cornell(tmp_path, 2)
    item = sorted(ids)[0]
    f = ids[item] / f"{item}cpos.txt"
    f.write_text("NaN 10\n20 10\n20 20\n10 20\n" + f.read_text())
    with caplog.at_level(logging.WARNING, logger="singleshot.data.grasp.check"):
        report = check_grasp_dataset(tmp_path)
    assert report.ok, report.table()
    assert "1 rectangles with a NaN value in 1 files are skipped" in caplog.text


def test_cornell_missing_depth_and_its_cloud(tmp_path: Path) -> None:
    ids = _cornell(tmp_path, 2)
    a, b = sorted(ids)
    (ids[a] / f"{a}d.tiff").unlink()
    (ids[b] / f"{b}d.tiff").unlink()
    header = "VERSION .7\nFIELDS x y z rgb index\nDATA ascii\n"
    (ids[a] / f"{a}.txt").write_text(header + "300 400 0 0 5\n")
    (ids[b] / f"{b}.txt").write_text(header + "300 400 zero 0 5\n")
    report = check_grasp_dataset(tmp_path)
    by_item = {(f.item, f.kind): f.message for f in report.faults}
    assert "grasp convert from=pcd" in by_item[(a, "missing file")]
    assert "line 4" in by_item[(b, "malformed point cloud")] and (b, "missing file") in by_item
    assert check_grasp_dataset(tmp_path, input="rgb").ok  # RGB input needs no depth


def test_jacquard_planted_faults(tmp_path: Path) -> None:
    generate_grasp_dataset(tmp_path, 8, seed=1, size=(48, 48), layout="jacquard")
    views = sorted(tmp_path.rglob("*_grasps.txt"))
    assert check_grasp_dataset(tmp_path, input="rgbd").ok

    def item(g: Path) -> str:
        return g.name[: -len("_grasps.txt")]

    expected = set()
    g = views[0]
    g.write_text("1;2;3;4\n")
    expected.add((g.name, "malformed annotation", item(g)))
    g = views[1]
    g.write_text("nan;2;3;4;5\n\n")
    expected.add((g.name, "no valid grasp", item(g)))
    g = views[2]
    g.write_text("10;10;0;8;4\n10;10;0;-8;4\n12;10;0;8;0\n")
    expected.add((g.name, "degenerate grasp", item(g)))
    g = views[3]
    g.write_text("10;10;0;8;4\n100;10;0;8;4\n")
    expected.add((g.name, "grasp outside image", item(g)))
    g = views[4]
    d = g.with_name(f"{item(g)}_perfect_depth.tiff")
    d.unlink()
    expected.add((d.name, "missing file", item(g)))
    g = views[5]
    m = g.with_name(f"{item(g)}_mask.png")
    m.write_bytes(b"not a png")
    expected.add((m.name, "unreadable image", item(g)))
    g = views[6]
    r = g.with_name(f"{item(g)}_RGB.png")
    r.write_bytes(r.read_bytes()[:40])
    expected.add((r.name, "unreadable image", item(g)))
    report = check_grasp_dataset(tmp_path, input="rgbd")
    assert _faults(report) == expected, report.table()
    assert "2 grasps with zero or negative opening or jaw (first at line 2)" == next(
        f.message for f in report.faults if f.kind == "degenerate grasp"
    )
    assert report.dataset.endswith("(jacquard, perfect depth)")


def test_cache_reused_until_a_file_changes(tmp_path: Path) -> None:
    ids = _cornell(tmp_path / "d", 3)
    first = check_grasp_dataset(tmp_path / "d")
    assert not first.from_cache
    again = check_grasp_dataset(tmp_path / "d")
    assert again.from_cache and again.faults == first.faults and again.n_items == 3
    assert not check_grasp_dataset(tmp_path / "d", input="rgbd").from_cache  # other settings: other key
    assert not (tmp_path / "d" / "checks").exists() and any((tmp_path / "cache" / "checks").iterdir())
    item = sorted(ids)[1]
    f = ids[item] / f"{item}cpos.txt"
    f.write_text("1 2\n")
    st = f.stat()
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    report = check_grasp_dataset(tmp_path / "d")
    assert not report.from_cache and report.bad_items == {item}
    assert not check_grasp_dataset(tmp_path / "d", use_cache=False).from_cache


def test_whole_dataset_faults(tmp_path: Path) -> None:
    report = check_grasp_dataset(tmp_path / "absent")
    assert report.fatal and "not found" in report.faults[0].message
    (tmp_path / "empty").mkdir()
    report = check_grasp_dataset(tmp_path / "empty")
    assert report.fatal and report.faults[0].kind == "no annotations"
    _cornell(tmp_path / "c", 2)
    report = check_grasp_dataset(tmp_path / "c", object_map=tmp_path / "nope.txt")
    assert [(f.kind, f.item) for f in report.faults] == [("missing file", "")]
    (tmp_path / "map.txt").write_text("100 a\nonlyone\n")
    report = check_grasp_dataset(tmp_path / "c", object_map=tmp_path / "map.txt")
    assert [(f.kind, f.item) for f in report.faults] == [("malformed object map", "")]
    assert "line 2" in report.faults[0].message
    with pytest.raises(ConfigError, match="input"):
        check_grasp_dataset(tmp_path / "c", input="ir")
