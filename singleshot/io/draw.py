"""Drawing detections, ground truth and grasp rectangles on images (uint8 [H, W, 3] RGB arrays)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from singleshot.atomic import save_image
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


#: Colours of the evaluation pictures: ground truth and predictions.
GT_COLOR: tuple[int, int, int] = (40, 200, 60)
PRED_COLOR: tuple[int, int, int] = (230, 25, 75)


def _caption(draw: ImageDraw.ImageDraw, x: float, y: float, text: str, color: tuple[int, int, int]) -> None:
    y = max(0.0, y - 11)
    draw.rectangle((x, y, x + 6 * len(text) + 2, y + 11), fill=color)
    draw.text((x + 1, y), text, fill=(0, 0, 0))


def draw_boxes(
    image: np.ndarray,
    boxes: Sequence[Sequence[float]],
    color: tuple[int, int, int],
    captions: Sequence[str] | None = None,
    width: int = 2,
) -> np.ndarray:
    """Draw xyxy pixel ``boxes`` in one colour on a copy of ``image`` (uint8 [H, W, 3] RGB), each
    with its caption above it when given."""
    canvas = Image.fromarray(np.ascontiguousarray(image))
    draw = ImageDraw.Draw(canvas)
    for i, box in enumerate(boxes):
        b = [float(v) for v in box]
        draw.rectangle(b, outline=color, width=width)
        if captions is not None and captions[i]:
            _caption(draw, b[0], b[1], captions[i], color)
    return np.asarray(canvas)


def draw_polygons(
    image: np.ndarray,
    polygons: np.ndarray | Sequence[Sequence[Sequence[float]]],
    color: tuple[int, int, int],
    captions: Sequence[str] | None = None,
    width: int = 2,
) -> np.ndarray:
    """Draw closed polygons (``[N][P, 2]`` (x, y) pixels, e.g. grasp rectangles' corners) in one
    colour on a copy of ``image`` (uint8 [H, W, 3] RGB), captioned at their first corner when given."""
    canvas = Image.fromarray(np.ascontiguousarray(image))
    draw = ImageDraw.Draw(canvas)
    for i, poly in enumerate(polygons):
        points = [(float(p[0]), float(p[1])) for p in poly]
        draw.line([*points, points[0]], fill=color, width=width)
        if captions is not None and captions[i]:
            _caption(draw, points[0][0], points[0][1], captions[i], color)
    return np.asarray(canvas)


def draw_text(
    image: np.ndarray, text: str, xy: tuple[float, float] = (2.0, 2.0), color: tuple[int, int, int] = (255, 255, 255)
) -> np.ndarray:
    """Write ``text`` on a filled label whose top-left corner is ``xy`` (pixels), on a copy of ``image``."""
    canvas = Image.fromarray(np.ascontiguousarray(image))
    _caption(ImageDraw.Draw(canvas), xy[0], xy[1] + 11, text, color)
    return np.asarray(canvas)


def enlarge(image: np.ndarray, scale: int) -> np.ndarray:
    """``image`` (uint8 [H, W, C]) enlarged ``scale`` times by pixel replication (as is when < 2)."""
    return image.repeat(scale, axis=0).repeat(scale, axis=1) if scale > 1 else image


def side_by_side(images: Sequence[np.ndarray], gap: int = 4) -> np.ndarray:
    """uint8 [max H, sum W + gaps, 3]: the images left to right on white, top-aligned."""
    h = max(int(im.shape[0]) for im in images)
    w = sum(int(im.shape[1]) for im in images) + gap * (len(images) - 1)
    out = np.full((h, w, 3), 255, dtype=np.uint8)
    x = 0
    for im in images:
        out[: im.shape[0], x : x + im.shape[1]] = im[..., :3]
        x += int(im.shape[1]) + gap
    return out


def write_image(path: str | Path, image: np.ndarray) -> Path:
    """Save ``image`` (uint8 [H, W, 3] RGB) by the suffix of ``path`` (folder created when missing)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(Image.fromarray(np.ascontiguousarray(image)), path)
    return path
