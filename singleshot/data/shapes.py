"""Synthetic "shapes" detection dataset written in the real Pascal VOC layout.

``write_shapes_dataset(root, n_train, n_val)`` writes::

    root/VOC2007/JPEGImages/<id>.jpg          size x size RGB JPEG (quality 90, 4:4:4)
    root/VOC2007/Annotations/<id>.xml         VOC XML: <size>, and per object <name>, <pose>,
                                              <truncated>, <difficult>, <bndbox> (1-based ints)
    root/VOC2007/ImageSets/Main/train.txt     ids of the training images
    root/VOC2007/ImageSets/Main/val.txt       ids of the held-out images
    root/VOC2007/ImageSets/Main/trainval.txt  alias of train.txt
    root/VOC2007/ImageSets/Main/test.txt      alias of val.txt

``trainval``/``test`` are aliases (not the VOC union) so the VOC07 recipe "train on trainval, test on
test" runs unchanged and never sees a held-out image.

Each image has a textured background (a smooth low-saturation colour field, mid-frequency blotches,
thin grey strokes, pixel noise and JPEG artefacts) and 1-5 objects. Each class has its own silhouette
*and* colour hue (jittered per object); sides are log-uniform in 12%-60% of the image and at least
18 pixels, aspect 0.8-1.25, with small rotations. Objects may overlap, but no box is covered more than
35% by another box. About 15% of objects are cut by the border (``truncated`` 1); ~20% of images also
get one tiny upright object of 6-11 pixels marked ``difficult`` 1. Boxes are the tight extent of the
drawn shape (pixels at least half covered). Image i of the train (val) split is
``render_shapes_image(np.random.default_rng(np.random.SeedSequence([seed, 0 (1), i, size])), size,
classes)``: a function of the seed, split, index and size only.

Box convention: a shape covering pixel columns ``c0..c1`` (0-based, inclusive) is written as
``xmin = c0 + 1, xmax = c1 + 1`` (VOC's 1-based inclusive pixels), which
:class:`~singleshot.data.voc.VOCDetection` reads back as ``x1 = c0, x2 = c1``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

logger = logging.getLogger(__name__)

__all__ = ["SHAPES_CLASSES", "SHAPE_COLORS", "write_shapes_dataset", "render_shapes_image"]

#: Default class list of the synthetic dataset (label i = SHAPES_CLASSES[i]).
SHAPES_CLASSES: tuple[str, ...] = ("circle", "square", "triangle", "cross", "ring")

#: Base RGB colour of every drawable shape (objects jitter around it).
SHAPE_COLORS: dict[str, tuple[int, int, int]] = {
    "circle": (215, 45, 40),
    "square": (40, 175, 60),
    "triangle": (45, 85, 220),
    "cross": (230, 200, 40),
    "ring": (195, 60, 200),
    "star": (40, 200, 210),
}

_SUPER = 2  # supersampling factor of the object masks (anti-aliased edges)
_MAX_COVER = 0.35  # largest fraction of one box another box may cover


def _polygon(kind: str) -> list[tuple[float, float]]:
    """Outline of a polygonal shape in a unit box centred at 0 (x right, y down)."""
    if kind == "square":
        return [(-0.5, -0.5), (0.5, -0.5), (0.5, 0.5), (-0.5, 0.5)]
    if kind == "triangle":
        return [(0.0, -0.5), (0.5, 0.5), (-0.5, 0.5)]
    if kind == "cross":
        a = 1.0 / 6.0
        return [
            (-a, -0.5),
            (a, -0.5),
            (a, -a),
            (0.5, -a),
            (0.5, a),
            (a, a),
            (a, 0.5),
            (-a, 0.5),
            (-a, a),
            (-0.5, a),
            (-0.5, -a),
            (-a, -a),
        ]
    if kind == "star":
        pts = []
        for k in range(10):
            r = 0.5 if k % 2 == 0 else 0.21
            t = -math.pi / 2 + k * math.pi / 5
            pts.append((r * math.cos(t), r * math.sin(t)))
        return pts
    raise ValueError(f"unknown shape {kind!r}")


def _outline(kind: str, cx: float, cy: float, w: float, h: float, angle: float) -> list[tuple[float, float]]:
    """Polygon vertices in pixels (polygonal shapes only)."""
    c, sn = math.cos(angle), math.sin(angle)
    return [(cx + x * w * c - y * h * sn, cy + x * w * sn + y * h * c) for x, y in _polygon(kind)]


def _extent(kind: str, cx: float, cy: float, w: float, h: float, angle: float) -> tuple[float, float, float, float]:
    """Continuous extent (x0, y0, x1, y1) of a shape before rasterisation."""
    if kind in ("circle", "ring"):
        return cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2
    pts = _outline(kind, cx, cy, w, h, angle)
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    return min(xs), min(ys), max(xs), max(ys)


def _draw_mask(
    kind: str, origin: tuple[int, int], shape: tuple[int, int], cx: float, cy: float, w: float, h: float, angle: float
) -> np.ndarray:
    """Anti-aliased float32 mask in [0, 1] of one shape on the patch at ``origin`` (x, y) of ``shape`` (h, w)."""
    s = _SUPER
    ox, oy = origin
    big = Image.new("L", (shape[1] * s, shape[0] * s), 0)
    draw = ImageDraw.Draw(big)
    if kind in ("circle", "ring"):
        x, y = cx - ox, cy - oy
        draw.ellipse([(x - w / 2) * s, (y - h / 2) * s, (x + w / 2) * s - 1, (y + h / 2) * s - 1], fill=255)
        if kind == "ring":
            iw, ih = w * 0.5, h * 0.5
            draw.ellipse([(x - iw / 2) * s, (y - ih / 2) * s, (x + iw / 2) * s, (y + ih / 2) * s], fill=0)
    else:
        pts = [((px - ox) * s, (py - oy) * s) for px, py in _outline(kind, cx, cy, w, h, angle)]
        draw.polygon(pts, fill=255)
    small = big.resize((shape[1], shape[0]), Image.Resampling.BOX)
    return np.asarray(small, dtype=np.float32) * (1.0 / 255.0)


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Textured, low-saturation background, float32 (size, size, 3) in 0..255."""
    coarse = rng.uniform(50, 210, (4, 4, 3))
    grey = coarse.mean(axis=2, keepdims=True)
    coarse = grey + 0.35 * (coarse - grey)
    field = np.asarray(
        Image.fromarray(coarse.astype(np.uint8)).resize((size, size), Image.Resampling.BICUBIC), dtype=np.float32
    )
    blot = rng.normal(0.0, 1.0, (max(size // 10, 2), max(size // 10, 2))).astype(np.float32)
    blot_img = Image.fromarray(((blot * 40 + 128).clip(0, 255)).astype(np.uint8)).resize(
        (size, size), Image.Resampling.BILINEAR
    )
    field += (np.asarray(blot_img, dtype=np.float32)[..., None] - 128.0) * 0.5
    canvas = Image.fromarray(field.clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    for _ in range(int(rng.integers(2, 7))):
        g = int(rng.integers(30, 230))
        tint = rng.integers(-15, 16, 3)
        color = tuple(int(v) for v in np.clip(g + tint, 0, 255))
        xy = [tuple(float(v) for v in rng.uniform(-0.1, 1.1, 2) * size) for _ in range(int(rng.integers(2, 4)))]
        draw.line(xy, fill=color, width=int(rng.integers(1, 4)))
    return np.asarray(canvas, dtype=np.float32)


def _cover(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    """Largest fraction of either box (x0, y0, x1, y1, exclusive ends) covered by their overlap."""
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    area_a = (a[2] - a[0]) * (a[3] - a[1])
    area_b = (b[2] - b[0]) * (b[3] - b[1])
    return inter / min(area_a, area_b)


def render_shapes_image(
    rng: np.random.Generator, size: int, classes: Sequence[str]
) -> tuple[np.ndarray, list[dict[str, object]]]:
    """Draw one synthetic image.

    Returns:
        (image uint8 (size, size, 3) RGB, objects) where each object is a dict with ``name``,
        ``box`` (c0, r0, c1, r1): 0-based inclusive pixel columns/rows of the drawn shape,
        ``difficult`` and ``truncated`` (bool).
    """
    img = _background(rng, size)
    boxes: list[tuple[int, int, int, int]] = []
    objects: list[dict[str, object]] = []

    def place(kind: str, side: float, tiny: bool) -> bool:
        min_side = 1 if tiny else 16
        for _ in range(30):
            aspect = 1.0 if tiny else math.exp(rng.uniform(math.log(0.8), math.log(1.25)))
            w, h = side * math.sqrt(aspect), side / math.sqrt(aspect)
            cut = (not tiny) and rng.random() < 0.15
            lo_x, hi_x = (-0.2 * w, size - 0.8 * w) if cut else (1.0, size - w - 1.0)
            lo_y, hi_y = (-0.2 * h, size - 0.8 * h) if cut else (1.0, size - h - 1.0)
            if hi_x <= lo_x or hi_y <= lo_y:
                continue
            cx, cy = rng.uniform(lo_x, hi_x) + w / 2, rng.uniform(lo_y, hi_y) + h / 2
            angle = 0.0 if tiny or kind in ("circle", "ring") else float(rng.uniform(-0.35, 0.35))
            ex = _extent(kind, cx, cy, w, h, angle)
            px0, py0 = max(int(math.floor(ex[0])) - 1, 0), max(int(math.floor(ex[1])) - 1, 0)
            px1, py1 = min(int(math.ceil(ex[2])) + 1, size), min(int(math.ceil(ex[3])) + 1, size)
            rough = (px0, py0, px1, py1)
            if px1 - px0 < min_side or py1 - py0 < min_side:
                continue
            if any(_cover(rough, other) > _MAX_COVER + 0.05 for other in boxes):
                continue
            alpha = _draw_mask(kind, (px0, py0), (py1 - py0, px1 - px0), cx, cy, w, h, angle)
            solid = alpha >= 0.5
            cols, rows = np.flatnonzero(solid.any(axis=0)), np.flatnonzero(solid.any(axis=1))
            if cols.size == 0:
                continue
            bbox = (px0 + int(cols[0]), py0 + int(rows[0]), px0 + int(cols[-1]) + 1, py0 + int(rows[-1]) + 1)
            if min(bbox[2] - bbox[0], bbox[3] - bbox[1]) < min_side:
                continue
            if any(_cover(bbox, other) > _MAX_COVER for other in boxes):
                continue
            truncated = bbox[0] == 0 or bbox[1] == 0 or bbox[2] == size or bbox[3] == size
            base = np.asarray(SHAPE_COLORS[kind], dtype=np.float32)
            color = np.clip(base * rng.uniform(0.75, 1.15) + rng.uniform(-25, 25, 3), 0, 255).astype(np.float32)
            theta = rng.uniform(0, 2 * math.pi)
            yy, xx = np.mgrid[py0:py1, px0:px1].astype(np.float32) * (1.0 / size)
            shade = 1.0 + 0.25 * ((xx - 0.5) * math.cos(theta) + (yy - 0.5) * math.sin(theta))
            patch = img[py0:py1, px0:px1]
            a = alpha[..., None]
            patch[:] = patch * (1.0 - a) + (color * shade[..., None]) * a
            boxes.append(bbox)
            objects.append(
                {
                    "name": kind,
                    "box": (bbox[0], bbox[1], bbox[2] - 1, bbox[3] - 1),
                    "difficult": tiny,
                    "truncated": bool(truncated),
                }
            )
            return True
        return False

    lo, hi = math.log(max(0.12 * size, 18.0)), math.log(0.6 * size)
    for k in range(int(rng.integers(1, 6))):
        for _ in range(10 if k == 0 else 1):  # the first object always finds a place
            if place(classes[int(rng.integers(len(classes)))], math.exp(rng.uniform(lo, hi)), tiny=False):
                break
    if rng.random() < 0.2:
        place(classes[int(rng.integers(len(classes)))], float(rng.uniform(6, 11)), tiny=True)
    img += rng.standard_normal(img.shape, dtype=np.float32) * 7.0
    return img.clip(0, 255).astype(np.uint8), objects


def _xml(image_id: str, size: int, objects: list[dict[str, object]]) -> str:
    parts = [
        "<annotation>\n\t<folder>VOC2007</folder>\n",
        f"\t<filename>{image_id}.jpg</filename>\n",
        "\t<source>\n\t\t<database>singleshot synthetic shapes</database>\n\t</source>\n",
        f"\t<size>\n\t\t<width>{size}</width>\n\t\t<height>{size}</height>\n\t\t<depth>3</depth>\n\t</size>\n",
        "\t<segmented>0</segmented>\n",
    ]
    for obj in objects:
        c0, r0, c1, r1 = obj["box"]  # type: ignore[misc]
        parts.append(
            f"\t<object>\n\t\t<name>{obj['name']}</name>\n\t\t<pose>Unspecified</pose>\n"
            f"\t\t<truncated>{int(bool(obj['truncated']))}</truncated>\n"
            f"\t\t<difficult>{int(bool(obj['difficult']))}</difficult>\n"
            f"\t\t<bndbox>\n\t\t\t<xmin>{c0 + 1}</xmin>\n\t\t\t<ymin>{r0 + 1}</ymin>\n"
            f"\t\t\t<xmax>{c1 + 1}</xmax>\n\t\t\t<ymax>{r1 + 1}</ymax>\n\t\t</bndbox>\n\t</object>\n"
        )
    parts.append("</annotation>\n")
    return "".join(parts)


def write_shapes_dataset(
    root: str | Path,
    n_train: int,
    n_val: int,
    size: int = 160,
    seed: int = 0,
    classes: Sequence[str] = SHAPES_CLASSES,
) -> Path:
    """Write the synthetic shapes dataset under ``root/VOC2007`` (see the module docstring).

    Args:
        root: output folder (created); existing files of the same names are overwritten.
        n_train: number of training images (ids ``000001`` ...).
        n_val: number of held-out images (ids continue after the training ones).
        size: image side in pixels (>= 64).
        seed: random seed; the same seed, index and size give the same image.
        classes: shape names, a subset of ``SHAPE_COLORS`` (default ``SHAPES_CLASSES``).

    Returns:
        ``root``, readable with ``VOCDetection(root, "train", class_names=classes)``.
    """
    unknown = [c for c in classes if c not in SHAPE_COLORS]
    if unknown or not classes:
        raise ValueError(f"unknown shape classes {unknown}; choose from {sorted(SHAPE_COLORS)}")
    if size < 64:
        raise ValueError(f"size must be >= 64 pixels, got {size}")
    if n_train < 0 or n_val < 0:
        raise ValueError(f"n_train and n_val must be >= 0, got {n_train}, {n_val}")
    root = Path(root)
    voc = root / "VOC2007"
    for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (voc / sub).mkdir(parents=True, exist_ok=True)
    splits: dict[str, list[str]] = {"train": [], "val": []}
    for split, code, count, offset in (("train", 0, n_train, 0), ("val", 1, n_val, n_train)):
        for i in range(count):
            rng = np.random.default_rng(np.random.SeedSequence([seed, code, i, size]))
            image, objects = render_shapes_image(rng, size, classes)
            image_id = f"{offset + i + 1:06d}"
            Image.fromarray(image).save(voc / "JPEGImages" / f"{image_id}.jpg", quality=90, subsampling=0)
            (voc / "Annotations" / f"{image_id}.xml").write_text(_xml(image_id, size, objects))
            splits[split].append(image_id)
    main = voc / "ImageSets" / "Main"
    for name, ids in (
        ("train", splits["train"]),
        ("trainval", splits["train"]),
        ("val", splits["val"]),
        ("test", splits["val"]),
    ):
        (main / f"{name}.txt").write_text("".join(f"{i}\n" for i in ids))
    logger.info("wrote %d + %d shapes images (%s) under %s", n_train, n_val, ", ".join(classes), voc)
    return root
