"""The grasp success rate against the IoU threshold (``grasp val``'s ``success_vs_iou.png``): each
image's best IoU decides every threshold, the metric's own threshold gives the reported rate."""

from __future__ import annotations

import math

import pytest
import torch

from singleshot.metrics.grasp import GraspEvaluator, grasp_best_iou_batch, grasp_success_batch
from singleshot.structures import Grasps

GT = (100.0, 80.0, 0.5, 60.0, 30.0)


def _shifted(s: float, turn: float = 0.0) -> tuple[float, ...]:
    """GT moved by s pixels along its opening (IoU (60 - s) / (60 + s)) and turned by ``turn`` degrees."""
    cx, cy, th, o, j = GT
    return (cx + s * math.cos(th), cy - s * math.sin(th), th + math.radians(turn), o, j)


def _one(row: tuple[float, ...] | None) -> Grasps:
    if row is None:
        return Grasps()
    return Grasps(grasps=torch.tensor([row]), scores=torch.ones(1))


# IoU 1, 50/70, 30/90, 10/110, then a 40-degree turn (fails whatever the IoU), then no prediction
SHIFTS = [_shifted(0), _shifted(10), _shifted(30), _shifted(50), _shifted(0, 40), None]


def test_best_iou_by_hand_and_success_at_every_threshold() -> None:
    preds = [_one(r) for r in SHIFTS]
    gts = [_one(GT) for _ in SHIFTS]
    best = grasp_best_iou_batch(preds, gts)
    assert best[:4].tolist() == pytest.approx([1.0, 50 / 70, 30 / 90, 10 / 110], abs=1e-5)
    assert best[4] == -math.inf and best[5] == -math.inf
    for t in (-0.5, 0.0, 0.1, 0.25, 1 / 3 - 1e-3, 0.5, 0.9, 1.0):
        assert torch.equal(grasp_success_batch(preds, gts, iou_thresh=t), best > t)


@pytest.mark.parametrize("iou", ["polygon", "raster"])
def test_success_curve_at_the_metric_threshold_is_the_success_rate(iou: str) -> None:
    ev = GraspEvaluator(iou=iou)  # type: ignore[arg-type]
    ev.process([_one(r) for r in SHIFTS[:3]], [_one(GT)] * 3)
    ev.process([_one(r) for r in SHIFTS[3:]], [_one(GT)] * 3)
    rate = ev.compute()["success_rate"]
    assert rate == pytest.approx(3 / 6)  # IoU 1, 0.71, 0.33 pass 0.25
    curve = ev.success_curve([0.05, 0.25, 0.5, 0.9])
    assert curve[1] == rate
    assert curve == pytest.approx([4 / 6, 3 / 6, 2 / 6, 1 / 6])
    ev.reset()
    assert ev.best_iou == [] and all(math.isnan(v) for v in ev.success_curve([0.25]))
