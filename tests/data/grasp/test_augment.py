"""Augmentations move pixels and grasps together; checked by painting rectangles and against numpy / torchvision."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF

from singleshot.data.grasp.augment import (
    AugmentParams,
    GraspAugment,
    choose_crop,
    flip,
    rotate,
    transform_grasps,
    view_matrix,
    warp,
    zoom,
)
from singleshot.errors import ConfigError


def paint(shape: tuple[int, int], g: np.ndarray, shrink: float = 0.0) -> np.ndarray:
    """Pixels whose centre lies inside grasp g = (cx, cy, angle, opening, jaw), written from the
    convention alone: opening along (cos θ, −sin θ), jaw along (sin θ, cos θ)."""
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
    cx, cy, th, op, jaw = (float(v) for v in g)
    dx, dy = xx - cx, yy - cy
    along = dx * math.cos(th) - dy * math.sin(th)
    across = dx * math.sin(th) + dy * math.cos(th)
    return (np.abs(along) <= op / 2 - shrink) & (np.abs(across) <= jaw / 2 - shrink)


G = np.array([[40.0, 30.0, math.radians(20), 36.0, 14.0]])


@pytest.mark.parametrize("angle_deg", [37.0, -115.0, 90.0])
def test_rotation_moves_painted_rectangle_with_grasp(angle_deg: float) -> None:
    img = paint((80, 90), G[0]).astype(np.float32)
    out, g2 = rotate(img, G, math.radians(angle_deg))
    painted = out > 0.5
    assert painted.sum() > 300
    assert not (painted & ~paint(out.shape, g2[0], shrink=-1.0)).any()  # every painted pixel inside (1 px slack)
    assert painted[paint(out.shape, g2[0], shrink=1.0)].all()  # the rectangle's interior is painted
    assert g2[0, 3:] == pytest.approx(G[0, 3:], rel=1e-5)
    expected = (G[0, 2] + math.radians(angle_deg) + math.pi / 2) % math.pi - math.pi / 2
    assert g2[0, 2] == pytest.approx(expected, abs=1e-5)


def test_quarter_turn_matches_numpy_and_four_are_identity() -> None:
    rng = np.random.default_rng(0)
    img = rng.uniform(0, 1, (50, 50)).astype(np.float32)
    out, g = rotate(img, G, math.pi / 2)
    np.testing.assert_array_equal(out, np.rot90(img))  # np.rot90 turns counter-clockwise on screen
    np.testing.assert_array_equal(paint((50, 50), g[0]), np.rot90(paint((50, 50), G[0])))
    cur, cg = img, G
    for _ in range(4):
        cur, cg = rotate(cur, cg, math.pi / 2)
    np.testing.assert_array_equal(cur, img)
    np.testing.assert_allclose(cg[0, [0, 1, 3, 4]], G[0, [0, 1, 3, 4]], atol=1e-4)
    d = (cg[0, 2] - G[0, 2] + math.pi / 2) % math.pi - math.pi / 2
    assert abs(d) < 1e-5


def test_arbitrary_rotation_matches_torchvision() -> None:
    img = np.zeros((64, 64), dtype=np.float32)
    img[20:30, 15:45] = 1.0
    img[35:50, 40:44] = 0.5
    out, _ = rotate(img, np.zeros((0, 5)), math.radians(23))
    ref = TF.rotate(torch.from_numpy(img)[None], 23.0, interpolation=TF.InterpolationMode.BILINEAR)[0].numpy()
    np.testing.assert_allclose(out, ref, atol=1e-4)  # the content stays away from the borders


@pytest.mark.parametrize("horizontal", [True, False])
def test_flip_negates_angle_and_twice_is_identity(horizontal: bool) -> None:
    img = np.random.default_rng(1).uniform(0, 1, (40, 60)).astype(np.float32)
    out, g = flip(img, G, horizontal=horizontal)
    np.testing.assert_array_equal(out, img[:, ::-1] if horizontal else img[::-1])
    assert g[0, 2] == pytest.approx(-G[0, 2], abs=1e-6)
    before = paint(img.shape, G[0])
    np.testing.assert_array_equal(paint(img.shape, g[0]), before[:, ::-1] if horizontal else before[::-1])
    back, g2 = flip(out, g, horizontal=horizontal)
    np.testing.assert_array_equal(back, img)
    np.testing.assert_allclose(g2, G, atol=1e-5)


def test_zoom_scales_grasps_and_pixels_together() -> None:
    img = paint((80, 80), np.array([45.0, 36.0, 0.4, 20.0, 10.0])).astype(np.float32)
    out, g = zoom(img, np.array([[45.0, 36.0, 0.4, 20.0, 10.0]]), 0.6)
    assert g[0, 3:] == pytest.approx([20 / 0.6, 10 / 0.6], rel=1e-5)
    assert g[0, 0] == pytest.approx(39.5 + (45 - 39.5) / 0.6)
    painted = out > 0.5
    assert not (painted & ~paint(out.shape, g[0], shrink=-1.0)).any()
    assert painted[paint(out.shape, g[0], shrink=1.0)].all()
    with pytest.raises(ConfigError):
        zoom(img, g, 1.5)


def test_angle_wraps_modulo_pi() -> None:
    m = view_matrix((0, 0, 10), 10, AugmentParams(angle=math.pi / 2))
    g = transform_grasps(np.array([[0, 0, math.pi / 4, 10, 5]]), m)
    assert g[0, 2] == pytest.approx(-math.pi / 4)


def test_gt_center_crop_like_the_reference() -> None:
    g = np.array([[300.2, 200.9, 0, 10, 5], [341.0, 250.0, 0, 10, 5]])  # mean (320.6, 225.45)
    assert choose_crop((480, 640), g, "gt_center", 300) == (320 - 150, 225 - 150, 300)
    far = np.array([[630.0, 470.0, 0, 10, 5]])
    assert choose_crop((480, 640), far, "gt_center", 300) == (340, 180, 300)  # clamped inside
    assert choose_crop((480, 640), far, "center", 300) == (170, 90, 300)
    assert choose_crop((480, 640), far, "center", None) == (80, 0, 480)
    assert choose_crop((100, 100), far, "center", 300) == (0, 0, 100)
    assert choose_crop((100, 100), far, (5, 6, 50)) == (5, 6, 50)
    with pytest.raises(ConfigError):
        choose_crop((100, 100), far, "middle")


def test_plain_crop_is_an_exact_slice_and_shifts_grasps() -> None:
    img = np.random.default_rng(2).uniform(0, 1, (48, 64)).astype(np.float32)
    m = view_matrix((10, 4, 32), 32)
    np.testing.assert_array_equal(warp(img, m, (32, 32)), img[4:36, 10:42])
    g = transform_grasps(G, m)
    np.testing.assert_allclose(g[0], [30.0, 26.0, G[0, 2], 36.0, 14.0], atol=1e-5)


def test_resize_keeps_constant_and_scales_grasps() -> None:
    img = np.full((100, 100, 3), 7.0, dtype=np.float32)
    m = view_matrix((0, 0, 100), 30)
    out = warp(img, m, (30, 30))
    assert out.shape == (30, 30, 3)
    np.testing.assert_allclose(out, 7.0, rtol=1e-6)
    g = transform_grasps(np.array([[49.5, 0.0, 0.0, 10.0, 5.0]]), m)
    np.testing.assert_allclose(g[0], [14.5, 0.3 * 0.5 - 0.5, 0.0, 3.0, 1.5], atol=1e-5)


def test_augment_sampling() -> None:
    aug = GraspAugment.reference()
    rng = np.random.default_rng(0)
    draws = [aug.sample(rng) for _ in range(200)]
    quarters = {round(d.angle / (math.pi / 2)) for d in draws}
    assert quarters == {0, 1, 2, 3}
    assert all(abs(d.angle / (math.pi / 2) - round(d.angle / (math.pi / 2))) < 1e-12 for d in draws)
    zooms = np.array([d.zoom for d in draws])
    assert zooms.min() >= 0.5 and zooms.max() <= 1.0 and zooms.std() > 0.1
    flips = GraspAugment(hflip=0.5, max_angle=10).sample(rng)
    assert abs(flips.angle) <= math.radians(10)
    with pytest.raises(ConfigError):
        GraspAugment(zoom=(0.0, 1.0))
    with pytest.raises(ConfigError):
        GraspAugment(hflip=2.0)
