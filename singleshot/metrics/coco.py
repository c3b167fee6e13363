"""COCO box AP through faster-coco-eval's ``COCOeval_faster`` (pycocotools' ``COCOeval`` as fallback).

The evaluators build COCO-format ground truth and results in memory:

* images get ids 1..N in the order they were processed; class index ``i`` becomes category id
  ``i + 1`` (named ``class_names[i]``);
* boxes go from xyxy pixels to ``[x, y, w, h]`` with ``w = x2 - x1`` (COCO has no +1 convention);
* a ground-truth ``area`` is the box area ``w * h`` (official COCO files carry the segmentation area,
  which :func:`coco_eval_files` uses as given: the small/medium/large split can therefore differ
  slightly between the two routes on real COCO data);
* difficult / iscrowd targets become ``iscrowd=1`` ground truth: COCOeval ignores detections matched
  to them, with IoU measured as intersection over the *detection's* area for crowd boxes.

Results hold the 12 COCOeval summary stats under ``STAT_KEYS`` (``-1`` where COCOeval gives -1,
i.e. no ground truth in that area range) and ``per_class``: each category's AP at IoU 0.5:0.95
(area all, 100 detections), ``nan`` for a category without ground truth.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from singleshot.errors import DataError
from singleshot.metrics._common import check_labels, target_boxes_original, target_difficult, to_numpy
from singleshot.metrics.curves import PRCurve
from singleshot.metrics.mismatch import prediction_mismatches
from singleshot.structures import BoxTarget, Detections

logger = logging.getLogger(__name__)

__all__ = ["COCOEvaluator", "STAT_KEYS", "coco_eval_files", "run_cocoeval"]

STAT_KEYS: tuple[str, ...] = (
    "map",
    "map50",
    "map75",
    "map_small",
    "map_medium",
    "map_large",
    "mar_1",
    "mar_10",
    "mar_100",
    "mar_small",
    "mar_medium",
    "mar_large",
)


def _backend() -> tuple[Any, Any, str]:
    """(COCO class, COCOeval class, backend name): faster-coco-eval, else pycocotools."""
    try:
        from faster_coco_eval import COCO, COCOeval_faster

        return COCO, COCOeval_faster, "faster_coco_eval"
    except ImportError as exc:  # pragma: no cover - depends on the environment
        logger.warning("faster_coco_eval unavailable (%s); using pycocotools", exc)
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval

        return COCO, COCOeval, "pycocotools"


def _make_coco(coco_cls: Any, dataset: dict) -> Any:
    """A COCO api object indexed from an in-memory ``dataset`` dict (both libraries accept this)."""
    with contextlib.redirect_stdout(io.StringIO()):
        coco = coco_cls()
        coco.dataset = dataset
        coco.createIndex()
    return coco


def run_cocoeval(gt: dict, results: list[dict]) -> dict:
    """Run bbox COCOeval on in-memory ground truth and results.

    Args:
        gt: a COCO instances dict (``images``, ``annotations``, ``categories``).
        results: COCO results ``[{"image_id", "category_id", "bbox": [x, y, w, h], "score"}]`` whose
            image and category ids exist in ``gt`` (checked by the callers).

    Returns:
        ``{key: stat for key in STAT_KEYS}`` plus ``per_class`` keyed by category name (or str id
        when a category has no name).
    """
    return _cocoeval(gt, results)[0]


def _cocoeval(gt: dict, results: list[dict]) -> tuple[dict, dict[str, PRCurve]]:
    """:func:`run_cocoeval`'s result and each category's precision-recall curve at IoU 0.5 (area
    all, 100 detections): COCOeval's 101 recall thresholds and interpolated precision, whose mean
    is the category's AP50 (empty, AP ``nan``, for a category without ground truth)."""
    coco_cls, eval_cls, _ = _backend()
    dt_anns = []
    for i, r in enumerate(results):
        x, y, w, h = (float(v) for v in r["bbox"])
        dt_anns.append(
            {
                "id": i + 1,
                "image_id": r["image_id"],
                "category_id": r["category_id"],
                "bbox": [x, y, w, h],
                "score": float(r["score"]),
                "area": w * h,
                "iscrowd": 0,
            }
        )
    cats = gt.get("categories", [])
    gt_copy = {
        "images": gt.get("images", []),
        "categories": cats,
        "annotations": [dict(a) for a in gt.get("annotations", [])],  # COCOeval writes into them
    }
    dt = {"images": gt_copy["images"], "categories": cats, "annotations": dt_anns}
    coco_gt = _make_coco(coco_cls, gt_copy)
    coco_dt = _make_coco(coco_cls, dt)
    with contextlib.redirect_stdout(io.StringIO()):
        ev = eval_cls(coco_gt, coco_dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    stats = np.asarray(ev.stats, dtype=np.float64)[: len(STAT_KEYS)]
    out: dict[str, Any] = {k: float(v) for k, v in zip(STAT_KEYS, stats)}
    # precision: [T, R, K, A, M]; area index 0 = all, last maxDets = 100.
    precision = np.asarray(ev.eval["precision"])
    cat_ids = list(ev.params.catIds)
    names = {c["id"]: str(c.get("name", c["id"])) for c in cats}
    per_class: dict[str, float] = {}
    curves: dict[str, PRCurve] = {}
    rec_thrs = np.asarray(ev.params.recThrs, dtype=np.float64)
    for k, cid in enumerate(cat_ids):
        p = precision[:, :, k, 0, -1]
        p = p[p > -1]
        name = names.get(cid, str(cid))
        per_class[name] = float(p.mean()) if p.size else math.nan
        p50 = np.asarray(precision[0, :, k, 0, -1], dtype=np.float64)
        seen = p50 > -1
        curves[name] = PRCurve(rec_thrs[seen], p50[seen], float(p50[seen].mean()) if seen.any() else math.nan)
    out["per_class"] = per_class
    return out, curves


class COCOEvaluator:
    """Accumulates detections and ground truth of many images and computes COCO box AP.

    Args:
        class_names: the dataset's classes; label ``i`` is category id ``i + 1``.

    After :meth:`compute`, ``curves`` holds each class's precision-recall curve at IoU 0.5 (its AP50).
    """

    def __init__(self, class_names: Sequence[str]) -> None:
        self.class_names = list(class_names)
        self.reset()

    def reset(self) -> None:
        """Forget every image processed so far."""
        self._images: list[dict] = []
        self._gt: list[dict] = []
        self._dt: list[dict] = []
        self.curves: dict[str, PRCurve] = {}

    def process(self, preds: Sequence[Detections], targets: Sequence[BoxTarget]) -> None:
        """Add a batch of images.

        Args:
            preds: Detections per image (boxes xyxy pixels of the original image, 0-based labels).
            targets: BoxTarget per image, same order; boxes taken to ``orig_size`` pixels if resized.
        """
        if len(preds) != len(targets):
            raise ValueError(f"{len(preds)} predictions for {len(targets)} targets")
        n_cls = len(self.class_names)
        for pred, target in zip(preds, targets):
            if pred.image_id and target.image_id and pred.image_id != target.image_id:
                raise ValueError(f"prediction for image {pred.image_id!r} paired with target {target.image_id!r}")
            img_id = len(self._images) + 1
            h, w = target.orig_size if min(target.orig_size) > 0 else target.size
            self._images.append({"id": img_id, "height": int(h), "width": int(w), "file_name": target.image_id})
            g_lab = to_numpy(target.labels).astype(np.int64).reshape(-1)
            d_lab = to_numpy(pred.labels).astype(np.int64).reshape(-1)
            check_labels(g_lab, n_cls, "target", target.image_id)
            check_labels(d_lab, n_cls, "prediction", target.image_id)
            g_box = target_boxes_original(target)
            g_crowd = target_difficult(target)
            for box, lab, crowd in zip(_xywh(g_box).tolist(), g_lab.tolist(), g_crowd.tolist()):
                self._gt.append(
                    {
                        "id": len(self._gt) + 1,
                        "image_id": img_id,
                        "category_id": lab + 1,
                        "bbox": box,
                        "area": box[2] * box[3],
                        "iscrowd": int(crowd),
                    }
                )
            d_box = _xywh(to_numpy(pred.boxes).astype(np.float64).reshape(-1, 4))
            scores = to_numpy(pred.scores).astype(np.float64).reshape(-1)
            for box, lab, score in zip(d_box.tolist(), d_lab.tolist(), scores.tolist()):
                self._dt.append({"image_id": img_id, "category_id": lab + 1, "bbox": box, "score": score})

    def compute(self) -> dict:
        """Return the 12 COCO stats (``STAT_KEYS``), ``per_class`` AP by class name and ``n_images``."""
        gt = {
            "images": self._images,
            "categories": [{"id": i + 1, "name": n} for i, n in enumerate(self.class_names)],
            "annotations": self._gt,
        }
        out, self.curves = _cocoeval(gt, self._dt)
        out["n_images"] = len(self._images)
        return out


def _xywh(boxes: np.ndarray) -> np.ndarray:
    """[N, 4] xyxy -> [N, 4] xywh (no +1)."""
    out = boxes.copy()
    out[:, 2:] = boxes[:, 2:] - boxes[:, :2]
    return out


def load_json(path: Path, what: str) -> Any:
    """Read a JSON file, raising DataError that names the file when it is missing or malformed."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DataError(f"{path}: cannot read {what}: {exc}") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON ({what}): line {exc.lineno} column {exc.colno}: {exc.msg}") from exc


def check_coco_gt(gt: Any, path: Path) -> dict:
    """Validate the parts of a COCO instances dict that box evaluation uses; return it."""
    if not isinstance(gt, dict):
        raise DataError(f"{path}: a COCO instances file must hold a JSON object, not {type(gt).__name__}")
    for key in ("images", "annotations", "categories"):
        if not isinstance(gt.get(key), list):
            raise DataError(f"{path}: COCO instances file lacks the list {key!r}")
    for i, a in enumerate(gt["annotations"]):
        if not isinstance(a, dict) or not all(k in a for k in ("id", "image_id", "category_id", "bbox")):
            raise DataError(f"{path}: annotation #{i} lacks one of id, image_id, category_id, bbox")
        if "area" not in a:
            bb = a["bbox"]
            a["area"] = float(bb[2]) * float(bb[3])
    return gt


def check_coco_results(results: Any, path: Path, image_ids: set, category_ids: set) -> list[dict]:
    """Validate a COCO results list against the ground truth's image and category ids; return it."""
    if not isinstance(results, list):
        raise DataError(f"{path}: a COCO results file must hold a JSON list, not {type(results).__name__}")
    for i, r in enumerate(results):
        if not isinstance(r, dict) or not all(k in r for k in ("image_id", "category_id", "bbox", "score")):
            raise DataError(f"{path}: result #{i} lacks one of image_id, category_id, bbox, score")
        bb = r["bbox"]
        if not (isinstance(bb, list) and len(bb) == 4 and all(isinstance(v, (int, float)) for v in bb)):
            raise DataError(f"{path}: result #{i} has bbox {bb!r}; expected [x, y, w, h] numbers")
        if not isinstance(r["score"], (int, float)):
            raise DataError(f"{path}: result #{i} has a non-numeric score {r['score']!r}")
        if r["image_id"] not in image_ids:
            raise DataError(f"{path}: result #{i} names image_id {r['image_id']!r}, absent from the ground truth")
        if r["category_id"] not in category_ids:
            raise DataError(f"{path}: result #{i} names category_id {r['category_id']!r}, absent from the ground truth")
    return results


def coco_eval_files(gt_json: Path, results_json: Path) -> dict:
    """Evaluate a COCO results JSON against a COCO instances JSON (bbox).

    Args:
        gt_json: COCO instances file (category ids and names taken from it).
        results_json: COCO results file ``[{"image_id", "category_id", "bbox": [x, y, w, h], "score"}]``.

    Returns:
        The 12 stats under ``STAT_KEYS``, ``per_class`` AP (0.5:0.95) keyed by category name,
        ``n_images`` (the images of the ground truth file) and ``mismatches`` (the ground-truth images
        without results, :func:`~singleshot.metrics.mismatch.prediction_mismatches`; also a warning).
    """
    gt = check_coco_gt(load_json(gt_json, "COCO ground truth"), Path(gt_json))
    image_ids = {img["id"] for img in gt["images"]}
    category_ids = {c["id"] for c in gt["categories"]}
    results = check_coco_results(load_json(results_json, "COCO results"), Path(results_json), image_ids, category_ids)
    out = run_cocoeval(gt, results)
    out["n_images"] = len(gt["images"])
    out["mismatches"] = prediction_mismatches(
        [str(img["id"]) for img in gt["images"]], (str(r["image_id"]) for r in results), str(results_json)
    )
    return out
