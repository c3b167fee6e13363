"""Detection evaluation: VOC AP (devkit rules), COCO AP (COCOeval) and prediction files.

``VOCEvaluator`` / ``COCOEvaluator`` follow ``reset() / process(preds, targets) / compute() -> dict``;
``score`` evaluates prediction files (``singleshot detect score``).
"""

from __future__ import annotations

from singleshot.metrics.coco import STAT_KEYS, COCOEvaluator, coco_eval_files
from singleshot.metrics.files import (
    coco_results_to_detections,
    read_coco_results,
    read_voc_results,
    write_coco_results,
    write_voc_results,
)
from singleshot.metrics.scoring import METRICS, coco_json_targets, score
from singleshot.metrics.voc import VOCEvaluator, evaluate_class, voc_ap

__all__ = [
    "METRICS",
    "STAT_KEYS",
    "COCOEvaluator",
    "VOCEvaluator",
    "coco_eval_files",
    "coco_json_targets",
    "coco_results_to_detections",
    "evaluate_class",
    "read_coco_results",
    "read_voc_results",
    "score",
    "voc_ap",
    "write_coco_results",
    "write_voc_results",
]
