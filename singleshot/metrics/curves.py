"""Precision-recall curves as the evaluators see them, ready to draw.

A :class:`PRCurve` holds the polyline of one class (recall on x, precision on y) and the class's AP
as its evaluator reports it. The polyline is built so that the evaluator's own rule, applied to it,
gives that AP back:

* :func:`envelope_curve` (VOC all-point and 11-point AP, YOWO's frame-AP): the monotone
  (right-to-left running maximum) precision envelope as a staircase starting at recall 0. Its
  trapezoidal area is the all-point AP, and :func:`~singleshot.metrics.voc.voc_ap` of the polyline
  equals ``voc_ap`` of the raw ranked curve under either VOC rule.
* :func:`trapezoid_curve` (ACT's frame-AP): the raw ranked curve preceded by (0, 1); its trapezoidal
  area is the AP.
* COCO: the 101 recall thresholds and the interpolated precision COCOeval accumulates; the mean of
  the precision values is the AP (built in :mod:`singleshot.metrics.coco`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["PRCurve", "envelope_curve", "trapezoid_curve"]


@dataclass
class PRCurve:
    """One class's precision-recall curve.

    Attributes:
        recall: float64 [P], x of the polyline (non-decreasing).
        precision: float64 [P], y of the polyline.
        ap: the class's AP as the evaluator reports it (``nan`` when it has no ground truth).
    """

    recall: np.ndarray
    precision: np.ndarray
    ap: float


def envelope_curve(recall: np.ndarray, precision: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The staircase of the monotone precision envelope of a ranked curve.

    Args:
        recall: float [D], cumulative recall after each ranked detection (non-decreasing).
        precision: float [D], cumulative precision after each ranked detection (NaN read as 0).

    Returns:
        (x, y) float64 [2D]: segment ``i`` runs from recall ``r[i-1]`` (``r[-1]`` = 0) to ``r[i]`` at
        the envelope ``max(precision[i:])``; empty arrays when ``D`` is 0.
    """
    rec = np.asarray(recall, dtype=np.float64).reshape(-1)
    prec = np.nan_to_num(np.asarray(precision, dtype=np.float64).reshape(-1), nan=0.0)
    if rec.size == 0:
        return np.zeros(0), np.zeros(0)
    env = np.maximum.accumulate(prec[::-1])[::-1]
    starts = np.concatenate(([0.0], rec[:-1]))
    x = np.stack((starts, rec), axis=1).reshape(-1)
    y = np.repeat(env, 2)
    return x, y


def trapezoid_curve(recall: np.ndarray, precision: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The raw ranked curve preceded by (recall 0, precision 1), as ACT's ``pr_to_ap`` integrates it.

    Returns:
        (x, y) float64 [D + 1].
    """
    rec = np.asarray(recall, dtype=np.float64).reshape(-1)
    prec = np.asarray(precision, dtype=np.float64).reshape(-1)
    return np.concatenate(([0.0], rec)), np.concatenate(([1.0], prec))
