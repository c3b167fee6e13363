"""Grasp geometry: corners, angle differences, exact polygon IoU and the reference's raster IoU.

References: hand-computed rectangles, the reference's corner formula (dougsm/ggcnn ``Grasp.as_gr``
in (row, col)), a fine-grid area estimate, and an independent crossing-number rasteriser written
here after ``skimage.draw.polygon`` (pixel centres inside or on the polygon, r >= 0, c >= 0).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from singleshot.ops.grasp import (
    angle_diff,
    grasp_corners,
    grasp_iou,
    iou_aligned,
    polygon_iou_aligned,
    raster_iou_aligned,
)


def _g(*rows: tuple[float, float, float, float, float]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float64)


def _reference_corners_rc(cy: float, cx: float, angle: float, length: float, width: float) -> np.ndarray:
    """Corners (row, col) as the reference's ``Grasp.as_gr`` defines them."""
    xo, yo = math.cos(angle), math.sin(angle)
    y1, x1 = cy + length / 2 * yo, cx - length / 2 * xo
    y2, x2 = cy - length / 2 * yo, cx + length / 2 * xo
    return np.array(
        [
            [y1 - width / 2 * xo, x1 - width / 2 * yo],
            [y2 - width / 2 * xo, x2 - width / 2 * yo],
            [y2 + width / 2 * xo, x2 + width / 2 * yo],
            [y1 + width / 2 * xo, x1 + width / 2 * yo],
        ]
    )


def _pixels_in_polygon(rc: np.ndarray) -> set[tuple[int, int]]:
    """Pixels (r, c), r >= 0 and c >= 0, whose centre is inside or on the polygon ``rc`` (N×2
    rows/cols): an even-odd crossing test plus an explicit on-edge test."""
    r0, c0 = max(0, int(math.floor(rc[:, 0].min()))), max(0, int(math.floor(rc[:, 1].min())))
    r1, c1 = int(math.ceil(rc[:, 0].max())), int(math.ceil(rc[:, 1].max()))
    r, c = np.mgrid[r0 : r1 + 1, c0 : c1 + 1].astype(np.float64)
    inside = np.zeros(r.shape, dtype=bool)
    on_edge = np.zeros(r.shape, dtype=bool)
    n = len(rc)
    for i in range(n):
        (ya, xa), (yb, xb) = rc[i], rc[(i + 1) % n]
        cross = (xb - xa) * (r - ya) - (yb - ya) * (c - xa)
        within_x = (min(xa, xb) - 1e-9 <= c) & (c <= max(xa, xb) + 1e-9)
        within_y = (min(ya, yb) - 1e-9 <= r) & (r <= max(ya, yb) + 1e-9)
        on_edge |= (np.abs(cross) < 1e-9) & within_x & within_y
        if ya != yb:
            inside ^= ((ya > r) != (yb > r)) & (c < xa + (r - ya) * (xb - xa) / (yb - ya))
    rows, cols = np.nonzero(inside | on_edge)
    return {(int(a) + r0, int(b) + c0) for a, b in zip(rows, cols)}


def _random_pairs(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Cornell-like rectangles (opening 30–100 px, jaw 15–50 px) near each other."""
    gen = torch.Generator().manual_seed(seed)

    def r(lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(n, generator=gen, dtype=torch.float64)

    a = torch.stack([r(60, 90), r(60, 90), r(-math.pi / 2, math.pi / 2), r(30, 100), r(15, 50)], 1)
    near = [a[:, 0] + r(-25, 25), a[:, 1] + r(-25, 25)]
    b = torch.stack([*near, r(-math.pi / 2, math.pi / 2), r(30, 100), r(15, 50)], 1)
    return a, b


def test_corners_axis_aligned_and_vertical() -> None:
    c = grasp_corners(_g((10, 20, 0.0, 8, 4)))[0]
    # opening along +x, jaw along y: p0 = (6, 18), p1 = (14, 18), p2 = (14, 22), p3 = (6, 22)
    assert torch.allclose(c, _g((6, 18), (14, 18), (14, 22), (6, 22)))
    c = grasp_corners(_g((10, 20, math.pi / 2, 8, 4)))[0]
    # 90° CCW on screen: the opening runs along (0, -1), i.e. upwards
    assert torch.allclose(c[1] - c[0], _g((0.0, -8.0)).view(2), atol=1e-12)


def test_corners_match_reference_formula_and_angle() -> None:
    for cx, cy, th, length, width in [(31.5, 40.2, 0.7, 50, 20), (100, 80, -1.3, 33, 17), (5, 6, 2.9, 10, 4)]:
        ours = grasp_corners(_g((cx, cy, th, length, width)))[0].numpy()
        ref_rc = _reference_corners_rc(cy, cx, th, length, width)
        np.testing.assert_allclose(ours[:, ::-1], ref_rc, atol=1e-9)
        dx, dy = ours[1] - ours[0]
        assert math.isclose(math.atan2(-dy, dx), math.atan2(math.sin(th), math.cos(th)), abs_tol=1e-9)


def test_angle_diff_modulo_pi() -> None:
    a = torch.tensor([math.radians(89), 0.1, 3.0, -1.5])
    d = angle_diff(a, torch.tensor([math.radians(-89), 0.1 + math.pi, 0.0, 1.5]))
    expected = torch.tensor([math.radians(2), 0.0, math.pi - 3.0, math.pi - 3.0])
    assert torch.allclose(d, expected, atol=1e-6)
    assert float(d.max()) <= math.pi / 2


def test_polygon_iou_hand_cases() -> None:
    a = _g((50, 50, 0.3, 40, 20))
    assert float(polygon_iou_aligned(a, a)) == pytest.approx(1.0, abs=1e-12)
    # shifted by s along the opening: intersection (L - s)·W, union (L + s)·W
    for s in (5.0, 10.0, 25.0, 39.0):
        b = a.clone()
        b[0, 0] += s * math.cos(0.3)
        b[0, 1] -= s * math.sin(0.3)
        assert float(polygon_iou_aligned(a, b)) == pytest.approx((40 - s) / (40 + s), abs=1e-9)
    # shifted along both axes (axis aligned): overlap (40-6)·(20-4) over 2·800 - that
    b = _g((56, 54, 0.0, 40, 20))
    inter = 34 * 16
    assert float(polygon_iou_aligned(_g((50, 50, 0.0, 40, 20)), b)) == pytest.approx(inter / (1600 - inter), abs=1e-9)
    # a square and the same square turned 45°: a regular octagon, IoU = 1/sqrt(2)
    sq = _g((0, 0, 0.0, 10, 10))
    rot = _g((0, 0, math.pi / 4, 10, 10))
    assert float(polygon_iou_aligned(sq, rot)) == pytest.approx(1 / math.sqrt(2), abs=1e-9)
    # containment and disjoint
    assert float(polygon_iou_aligned(_g((0, 0, 0.4, 40, 20)), _g((0, 0, 0.4, 20, 10)))) == pytest.approx(0.25, abs=1e-9)
    assert float(polygon_iou_aligned(_g((0, 0, 0.0, 10, 10)), _g((30, 0, 0.0, 10, 10)))) == 0.0
    # a turn by pi is the same rectangle; a degenerate one has IoU 0
    assert float(polygon_iou_aligned(a, a + _g((0, 0, math.pi, 0, 0)))) == pytest.approx(1.0, abs=1e-9)
    assert float(polygon_iou_aligned(_g((0, 0, 0, 0, 10)), _g((0, 0, 0, 0, 10)))) == 0.0


def test_polygon_iou_matches_fine_grid_area() -> None:
    """Independent area estimate: count the centres of a 0.05 px grid inside both rectangles."""
    a, b = _random_pairs(8, seed=1)
    exact = polygon_iou_aligned(a, b)
    step = 0.05
    for i in range(a.shape[0]):
        pa = np.asarray(grasp_corners(a[i]))
        pb = np.asarray(grasp_corners(b[i]))
        lo = np.minimum(pa.min(0), pb.min(0))
        hi = np.maximum(pa.max(0), pb.max(0))
        xs = np.arange(lo[0], hi[0], step) + step / 2
        ys = np.arange(lo[1], hi[1], step) + step / 2
        x, y = np.meshgrid(xs, ys)

        def inside(g: torch.Tensor) -> np.ndarray:
            cx, cy, th, length, width = g.tolist()
            u = (x - cx) * math.cos(th) - (y - cy) * math.sin(th)
            v = (x - cx) * math.sin(th) + (y - cy) * math.cos(th)
            return (np.abs(u) <= length / 2) & (np.abs(v) <= width / 2)

        ia, ib = inside(a[i]), inside(b[i])
        estimate = (ia & ib).sum() / max((ia | ib).sum(), 1)
        assert abs(float(exact[i]) - estimate) < 0.005, i
    assert torch.allclose(polygon_iou_aligned(a, b), polygon_iou_aligned(b, a), atol=1e-12)


def test_raster_iou_hand_case() -> None:
    # x in [8, 12], y in [9, 11]: 5 × 3 pixel centres (edges included); shifted by 1 px: 4 × 3 shared
    a = _g((10, 10, 0.0, 4, 2))
    b = _g((11, 10, 0.0, 4, 2))
    assert float(raster_iou_aligned(a, b)) == pytest.approx(12 / 18)
    assert float(raster_iou_aligned(a, a)) == 1.0
    # pixels at negative coordinates do not exist for the reference: only c >= 0 counts
    left = _g((0.0, 10, 0.0, 4, 2))  # x in [-2, 2] → 3 columns
    right = _g((1.0, 10, 0.0, 4, 2))  # x in [-1, 3] → 4 columns, 3 shared
    assert float(raster_iou_aligned(left, right)) == pytest.approx(9 / 12)


def test_raster_iou_matches_independent_rasteriser() -> None:
    a, b = _random_pairs(6, seed=2)
    a[0, :2] = torch.tensor([8.0, 5.0], dtype=torch.float64)  # partly at negative coordinates
    b[0, :2] = torch.tensor([12.0, 3.0], dtype=torch.float64)
    ours = raster_iou_aligned(a, b)
    for i in range(a.shape[0]):
        sa = _pixels_in_polygon(_reference_corners_rc(float(a[i, 1]), float(a[i, 0]), *a[i, 2:].tolist()))
        sb = _pixels_in_polygon(_reference_corners_rc(float(b[i, 1]), float(b[i, 0]), *b[i, 2:].tolist()))
        expected = len(sa & sb) / len(sa | sb) if sa | sb else 0.0
        assert float(ours[i]) == pytest.approx(expected, abs=1e-12), i


def test_polygon_and_raster_iou_agree_within_0025() -> None:
    a, b = _random_pairs(400, seed=3)
    poly = polygon_iou_aligned(a, b)
    ras = raster_iou_aligned(a, b)
    assert float((poly - ras).abs().max()) < 0.025
    assert float(poly.max()) > 0.5 and float(poly.min()) == 0.0  # the sample spans the range


def test_grasp_iou_matrix_and_modes() -> None:
    a, b = _random_pairs(5, seed=4)
    m = grasp_iou(a, b[:3])
    assert m.shape == (5, 3)
    for i in range(5):
        for j in range(3):
            assert float(m[i, j]) == pytest.approx(float(polygon_iou_aligned(a[i : i + 1], b[j : j + 1])), abs=1e-12)
    assert grasp_iou(a, b[:0]).shape == (5, 0)
    assert grasp_iou(a.float(), b.float()).dtype == torch.float32
    assert torch.allclose(iou_aligned(a, b, "raster"), raster_iou_aligned(a, b))
    with pytest.raises(ValueError, match="mode"):
        iou_aligned(a, b, "area")  # type: ignore[arg-type]
