"""``grasp val``'s pictures, written beside its ``metrics.json`` (``plots=true``, the default):

* ``success_vs_iou.png``: the success rate as the IoU (Jaccard) threshold goes from 0.1 to 0.9, the
  rest of the rule unchanged (top-k, angle, IoU mode), the metric's own threshold marked with the
  reported rate (:meth:`~singleshot.metrics.grasp.GraspEvaluator.success_curve`);
* ``worst/``: the failed test images of lowest best IoU, on their RGB image (else the depth in
  grey): the ground-truth rectangles thin and green, the top-1 predicted grasp thick and red.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from singleshot.data.grasp.dataset import load_sample
from singleshot.data.grasp.records import GraspSample
from singleshot.data.grasp.rects import grasps_to_corners
from singleshot.io.draw import GT_COLOR, PRED_COLOR, draw_polygons, draw_text, enlarge, write_image
from singleshot.io.eval_plots import plot_threshold_curve
from singleshot.metrics.grasp import GraspEvaluator
from singleshot.structures import Grasps

logger = logging.getLogger(__name__)

__all__ = ["IOU_THRESHOLDS", "WORST_IMAGES", "write_grasp_pictures"]

#: The IoU thresholds of ``success_vs_iou.png`` (the metric's own is added when missing).
IOU_THRESHOLDS: tuple[float, ...] = tuple(round(0.1 + 0.05 * k, 2) for k in range(17))
#: Images drawn under ``worst/``.
WORST_IMAGES = 8
_SIDE = 480  # smaller images are enlarged by a whole factor towards this long side


def write_grasp_pictures(
    out: Path,
    evaluator: GraspEvaluator,
    samples: Sequence[GraspSample],
    preds: Sequence[Grasps],
    metrics: dict[str, Any],
    worst: int = WORST_IMAGES,
) -> list[str]:
    """Write the pictures of one evaluation into ``out``; returns the names written (relative to ``out``).

    Args:
        evaluator: the evaluator that scored the images (its ``best_iou`` per image).
        samples: the evaluated samples, in the order the evaluator saw them.
        preds: their predictions in the original images' pixels, same order.
        metrics: the evaluation's result (``success_rate``).
    """
    thresholds = sorted({*IOU_THRESHOLDS, float(evaluator.iou_thresh)})
    rates = evaluator.success_curve(thresholds)
    title = (
        f"Grasp success vs IoU threshold\n(top-{evaluator.top_k}, angle <= {evaluator.angle_thresh:g} deg, "
        f"{evaluator.iou} IoU, {len(evaluator.best_iou)} images)"
    )
    mark = (float(evaluator.iou_thresh), float(metrics.get("success_rate", math.nan)))
    plot_threshold_curve(
        out / "success_vs_iou.png", thresholds, rates, "IoU threshold (Jaccard index)", "success rate", title, mark
    )
    written = ["success_vs_iou.png"]
    best = np.asarray(evaluator.best_iou, dtype=np.float64)
    failed = np.flatnonzero(~(best > evaluator.iou_thresh))
    order = failed[np.argsort(best[failed], kind="stable")][: max(0, int(worst))]
    for old in (out / "worst").glob("*.png"):  # a reused run folder: the last run's pictures
        old.unlink()
    for rank, i in enumerate(order.tolist()):
        name = f"worst/{rank + 1:02d}_{samples[i].image_id}.png"
        write_image(out / name, _drawn(samples[i], preds[i], float(best[i])))
        written.append(name)
    return written


def _grey_depth(depth: np.ndarray) -> np.ndarray:
    """uint8 [H, W, 3]: depth (array[H, W]) between its 1st and 99th percentiles, near = bright."""
    lo, hi = np.percentile(depth, [1, 99])
    grey = np.clip((hi - depth) / max(float(hi - lo), 1e-6), 0, 1) * 255
    return np.repeat(grey.astype(np.uint8)[..., None], 3, axis=2)


def _drawn(sample: GraspSample, pred: Grasps, best_iou: float) -> np.ndarray:
    """uint8 [H, W, 3]: the image with its ground truth and its top-1 predicted grasp."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # repaired depth holes warn once per image
        image = load_sample(sample, depth=sample.rgb_path is None, rgb=sample.rgb_path is not None)
    base = image.rgb if image.rgb is not None else _grey_depth(image.depth)  # type: ignore[arg-type]
    scale = max(1, _SIDE // max(base.shape[:2]))
    canvas = enlarge(base, scale)
    offset = (scale - 1) / 2  # pixel centres of the enlarged image
    gt = grasps_to_corners(np.asarray(image.grasps, dtype=np.float64).reshape(-1, 5)) * scale + offset
    canvas = draw_polygons(canvas, gt, GT_COLOR, width=1)
    g, scores = pred.grasps.reshape(-1, 5), pred.scores.reshape(-1)
    if len(g):
        scored = scores.numel() == len(g)
        top = int(torch.argsort(scores, descending=True, stable=True)[0]) if scored else 0
        corners = grasps_to_corners(g[top : top + 1].double().cpu().numpy()) * scale + offset
        caption = [f"{float(scores[top]):.2f}"] if scored else None
        canvas = draw_polygons(canvas, corners, PRED_COLOR, caption, width=3)
    found = f"best IoU {best_iou:.2f}" if math.isfinite(best_iou) else "no grasp within the angle"
    text = f"{sample.image_id}: {found}"
    return draw_text(canvas, text)
