"""Evaluation pictures from plain arrays: precision-recall curves, per-class AP bars, a confusion
matrix and a metric against a threshold.

Drawing uses matplotlib's object-oriented API on an Agg canvas made inside each function (as
:mod:`singleshot.engine.plots`); pyplot and the global backend are never touched, so importing this
module has no side effects and it works without a display. Each function writes one PNG and returns
its path (its folder is created when missing).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from singleshot.atomic import atomic_write

logger = logging.getLogger(__name__)

__all__ = ["mean_curve", "plot_ap_bars", "plot_confusion_matrix", "plot_pr_curves", "plot_threshold_curve"]

# Classes up to this many get their own legend entry (PR curves) or cell numbers (confusion matrix).
_MAX_NAMED = 20
_MAX_ANNOTATED = 30


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: fig.savefig(f, format="png", bbox_inches="tight"), durable=False)
    return path


def mean_curve(curves: Sequence[tuple[np.ndarray, np.ndarray]], points: int = 1001) -> tuple[np.ndarray, np.ndarray]:
    """The mean precision of several curves on a common recall grid.

    Args:
        curves: (recall [P], precision [P]) polylines, recall non-decreasing; an empty one (a class
            never detected) counts as precision 0 everywhere.
        points: grid points over recall 0..1.

    Returns:
        (grid [points], mean precision [points]); beyond a curve's last recall its precision is 0.
        Zeros when there is no curve.
    """
    grid = np.linspace(0.0, 1.0, points)
    ys = [np.interp(grid, x, y, left=y[0], right=0.0) if len(x) else np.zeros(points) for x, y in curves]
    return grid, (np.mean(ys, axis=0) if ys else np.zeros(points))


def plot_pr_curves(
    path: str | Path,
    names: Sequence[str],
    curves: Sequence[tuple[np.ndarray, np.ndarray]],
    aps: Sequence[float],
    title: str = "Precision-recall",
    ap_label: str = "mAP",
) -> Path:
    """One thin line per class (legend ``name AP`` up to 20 classes, grey lines beyond), and their
    mean on a common recall grid in bold with the mean AP, both over the classes whose AP is a number.

    Args:
        names: class names; curves: (recall [P], precision [P]) per class; aps: AP per class (NaN:
            no ground truth, left out of the mean).
        ap_label: what the mean is called in the legend (``mAP``, ``mAP@0.5``, ``frame-mAP``).
    """
    fig = _figure(9.0, 6.0)
    ax = fig.add_subplot(1, 1, 1)
    named = len(names) <= _MAX_NAMED
    for name, (x, y), ap in zip(names, curves, aps):
        if math.isnan(ap):  # no ground truth: no curve
            continue
        label = f"{name} {ap:.3f}" if named else None
        ax.plot(x, y, linewidth=1, label=label, color=None if named else "grey")
    grid, mean = mean_curve([c for c, ap in zip(curves, aps) if not math.isnan(ap)])
    valid = [a for a in aps if not math.isnan(a)]
    overall = float(np.mean(valid)) if valid else float("nan")
    ax.plot(grid, mean, linewidth=3, color="blue", label=f"all classes {overall:.3f} {ap_label}")
    ax.set_xlabel("Recall")
    ax.set_ylabel("Precision")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(bbox_to_anchor=(1.02, 1), loc="upper left", fontsize="small")
    return _save(fig, path)


def plot_ap_bars(
    path: str | Path, names: Sequence[str], aps: Sequence[float], title: str = "AP per class", xlabel: str = "AP"
) -> Path:
    """Horizontal bars of each class's AP, highest on top; classes whose AP is NaN (no ground truth)
    are listed under the axis instead."""
    pairs = sorted(((float(a), n) for n, a in zip(names, aps) if not math.isnan(a)), key=lambda p: p[0])
    missing = [n for n, a in zip(names, aps) if math.isnan(a)]
    fig = _figure(7.0, 1.5 + 0.28 * max(1, len(pairs)))
    ax = fig.add_subplot(1, 1, 1)
    if pairs:
        values = [p[0] for p in pairs]
        pos = np.arange(len(pairs))
        ax.barh(pos, values, color="tab:blue")
        ax.set_yticks(pos, [p[1] for p in pairs], fontsize="small")
        for y, v in zip(pos, values):
            ax.text(min(v, 1.0) + 0.01, y, f"{v:.3f}", va="center", fontsize="x-small")
    ax.set_xlim(0, 1.1)
    ax.set_title(title)
    note = f"\n(no ground truth: {', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''})" if missing else ""
    ax.set_xlabel(xlabel + note)
    ax.grid(True, axis="x", alpha=0.3)
    return _save(fig, path)


def plot_confusion_matrix(
    path: str | Path, matrix: np.ndarray, names: Sequence[str], normalised: bool = True, title: str = ""
) -> Path:
    """A confusion matrix (rows predicted, columns true; ``len(names) + 1`` of each, the last being
    background) as a heat map, with its values in the cells up to 30 classes.

    Args:
        matrix: float or int [C + 1, C + 1]; ``normalised``: values are shares in [0, 1] (blank
            below 0.005), else counts.
    """
    m = np.asarray(matrix, dtype=np.float64)
    labels = [*names, "background"]
    n = m.shape[0]
    side = min(4.0 + 0.45 * n, 30.0)
    fig = _figure(side + 1.5, side)
    ax = fig.add_subplot(1, 1, 1)
    shown = np.where(m < 0.005, np.nan, m) if normalised else m
    image = ax.imshow(shown, cmap="Blues", vmin=0.0, vmax=1.0 if normalised else None)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ticks = np.arange(n)
    small = n <= _MAX_ANNOTATED
    ax.set_xticks(ticks, labels if small else [""] * n, rotation=90, fontsize="small")
    ax.set_yticks(ticks, labels if small else [""] * n, fontsize="small")
    if small:
        top = np.nanmax(shown) if np.isfinite(shown).any() else 1.0
        for i in range(n):
            for j in range(n):
                v = m[i, j]
                if (normalised and v >= 0.005) or (not normalised and v > 0):
                    text = f"{v:.2f}" if normalised else str(int(v))
                    colour = "white" if v > 0.5 * top else "black"
                    ax.text(j, i, text, ha="center", va="center", fontsize="x-small", color=colour)
    ax.set_xlabel("True")
    ax.set_ylabel("Predicted")
    ax.set_title(title or ("Confusion matrix (normalised per true class)" if normalised else "Confusion matrix"))
    return _save(fig, path)


def plot_threshold_curve(
    path: str | Path,
    x: Sequence[float],
    y: Sequence[float],
    xlabel: str,
    ylabel: str,
    title: str = "",
    mark: tuple[float, float] | None = None,
) -> Path:
    """A metric (``y``) against a threshold (``x``), with an optional marked point (the metric's own
    threshold and its reported value)."""
    fig = _figure(6.0, 4.2)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(list(x), list(y), marker="o", markersize=4, linewidth=1.5)
    if mark is not None:
        ax.axvline(mark[0], color="grey", linestyle="--", linewidth=1)
        ax.plot([mark[0]], [mark[1]], marker="o", markersize=8, color="red", label=f"{mark[1]:.3f} at {mark[0]:g}")
        ax.legend(fontsize="small")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 1.02)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    return _save(fig, path)
