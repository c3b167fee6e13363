"""Batching of detection samples."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
from torch import Tensor

from singleshot.structures import BoxTarget

logger = logging.getLogger(__name__)

__all__ = ["collate_detection"]


def collate_detection(batch: Sequence[tuple[Tensor, BoxTarget]]) -> tuple[Tensor, list[BoxTarget]]:
    """Stack equally sized images and keep the targets as a list.

    Args:
        batch: B pairs ``(image Tensor[3, S, S], BoxTarget)``, images already resized to one size.

    Returns:
        (images Tensor[B, 3, S, S], targets list of B BoxTarget, boxes xyxy pixels in the S x S frame).

    Raises:
        ValueError: empty batch, or images of different shapes (use a resizing transform).
    """
    if len(batch) == 0:
        raise ValueError("collate_detection: empty batch")
    images = [item[0] for item in batch]
    targets = [item[1] for item in batch]
    shapes = {tuple(im.shape) for im in images}
    if len(shapes) != 1:
        listing = ", ".join(f"{t.image_id or '?'}: {tuple(im.shape)}" for im, t in zip(images, targets))
        raise ValueError(
            f"collate_detection: images of different shapes cannot be stacked ({listing}); "
            "resize them first, e.g. with build_train_transform / build_eval_transform"
        )
    return torch.stack(images, dim=0), targets
