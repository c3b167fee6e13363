"""The evaluation pictures' drawing: PNG files from plain arrays, the mean PR curve, and the image
helpers that annotate ground truth and predictions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from singleshot.io.draw import GT_COLOR, PRED_COLOR, draw_boxes, draw_polygons, enlarge, side_by_side, write_image
from singleshot.io.eval_plots import (
    mean_curve,
    plot_ap_bars,
    plot_confusion_matrix,
    plot_pr_curves,
    plot_threshold_curve,
)


def test_mean_curve_counts_undetected_classes_as_zero() -> None:
    full = (np.array([0.0, 1.0]), np.array([1.0, 1.0]))
    half = (np.array([0.0, 0.5]), np.array([1.0, 1.0]))  # nothing beyond recall 0.5
    grid, mean = mean_curve([full, half, (np.zeros(0), np.zeros(0))], points=11)
    assert grid.tolist() == pytest.approx(np.linspace(0, 1, 11).tolist())
    assert mean[0] == pytest.approx(2 / 3) and mean[-1] == pytest.approx(1 / 3)
    assert mean_curve([], points=5)[1].tolist() == [0.0] * 5


def test_each_plot_writes_a_png(tmp_path: Path) -> None:
    names = ["a", "b", "c"]
    curves = [(np.array([0.0, 0.5, 0.5, 1.0]), np.array([1.0, 1.0, 0.5, 0.5])), (np.zeros(0), np.zeros(0))] * 2
    written = [
        plot_pr_curves(tmp_path / "pr.png", names, curves[:3], [0.75, 0.0, float("nan")]),
        plot_pr_curves(tmp_path / "many.png", [str(i) for i in range(30)], curves[:2] * 15, [0.5] * 30),
        plot_ap_bars(tmp_path / "sub" / "ap.png", names, [0.2, 0.9, float("nan")]),
        plot_confusion_matrix(tmp_path / "cm.png", np.eye(4) * 0.5, names),
        plot_confusion_matrix(tmp_path / "cm_counts.png", np.arange(16).reshape(4, 4), names, normalised=False),
        plot_threshold_curve(tmp_path / "t.png", [0.1, 0.25, 0.5], [0.9, 0.8, 0.4], "IoU", "rate", mark=(0.25, 0.8)),
    ]
    for path in written:
        with Image.open(path) as im:
            assert im.format == "PNG" and min(im.size) > 100, path


def test_boxes_polygons_and_strips() -> None:
    image = np.zeros((20, 30, 3), np.uint8)
    out = draw_boxes(image, [[2, 2, 12, 12]], GT_COLOR, ["a"], width=1)
    assert tuple(out[12, 5]) == GT_COLOR and image.max() == 0  # drawn on a copy
    out = draw_polygons(out, np.array([[[15, 2], [25, 2], [25, 10], [15, 10]]]), PRED_COLOR, width=1)
    assert tuple(out[10, 20]) == PRED_COLOR
    big = enlarge(out, 3)
    assert big.shape == (60, 90, 3) and tuple(big[38, 16]) == GT_COLOR
    strip = side_by_side([out, big], gap=2)
    assert strip.shape == (60, 30 + 2 + 90, 3) and strip[30, 10].tolist() == [255, 255, 255]


def test_write_image_by_suffix(tmp_path: Path) -> None:
    image = np.full((8, 8, 3), 200, np.uint8)
    with Image.open(write_image(tmp_path / "x" / "a.jpg", image)) as im:
        assert im.format == "JPEG" and im.size == (8, 8)
