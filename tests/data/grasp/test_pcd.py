"""Cornell point cloud -> depth TIFF conversion on small clouds written here."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from singleshot.data.grasp.depth import read_depth_tiff
from singleshot.data.grasp.pcd import convert_cornell_pcd, pcd_to_depth, read_pcd_depth
from singleshot.errors import DataError

HEADER = """# .PCD v.7 - Point Cloud Data file format
VERSION .7
FIELDS x y z rgb index
SIZE 4 4 4 4 4
TYPE F F F F U
COUNT 1 1 1 1 1
WIDTH {n}
HEIGHT 1
VIEWPOINT 0 0 0 1 0 0 0
POINTS {n}
DATA ascii
"""


def _write_cloud(path: Path, points: list[tuple[float, float, float, int]]) -> None:
    lines = [f"{x} {y} {z} 4.2108e+06 {i}" for x, y, z, i in points]
    path.write_text(HEADER.format(n=len(points)) + "\n".join(lines) + "\n")


def test_depth_is_euclidean_norm_in_metres(tmp_path: Path) -> None:
    shape = (6, 8)
    pts = [(300.0, 400.0, 0.0, 0), (600.0, 0.0, 800.0, 8 * 2 + 3), (1.0, 2.0, 2.0, 47)]
    _write_cloud(tmp_path / "pcd0001.txt", pts)
    d = read_pcd_depth(tmp_path / "pcd0001.txt", shape)
    assert d.shape == shape and d.dtype == np.float32
    assert d[0, 0] == pytest.approx(0.5)  # |(300, 400, 0)| = 500 mm
    assert d[2, 3] == pytest.approx(1.0)  # |(600, 0, 800)| = 1000 mm
    assert d[5, 7] == pytest.approx(0.003)
    assert (d > 0).sum() == 3


def test_pcd_to_depth_inpaints_and_writes_tiff(tmp_path: Path) -> None:
    # A full 480x640 cloud of a plane whose range grows from 600 to 700 mm left to right, with three
    # rectangular holes (pixels without a point).
    cols = np.arange(480 * 640) % 640
    rng_mm = 600 + 100 * cols / 639.0
    holes = np.zeros((480, 640), dtype=bool)
    holes[100:110, 200:215] = holes[300:303, 0:4] = holes[470:480, 630:640] = True
    idx = np.flatnonzero(~holes.reshape(-1))
    body = "\n".join(f"0 0 {rng_mm[i]:.4f} 4.2108e+06 {i}" for i in idx)
    (tmp_path / "pcd0100.txt").write_text(HEADER.format(n=len(idx)) + body + "\n")
    depth = pcd_to_depth(tmp_path / "pcd0100.txt")
    out = tmp_path / "pcd0100d.tiff"
    assert out.is_file()
    back = read_depth_tiff(out)
    assert back.shape == (480, 640) and back.dtype == np.float32
    np.testing.assert_array_equal(back, depth)
    assert (back > 0).all()
    expected = (rng_mm / 1000.0).reshape(480, 640)
    np.testing.assert_allclose(back[~holes], expected[~holes], rtol=1e-6)
    np.testing.assert_allclose(back[100:110, 200:215], expected[100:110, 200:215], atol=2e-4)  # interior hole
    np.testing.assert_allclose(back[holes], expected[holes], atol=5e-3)  # border holes: close


def test_convert_root_with_subfolders(tmp_path: Path) -> None:
    for sub, n in (("01", 100), ("02", 200)):
        (tmp_path / sub).mkdir()
        _write_cloud(tmp_path / sub / f"pcd{n:04d}.txt", [(0.0, 0.0, 650.0, i) for i in range(12)])
    (tmp_path / "01" / "pcd0100cpos.txt").write_text("1 2\n")  # not a cloud
    written = convert_cornell_pcd(tmp_path, shape=(3, 4))
    assert [p.name for p in written] == ["pcd0100d.tiff", "pcd0200d.tiff"]
    np.testing.assert_allclose(read_depth_tiff(tmp_path / "02" / "pcd0200d.tiff"), 0.65, rtol=1e-6)
    assert convert_cornell_pcd(tmp_path, shape=(3, 4)) == []  # existing files are kept


def test_malformed_lines_name_the_line(tmp_path: Path) -> None:
    p = tmp_path / "pcd0002.txt"
    p.write_text(HEADER.format(n=2) + "1 2 3 4 0\n1 2 oops 4 1\n")
    with pytest.raises(DataError, match=r"pcd0002\.txt: line 13"):
        read_pcd_depth(p, (2, 2))
    p.write_text(HEADER.format(n=1).replace("DATA ascii", "DATA binary") + "xx")
    with pytest.raises(DataError, match="ASCII"):
        read_pcd_depth(p, (2, 2))
    p.write_text(HEADER.format(n=1) + "1 2 3 4 99\n")
    with pytest.raises(DataError, match="index 99 outside"):
        read_pcd_depth(p, (2, 2))
    with pytest.raises(DataError, match="no Cornell point cloud"):
        convert_cornell_pcd(tmp_path / "empty_dir_that_does_not_exist")


def test_a_depth_image_older_than_its_cloud_is_written_again(tmp_path: Path) -> None:
    """The depth images are derived from the clouds: one is kept only while it is newer than its
    cloud (a cloud replaced since gives a new depth image, not the old one)."""
    for n in (100, 101):
        _write_cloud(tmp_path / f"pcd{n:04d}.txt", [(0.0, 0.0, 650.0, i) for i in range(12)])
    assert len(convert_cornell_pcd(tmp_path, shape=(3, 4))) == 2
    cloud = tmp_path / "pcd0101.txt"
    _write_cloud(cloud, [(0.0, 0.0, 800.0, i) for i in range(12)])  # the cloud replaced
    tiff = tmp_path / "pcd0101d.tiff"
    old = tiff.stat().st_mtime_ns - 10_000_000_000  # the depth image made 10 s ago, the cloud replaced 9 s ago
    os.utime(tiff, ns=(old, old))
    os.utime(cloud, ns=(old + 1_000_000_000, old + 1_000_000_000))
    assert [p.name for p in convert_cornell_pcd(tmp_path, shape=(3, 4))] == ["pcd0101d.tiff"]
    np.testing.assert_allclose(read_depth_tiff(tiff), 0.8, rtol=1e-6)
    assert convert_cornell_pcd(tmp_path, shape=(3, 4)) == []
