"""Rectangle <-> (cx, cy, angle, opening, jaw) conversions, checked by hand on real Cornell lines."""

from __future__ import annotations

import math

import numpy as np
import pytest

from singleshot.data.grasp.rects import (
    corners_to_grasps,
    grasps_to_corners,
    grasps_to_jacquard,
    jacquard_to_grasps,
    wrap_angle,
)


def test_first_rectangle_of_pcd0100_by_hand() -> None:
    # The first 4 lines of the real Cornell file pcd0100cpos.txt.
    corners = np.array([[[253, 319.7], [309, 324], [307, 350], [251, 345.7]]])
    g = corners_to_grasps(corners)[0]
    assert g[0] == pytest.approx((253 + 309 + 307 + 251) / 4)
    assert g[1] == pytest.approx((319.7 + 324 + 350 + 345.7) / 4)
    # p0 -> p1 goes right and slightly down on screen: a small clockwise (negative) angle.
    assert g[2] == pytest.approx(math.atan2(-4.3, 56))
    assert g[2] < 0
    assert g[3] == pytest.approx(math.hypot(56, 4.3))
    assert g[4] == pytest.approx(math.hypot(-2, 26))


def test_opening_direction_convention() -> None:
    # angle 90°: the opening runs straight up the screen (cos 90°, -sin 90°) = (0, -1).
    c = grasps_to_corners(np.array([[10.0, 20.0, math.pi / 2, 8.0, 4.0]]))[0]
    edge = c[1] - c[0]
    assert edge == pytest.approx([0.0, -8.0], abs=1e-9)
    side = c[2] - c[1]
    assert np.hypot(*side) == pytest.approx(4.0)
    assert c.mean(axis=0) == pytest.approx([10.0, 20.0])


def test_round_trip_random() -> None:
    rng = np.random.default_rng(0)
    g = np.stack(
        [
            rng.uniform(0, 600, 50),
            rng.uniform(0, 400, 50),
            rng.uniform(-np.pi / 2, np.pi / 2, 50),
            rng.uniform(5, 100, 50),
            rng.uniform(5, 50, 50),
        ],
        axis=1,
    )
    back = corners_to_grasps(grasps_to_corners(g))
    np.testing.assert_allclose(back, g, atol=1e-9)


def test_wrap_angle_modulo_pi() -> None:
    a = np.array([math.pi / 2, -math.pi / 2, math.radians(100), math.radians(-100), 3 * math.pi + 0.1])
    expected = [-math.pi / 2, -math.pi / 2, math.radians(-80), math.radians(80), 0.1]
    np.testing.assert_allclose(wrap_angle(a), expected, atol=1e-12)


def test_jacquard_angle_is_negated_degrees() -> None:
    g = jacquard_to_grasps(np.array([[470.1, 253.9, 68.2615, 25.5, 25.6]]))[0]
    assert g[2] == pytest.approx(-math.radians(68.2615))
    assert tuple(g[[0, 1, 3, 4]]) == pytest.approx((470.1, 253.9, 25.5, 25.6))
    line = grasps_to_jacquard(g[None])[0]
    x, y, th, op, jaw = (float(v) for v in line.split(";"))
    assert (x, y, th, op, jaw) == pytest.approx((470.1, 253.9, 68.2615, 25.5, 25.6), abs=1e-4)
