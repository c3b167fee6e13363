"""Cornell reader: real samples, malformed files, layout discovery."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from singleshot.data.grasp.cornell import find_cornell_samples, load_cornell, read_cornell_rectangles, read_object_map
from singleshot.errors import DataError


def test_real_samples(shared_data) -> None:  # type: ignore[no-untyped-def]
    root = shared_data("cornell")
    samples = find_cornell_samples(root)
    assert [s.image_id for s in samples] == ["pcd0100", "pcd0101", "pcd0102"]
    img = load_cornell(samples[0], depth=True, rgb=True)
    assert img.depth is not None and img.depth.shape == (480, 640) and img.depth.dtype == np.float32
    assert img.rgb is not None and img.rgb.shape == (480, 640, 3) and img.rgb.dtype == np.uint8
    assert img.size == (480, 640)
    n_lines = sum(1 for line in (root / "pcd0100cpos.txt").read_text().splitlines() if line.strip())
    assert len(img.grasps) == n_lines // 4 == 4
    assert len(img.negatives) == 3
    # First rectangle (253 319.7 / 309 324 / 307 350 / 251 345.7), by hand.
    cx, cy, ang, op, jaw = img.grasps[0]
    assert (cx, cy) == pytest.approx((280.0, 334.85), abs=1e-4)
    assert ang == pytest.approx(math.atan2(-4.3, 56), abs=1e-6)
    assert (op, jaw) == pytest.approx((math.hypot(56, 4.3), math.hypot(2, 26)), abs=1e-4)


def test_real_grasps_span_the_object(shared_data) -> None:  # type: ignore[no-untyped-def]
    # The opening runs across the object: seen along it, the centre stands out of the surface
    # (mean depth at the fingers minus depth at the centre) more than seen across it. This holds
    # for all 12 real rectangles, and fails for the jaw direction (p1 -> p2) taken as the opening.
    def bump(depth: np.ndarray, cx: float, cy: float, t: float, half: float) -> float:
        u = np.array([math.cos(t), -math.sin(t)]) * half
        ends = [depth[int(round(cy + k * u[1])), int(round(cx + k * u[0]))] for k in (-1, 1)]
        return float(np.mean(ends) - depth[int(round(cy)), int(round(cx))])

    n = 0
    for s in find_cornell_samples(shared_data("cornell")):
        img = load_cornell(s)
        assert img.depth is not None
        for cx, cy, th, op, _ in img.grasps:
            assert bump(img.depth, cx, cy, th, op / 2) > bump(img.depth, cx, cy, th + math.pi / 2, op / 2)
            n += 1
    assert n == 12


def _copy_sample(src: Path, dst: Path, stem: str = "pcd0100", new: str = "pcd0100") -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for suffix in ("d.tiff", "r.png", "cpos.txt", "cneg.txt"):
        shutil.copy(src / f"{stem}{suffix}", dst / f"{new}{suffix}")


def test_subfolders_and_order(shared_data, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    src = shared_data("cornell")
    _copy_sample(src, tmp_path / "02", "pcd0101", "pcd0201")
    _copy_sample(src, tmp_path / "01", "pcd0100", "pcd0100")
    (tmp_path / "objects.txt").write_text("100 a\npcd0201 b\n")
    samples = find_cornell_samples(tmp_path, object_map=tmp_path / "objects.txt")
    assert [(s.image_id, s.object_id, s.index) for s in samples] == [("pcd0100", "a", 100), ("pcd0201", "b", 201)]
    assert read_object_map({"7": "x"}) == {"pcd0007": "x"}


def test_nan_rectangle_skipped_with_warning(tmp_path: Path) -> None:
    f = tmp_path / "pcd0001cpos.txt"
    f.write_text("1 2\n3 4\n5 6\n7 8\nNaN 1\n3 4\n5 6\n7 8\n\n10 20\n30 20\n30 30\n10 30\n")
    with pytest.warns(UserWarning, match=r"pcd0001cpos\.txt: line 5: .*skipped"):
        rects = read_cornell_rectangles(f)
    assert rects.shape == (2, 4, 2)
    assert rects[1, 0].tolist() == [10.0, 20.0]


def test_unparsable_line_names_file_and_line(tmp_path: Path) -> None:
    f = tmp_path / "pcd0001cpos.txt"
    f.write_text("1 2\n3 4\n5 x6\n7 8\n")
    with pytest.raises(DataError, match=r"pcd0001cpos\.txt: line 3"):
        read_cornell_rectangles(f)
    f.write_text("1 2\n3 4\n5 6\n7 8\n1 2\n")
    with pytest.raises(DataError, match=r"line 5: incomplete rectangle"):
        read_cornell_rectangles(f)


@pytest.mark.filterwarnings("ignore:.*non-finite coordinate skipped")
def test_image_without_positives(shared_data, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    src = shared_data("cornell")
    _copy_sample(src, tmp_path, "pcd0100", "pcd0100")
    _copy_sample(src, tmp_path, "pcd0101", "pcd0101")
    (tmp_path / "pcd0101cpos.txt").write_text("NaN NaN\n1 1\n2 2\n3 3\n")
    with pytest.warns(UserWarning, match=r"pcd0101cpos\.txt: no usable positive rectangle; image skipped"):
        samples = find_cornell_samples(tmp_path)
    assert [s.image_id for s in samples] == ["pcd0100"]
    with pytest.warns(UserWarning), pytest.raises(DataError, match="pcd0101cpos.txt: no usable positive"):
        find_cornell_samples(tmp_path, strict=True)


def test_missing_depth(shared_data, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _copy_sample(shared_data("cornell"), tmp_path)
    (tmp_path / "pcd0100d.tiff").unlink()
    with pytest.warns(UserWarning, match="pcd0100d.tiff: not found"):
        (s,) = find_cornell_samples(tmp_path)
    assert load_cornell(s, depth=False, rgb=True).rgb is not None
    with pytest.raises(DataError, match="convert_cornell_pcd"):
        load_cornell(s)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no Cornell rectangle file"):
        find_cornell_samples(tmp_path / "empty")
    with pytest.raises(DataError, match="root not found"):
        find_cornell_samples(tmp_path / "absent")
