"""Depth repair (inpainting), reading and input normalisation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from singleshot.data.grasp.depth import (
    inpaint_depth,
    normalise_depth,
    normalise_rgb,
    read_depth_tiff,
    repair_depth,
    write_depth_tiff,
)
from singleshot.errors import DataError


def test_inpaint_reproduces_a_plane() -> None:
    # A tilted plane is harmonic: a diffusion fill must give it back inside the holes.
    yy, xx = np.mgrid[0:60, 0:80]
    plane = (0.6 + 0.001 * xx + 0.0005 * yy).astype(np.float32)
    d = plane.copy()
    d[20:26, 30:37] = 0.0
    d[40:43, 5:9] = np.nan
    d[0:2, 70:74] = -1.0  # a hole on the border
    out = inpaint_depth(d, iterations=400)
    assert out.dtype == np.float32 and np.isfinite(out).all()
    valid = np.isfinite(d) & (d > 0)
    np.testing.assert_array_equal(out[valid], d[valid])
    np.testing.assert_allclose(out[3:], plane[3:], atol=2e-4)
    # On the border the fill mirrors the image (zero normal slope), so a tilted plane is only approached.
    np.testing.assert_allclose(out[:3], plane[:3], atol=1e-3)


def test_inpaint_nearest_only_takes_a_neighbour_value() -> None:
    d = np.array([[1.0, 0.0, 0.0, 2.0]], dtype=np.float32)
    out = inpaint_depth(d, iterations=0)
    np.testing.assert_array_equal(out, [[1.0, 1.0, 2.0, 2.0]])


def test_repair_warns_with_file_and_fraction() -> None:
    d = np.full((10, 10), 0.7, dtype=np.float32)
    d[0, :5] = np.nan
    with pytest.warns(UserWarning, match=r"some/file\.tiff.*5 invalid.*5\.00%"):
        out = repair_depth(d, "some/file.tiff")
    assert np.allclose(out, 0.7)


def test_repair_all_invalid_is_an_error() -> None:
    with pytest.raises(DataError, match="x.tiff.*no valid pixel"):
        repair_depth(np.zeros((4, 4), dtype=np.float32), "x.tiff")


def test_tiff_round_trip_and_errors(tmp_path: Path) -> None:
    d = np.random.default_rng(0).uniform(0.5, 1.0, (7, 9)).astype(np.float32)
    write_depth_tiff(tmp_path / "a.tiff", d)
    np.testing.assert_array_equal(read_depth_tiff(tmp_path / "a.tiff"), d)
    with pytest.raises(DataError, match="not found"):
        read_depth_tiff(tmp_path / "missing.tiff")
    (tmp_path / "bad.tiff").write_bytes(b"not a tiff")
    with pytest.raises(DataError, match="bad.tiff"):
        read_depth_tiff(tmp_path / "bad.tiff")


def test_real_cornell_depth_reads(shared_data) -> None:  # type: ignore[no-untyped-def]
    d = read_depth_tiff(shared_data("cornell") / "pcd0100d.tiff")
    assert d.shape == (480, 640) and d.dtype == np.float32
    assert np.isfinite(d).all() and 0.5 < float(np.median(d)) < 2.0


def test_normalise_depth_by_hand() -> None:
    d = np.array([[0.0, 1.0], [2.0, 5.0]], dtype=np.float32)  # mean 2
    np.testing.assert_allclose(normalise_depth(d), [[-1.0, -1.0], [0.0, 1.0]])


def test_normalise_rgb_subtracts_the_mean() -> None:
    rgb = np.zeros((2, 3, 3), dtype=np.uint8)
    rgb[..., 0] = 255
    x = normalise_rgb(rgb)
    assert x.shape == (3, 2, 3) and x.dtype == np.float32
    np.testing.assert_allclose(x[0], 1 - 1 / 3, rtol=1e-6)
    np.testing.assert_allclose(x[1], -1 / 3, rtol=1e-6)
