"""Synthetic grasp dataset written in Cornell's (or Jacquard's) real on-disk layout.

Each image shows simple objects on a table seen from above: boxes, lying cylinders and ellipsoids
(elongated, random size, position and in-plane rotation) and upright cylinders ("discs"). Depth is
a range in metres: a slightly tilted table plane at 0.6–0.7 m minus the objects' heights, with
Gaussian sensor noise (1 mm) and random holes (zeros and NaN, about 1% of the pixels, which the
readers repair with a warning). RGB is a Lambert-shaded rendering of the same height field with a
random colour per object on a table with a coarse (8-pixel) brightness texture.

Grasps, like Cornell's annotators place them: positives across the narrow axis of an elongated
object, at 2–5 places along its long axis (opening = local width + 30% + 4 px, jaw = opening / 2),
and through a disc's centre at several angles; negatives along the long axis (the gripper would
have to span the object's length) and beside the object on the table.

Objects repeat over consecutive images (``images_per_object``), in new poses, as in Cornell; the
image -> object map is written to ``objects.txt`` for object-wise splits.

Layout ``"cornell"``: ``<root>/<NN>/pcdXXXX{d.tiff, r.png, cpos.txt, cneg.txt}`` numbered from 0100,
100 per folder (``01``, ``02``, ...). Layout ``"jacquard"``: ``<root>/<object>/<n>_<object>_{RGB.png,
perfect_depth.tiff, mask.png, grasps.txt}`` (square images advised, Jacquard's are 1024²).

``size`` is (height, width); the default (480, 640) is Cornell's. Object sizes scale with
``min(size)``, so a smaller size (e.g. (240, 320) or (160, 160)) gives the same scenes faster for
CPU demos. Writing 100 images of 480×640 takes a few seconds.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from singleshot.data.grasp.depth import write_depth_tiff
from singleshot.data.grasp.rects import grasps_to_corners, grasps_to_jacquard, wrap_angle
from singleshot.errors import ConfigError

logger = logging.getLogger(__name__)

__all__ = ["generate_grasp_dataset", "render_scene", "SyntheticObject"]

_KINDS = ("box", "cylinder", "ellipsoid", "disc")


@dataclass(frozen=True)
class SyntheticObject:
    """An object's shape: ``kind``, half-length ``a`` and half-width ``b`` (pixels at the scene's
    scale), ``height`` (metres; a lying cylinder's diameter) and RGB ``colour`` (0..1)."""

    kind: str
    a: float
    b: float
    height: float
    colour: tuple[float, float, float]


def _random_object(rng: np.random.Generator, base: float) -> SyntheticObject:
    kind = _KINDS[int(rng.integers(0, len(_KINDS)))]
    if kind == "disc":
        a = b = float(rng.uniform(0.06, 0.1)) * base
    else:
        b = float(rng.uniform(0.045, 0.08)) * base
        a = float(rng.uniform(1.8, 3.2)) * b
    height = float(rng.uniform(0.025, 0.06))
    colour = tuple(float(c) for c in rng.uniform(0.15, 0.95, size=3))
    return SyntheticObject(kind, a, b, height, colour)  # type: ignore[arg-type]


def _height_field(obj: SyntheticObject, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Height (metres) above the table at local coordinates ``u`` (long axis) and ``v`` (across)."""
    if obj.kind == "box":
        inside = (np.abs(u) <= obj.a) & (np.abs(v) <= obj.b)
        return np.where(inside, obj.height, 0.0)
    if obj.kind == "cylinder":  # lying on its side: a half-circle profile across the axis
        r = np.clip(1 - (v / obj.b) ** 2, 0, None)
        return np.where(np.abs(u) <= obj.a, obj.height * (0.5 + 0.5 * np.sqrt(r)) * (r > 0), 0.0)
    if obj.kind == "ellipsoid":
        q = 1 - (u / obj.a) ** 2 - (v / obj.b) ** 2
        return obj.height * np.sqrt(np.clip(q, 0, None))
    return np.where(u**2 + v**2 <= obj.a**2, obj.height, 0.0)  # disc: an upright cylinder


def _grasps(
    obj: SyntheticObject, cx: float, cy: float, phi: float, rng: np.random.Generator, base: float
) -> tuple[np.ndarray, np.ndarray]:
    """Positive and negative grasps array[N, 5] of an object posed at (cx, cy), long axis angle ``phi``."""
    along = np.array([math.cos(phi), -math.sin(phi)])
    px = base / 480.0
    pos: list[list[float]] = []
    if obj.kind == "disc":
        n = int(rng.integers(3, 6))
        start = float(rng.uniform(0, math.pi))
        op = 2 * obj.b * 1.3 + 4 * px
        for k in range(n):
            pos.append([cx, cy, start + k * math.pi / n, op, op / 2])
    else:
        n = int(rng.integers(2, 6))
        for t in np.linspace(-0.6, 0.6, n) * obj.a:
            half = obj.b if obj.kind != "ellipsoid" else obj.b * math.sqrt(max(1 - (t / obj.a) ** 2, 0.0))
            op = 2 * half * 1.3 + 4 * px
            c = np.array([cx, cy]) + t * along + rng.normal(0, 1.0 * px, 2)
            pos.append([c[0], c[1], phi + math.pi / 2 + rng.normal(0, math.radians(4)), op, op / 2])
    neg: list[list[float]] = []
    op = 2 * obj.b * 1.3 + 4 * px
    if obj.kind != "disc":
        neg.append([cx, cy, phi, op, op / 2])  # along the long axis: the object is too long to grip
    d = float(rng.uniform(0, 2 * math.pi))
    off = obj.a + 0.6 * op
    neg.append([cx + off * math.cos(d), cy - off * math.sin(d), float(rng.uniform(0, math.pi)), op, op / 2])
    p, q = np.asarray(pos, dtype=np.float64), np.asarray(neg, dtype=np.float64)
    p[:, 2], q[:, 2] = wrap_angle(p[:, 2]), wrap_angle(q[:, 2])
    return p, q


class _NoiseBank:
    """Pre-drawn standard normal noise and pixel grids, sliced at random offsets per image (drawing
    fresh noise for every pixel of every image dominated the generator's run time)."""

    def __init__(self, rng: np.random.Generator, size: tuple[int, int]) -> None:
        h, w = size
        self.size = size
        self.noise = rng.standard_normal((2 * h, 2 * w), dtype=np.float32)
        yy, xx = np.mgrid[0:h, 0:w]
        self.yy, self.xx = yy.astype(np.float64), xx.astype(np.float64)

    def field(self, rng: np.random.Generator) -> np.ndarray:
        """array[H, W] float32 of standard normal noise."""
        h, w = self.size
        y, x = int(rng.integers(0, h + 1)), int(rng.integers(0, w + 1))
        return self.noise[y : y + h, x : x + w]


def render_scene(
    objects: list[SyntheticObject],
    rng: np.random.Generator,
    size: tuple[int, int] = (480, 640),
    bank: _NoiseBank | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Render objects at random poses near the image centre (``bank``: reusable noise, made when None).

    Returns:
        depth array[H, W] float32 metres (with noise and holes), rgb array[H, W, 3] uint8,
        mask bool[H, W] (object pixels), positives array[N, 5] and negatives array[M, 5] float64
        ``(cx, cy, angle, opening, jaw)`` pixels.
    """
    h, w = size
    base = float(min(h, w))
    if bank is None or bank.size != (h, w):
        bank = _NoiseBank(rng, (h, w))
    yy, xx = bank.yy, bank.xx
    d0 = float(rng.uniform(0.6, 0.7))
    gx, gy = rng.uniform(-6e-5, 6e-5, size=2) * (480.0 / base)
    table = d0 + gx * (xx[:1] - w / 2) + gy * (yy[:, :1] - h / 2)
    height = np.zeros((h, w))
    owner = np.full((h, w), -1, dtype=np.int16)
    pos_all, neg_all, placed = [], [], []
    for k, obj in enumerate(objects):
        for _ in range(20):  # rejection sampling of a non-overlapping centre
            cx = w / 2 + float(rng.uniform(-0.15, 0.15)) * w
            cy = h / 2 + float(rng.uniform(-0.15, 0.15)) * h
            if all(math.hypot(cx - px_, cy - py_) > obj.a + r_ + 4 for px_, py_, r_ in placed):
                break
        placed.append((cx, cy, obj.a))
        phi = float(rng.uniform(0, math.pi))
        r = int(math.ceil(obj.a)) + 2
        y0, y1, x0, x1 = max(int(cy) - r, 0), min(int(cy) + r + 1, h), max(int(cx) - r, 0), min(int(cx) + r + 1, w)
        dx, dy = xx[y0:y1, x0:x1] - cx, yy[y0:y1, x0:x1] - cy
        u = dx * math.cos(phi) - dy * math.sin(phi)
        v = dx * math.sin(phi) + dy * math.cos(phi)
        hf = _height_field(obj, u, v)
        sub = height[y0:y1, x0:x1]
        win = hf > sub
        sub[win] = hf[win]
        owner[y0:y1, x0:x1][win] = k
        p, q = _grasps(obj, cx, cy, phi, rng, base)
        pos_all.append(p)
        neg_all.append(q)
    depth = (table - height).astype(np.float32) + 0.001 * bank.field(rng)
    # Lambert shading from the height field's normals (heights in pixels at ~0.73 mm per pixel),
    # computed where objects are; the bare table faces the camera.
    light = (-0.35, -0.45, 0.82)
    shade = np.full((h, w), light[2], dtype=np.float32)
    ys, xs = np.nonzero(owner >= 0)
    if len(ys):
        y0, y1, x0, x1 = max(ys.min() - 2, 0), min(ys.max() + 3, h), max(xs.min() - 2, 0), min(xs.max() + 3, w)
        hp = height[y0:y1, x0:x1] / (0.00073 * 480.0 / base)
        gy_, gx_ = np.gradient(hp)
        lit = (-gx_ * light[0] - gy_ * light[1] + light[2]) / np.sqrt(gx_**2 + gy_**2 + 1)
        shade[y0:y1, x0:x1] = np.clip(lit, 0, 1)
    colours = np.array([[0.72, 0.68, 0.6]] + [o.colour for o in objects], dtype=np.float32) * 255
    texture = 1 + 0.04 * rng.standard_normal((h // 8 + 1, w // 8 + 1), dtype=np.float32)
    light_map = (0.35 + 0.65 * shade) * texture.repeat(8, 0).repeat(8, 1)[:h, :w]
    rgb = colours[owner + 1] * light_map[..., None]  # no per-pixel noise: it made PNG writing 10x slower
    rgb = np.clip(rgb, 0, 255).astype(np.uint8)
    # Sensor holes: small rectangles of zeros or NaN covering ~1% of the image.
    n_holes = int(rng.integers(5, 15))
    for _ in range(n_holes):
        hh, ww = (int(v) for v in rng.integers(2, max(3, int(base / 40)), size=2))
        y, x = int(rng.integers(0, h - hh)), int(rng.integers(0, w - ww))
        depth[y : y + hh, x : x + ww] = 0.0 if rng.random() < 0.5 else np.nan
    return (
        depth,
        rgb,
        owner >= 0,
        np.concatenate(pos_all),
        np.concatenate(neg_all),
    )


def _write_cornell_rects(path: Path, grasps: np.ndarray) -> None:
    lines = [f"{x:.2f} {y:.2f}" for rect in grasps_to_corners(grasps) for x, y in rect]
    path.write_text("\n".join(lines) + ("\n" if lines else ""))


def generate_grasp_dataset(
    root: str | Path,
    num_images: int = 100,
    seed: int = 0,
    size: tuple[int, int] = (480, 640),
    layout: str = "cornell",
    images_per_object: int = 4,
    objects_per_image: int = 1,
) -> list[str]:
    """Write a synthetic grasp dataset.

    Args:
        root: output folder (created).
        num_images: number of images.
        seed: everything written is a deterministic function of the arguments.
        size: (height, width) of the images.
        layout: ``"cornell"`` or ``"jacquard"`` (see the module docstring).
        images_per_object: consecutive images showing the same object (the first, when
            ``objects_per_image > 1``), for object-wise splits.
        objects_per_image: objects per scene.

    Returns:
        The image ids written (``pcd0100``, ... or ``0_obj000``, ...), in order.

    Raises:
        ConfigError: bad ``layout``, ``size`` or counts.
    """
    if layout not in ("cornell", "jacquard"):
        raise ConfigError(f"layout: expected 'cornell' or 'jacquard', got {layout!r}")
    if min(size) < 32 or num_images < 1 or images_per_object < 1 or objects_per_image < 1:
        raise ConfigError(
            f"synthetic grasp dataset: need size >= 32 px and positive counts, got size={size}, "
            f"num_images={num_images}, images_per_object={images_per_object}, objects_per_image={objects_per_image}"
        )
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    base = float(min(size))
    ids: list[str] = []
    mapping: list[str] = []
    shapes: list[SyntheticObject] = []
    bank = _NoiseBank(rng, size)
    for i in range(num_images):
        if i % images_per_object == 0:
            shapes = [_random_object(rng, base) for _ in range(objects_per_image)]
        obj_name = f"obj{i // images_per_object:03d}"
        depth, rgb, mask, pos, neg = render_scene(shapes, rng, size, bank)
        if layout == "cornell":
            number = 100 + i
            folder = root / f"{number // 100:02d}"
            folder.mkdir(exist_ok=True)
            stem = f"pcd{number:04d}"
            write_depth_tiff(folder / f"{stem}d.tiff", depth)
            Image.fromarray(rgb).save(folder / f"{stem}r.png", compress_level=1)
            _write_cornell_rects(folder / f"{stem}cpos.txt", pos)
            _write_cornell_rects(folder / f"{stem}cneg.txt", neg)
        else:
            folder = root / obj_name
            folder.mkdir(exist_ok=True)
            stem = f"{i % images_per_object}_{obj_name}"
            write_depth_tiff(folder / f"{stem}_perfect_depth.tiff", depth)
            Image.fromarray(rgb).save(folder / f"{stem}_RGB.png", compress_level=1)
            Image.fromarray(mask.astype(np.uint8) * 255).save(folder / f"{stem}_mask.png", compress_level=1)
            (folder / f"{stem}_grasps.txt").write_text("\n".join(grasps_to_jacquard(pos)) + "\n")
        ids.append(stem)
        mapping.append(f"{stem} {obj_name}")
    (root / "objects.txt").write_text("\n".join(mapping) + "\n")
    logger.info("wrote %d synthetic %s images of %dx%d to %s", num_images, layout, size[0], size[1], root)
    return ids
