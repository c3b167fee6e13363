"""Grasp success metric on hand-computed rectangles; the Wilson interval against SciPy's."""

from __future__ import annotations

import math

import pytest
import torch
from scipy.stats import binomtest

from singleshot.metrics.grasp import GraspEvaluator, grasp_success, grasp_success_batch, wilson_interval
from singleshot.ops.grasp import polygon_iou_aligned
from singleshot.structures import Grasps

GT = (100.0, 80.0, 0.5, 60.0, 30.0)


def _grasps(*rows: tuple[float, ...], scores: list[float] | None = None, size: tuple[int, int] = (0, 0)) -> Grasps:
    t = torch.tensor(rows, dtype=torch.float32).reshape(-1, 5)
    s = torch.tensor(scores if scores is not None else [1.0] * t.shape[0], dtype=torch.float32)
    return Grasps(grasps=t, scores=s, size=size)


def _shifted(s: float) -> tuple[float, ...]:
    """GT moved by s pixels along its opening: IoU = (60 − s) / (60 + s)."""
    cx, cy, th, o, j = GT
    return (cx + s * math.cos(th), cy - s * math.sin(th), th, o, j)


@pytest.mark.parametrize("iou", ["polygon", "raster"])
def test_identical_and_shifted(iou: str) -> None:
    gt = _grasps(GT)
    assert grasp_success(_grasps(GT), gt, iou=iou)  # type: ignore[arg-type]
    # IoU 25/95 = 0.263 passes, 23/97 = 0.237 fails (threshold 0.25)
    assert grasp_success(_grasps(_shifted(35.0)), gt, iou=iou)  # type: ignore[arg-type]
    assert not grasp_success(_grasps(_shifted(37.0)), gt, iou=iou)  # type: ignore[arg-type]


def test_exact_iou_of_shifted_rectangle() -> None:
    for s in (10.0, 35.0, 37.0):
        iou = polygon_iou_aligned(torch.tensor([GT]), torch.tensor([_shifted(s)]))
        assert float(iou) == pytest.approx((60 - s) / (60 + s), abs=1e-5)


def test_angle_threshold_and_wrap() -> None:
    gt = _grasps(GT)
    cx, cy, th, o, j = GT
    assert grasp_success(_grasps((cx, cy, th + math.radians(29), o, j)), gt)
    assert not grasp_success(_grasps((cx, cy, th + math.radians(31), o, j)), gt)
    assert not grasp_success(_grasps((cx, cy, th - math.radians(31), o, j)), gt)
    # the IoU alone would pass at 31°: the failure comes from the angle
    assert float(polygon_iou_aligned(torch.tensor([GT]), torch.tensor([(cx, cy, th + math.radians(31), o, j)]))) > 0.25
    # +89° and −89° differ by 2° modulo 180°
    up = _grasps((cx, cy, math.radians(89), o, j))
    down = _grasps((cx, cy, math.radians(-89), o, j))
    assert grasp_success(down, up) and grasp_success(down, up, iou="raster")
    assert grasp_success(_grasps((cx, cy, th + math.pi, o, j)), gt)


def test_top_k_empty_and_sizes() -> None:
    gt = _grasps(GT, (20.0, 20.0, 0.0, 30.0, 15.0))
    bad, good = _shifted(50.0), _shifted(5.0)
    pred = _grasps(bad, good, scores=[0.9, 0.4])
    assert not grasp_success(pred, gt)  # top-1 is the bad one
    assert grasp_success(pred, gt, top_k=2) and grasp_success(pred, gt, top_k=None)
    assert grasp_success(_grasps(bad, good, scores=[0.4, 0.9]), gt)  # ranked by score
    assert grasp_success(pred, _grasps((20.0, 20.0, 0.0, 30.0, 15.0), GT), top_k=2)  # any ground truth
    assert not grasp_success(Grasps(), gt) and not grasp_success(pred, Grasps())
    res = grasp_success_batch([pred, _grasps(GT), Grasps()], [gt, gt, gt])
    assert res.tolist() == [False, True, False]
    with pytest.raises(ValueError, match="size"):
        grasp_success(_grasps(GT, size=(300, 300)), _grasps(GT, size=(480, 640)))


@pytest.mark.parametrize(("k", "n"), [(0, 10), (7, 10), (65, 89), (89, 89)])
def test_wilson_interval_matches_scipy(k: int, n: int) -> None:
    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    lo, hi = wilson_interval(k, n)
    assert lo == pytest.approx(ci.low, abs=1e-9) and hi == pytest.approx(ci.high, abs=1e-9)


def test_evaluator() -> None:
    ev = GraspEvaluator(split="image-wise 90/10", iou="raster")
    gt = _grasps(GT)
    ev.process([_grasps(GT), _grasps(_shifted(40.0))], [gt, gt])
    ev.process([_grasps(_shifted(5.0))], [gt])
    r = ev.compute()
    assert r["n"] == 3 and r["n_success"] == 2 and r["success_rate"] == pytest.approx(2 / 3)
    ci = binomtest(2, 3).proportion_ci(method="wilson")
    assert r["ci95"] == pytest.approx([ci.low, ci.high]) and r["split"] == "image-wise 90/10"
    assert r["iou"] == "raster" and r["angle_thresh"] == 30.0 and r["top_k"] == 1
    ev.reset()
    assert ev.compute()["n"] == 0 and math.isnan(ev.compute()["success_rate"])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="IoU mode"):
        GraspEvaluator(iou="area")  # type: ignore[arg-type]
