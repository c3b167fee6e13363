"""``detect val``'s pictures, written beside its ``metrics.json`` (``plots=true``, the default):

* ``PR_curve.png``: each class's precision-recall curve at IoU 0.5 with its AP in the legend, and
  their mean in bold (VOC: the precision envelope of the metric's matching; COCO: COCOeval's
  101-point interpolated precision, AP50 in the legend);
* ``AP_per_class.png``: the per-class AP of ``metrics.json`` as sorted bars (COCO: AP 0.5:0.95);
* ``confusion_matrix.png`` and ``confusion_matrix.json``: classes plus background, detections above
  0.25 matched at IoU > 0.45 (:mod:`singleshot.metrics.box_diagnostics`), shares per true class in
  the picture, counts in the JSON;
* ``worst/``: the images of lowest F1 (detections scoring at least ``show_conf`` matched to boxes
  of their class at IoU 0.5), ground truth in green, detections in red.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from singleshot.atomic import write_text
from singleshot.io.draw import GT_COLOR, PRED_COLOR, draw_boxes, enlarge, write_image
from singleshot.io.eval_plots import plot_ap_bars, plot_confusion_matrix, plot_pr_curves
from singleshot.metrics._common import target_boxes_original
from singleshot.metrics.box_diagnostics import BoxDiagnostics, normalise_columns

logger = logging.getLogger(__name__)

__all__ = ["WORST_IMAGES", "write_detect_pictures"]

#: Images drawn under ``worst/``.
WORST_IMAGES = 8
_SIDE = 480  # smaller images are enlarged by a whole factor towards this long side
_MAX_DRAWN = 30  # detections drawn per image, best first


def _names(labels: Sequence[int], classes: Sequence[str]) -> list[str]:
    return [classes[i] if 0 <= i < len(classes) else str(i) for i in labels]


def _matrix_json(fields: dict[str, Any], matrix: list[list[int]]) -> str:
    """``fields`` plus ``"matrix"`` as indented JSON with one matrix row per line."""
    head = json.dumps(fields, indent=1)[:-2]
    rows = ",\n  ".join(json.dumps(r) for r in matrix)
    return f'{head},\n "matrix": [\n  {rows}\n ]\n}}\n'


def write_detect_pictures(
    out: Path,
    classes: Sequence[str],
    metric: str,
    metrics: dict[str, Any],
    diagnostics: BoxDiagnostics,
    dataset: Any,
    worst: int = WORST_IMAGES,
) -> list[str]:
    """Write the pictures of one evaluation into ``out``; returns the names written (relative to ``out``).

    Args:
        classes: the class names (labels index them).
        metric: ``voc07``, ``voc12`` or ``coco`` (titles).
        metrics: the evaluation's result (its ``per_class`` AP).
        diagnostics: fed every image of the evaluation, ``curves`` set from the AP evaluator.
        dataset: the evaluated dataset; item ``i`` is ``(image uint8 Tensor[3, H, W], BoxTarget)``
            in the order the diagnostics saw them.
    """
    names = list(classes)
    curves = [diagnostics.curves.get(n) for n in names]
    pairs = [(c.recall, c.precision) if c is not None else ((), ()) for c in curves]
    aps = [c.ap if c is not None else float("nan") for c in curves]
    rule = {"voc07": "VOC2007 11-point AP", "voc12": "VOC2010+ all-point AP", "coco": "COCO 101-point AP50"}
    plot_pr_curves(
        out / "PR_curve.png", names, pairs, aps, f"Precision-recall, IoU 0.5 ({rule.get(metric, metric)})", "mAP@0.5"
    )
    per_class = metrics.get("per_class", {})
    what = "AP@0.5:0.95" if metric == "coco" else "AP@0.5"
    plot_ap_bars(
        out / "AP_per_class.png",
        names,
        [float(per_class.get(n, float("nan"))) for n in names],
        f"{what} per class",
        what,
    )
    plot_confusion_matrix(out / "confusion_matrix.png", normalise_columns(diagnostics.matrix), names)
    counts = {
        "classes": [*names, "background"],
        "rows": "predicted",
        "columns": "true",
        "conf": diagnostics.matrix_conf,
        "iou": diagnostics.matrix_iou,
    }
    write_text(out / "confusion_matrix.json", _matrix_json(counts, diagnostics.matrix.tolist()))
    written = ["PR_curve.png", "AP_per_class.png", "confusion_matrix.png", "confusion_matrix.json"]
    for old in (out / "worst").glob("*.jpg"):  # a reused run folder: the last run's pictures
        old.unlink()
    for rank, i in enumerate(diagnostics.worst(worst)):
        image, _ = dataset[i]
        target, dets = diagnostics.targets[i], diagnostics.detections[i]
        canvas = image.permute(1, 2, 0).numpy() if hasattr(image, "permute") else np.asarray(image)
        scale = max(1, _SIDE // max(canvas.shape[:2]))  # small images enlarged, so that captions fit
        canvas = enlarge(canvas, scale)
        gt_boxes = (target_boxes_original(target) * scale).tolist()
        canvas = draw_boxes(canvas, gt_boxes, GT_COLOR, _names(target.labels.tolist(), names))
        top = slice(0, _MAX_DRAWN)  # detections come sorted by score
        captions = [f"{n} {s:.2f}" for n, s in zip(_names(dets.labels[top].tolist(), names), dets.scores[top].tolist())]
        canvas = draw_boxes(canvas, (dets.boxes[top] * scale).tolist(), PRED_COLOR, captions)
        name = f"worst/{rank + 1:02d}_{str(target.image_id).replace('/', '_')}.jpg"
        write_image(out / name, canvas)
        written.append(name)
    return written
