"""Grasp success ("IoU accuracy", the rectangle metric of Jiang et al. used by GG-CNN).

An image succeeds when one of its top-k predicted grasps (k = 1 in the reference) has
IoU > ``iou_thresh`` (0.25) with some ground-truth rectangle whose angle differs from the
prediction's by at most ``angle_thresh`` (30°), angles compared modulo π (dougsm/ggcnn
``calculate_iou_match`` and ``GraspRectangle.iou``: a difference *above* the threshold gives IoU 0,
so exactly 30° passes). IoU is exact (``iou="polygon"``) or counted in pixels as the reference
(``iou="raster"``, see :mod:`singleshot.ops.grasp`); the two differ by a few hundredths at most and
flip about 0.2 % of the decisions. An image without ground truth or without predictions fails.

Predictions and ground truth of an image must be in the same pixels (same ``size``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import torch
from torch import Tensor

from singleshot.ops.grasp import IoUMode, angle_diff, iou_aligned
from singleshot.structures import Grasps

logger = logging.getLogger(__name__)

__all__ = ["GraspEvaluator", "grasp_best_iou_batch", "grasp_success", "grasp_success_batch", "wilson_interval"]

_Z95 = 1.959963984540054  # two-sided 95 % normal quantile


def wilson_interval(successes: int, n: int, z: float = _Z95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion.

    Args:
        successes: number of successes k; n: number of trials.
        z: normal quantile (1.96 for 95 %).

    Returns:
        (lo, hi) in [0, 1]; (0.0, 1.0) when n = 0.
    """
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    z2 = z * z
    denom = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def _top_k(pred: Grasps, top_k: int | None) -> Tensor:
    """Rows of the ``top_k`` highest-scored predictions (stable on ties), Tensor[k, 5]."""
    g = pred.grasps.reshape(-1, 5)
    if pred.scores.numel() == g.shape[0] and g.shape[0] > 1:
        g = g[torch.argsort(pred.scores.reshape(-1), descending=True, stable=True)]
    return g if top_k is None else g[:top_k]


def _check_sizes(pred: Grasps, gt: Grasps) -> None:
    if min(*pred.size, *gt.size) > 0 and tuple(pred.size) != tuple(gt.size):
        raise ValueError(
            f"image {gt.image_id or pred.image_id!r}: predictions refer to an image of size {pred.size} "
            f"but the ground truth to {gt.size}; bring them to the same pixels first"
        )


def grasp_success_batch(
    preds: Sequence[Grasps],
    gts: Sequence[Grasps],
    iou_thresh: float = 0.25,
    angle_thresh: float = 30.0,
    iou: IoUMode = "polygon",
    top_k: int | None = 1,
) -> Tensor:
    """Success of each image of a batch (see the module docstring).

    Args:
        preds: predicted grasps per image (rows ranked by ``scores``).
        gts: ground-truth grasps per image, in the same pixels.
        iou_thresh: IoU must exceed this.
        angle_thresh: largest angle difference in degrees (modulo 180°).
        iou: ``"polygon"`` or ``"raster"``.
        top_k: predictions tried per image (None: all).

    Returns:
        Tensor[B] bool.
    """
    return grasp_best_iou_batch(preds, gts, angle_thresh, iou, top_k) > iou_thresh


def grasp_best_iou_batch(
    preds: Sequence[Grasps],
    gts: Sequence[Grasps],
    angle_thresh: float = 30.0,
    iou: IoUMode = "polygon",
    top_k: int | None = 1,
) -> Tensor:
    """Each image's best IoU between one of its top-k predictions and a ground-truth rectangle
    within ``angle_thresh`` of it (arguments as :func:`grasp_success_batch`): the image succeeds at
    threshold t exactly when this exceeds t.

    Returns:
        Tensor[B] float64; ``-inf`` where no pair is within the angle (no predictions, no ground
        truth, or every angle too far).
    """
    if len(preds) != len(gts):
        raise ValueError(f"{len(preds)} predictions for {len(gts)} ground truths")
    b = len(gts)
    if b == 0:
        return torch.zeros(0, dtype=torch.float64)
    for p, g in zip(preds, gts):
        _check_sizes(p, g)
    tops = [_top_k(p, top_k).to(torch.float64).cpu() for p in preds]
    truth = [g.grasps.reshape(-1, 5).to(torch.float64).cpu() for g in gts]
    kp = torch.tensor([t.shape[0] for t in tops])
    kg = torch.tensor([t.shape[0] for t in truth])
    npairs = kp * kg
    total = int(npairs.sum())
    best = torch.full((b,), -math.inf, dtype=torch.float64)
    if total == 0:
        return best
    # pair j of image i is (pred j // kg[i], gt j % kg[i]); built for all images at once
    image = torch.repeat_interleave(torch.arange(b), npairs)
    local = torch.arange(total) - (torch.cumsum(npairs, 0) - npairs)[image]
    pred_off = (torch.cumsum(kp, 0) - kp)[image]
    gt_off = (torch.cumsum(kg, 0) - kg)[image]
    pa = torch.cat(tops)[pred_off + local // kg[image]]
    ga = torch.cat(truth)[gt_off + local % kg[image]]
    ok = angle_diff(pa[:, 2], ga[:, 2]) <= math.radians(angle_thresh) + 1e-12
    if bool(ok.any()):
        pair_iou = torch.nan_to_num(iou_aligned(pa[ok], ga[ok], iou).to(torch.float64), nan=-math.inf)  # NaN: no hit
        best.scatter_reduce_(0, image[ok], pair_iou, reduce="amax")
    return best


def grasp_success(
    pred: Grasps,
    gt: Grasps,
    iou_thresh: float = 0.25,
    angle_thresh: float = 30.0,
    iou: IoUMode = "polygon",
    top_k: int | None = 1,
) -> bool:
    """Whether the top-k predictions of one image succeed (see :func:`grasp_success_batch`)."""
    return bool(grasp_success_batch([pred], [gt], iou_thresh, angle_thresh, iou, top_k)[0])


class GraspEvaluator:
    """Grasp success rate over a dataset: ``reset() / process(preds, targets) / compute()``.

    ``best_iou`` keeps each processed image's best IoU (:func:`grasp_best_iou_batch`), from which
    :meth:`success_curve` gives the rate at other IoU thresholds.

    Args:
        iou_thresh, angle_thresh, iou, top_k: see :func:`grasp_success_batch`.
        split: a description of the evaluated split reported with the result (for example
            ``"image-wise fold 1/5"``): on Cornell one test image is about one point.
    """

    def __init__(
        self,
        iou_thresh: float = 0.25,
        angle_thresh: float = 30.0,
        iou: IoUMode = "polygon",
        top_k: int | None = 1,
        split: str = "",
    ) -> None:
        if iou not in ("polygon", "raster"):
            raise ValueError(f"unknown grasp IoU mode {iou!r}; use 'polygon' or 'raster'")
        self.iou_thresh = iou_thresh
        self.angle_thresh = angle_thresh
        self.iou: IoUMode = iou
        self.top_k = top_k
        self.split = split
        self.results: list[tuple[str, bool]] = []
        self.best_iou: list[float] = []

    def reset(self) -> None:
        """Forget every processed image."""
        self.results = []
        self.best_iou = []

    def process(self, preds: Sequence[Grasps], targets: Sequence[Grasps]) -> None:
        """Score a batch: one prediction :class:`Grasps` per target, in the same pixels."""
        for t in targets:
            if len(t) == 0:
                logger.warning("image %r has no ground-truth grasp; it counts as a failure", t.image_id)
        best = grasp_best_iou_batch(preds, targets, self.angle_thresh, self.iou, self.top_k)
        ok = best > self.iou_thresh
        self.results.extend((t.image_id, bool(s)) for t, s in zip(targets, ok.tolist()))
        self.best_iou.extend(best.tolist())

    def success_curve(self, thresholds: Sequence[float]) -> list[float]:
        """The success rate of the processed images at each IoU threshold of ``thresholds`` (the
        rest of the rule unchanged); NaN each when no image was processed."""
        best = torch.tensor(self.best_iou, dtype=torch.float64)
        if best.numel() == 0:
            return [float("nan")] * len(thresholds)
        return [float((best > t).double().mean()) for t in thresholds]

    def compute(self) -> dict[str, object]:
        """``{"success_rate", "n", "n_success", "ci95": [lo, hi] (Wilson), "split", "iou",
        "iou_thresh", "angle_thresh", "top_k"}``; success_rate is NaN when no image was processed."""
        n = len(self.results)
        k = sum(s for _, s in self.results)
        lo, hi = wilson_interval(k, n)
        return {
            "success_rate": k / n if n else float("nan"),
            "n": n,
            "n_success": k,
            "ci95": [lo, hi],
            "split": self.split,
            "iou": self.iou,
            "iou_thresh": self.iou_thresh,
            "angle_thresh": self.angle_thresh,
            "top_k": self.top_k,
        }
