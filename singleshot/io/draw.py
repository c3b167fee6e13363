"""Drawing detections on images."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

from singleshot.structures import Detections

_PALETTE = [
    (230, 25, 75),
    (60, 180, 75),
    (255, 225, 25),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (210, 245, 60),
    (250, 190, 212),
    (0, 128, 128),
    (220, 190, 255),
]


def color_of(index: int) -> tuple[int, int, int]:
    return _PALETTE[index % len(_PALETTE)]


def draw_detections(
    image: np.ndarray, dets: Detections, class_names: Sequence[str], min_score: float = 0.3
) -> np.ndarray:
    """Draw boxes, class names and scores on a copy of ``image`` (uint8 [H, W, 3] RGB)."""
    canvas = Image.fromarray(image)
    draw = ImageDraw.Draw(canvas)
    keep = dets.scores >= min_score
    for box, score, label in zip(dets.boxes[keep].tolist(), dets.scores[keep].tolist(), dets.labels[keep].tolist()):
        color = color_of(label)
        draw.rectangle(box, outline=color, width=2)
        name = class_names[label] if 0 <= label < len(class_names) else str(label)
        text = f"{name} {score:.2f}"
        x, y = box[0], max(0.0, box[1] - 11)
        draw.rectangle((x, y, x + 6 * len(text) + 2, y + 11), fill=color)
        draw.text((x + 1, y), text, fill=(0, 0, 0))
    return np.asarray(canvas)
