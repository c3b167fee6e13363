"""Where a box detector goes wrong: a confusion matrix over the classes plus background, and a score
per image to find the worst ones. Neither changes a metric; ``detect val`` draws them.

Confusion matrix (the convention of ultralytics' ``ConfusionMatrix``): the detections of an image
scoring above ``matrix_conf`` (0.25) are matched to its ground-truth boxes whatever their classes,
one to one, greedily by descending IoU among the pairs whose IoU exceeds ``matrix_iou`` (0.45).
Rows are the predicted class, columns the true class, the last row and column "background":

* a matched pair counts at (predicted class, true class): on the diagonal, or a class confusion;
* a ground-truth box left unmatched counts at (background, true class): missed;
* a detection left unmatched counts at (predicted class, background): a false positive.

A pair whose box is difficult (or crowd) counts nowhere, and neither does a difficult box left
unmatched. :func:`normalise_columns` divides each column by its sum (the share of each true class).

Per image (:class:`BoxDiagnostics` ``counts``): the detections scoring at least ``conf`` (the
pictures' ``show_conf``) matched one to one to boxes of their own class at IoU >= ``iou`` (0.5),
greedily by IoU: true positives, false positives and missed boxes; the image's score is their F1,
``2 tp / (2 tp + fp + fn)`` (1 when there is nothing to find and nothing false), lowest first in
:meth:`BoxDiagnostics.worst`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from singleshot.metrics._common import target_boxes_original, target_difficult, to_numpy
from singleshot.metrics.curves import PRCurve
from singleshot.ops.boxes import box_iou_np
from singleshot.structures import BoxTarget, Detections

__all__ = ["BoxDiagnostics", "greedy_match", "image_counts", "normalise_columns", "update_confusion"]


def greedy_match(iou: np.ndarray, thresh: float, strict: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """One-to-one pairs of rows and columns of ``iou``, taken by descending IoU (ties: row-major order).

    Args:
        iou: float [R, C]; entries below 0 never match.
        thresh: a pair needs IoU above it (``strict``) or at least it.

    Returns:
        (rows int64 [M], cols int64 [M]) of the matched pairs.
    """
    iou = np.asarray(iou, dtype=np.float64)
    ok = (iou > thresh) if strict else (iou >= thresh)
    r, c = np.nonzero(ok & (iou >= 0))
    order = np.argsort(-iou[r, c], kind="stable")
    used_r: set[int] = set()
    used_c: set[int] = set()
    rows, cols = [], []
    for k in order.tolist():
        i, j = int(r[k]), int(c[k])
        if i not in used_r and j not in used_c:
            used_r.add(i)
            used_c.add(j)
            rows.append(i)
            cols.append(j)
    return np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)


def _image_arrays(
    det_boxes: np.ndarray,
    det_labels: np.ndarray,
    gt_boxes: np.ndarray,
    gt_labels: np.ndarray,
    gt_difficult: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One image's detections and boxes as float64 [D, 4], int64 [D], float64 [G, 4], int64 [G] and
    bool [G] difficult flags (all False when None)."""
    diff = np.zeros(len(np.asarray(gt_labels).reshape(-1)), bool) if gt_difficult is None else gt_difficult
    return (
        np.asarray(det_boxes, dtype=np.float64).reshape(-1, 4),
        np.asarray(det_labels, dtype=np.int64).reshape(-1),
        np.asarray(gt_boxes, dtype=np.float64).reshape(-1, 4),
        np.asarray(gt_labels, dtype=np.int64).reshape(-1),
        np.asarray(diff, bool).reshape(-1),
    )


def update_confusion(
    matrix: np.ndarray,
    det_boxes: np.ndarray,
    det_labels: np.ndarray,
    gt_boxes: np.ndarray,
    gt_labels: np.ndarray,
    gt_difficult: np.ndarray | None = None,
    iou_thresh: float = 0.45,
) -> None:
    """Add one image to ``matrix`` (int64 [C + 1, C + 1], rows predicted, columns true, last =
    background) as the module doc says.

    Args:
        det_boxes: float [D, 4] xyxy pixels of the detections already above the confidence threshold.
        det_labels: int [D]. gt_boxes: float [G, 4] xyxy pixels. gt_labels: int [G].
        gt_difficult: bool [G] (None: none difficult).
    """
    bg = matrix.shape[0] - 1
    det_boxes, det_labels, gt_boxes, gt_labels, diff = _image_arrays(
        det_boxes, det_labels, gt_boxes, gt_labels, gt_difficult
    )
    iou = box_iou_np(det_boxes[:, None, :], gt_boxes[None, :, :]) if len(det_boxes) and len(gt_boxes) else None
    di, gi = greedy_match(iou, iou_thresh, strict=True) if iou is not None else (np.zeros(0, np.int64),) * 2
    counted = ~diff[gi]
    np.add.at(matrix, (det_labels[di[counted]], gt_labels[gi[counted]]), 1)
    free_gt = np.ones(gt_labels.shape[0], bool)
    free_gt[gi] = False
    np.add.at(matrix, (np.full(int((free_gt & ~diff).sum()), bg), gt_labels[free_gt & ~diff]), 1)
    free_det = np.ones(det_labels.shape[0], bool)
    free_det[di] = False
    np.add.at(matrix, (det_labels[free_det], np.full(int(free_det.sum()), bg)), 1)


def normalise_columns(matrix: np.ndarray) -> np.ndarray:
    """float64 copy of ``matrix`` with each column divided by its sum (all-zero columns stay 0)."""
    m = np.asarray(matrix, dtype=np.float64)
    total = m.sum(axis=0, keepdims=True)
    return np.divide(m, total, out=np.zeros_like(m), where=total > 0)


def image_counts(
    det_boxes: np.ndarray,
    det_labels: np.ndarray,
    gt_boxes: np.ndarray,
    gt_labels: np.ndarray,
    gt_difficult: np.ndarray | None = None,
    iou_thresh: float = 0.5,
) -> tuple[int, int, int]:
    """(true positives, false positives, missed boxes) of one image's detections (already above the
    confidence threshold) matched one to one to boxes of their own class at IoU >= ``iou_thresh``.
    A detection matched to a difficult box, and a difficult box, count nowhere."""
    det_boxes, det_labels, gt_boxes, gt_labels, diff = _image_arrays(
        det_boxes, det_labels, gt_boxes, gt_labels, gt_difficult
    )
    if len(det_boxes) and len(gt_boxes):
        iou = box_iou_np(det_boxes[:, None, :], gt_boxes[None, :, :])
        iou = np.where(det_labels[:, None] == gt_labels[None, :], iou, -1.0)
        di, gi = greedy_match(iou, iou_thresh)
    else:
        di = gi = np.zeros(0, np.int64)
    tp = int((~diff[gi]).sum())
    fp = int(det_labels.shape[0] - di.shape[0])
    fn = int((~diff).sum()) - tp
    return tp, fp, fn


class BoxDiagnostics:
    """Accumulates the confusion matrix and the per-image counts of a detection evaluation.

    Args:
        num_classes: C; labels are ``0..C-1``.
        conf: per-image counts (and the kept detections) use detections scoring at least this.
        iou: per-image match threshold (IoU >= iou).
        matrix_conf: the confusion matrix uses detections scoring above this.
        matrix_iou: the confusion matrix's match threshold (IoU > matrix_iou).

    Attributes:
        matrix: int64 [C + 1, C + 1], rows predicted, columns true, last = background.
        counts: int64 [N, 3] after :meth:`process` calls: (tp, fp, fn) per image in processing order.
        detections: per image, its detections scoring at least ``conf`` (CPU), to draw.
        targets: per image, its ground truth (CPU).
        curves: the AP evaluator's precision-recall curves by class, set by whoever runs it.
    """

    def __init__(
        self, num_classes: int, conf: float = 0.3, iou: float = 0.5, matrix_conf: float = 0.25, matrix_iou: float = 0.45
    ) -> None:
        self.num_classes = int(num_classes)
        self.conf, self.iou, self.matrix_conf, self.matrix_iou = conf, iou, matrix_conf, matrix_iou
        self.matrix = np.zeros((self.num_classes + 1, self.num_classes + 1), dtype=np.int64)
        self._counts: list[tuple[int, int, int]] = []
        self.detections: list[Detections] = []
        self.targets: list[BoxTarget] = []
        self.curves: dict[str, PRCurve] = {}

    @property
    def counts(self) -> np.ndarray:
        return np.asarray(self._counts, dtype=np.int64).reshape(-1, 3)

    def process(self, preds: Sequence[Detections], targets: Sequence[BoxTarget]) -> None:
        """Add a batch: detections (xyxy pixels of the original image) and targets, same order."""
        for pred, target in zip(preds, targets, strict=True):
            scores = to_numpy(pred.scores).astype(np.float64).reshape(-1)
            boxes = to_numpy(pred.boxes).astype(np.float64).reshape(-1, 4)
            labels = to_numpy(pred.labels).astype(np.int64).reshape(-1)
            g_box = target_boxes_original(target)
            g_lab = to_numpy(target.labels).astype(np.int64).reshape(-1)
            g_diff = target_difficult(target)
            above = scores > self.matrix_conf
            update_confusion(self.matrix, boxes[above], labels[above], g_box, g_lab, g_diff, self.matrix_iou)
            shown = scores >= self.conf
            self._counts.append(image_counts(boxes[shown], labels[shown], g_box, g_lab, g_diff, self.iou))
            keep = torch.as_tensor(np.flatnonzero(shown), dtype=torch.long)
            self.detections.append(
                Detections(
                    pred.boxes.detach().cpu()[keep],
                    pred.scores.detach().cpu()[keep],
                    pred.labels.detach().cpu()[keep],
                    pred.image_id,
                )
            )
            self.targets.append(target.to("cpu"))

    def scores(self) -> np.ndarray:
        """float64 [N]: each image's F1 (see the module doc)."""
        c = self.counts.astype(np.float64)
        denom = 2 * c[:, 0] + c[:, 1] + c[:, 2]
        return np.divide(2 * c[:, 0], denom, out=np.ones(c.shape[0]), where=denom > 0)

    def worst(self, k: int = 8) -> list[int]:
        """Indices of the ``k`` images of lowest F1 (ties: more errors first, then processing order);
        only images with at least one error."""
        c = self.counts
        errors = c[:, 1] + c[:, 2]
        order = np.lexsort((np.arange(c.shape[0]), -errors, self.scores()))
        return [int(i) for i in order if errors[i] > 0][: max(0, int(k))]
