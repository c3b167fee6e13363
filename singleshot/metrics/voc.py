"""Pascal VOC detection AP, following the rules of the official VOC devkit (``VOCevaldet.m``).

Conventions (all arrays numpy, boxes ``xyxy`` pixels):

* Per class, detections are ranked by descending score with a *stable* sort (ties keep the order in
  which the detections were given, as MATLAB's ``sort`` does in the devkit).
* Each detection is compared with every ground-truth box of its class in its image (difficult and
  already matched ones included) and takes the one of highest IoU (the first one on ties). If that
  IoU is >= ``iou_threshold``: a difficult box makes the detection *ignored* (neither TP nor FP);
  an unmatched box makes it a TP and marks the box matched; an already matched box makes it a FP
  (a duplicate). A lower IoU (or no box at all) makes it a FP.
* The number of positives excludes difficult boxes.
* ``plus_one=True`` is the devkit's pixel convention: widths and heights are ``x2 - x1 + 1`` (boxes
  are inclusive pixel indices). ssd.pytorch's evaluation drops the ``+ 1`` (``plus_one=False``).
  Both ``voc07`` and ``voc12`` default to the devkit convention.
* ``use_07=True``: VOC2007 11-point interpolated AP, the mean over t = 0, 0.1, ..., 1 of the
  highest precision at recall >= t. By default (``thresholds="exact"``) the thresholds are the exact
  decimals k / 10. The Python ports (ssd.pytorch's and detectron2's ``voc_ap``, mmdetection's
  ``average_precision(mode="11points")``) use ``np.arange(0, 1.1, 0.1)``, whose 0.3, 0.6 and 0.7 lie
  one ulp above the decimal and so miss a recall of exactly 0.3 / 0.6 / 0.7 (3 / 10, 6 / 10, 7 / 10
  in float64); ``thresholds="arange"`` uses those values, to reproduce the ports' numbers.
  ``use_07=False``: VOC2010+ all-point AP, the area under the monotone (right-to-left running
  maximum) precision envelope (``thresholds`` plays no part).
* A class with no (non-difficult) positives has an undefined AP: the devkit divides by zero there
  (recall NaN). Its AP is reported as ``nan`` in ``per_class`` and it is left out of the mean, as
  COCOeval and the action-detection protocols do.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from singleshot.errors import ConfigError
from singleshot.metrics._common import check_labels, target_boxes_original, target_difficult, to_numpy
from singleshot.metrics.curves import PRCurve, envelope_curve
from singleshot.ops.boxes import box_iou_np
from singleshot.structures import BoxTarget, Detections

logger = logging.getLogger(__name__)

__all__ = [
    "VOC07_THRESHOLDS",
    "ClassResult",
    "VOCEvaluator",
    "check_voc07_thresholds",
    "evaluate_class",
    "match_class",
    "voc07_recall_thresholds",
    "voc_ap",
]

#: The threshold sets of the VOC2007 11-point AP: ``"exact"`` (k / 10, the default) and ``"arange"``
#: (``np.arange(0, 1.1, 0.1)``, as the Python ports compute them).
VOC07_THRESHOLDS: tuple[str, ...] = ("exact", "arange")

# The IoU block computed at once is (detections × boxes of the busiest image); keep it below this.
_MAX_BLOCK = 1 << 21


def check_voc07_thresholds(value: str, key: str = "thresholds") -> str:
    """Return ``value`` when it names a VOC2007 threshold set (see :data:`VOC07_THRESHOLDS`).

    Args:
        value: ``"exact"`` or ``"arange"``.
        key: the argument or config key to name in the error.

    Raises:
        ConfigError: ``value`` is neither.
    """
    if value not in VOC07_THRESHOLDS:
        raise ConfigError(
            f"{key}={value!r} is unknown; expected 'exact' (recall thresholds k/10) or 'arange' "
            "(np.arange(0, 1.1, 0.1), as ssd.pytorch, detectron2 and mmdetection compute them)"
        )
    return value


def voc07_recall_thresholds(thresholds: str = "exact") -> np.ndarray:
    """The 11 recall thresholds of the VOC2007 AP: float64 array [11].

    Args:
        thresholds: ``"exact"`` for the decimals k / 10 (k = 0..10), ``"arange"`` for
            ``np.arange(0, 1.1, 0.1)`` (entries 3, 6 and 7 are one ulp above 0.3, 0.6 and 0.7).

    Raises:
        ConfigError: an unknown ``thresholds``.
    """
    if check_voc07_thresholds(thresholds) == "arange":
        return np.arange(0.0, 1.1, 0.1, dtype=np.float64)
    return np.arange(11, dtype=np.float64) / 10.0


def voc_ap(recall: np.ndarray, precision: np.ndarray, use_07: bool, *, thresholds: str = "exact") -> float:
    """Average precision of one class from its precision-recall curve.

    Args:
        recall: float array [D], cumulative recall after each ranked detection (non-decreasing).
        precision: float array [D], cumulative precision after each ranked detection.
        use_07: True for VOC2007 11-point interpolation, False for the VOC2010+ all-point area under
            the monotone precision envelope.
        thresholds: the 11-point recall thresholds (``use_07=True`` only): ``"exact"`` k / 10, or
            ``"arange"`` as the Python ports (see :func:`voc07_recall_thresholds`, which checks it).

    Returns:
        AP in [0, 1]. An empty curve gives 0.0.

    Raises:
        ConfigError: an unknown ``thresholds``. ValueError: recall and precision differ in length.
    """
    rec = np.asarray(recall, dtype=np.float64).reshape(-1)
    prec = np.nan_to_num(np.asarray(precision, dtype=np.float64).reshape(-1), nan=0.0)
    if rec.shape != prec.shape:
        raise ValueError(f"recall and precision differ in length: {rec.shape[0]} vs {prec.shape[0]}")
    if rec.size == 0:
        return 0.0
    if use_07:
        points = voc07_recall_thresholds(thresholds)
        reached = rec[None, :] >= points[:, None]  # [11, D]
        best = np.where(reached, prec[None, :], -np.inf).max(axis=1)
        best[~reached.any(axis=1)] = 0.0
        return float(best.mean())
    mrec = np.concatenate(([0.0], rec, [1.0]))
    mpre = np.concatenate(([0.0], prec, [0.0]))
    envelope = np.maximum.accumulate(mpre[::-1])[::-1]
    steps = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[steps + 1] - mrec[steps]) * envelope[steps + 1]))


def match_class(
    det_image: np.ndarray,
    det_scores: np.ndarray,
    det_boxes: np.ndarray,
    gt_image: np.ndarray,
    gt_boxes: np.ndarray,
    gt_difficult: np.ndarray,
    iou_threshold: float = 0.5,
    plus_one: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Match the detections of one class to its ground truth with the devkit rules (see module doc).

    Args:
        det_image: int array [D], image index of each detection (any integers).
        det_scores: float array [D].
        det_boxes: float array [D, 4], xyxy pixels.
        gt_image: int array [G], image index of each ground-truth box (same numbering).
        gt_boxes: float array [G, 4], xyxy pixels.
        gt_difficult: bool array [G].
        iou_threshold: minimum IoU of a match.
        plus_one: devkit +1 pixel convention for widths and heights.

    Returns:
        ``order`` int array [D], the ranking (indices into the inputs, best score first, stable), and
        ``tp``, ``fp`` bool arrays [D] in ranked order. A detection ignored because it hit a
        difficult box has both False.
    """
    det_image = np.asarray(det_image, dtype=np.int64).reshape(-1)
    det_scores = np.asarray(det_scores, dtype=np.float64).reshape(-1)
    det_boxes = np.asarray(det_boxes, dtype=np.float64).reshape(-1, 4)
    gt_image = np.asarray(gt_image, dtype=np.int64).reshape(-1)
    gt_boxes = np.asarray(gt_boxes, dtype=np.float64).reshape(-1, 4)
    gt_difficult = np.asarray(gt_difficult, dtype=bool).reshape(-1)
    n_det, n_gt = det_scores.shape[0], gt_image.shape[0]
    if not (det_image.shape[0] == det_boxes.shape[0] == n_det):
        raise ValueError("det_image, det_scores and det_boxes differ in length")
    if not (gt_boxes.shape[0] == gt_difficult.shape[0] == n_gt):
        raise ValueError("gt_image, gt_boxes and gt_difficult differ in length")

    order = np.argsort(-det_scores, kind="stable")
    tp = np.zeros(n_det, dtype=bool)
    fp = np.ones(n_det, dtype=bool)
    if n_det == 0 or n_gt == 0:
        return order, tp, fp
    d_img, d_box = det_image[order], det_boxes[order]

    # Pad the ground truth into one row per image: rows [I, Gmax], slots keep the given order so
    # that argmax picks the first best box as the devkit does.
    by_image = np.argsort(gt_image, kind="stable")
    images, row_of_gt, counts = np.unique(gt_image[by_image], return_inverse=True, return_counts=True)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    slot = np.arange(n_gt) - starts[row_of_gt]
    g_max = int(counts.max())
    padded = np.zeros((images.shape[0] + 1, g_max, 4), dtype=np.float64)  # last row: no boxes
    valid = np.zeros((images.shape[0] + 1, g_max), dtype=bool)
    gt_index = np.full((images.shape[0] + 1, g_max), -1, dtype=np.int64)
    padded[row_of_gt, slot] = gt_boxes[by_image]
    valid[row_of_gt, slot] = True
    gt_index[row_of_gt, slot] = by_image

    pos = np.searchsorted(images, d_img)
    pos_c = np.minimum(pos, images.shape[0] - 1)
    row = np.where(images[pos_c] == d_img, pos_c, images.shape[0])

    best_iou = np.full(n_det, -1.0)
    best_gt = np.full(n_det, -1, dtype=np.int64)
    chunk = max(1, _MAX_BLOCK // g_max)
    for start in range(0, n_det, chunk):
        sl = slice(start, start + chunk)
        r = row[sl]
        iou = box_iou_np(d_box[sl, None, :], padded[r], plus_one)  # [c, Gmax]
        iou = np.where(valid[r], iou, -1.0)
        j = iou.argmax(axis=1)
        best_iou[sl] = iou[np.arange(j.shape[0]), j]
        best_gt[sl] = gt_index[r, j]

    hit = (best_iou >= iou_threshold) & (best_iou > 0) & (best_gt >= 0)
    hit_difficult = hit & gt_difficult[np.maximum(best_gt, 0)]
    candidates = np.flatnonzero(hit & ~hit_difficult)
    # The first detection (in ranked order) on each box is the TP; later ones are duplicates.
    _, first = np.unique(best_gt[candidates], return_index=True)
    tp[candidates[first]] = True
    fp = ~tp & ~hit_difficult
    return order, tp, fp


@dataclass
class ClassResult:
    """Evaluation of one class.

    Attributes:
        ap: average precision (``nan`` when ``n_pos`` is 0).
        n_pos: number of non-difficult ground-truth boxes.
        recall: float array [D], cumulative recall in ranked order.
        precision: float array [D], cumulative precision in ranked order.
        tp: bool array [D], ranked order. fp: bool array [D], ranked order.
        scores: float array [D], ranked scores.
    """

    ap: float
    n_pos: int
    recall: np.ndarray
    precision: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    scores: np.ndarray


def evaluate_class(
    det_image: np.ndarray,
    det_scores: np.ndarray,
    det_boxes: np.ndarray,
    gt_image: np.ndarray,
    gt_boxes: np.ndarray,
    gt_difficult: np.ndarray,
    iou_threshold: float = 0.5,
    use_07: bool = False,
    plus_one: bool = True,
    *,
    thresholds: str = "exact",
) -> ClassResult:
    """Precision, recall and AP of one class (arguments as in :func:`match_class`; ``use_07`` and
    ``thresholds`` as in :func:`voc_ap`)."""
    order, tp, fp = match_class(
        det_image, det_scores, det_boxes, gt_image, gt_boxes, gt_difficult, iou_threshold, plus_one
    )
    n_pos = int((~np.asarray(gt_difficult, dtype=bool).reshape(-1)).sum())
    ctp = np.cumsum(tp, dtype=np.float64)
    cfp = np.cumsum(fp, dtype=np.float64)
    precision = ctp / np.maximum(ctp + cfp, np.finfo(np.float64).eps)
    scores = np.asarray(det_scores, dtype=np.float64).reshape(-1)[order]
    if n_pos == 0:
        recall = np.full_like(ctp, np.nan)
        ap = math.nan
    else:
        recall = ctp / n_pos
        ap = voc_ap(recall, precision, use_07, thresholds=thresholds)
    return ClassResult(ap, n_pos, recall, precision, tp, fp, scores)


class VOCEvaluator:
    """Accumulates detections and ground truth of many images and computes VOC mAP.

    Args:
        class_names: the dataset's classes; label ``i`` is ``class_names[i]``.
        use_07: True for VOC2007 11-point AP (``voc07``), False for all-point AP (``voc12``).
        iou_threshold: minimum IoU of a match (0.5 in VOC).
        plus_one: the devkit's +1 pixel convention (default True, as the devkit).
        thresholds: the recall thresholds of the 11-point AP (``use_07=True`` only): ``"exact"``
            k / 10 (default) or ``"arange"``, ``np.arange(0, 1.1, 0.1)`` as the Python ports (see
            :func:`voc_ap`).

    After :meth:`compute`, ``curves`` holds each class's precision-recall curve (the staircase of
    its precision envelope, :func:`~singleshot.metrics.curves.envelope_curve`, with its AP).

    Raises:
        ConfigError: an unknown ``thresholds``.
    """

    def __init__(
        self,
        class_names: Sequence[str],
        use_07: bool,
        iou_threshold: float = 0.5,
        plus_one: bool = True,
        *,
        thresholds: str = "exact",
    ) -> None:
        self.class_names = list(class_names)
        self.use_07 = use_07
        self.thresholds = check_voc07_thresholds(thresholds)
        self.iou_threshold = float(iou_threshold)
        self.plus_one = plus_one
        self.reset()

    def reset(self) -> None:
        """Forget every image processed so far."""
        self._n_images = 0
        self._dets: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        self._gts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        self.curves: dict[str, PRCurve] = {}

    def process(self, preds: Sequence[Detections], targets: Sequence[BoxTarget]) -> None:
        """Add a batch of images.

        Args:
            preds: Detections per image (boxes xyxy pixels of the original image, 0-based labels).
            targets: BoxTarget per image, in the same order. Their boxes are taken to the original
                image's pixels when ``size`` differs from ``orig_size`` (see
                :func:`singleshot.metrics._common.target_boxes_original`).
        """
        if len(preds) != len(targets):
            raise ValueError(f"{len(preds)} predictions for {len(targets)} targets")
        n_cls = len(self.class_names)
        for pred, target in zip(preds, targets):
            if pred.image_id and target.image_id and pred.image_id != target.image_id:
                raise ValueError(f"prediction for image {pred.image_id!r} paired with target {target.image_id!r}")
            idx = self._n_images
            self._n_images += 1
            labels = to_numpy(pred.labels).astype(np.int64).reshape(-1)
            g_labels = to_numpy(target.labels).astype(np.int64).reshape(-1)
            check_labels(labels, n_cls, "prediction", target.image_id)
            check_labels(g_labels, n_cls, "target", target.image_id)
            if labels.size:
                self._dets.append(
                    (
                        np.full(labels.shape[0], idx, dtype=np.int64),
                        labels,
                        to_numpy(pred.scores).astype(np.float64).reshape(-1),
                        to_numpy(pred.boxes).astype(np.float64).reshape(-1, 4),
                    )
                )
            if g_labels.size:
                self._gts.append(
                    (
                        np.full(g_labels.shape[0], idx, dtype=np.int64),
                        g_labels,
                        target_difficult(target),
                        target_boxes_original(target),
                    )
                )

    def compute(self) -> dict:
        """Return ``{"map50": float, "per_class": {name: AP or nan}, "n_images": int}``.

        ``map50`` is the mean AP over the classes that have at least one non-difficult box (0.0
        with a warning when no class has any).
        """
        det = _concat(self._dets, (np.int64, np.int64, np.float64, np.float64))
        gt = _concat(self._gts, (np.int64, np.int64, bool, np.float64))
        d_img, d_lab, d_score, d_box = det
        g_img, g_lab, g_diff, g_box = gt
        # Group by class once (stable, so the given order of equal scores is kept).
        d_sort = np.argsort(d_lab, kind="stable")
        g_sort = np.argsort(g_lab, kind="stable")
        n_cls = len(self.class_names)
        d_bounds = np.searchsorted(d_lab[d_sort], np.arange(n_cls + 1))
        g_bounds = np.searchsorted(g_lab[g_sort], np.arange(n_cls + 1))
        per_class: dict[str, float] = {}
        self.curves = {}
        for c, name in enumerate(self.class_names):
            di = d_sort[d_bounds[c] : d_bounds[c + 1]]
            gi = g_sort[g_bounds[c] : g_bounds[c + 1]]
            res = evaluate_class(
                d_img[di],
                d_score[di],
                d_box[di],
                g_img[gi],
                g_box[gi],
                g_diff[gi],
                self.iou_threshold,
                self.use_07,
                self.plus_one,
                thresholds=self.thresholds,
            )
            per_class[name] = res.ap
            drawn = envelope_curve(res.recall, res.precision) if res.n_pos else (np.zeros(0), np.zeros(0))
            self.curves[name] = PRCurve(*drawn, res.ap)
        valid = [ap for ap in per_class.values() if not math.isnan(ap)]
        if not valid:
            logger.warning("VOC evaluation: no class has a non-difficult ground-truth box; mAP set to 0")
        map50 = float(np.mean(valid)) if valid else 0.0
        return {"map50": map50, "per_class": per_class, "n_images": self._n_images}


def _concat(parts: list[tuple[np.ndarray, ...]], dtypes: tuple) -> tuple[np.ndarray, ...]:
    if not parts:
        return tuple(np.zeros((0, 4), dtype=dt) if i == 3 else np.zeros((0,), dtype=dt) for i, dt in enumerate(dtypes))
    return tuple(np.concatenate([p[i] for p in parts]) for i in range(len(dtypes)))
