"""``score``: detection metrics from prediction files, the engine of ``singleshot detect score``.

Ground truth (``gt``):

* a COCO instances JSON path: classes are its categories sorted by id (names from the file),
  ``iscrowd`` boxes count as difficult for the VOC metrics;
* a list of :class:`~singleshot.structures.BoxTarget` plus ``class_names`` (a VOC root read by the
  caller); category id of class index ``i`` is ``i + 1``.

Predictions (``pred``): a folder of devkit files ``<comp>_det_<split>_<class>.txt``, a COCO results
JSON, or a list of Detections (0-based xyxy pixels). Image ids are matched as strings (an integer id
also matches an all-digit id of the same value). A prediction for an image absent from the ground
truth is a DataError, as in the devkit ("unrecognized image"; the error counts them and names the
first few); an image without detections simply has none (its objects are misses), and the result's
``"mismatches"`` entry (:func:`~singleshot.metrics.mismatch.prediction_mismatches`, also a warning)
counts and names those images.

Metrics: ``voc07`` (11-point, at the exact recall thresholds k/10 unless
``voc07_thresholds="arange"``: ``np.arange(0, 1.1, 0.1)`` as the Python ports), ``voc12``
(all-point), both at IoU ``iou_threshold`` (0.5) with the devkit +1 pixel convention unless
``plus_one=False``; ``coco`` (COCOeval, 12 stats). COCO JSON ground
truth with a COCO results JSON is evaluated exactly as pycocotools would (:func:`coco_eval_files`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from singleshot.errors import ConfigError, DataError
from singleshot.metrics.coco import COCOEvaluator, check_coco_gt, coco_eval_files, load_json, run_cocoeval
from singleshot.metrics.files import (
    coco_results_to_detections,
    detections_to_coco_results,
    read_coco_results,
    read_voc_results,
)
from singleshot.metrics.mismatch import first_few, prediction_mismatches
from singleshot.metrics.voc import VOCEvaluator, check_voc07_thresholds
from singleshot.structures import BoxTarget, Detections

logger = logging.getLogger(__name__)

__all__ = ["METRICS", "coco_json_targets", "score"]

METRICS: tuple[str, ...] = ("voc07", "voc12", "coco")


def coco_json_targets(path: Path) -> tuple[list[BoxTarget], list[str], list[int], dict]:
    """Read a COCO instances JSON as targets.

    Returns:
        (targets, class_names, category_ids, the raw dict): one BoxTarget per image in file order
        (``image_id = str(id)``, boxes xyxy pixels from ``[x, y, w, h]``, ``difficult = iscrowd``),
        classes = categories sorted by id, label ``i`` = ``category_ids[i]``.
    """
    path = Path(path)
    gt = check_coco_gt(load_json(path, "COCO ground truth"), path)
    cats = sorted(gt["categories"], key=lambda c: c["id"])
    category_ids = [int(c["id"]) for c in cats]
    class_names = [str(c.get("name", c["id"])) for c in cats]
    to_label = {c: i for i, c in enumerate(category_ids)}
    per_image: dict[Any, list[dict]] = {img["id"]: [] for img in gt["images"]}
    for i, a in enumerate(gt["annotations"]):
        if a["image_id"] not in per_image or a["category_id"] not in to_label:
            raise DataError(f"{path}: annotation #{i} names an image or category absent from the file")
        per_image[a["image_id"]].append(a)
    targets = []
    for img in gt["images"]:
        anns = per_image[img["id"]]
        xywh = np.asarray([a["bbox"] for a in anns], dtype=np.float32).reshape(-1, 4)
        boxes = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
        size = (int(img.get("height", 0)), int(img.get("width", 0)))
        targets.append(
            BoxTarget(
                boxes=torch.from_numpy(boxes),
                labels=torch.tensor([to_label[a["category_id"]] for a in anns], dtype=torch.int64),
                difficult=torch.tensor([bool(a.get("iscrowd", 0)) for a in anns], dtype=torch.bool),
                image_id=str(img["id"]),
                size=size,
                orig_size=size,
            )
        )
    return targets, class_names, category_ids, gt


def _align(
    targets: Sequence[BoxTarget], preds: Sequence[Detections], source: str
) -> tuple[list[Detections], list[str]]:
    """Predictions in the order of ``targets`` (an empty Detections where an image has none), and the
    ground-truth ids that received predictions.

    Raises:
        DataError: predictions for images absent from the ground truth (how many, the first few).
    """
    index: dict[str, int] = {}
    for i, t in enumerate(targets):
        index.setdefault(t.image_id, i)
    for i, t in enumerate(targets):
        if t.image_id.isdigit():
            index.setdefault(str(int(t.image_id)), i)
    grouped: list[list[Detections]] = [[] for _ in targets]
    unknown: list[str] = []
    for det in preds:
        key = det.image_id
        i = index.get(key)
        if i is None and key.isdigit():
            i = index.get(str(int(key)))
        if i is None:
            unknown.append(key)
            continue
        grouped[i].append(det)
    if unknown:
        unknown = list(dict.fromkeys(unknown))
        raise DataError(
            f"{source}: image id {unknown[0]!r} is not in the ground truth ({len(targets)} images); "
            f"predicted ids not in it: {len(unknown)} ({first_few(unknown)})"
        )
    out = []
    for t, dets in zip(targets, grouped):
        if len(dets) == 1:
            out.append(Detections(dets[0].boxes, dets[0].scores, dets[0].labels, t.image_id))
        elif not dets:
            out.append(Detections(image_id=t.image_id))
        else:
            scores = torch.cat([d.scores for d in dets])
            order = torch.argsort(scores, descending=True, stable=True)
            out.append(
                Detections(
                    boxes=torch.cat([d.boxes for d in dets])[order],
                    scores=scores[order],
                    labels=torch.cat([d.labels for d in dets])[order],
                    image_id=t.image_id,
                )
            )
    covered = [t.image_id for t, dets in zip(targets, grouped) if any(len(d) for d in dets)]
    return out, covered


def _read_pred(
    pred: Path | str | Sequence[Detections], class_names: Sequence[str], category_ids: Sequence[int], split: str | None
) -> tuple[list[Detections], str]:
    if not isinstance(pred, (str, Path)):
        return list(pred), "predictions"
    path = Path(pred)
    if path.is_dir():
        return read_voc_results(path, class_names, split), str(path)
    if not path.exists():
        raise DataError(f"{path}: prediction file or folder not found")
    return coco_results_to_detections(read_coco_results(path), category_ids, path), str(path)


def score(
    gt: Path | str | Sequence[BoxTarget],
    pred: Path | str | Sequence[Detections],
    metric: str,
    class_names: Sequence[str] | None = None,
    *,
    iou_threshold: float = 0.5,
    plus_one: bool = True,
    split: str | None = None,
    voc07_thresholds: str = "exact",
) -> dict:
    """Evaluate predictions against ground truth (see the module doc for the accepted forms).

    Args:
        gt: COCO instances JSON path, or list of BoxTarget (then ``class_names`` is required).
        pred: folder of devkit results files, COCO results JSON path, or list of Detections.
        metric: ``voc07``, ``voc12`` or ``coco``.
        class_names: the classes when ``gt`` is a list of targets.
        iou_threshold, plus_one: VOC matching settings (ignored by ``coco``).
        split: for a folder of devkit files holding several splits, the one to read.
        voc07_thresholds: recall thresholds of ``voc07``: ``"exact"`` k/10 (default) or ``"arange"``
            (``np.arange(0, 1.1, 0.1)``, as ssd.pytorch, detectron2 and mmdetection). Checked for
            every metric, used by ``voc07`` only.

    Returns:
        The evaluator's dict (``map50``/``per_class``/``n_images`` for VOC; the 12 COCO stats,
        ``per_class`` and ``n_images`` for COCO) with ``metric`` and ``mismatches`` added
        (``{"gt_without_predictions": {"count", "first"}}`` when some ground-truth images have no
        detection, else ``{}``).

    Raises:
        ConfigError: an unknown ``metric`` or ``voc07_thresholds``, or missing ``class_names``.
    """
    if metric not in METRICS:
        raise ConfigError(f"metric={metric!r} is unknown; expected one of {', '.join(METRICS)}")
    check_voc07_thresholds(voc07_thresholds, "voc07_thresholds")
    coco_gt: dict | None = None
    if isinstance(gt, (str, Path)):
        gt_path = Path(gt)
        if metric == "coco" and isinstance(pred, (str, Path)) and Path(pred).is_file():
            out = coco_eval_files(gt_path, Path(pred))
            out["metric"] = metric
            return out
        targets, names, category_ids, coco_gt = coco_json_targets(gt_path)
    else:
        if class_names is None:
            raise ConfigError("score: class_names are needed when the ground truth is a list of targets")
        targets, names = list(gt), list(class_names)
        category_ids = list(range(1, len(names) + 1))
    dets, source = _read_pred(pred, names, category_ids, split)
    aligned, covered = _align(targets, dets, source)
    mismatches = prediction_mismatches([t.image_id for t in targets], covered, source, "images")
    if metric == "coco":
        if coco_gt is not None:
            results = detections_to_coco_results(aligned, category_ids, numeric_image_ids=False)
            by_str = {str(img["id"]): img["id"] for img in coco_gt["images"]}
            for r in results:
                r["image_id"] = by_str[r["image_id"]]
            out = run_cocoeval(coco_gt, results)
            out["n_images"] = len(coco_gt["images"])
        else:
            ev = COCOEvaluator(names)
            ev.process(aligned, targets)
            out = ev.compute()
    else:
        ev_voc = VOCEvaluator(
            names,
            use_07=metric == "voc07",
            iou_threshold=iou_threshold,
            plus_one=plus_one,
            thresholds=voc07_thresholds,
        )
        ev_voc.process(aligned, targets)
        out = ev_voc.compute()
    out["metric"] = metric
    out["mismatches"] = mismatches
    return out
