"""Small helpers shared by the detection evaluators (numpy conversion, target rescaling)."""

from __future__ import annotations

import numpy as np
import torch

from singleshot.structures import BoxTarget


def to_numpy(t: torch.Tensor | np.ndarray) -> np.ndarray:
    """A detached CPU numpy view (or copy) of a tensor or array."""
    return t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)


def target_boxes_original(target: BoxTarget) -> np.ndarray:
    """Ground-truth boxes of ``target`` in the pixels of the image as stored on disk.

    Args:
        target: its ``boxes`` (Tensor[N, 4], xyxy pixels) refer to an image of ``size`` (h, w).

    Returns:
        float64 array [N, 4], xyxy pixels of an image of ``orig_size``. When ``size`` and
        ``orig_size`` are both known and differ (a resized evaluation sample), x is scaled by
        ``orig_w / w`` and y by ``orig_h / h``; otherwise the boxes are returned unchanged.
    """
    boxes = to_numpy(target.boxes).astype(np.float64).reshape(-1, 4)
    h, w = target.size
    oh, ow = target.orig_size
    if min(h, w, oh, ow) > 0 and (h, w) != (oh, ow):
        scale = np.array([ow / w, oh / h, ow / w, oh / h], dtype=np.float64)
        boxes = boxes * scale
    return boxes


def target_difficult(target: BoxTarget) -> np.ndarray:
    """bool array [N]: the target's difficult (or iscrowd) flags; all False when absent."""
    n = int(target.boxes.shape[0])
    flags = to_numpy(target.difficult).astype(bool).reshape(-1)
    if flags.size == 0 and n:
        return np.zeros(n, dtype=bool)
    if flags.size != n:
        raise ValueError(f"target {target.image_id!r} has {n} boxes but {flags.size} difficult flags")
    return flags


def check_labels(labels: np.ndarray, n_classes: int, what: str, image_id: str) -> None:
    """Raise ValueError when a 0-based label lies outside ``0..n_classes-1``."""
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        bad = labels[(labels < 0) | (labels >= n_classes)][0]
        raise ValueError(f"{what} of image {image_id!r} has label {int(bad)} outside 0..{n_classes - 1}")
