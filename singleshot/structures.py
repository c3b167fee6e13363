"""Plain containers for targets and predictions.

Coordinates are absolute pixels, ``xyxy`` (x1, y1, x2, y2), float32, in the frame of the image the
container belongs to (``size``). Labels are 0-based indices into the dataset's class list: the
background class exists only inside matchers, losses and model heads (index 0 there).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
from torch import Tensor


def _empty_boxes() -> Tensor:
    return torch.zeros((0, 4), dtype=torch.float32)


def _empty_long() -> Tensor:
    return torch.zeros((0,), dtype=torch.int64)


def _empty_bool() -> Tensor:
    return torch.zeros((0,), dtype=torch.bool)


@dataclass
class BoxTarget:
    """Ground truth of one image.

    Attributes:
        boxes: Tensor[N, 4] float32, xyxy pixels in an image of ``size``.
        labels: Tensor[N] int64, 0-based class indices.
        difficult: Tensor[N] bool, VOC ``difficult`` flags (or COCO ``iscrowd``): such boxes are
            neither counted as positives nor punished by the evaluators.
        image_id: the image's identifier (VOC file stem, or str of the COCO image id).
        size: (height, width) of the image the boxes refer to.
        orig_size: (height, width) of the image as stored on disk.
    """

    boxes: Tensor = field(default_factory=_empty_boxes)
    labels: Tensor = field(default_factory=_empty_long)
    difficult: Tensor = field(default_factory=_empty_bool)
    image_id: str = ""
    size: tuple[int, int] = (0, 0)
    orig_size: tuple[int, int] = (0, 0)

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    def to(self, device: torch.device | str) -> "BoxTarget":
        return replace(
            self,
            boxes=self.boxes.to(device),
            labels=self.labels.to(device),
            difficult=self.difficult.to(device),
        )


@dataclass
class Detections:
    """Detections of one image, sorted by descending score.

    Attributes:
        boxes: Tensor[N, 4] float32, xyxy pixels in the original image.
        scores: Tensor[N] float32 in [0, 1].
        labels: Tensor[N] int64, 0-based class indices.
        image_id: identifier of the image.
    """

    boxes: Tensor = field(default_factory=_empty_boxes)
    scores: Tensor = field(default_factory=lambda: torch.zeros((0,), dtype=torch.float32))
    labels: Tensor = field(default_factory=_empty_long)
    image_id: str = ""

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    def to(self, device: torch.device | str) -> "Detections":
        return replace(
            self, boxes=self.boxes.to(device), scores=self.scores.to(device), labels=self.labels.to(device)
        )
