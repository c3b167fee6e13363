"""Grasp-map targets and GraspLoss.

The rendering is compared with an independent per-pixel point-in-polygon check written here: the
centre-third rectangle's corners come from the reference's formula (dougsm/ggcnn ``Grasp.as_gr``
with length/3), a crossing-number test decides each pixel centre, and rectangles are painted one
after the other as the reference's ``GraspRectangles.draw`` does.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from singleshot.losses.grasp import GraspLoss, pad_grasps, render_grasp_maps
from singleshot.structures import Grasps


def _corners_xy(cx: float, cy: float, angle: float, length: float, width: float) -> np.ndarray:
    xo, yo = math.cos(angle), math.sin(angle)
    y1, x1 = cy + length / 2 * yo, cx - length / 2 * xo
    y2, x2 = cy - length / 2 * yo, cx + length / 2 * xo
    rc = [
        (y1 - width / 2 * xo, x1 - width / 2 * yo),
        (y2 - width / 2 * xo, x2 - width / 2 * yo),
        (y2 + width / 2 * xo, x2 + width / 2 * yo),
        (y1 + width / 2 * xo, x1 + width / 2 * yo),
    ]
    return np.array([(c, r) for r, c in rc])


def _inside_polygon(poly: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Even-odd crossing test of points (x, y) against polygon (N×2, x/y)."""
    inside = np.zeros(x.shape, dtype=bool)
    n = len(poly)
    for i in range(n):
        xa, ya = poly[i]
        xb, yb = poly[(i + 1) % n]
        straddle = (ya > y) != (yb > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            x_cross = xa + (y - ya) * (xb - xa) / (yb - ya)
        inside ^= straddle & (x < x_cross)
    return inside


def _reference_maps(rects: list[tuple[float, float, float, float, float]], h: int, w: int) -> dict[str, np.ndarray]:
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    pos, ang, wid = np.zeros((h, w)), np.zeros((h, w)), np.zeros((h, w))
    for cx, cy, th, opening, jaw in rects:
        m = _inside_polygon(_corners_xy(cx, cy, th, opening / 3, jaw), x, y)
        pos[m], ang[m], wid[m] = 1.0, th, opening
    return {"pos": pos, "cos": np.cos(2 * ang), "sin": np.sin(2 * ang), "width": np.clip(wid, 0, 150) / 150}


def _random_rects(n: int, seed: int, h: int, w: int) -> list[tuple[float, float, float, float, float]]:
    rng = np.random.default_rng(seed)
    return [
        (
            rng.uniform(0, w),
            rng.uniform(0, h),
            rng.uniform(-math.pi / 2, math.pi / 2),
            rng.uniform(20, 200),
            rng.uniform(6, 40),
        )
        for _ in range(n)
    ]


def test_render_matches_independent_point_in_polygon() -> None:
    h, w = 64, 80
    batch = [_random_rects(5, 0, h, w), _random_rects(9, 1, h, w), []]
    grasps = [Grasps(torch.tensor(r, dtype=torch.float32).reshape(-1, 5), size=(h, w)) for r in batch]
    maps = render_grasp_maps(grasps, (h, w))
    for k in ("pos", "cos", "sin", "width"):
        assert maps[k].shape == (3, 1, h, w) and maps[k].dtype == torch.float32
    for i, rects in enumerate(batch):
        # the reference draws with float32-rounded inputs here too
        rounded = [tuple(float(v) for v in torch.tensor(r, dtype=torch.float32)) for r in rects]
        ref = _reference_maps(rounded, h, w)  # type: ignore[arg-type]
        for k in ("pos", "cos", "sin", "width"):
            np.testing.assert_allclose(maps[k][i, 0].numpy(), ref[k], atol=1e-5, err_msg=f"{k} image {i}")
    assert float(maps["pos"][:2].sum()) > 100  # the rectangles do cover pixels
    # the empty image holds the reference's background: pos 0, cos 1, sin 0, width 0
    assert float(maps["pos"][2].abs().max()) == 0.0 and bool((maps["cos"][2] == 1).all())


def test_render_many_rectangles_across_blocks() -> None:
    """More rectangles than one block holds: the later-overwrites-earlier order must survive."""
    h, w = 300, 300
    rects = _random_rects(60, 5, h, w)
    maps = render_grasp_maps([Grasps(torch.tensor(rects, dtype=torch.float64).float())], (h, w))
    rounded = [tuple(float(v) for v in torch.tensor(r, dtype=torch.float32)) for r in rects]
    ref = _reference_maps(rounded, h, w)  # type: ignore[arg-type]
    np.testing.assert_allclose(maps["sin"][0, 0].numpy(), ref["sin"], atol=1e-5)
    np.testing.assert_allclose(maps["width"][0, 0].numpy(), ref["width"], atol=1e-6)


def test_render_hand_case_centre_third_and_overwrite() -> None:
    # opening 30 along x, jaw 10: the centre third spans x in [45, 55], y in [45, 55] (edges included)
    first = (50.0, 50.0, 0.0, 30.0, 10.0)
    maps = render_grasp_maps([Grasps(torch.tensor([first]))], (100, 100))
    pos = maps["pos"][0, 0]
    assert int(pos.sum()) == 11 * 11
    assert float(pos[45:56, 45:56].min()) == 1.0
    assert float(maps["width"][0, 0, 50, 50]) == pytest.approx(30 / 150)
    # a later rectangle overwrites the earlier one; openings clip at 150 px
    second = (52.0, 50.0, math.pi / 4, 300.0, 4.0)
    maps = render_grasp_maps([Grasps(torch.tensor([first, second]))], (100, 100))
    assert float(maps["sin"][0, 0, 50, 52]) == pytest.approx(1.0)  # sin(2 · 45°)
    assert float(maps["cos"][0, 0, 50, 52]) == pytest.approx(0.0, abs=1e-6)
    assert float(maps["width"][0, 0, 50, 52]) == 1.0
    assert float(maps["sin"][0, 0, 46, 45]) == 0.0 and float(maps["pos"][0, 0, 46, 45]) == 1.0  # first only
    # the reference's integer centres
    half = render_grasp_maps([Grasps(torch.tensor([[50.7, 50.7, 0.0, 30.0, 10.0]]))], (100, 100), truncate_centre=True)
    assert torch.equal(half["pos"], render_grasp_maps([Grasps(torch.tensor([first]))], (100, 100))["pos"])


def test_pad_grasps() -> None:
    g, valid = pad_grasps([Grasps(torch.ones(2, 5)), Grasps(), Grasps(torch.full((3, 5), 2.0))])
    assert g.shape == (3, 3, 5) and valid.tolist() == [[True, True, False], [False] * 3, [True] * 3]
    assert float(g[2].sum()) == 30.0 and float(g[0, 2].abs().sum()) == 0.0


def _outputs(b: int, h: int, w: int, aux: bool, seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    keys = ["pos", "cos", "sin", "width"] + (["aux_pos", "aux_cos", "aux_sin", "aux_width"] if aux else [])
    return {k: torch.randn(b, 1, h, w, generator=gen) for k in keys}


def test_loss_values_and_aux_weight() -> None:
    grasps = [
        Grasps(torch.tensor([[20.0, 20.0, 0.3, 24.0, 8.0]])),
        Grasps(torch.tensor([[10.0, 12.0, -1.0, 18.0, 6.0]])),
    ]
    target = render_grasp_maps(grasps, (32, 32))
    out = _outputs(2, 32, 32, aux=True)
    loss = GraspLoss()
    terms = loss(out, grasps)
    for k in ("pos", "cos", "sin", "width"):
        assert float(terms[k]) == pytest.approx(float(((out[k] - target[k]) ** 2).mean()), rel=1e-6)
    aux = sum(float(((out[f"aux_{k}"] - target[k]) ** 2).mean()) for k in ("pos", "cos", "sin", "width"))
    assert float(terms["aux"]) == pytest.approx(0.4 * aux, rel=1e-6)
    assert set(loss.eval()(out, grasps)) == {"pos", "cos", "sin", "width"}  # no aux outside training
    assert set(GraspLoss(aux_weight=0.0)(out, grasps)) == {"pos", "cos", "sin", "width"}
    sl1 = GraspLoss("smooth_l1")(out, target)  # ready target maps work too
    assert float(sl1["cos"]) == pytest.approx(float(F.smooth_l1_loss(out["cos"], target["cos"])), rel=1e-6)
    perfect = GraspLoss()({k: v.clone() for k, v in target.items()}, grasps)
    assert all(float(v) == 0.0 for v in perfect.values())


def test_loss_gradient_and_errors() -> None:
    grasps = [Grasps(torch.tensor([[20.0, 20.0, 0.3, 24.0, 8.0]]))]
    out = {k: v.requires_grad_() for k, v in _outputs(1, 32, 32, aux=False).items()}
    total = sum(GraspLoss()(out, grasps).values())
    total.backward()  # type: ignore[union-attr]
    assert all(v.grad is not None and float(v.grad.abs().sum()) > 0 for v in out.values())
    with pytest.raises(ValueError, match="shape"):
        GraspLoss()(_outputs(1, 32, 32, False), render_grasp_maps(grasps, (16, 16)))
    with pytest.raises(ValueError, match="kind"):
        GraspLoss("l1")  # type: ignore[arg-type]
