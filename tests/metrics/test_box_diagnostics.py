"""The confusion matrix and per-image counts behind ``detect val``'s pictures, on a hand-made case:
two images with a true positive, a class confusion, false positives, a missed box, a difficult box
and detections below the thresholds."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from singleshot.metrics.box_diagnostics import BoxDiagnostics, greedy_match, normalise_columns
from singleshot.structures import BoxTarget, Detections

A, B = 0, 1


def _dets(rows: list[tuple[list[float], int, float]], image_id: str) -> Detections:
    return Detections(
        torch.tensor([r[0] for r in rows], dtype=torch.float32),
        torch.tensor([r[2] for r in rows], dtype=torch.float32),
        torch.tensor([r[1] for r in rows], dtype=torch.int64),
        image_id,
    )


# image 1: a found (TP), b detected as a (confusion), a b where nothing is (FP), a duplicate below 0.25
IM1_GT = BoxTarget(
    torch.tensor([[0.0, 0, 10, 10], [20, 20, 30, 30]]), torch.tensor([A, B]), torch.tensor([False, False]), "im1"
)
IM1_DET = _dets(
    [([0, 0, 10, 10], A, 0.9), ([20, 20, 30, 30], A, 0.8), ([50, 50, 60, 60], B, 0.7), ([0, 0, 10, 10], A, 0.2)],
    "im1",
)
# image 2: a b nobody finds (missed), a difficult a found (counts nowhere), a b where nothing is at 0.26
IM2_GT = BoxTarget(
    torch.tensor([[0.0, 0, 10, 10], [40, 40, 60, 60]]), torch.tensor([B, A]), torch.tensor([False, True]), "im2"
)
IM2_DET = _dets([([40, 40, 60, 60], A, 0.9), ([100, 100, 110, 110], B, 0.26)], "im2")


def test_confusion_matrix_counts_by_hand() -> None:
    diag = BoxDiagnostics(2, conf=0.3)
    diag.process([IM1_DET], [IM1_GT])
    diag.process([IM2_DET], [IM2_GT])
    # rows predicted (a, b, background), columns true (a, b, background)
    assert diag.matrix.tolist() == [
        [1, 1, 0],  # a found; b taken for a
        [0, 0, 2],  # two b where nothing is (0.7 and 0.26 > 0.25)
        [0, 1, 0],  # the b of image 2 missed
    ]
    shares = normalise_columns(diag.matrix)
    assert shares[:, A].tolist() == [1, 0, 0] and shares[:, B].tolist() == [0.5, 0, 0.5]
    assert shares[:, 2].tolist() == [0, 1, 0]


def test_per_image_counts_and_worst_order() -> None:
    diag = BoxDiagnostics(2, conf=0.3)
    diag.process([IM1_DET, IM2_DET], [IM1_GT, IM2_GT])
    # image 1 at show_conf 0.3: a TP; the a on b and the b on nothing are FP; b missed
    # image 2: the difficult match counts nowhere, the 0.26 b is below 0.3, the b is missed
    assert diag.counts.tolist() == [[1, 2, 1], [0, 0, 1]]
    assert diag.scores() == pytest.approx([2 / 5, 0.0])
    assert diag.worst(8) == [1, 0] and diag.worst(1) == [1]
    assert len(diag.detections[0]) == 3 and len(diag.detections[1]) == 1  # kept to draw: score >= 0.3


def test_a_clean_image_is_not_among_the_worst() -> None:
    diag = BoxDiagnostics(2)
    diag.process(
        [_dets([([0, 0, 10, 10], A, 0.9)], "x")], [BoxTarget(torch.tensor([[0.0, 0, 10, 10]]), torch.tensor([A]))]
    )
    diag.process([Detections(image_id="y")], [BoxTarget(image_id="y")])  # nothing to find, nothing found
    assert diag.counts.tolist() == [[1, 0, 0], [0, 0, 0]] and diag.scores().tolist() == [1.0, 1.0]
    assert diag.worst() == []


def test_greedy_match_takes_pairs_by_descending_iou() -> None:
    iou = np.array([[0.9, 0.0], [0.8, 0.7]])
    rows, cols = greedy_match(iou, 0.5)
    assert sorted(zip(rows.tolist(), cols.tolist())) == [(0, 0), (1, 1)]  # row 1 falls back on column 1
    rows, _ = greedy_match(np.array([[0.45]]), 0.45, strict=True)
    assert rows.size == 0
    rows, _ = greedy_match(np.array([[0.45]]), 0.45)
    assert rows.tolist() == [0]
