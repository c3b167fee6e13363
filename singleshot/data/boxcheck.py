"""Validation and repair of annotated boxes, shared by the dataset readers.

Every repair is reported with ``warnings.warn`` naming the annotation file and the object.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from singleshot.errors import DataError

logger = logging.getLogger(__name__)

__all__ = ["check_boxes"]


def check_boxes(
    boxes: Tensor, size: tuple[int, int] | None, file: str | Path, names: Sequence[str]
) -> tuple[Tensor, Tensor]:
    """Drop degenerate or outside boxes and clip the others to the image.

    Args:
        boxes: Tensor[N, 4] float32, xyxy pixels (continuous frame: the image spans [0, W] x [0, H]).
        size: (height, width) of the image, or None when unknown (then only negative coordinates
            are clipped).
        file: annotation file, named in warnings and errors.
        names: N descriptions of the objects for the messages, e.g. ``"object 2 ('dog')"``.

    Returns:
        (keep, clipped): keep Tensor[N] bool, clipped Tensor[N, 4] float32 (rows where keep is False
        are unspecified).

    Rules: a non-finite coordinate is a DataError; x2 <= x1 or y2 <= y1 drops the box; a box with no
    area inside the image drops it; a box partly outside is clipped to the image. Each drop or clip
    emits one warning.

    Raises:
        DataError: a coordinate is NaN or infinite.
    """
    if size is None:
        height, width, frame = float("inf"), float("inf"), "image"
    else:
        height, width, frame = float(size[0]), float(size[1]), f"{size[1]}x{size[0]} image"
    n = int(boxes.shape[0])
    if n == 0:
        return torch.zeros((0,), dtype=torch.bool), boxes.reshape(0, 4).to(torch.float32)
    boxes = boxes.to(torch.float32)
    finite = torch.isfinite(boxes).all(dim=1)
    if not bool(finite.all()):
        k = int((~finite).nonzero()[0, 0])
        raise DataError(f"{file}: {names[k]} has a non-finite coordinate {boxes[k].tolist()}")
    x1, y1, x2, y2 = boxes.unbind(dim=1)
    degenerate = (x2 <= x1) | (y2 <= y1)
    outside = (x1 >= width) | (y1 >= height) | (x2 <= 0) | (y2 <= 0)
    clipped = torch.stack((x1.clamp(0, width), y1.clamp(0, height), x2.clamp(0, width), y2.clamp(0, height)), dim=1)
    changed = (clipped != boxes).any(dim=1)
    keep = ~(degenerate | outside)
    for k in degenerate.nonzero().flatten().tolist():
        warnings.warn(
            f"{file}: {names[k]} has x2 <= x1 or y2 <= y1 (xyxy {boxes[k].tolist()}); dropped",
            stacklevel=3,
        )
    for k in (outside & ~degenerate).nonzero().flatten().tolist():
        warnings.warn(
            f"{file}: {names[k]} lies wholly outside the {frame} (xyxy {boxes[k].tolist()}); dropped",
            stacklevel=3,
        )
    for k in (keep & changed).nonzero().flatten().tolist():
        warnings.warn(
            f"{file}: {names[k]} extends outside the {frame} "
            f"(xyxy {boxes[k].tolist()}); clipped to {clipped[k].tolist()}",
            stacklevel=3,
        )
    return keep, clipped
