"""The evaluators' precision-recall curves (what ``val`` draws) give back the APs they report: the VOC
staircase under both VOC rules, COCO's 101-point curve its AP50, frame-AP's curves under both
protocols; drawing them changes no metric."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from singleshot.metrics.action_diagnostics import frame_pr_curves
from singleshot.metrics.coco import COCOEvaluator
from singleshot.metrics.curves import envelope_curve, trapezoid_curve
from singleshot.metrics.frame_ap import frame_ap
from singleshot.metrics.voc import VOCEvaluator, voc_ap
from singleshot.structures import ActionAnnotations, BoxTarget, Detections, Tube, VideoAnnotation

CLASSES = ["a", "b", "c"]


def _random_images(seed: int, n: int = 12) -> tuple[list[Detections], list[BoxTarget]]:
    """Jittered ground truth plus random false positives; class ``c`` has no ground truth."""
    g = torch.Generator().manual_seed(seed)
    preds, targets = [], []
    for i in range(n):
        k = int(torch.randint(1, 4, (1,), generator=g))
        xy = torch.rand(k, 2, generator=g) * 150
        boxes = torch.cat((xy, xy + 20 + torch.rand(k, 2, generator=g) * 40), 1)
        labels = torch.randint(0, 2, (k,), generator=g)
        difficult = torch.rand(k, generator=g) < 0.15
        targets.append(BoxTarget(boxes, labels, difficult, f"im{i}", (200, 200), (200, 200)))
        fp_xy = torch.rand(2, 2, generator=g) * 150
        d_boxes = torch.cat((boxes + torch.randn(k, 4, generator=g) * 6, torch.cat((fp_xy, fp_xy + 30), 1)))
        d_labels = torch.cat((labels, torch.randint(0, 3, (2,), generator=g)))
        scores = torch.rand(k + 2, generator=g)
        order = torch.argsort(scores, descending=True)
        preds.append(Detections(d_boxes[order], scores[order], d_labels[order], f"im{i}"))
    return preds, targets


@pytest.mark.parametrize("use_07", [True, False])
def test_voc_curves_reproduce_the_class_ap(use_07: bool) -> None:
    preds, targets = _random_images(0)
    ev = VOCEvaluator(CLASSES, use_07=use_07)
    ev.process(preds, targets)
    got = ev.compute()
    for name in ("a", "b"):
        curve = ev.curves[name]
        assert curve.ap == got["per_class"][name] and 0 < curve.ap < 1
        # the metric's rule applied to the drawn staircase gives the class AP back
        assert voc_ap(curve.recall, curve.precision, use_07) == pytest.approx(curve.ap, abs=1e-12)
        if not use_07:  # the all-point AP is the area under the drawn staircase
            assert np.trapezoid(curve.precision, curve.recall) == pytest.approx(curve.ap, abs=1e-12)
        assert np.all(np.diff(curve.recall) >= 0) and np.all(np.diff(curve.precision[::2]) <= 0)
    assert math.isnan(ev.curves["c"].ap) and ev.curves["c"].recall.size == 0


def test_envelope_staircase_by_hand() -> None:
    # ranked TP FP TP of 2 positives: recall .5 .5 1, precision 1 .5 2/3; envelope 1, 2/3, 2/3
    x, y = envelope_curve(np.array([0.5, 0.5, 1.0]), np.array([1.0, 0.5, 2 / 3]))
    assert x.tolist() == [0.0, 0.5, 0.5, 0.5, 0.5, 1.0]
    assert y == pytest.approx([1, 1, 2 / 3, 2 / 3, 2 / 3, 2 / 3])
    assert np.trapezoid(y, x) == pytest.approx(0.5 + 0.5 * 2 / 3)
    x, y = trapezoid_curve(np.array([0.5, 1.0]), np.array([1.0, 0.5]))
    assert x.tolist() == [0.0, 0.5, 1.0] and y.tolist() == [1.0, 1.0, 0.5]
    assert envelope_curve(np.zeros(0), np.zeros(0))[0].size == 0


def test_coco_curves_are_ap50() -> None:
    preds, targets = _random_images(1)
    ev = COCOEvaluator(CLASSES)
    ev.process(preds, targets)
    got = ev.compute()
    aps = [ev.curves[n].ap for n in ("a", "b")]
    for name in ("a", "b"):
        curve = ev.curves[name]
        assert curve.recall.shape == curve.precision.shape == (101,)
        assert curve.ap == pytest.approx(curve.precision.mean())
    assert float(np.mean(aps)) == pytest.approx(got["map50"], abs=1e-9)  # COCO's AP50 = mean of the curves'
    assert math.isnan(ev.curves["c"].ap) and ev.curves["c"].recall.size == 0


def _action_case() -> tuple[ActionAnnotations, np.ndarray]:
    g = np.random.default_rng(3)
    videos, rows = {}, []
    for v in range(3):
        name = f"C/v{v}"
        tubes = []
        for label in (0, 1):
            frames = np.arange(1, 9, dtype=np.int64)
            boxes = np.repeat(g.uniform(0, 50, (1, 2)), 8, 0)
            boxes = np.concatenate((boxes, boxes + 30), 1).astype(np.float32)
            tubes.append(Tube(name, label, frames, boxes))
            for f, b in zip(frames, boxes):
                if g.random() < 0.7:
                    rows.append([v, f, label, g.random(), *(b + g.normal(0, 4, 4))])
                rows.append([v, f, g.integers(0, 3), g.random() * 0.6, *g.uniform(0, 80, 4)])
        videos[name] = VideoAnnotation(name, 10, (100, 100), tubes)
    gt = ActionAnnotations(["p", "q", "r"], videos, test_videos=list(videos))
    out = np.asarray(rows, dtype=np.float64)
    out[:, 6:8] = np.maximum(out[:, 6:8], out[:, 4:6] + 1)
    return gt, out


@pytest.mark.parametrize("protocol", ["yowo", "act"])
def test_frame_curves_reproduce_frame_ap(protocol: str) -> None:
    gt, rows = _action_case()
    ref = frame_ap(gt, rows, protocol)
    curves = frame_pr_curves(gt, rows, protocol)
    for name in ("p", "q"):
        curve = curves[name]
        assert curve.ap == ref["per_class"][name] and 0 < curve.ap < 1
        # voc: area under the envelope staircase; act: trapezoids under the raw curve from (0, 1)
        assert np.trapezoid(curve.precision, curve.recall) == pytest.approx(curve.ap, abs=1e-12)
    assert math.isnan(curves["r"].ap)
