"""Crops and augmentations of grasp images, with the grasps transformed consistently.

Every view of an image — crop, rotation, zoom, flips and the resize to the network's input size —
is one affine map from source pixels to output pixels, a 3×3 matrix ``M`` acting on ``(x, y, 1)``
(x right, y down, pixel ``(row i, column j)`` centred at ``(x=j, y=i)``). The image is resampled once
through ``M⁻¹`` (bilinear ``torch.nn.functional.grid_sample``; reflected borders like the
reference's ``mode='symmetric'``; a Gaussian pre-blur when shrinking, like
``skimage.transform.resize``'s anti-aliasing; exact pixel copies when ``M⁻¹`` lands on whole
pixels, as for plain crops, quarter turns and flips), and grasps go
through ``M``: centres are mapped, the opening direction ``(cos θ, −sin θ)`` is mapped by the linear
part to give the new angle (wrapped into ``[−π/2, π/2)``), and opening and jaw scale by ``√|det M|``.

Signs, for this project's angle (counter-clockwise on screen):

* rotating the image counter-clockwise on screen by ``a`` adds ``a`` to every grasp angle
  (GG-CNN's ``rotate`` does the same with skimage's counter-clockwise ``rotate``);
* a horizontal or a vertical flip negates the angle (modulo π);
* a zoom by ``z`` keeps the central fraction ``z`` of the view and scales sizes by ``1/z``.

Differences from GG-CNN's ``get_depth`` / ``get_gtbb``, all documented choices: the rotation is about
the crop's centre (the reference turns the full image about the un-clamped ground-truth centre
before cropping; both are rotations of the same scene), and sampling is continuous (the reference
rounds rectangle corners to integers after every step).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from singleshot.data.grasp.rects import wrap_angle
from singleshot.errors import ConfigError

__all__ = [
    "AugmentParams",
    "GraspAugment",
    "choose_crop",
    "view_matrix",
    "transform_grasps",
    "warp",
    "rotate",
    "flip",
    "zoom",
]


@dataclass(frozen=True)
class AugmentParams:
    """One drawn augmentation: ``angle`` radians counter-clockwise on screen, ``zoom`` in (0, 1]
    (fraction of the view kept), horizontal / vertical flips (applied after the rotation)."""

    angle: float = 0.0
    zoom: float = 1.0
    hflip: bool = False
    vflip: bool = False


@dataclass(frozen=True)
class GraspAugment:
    """Random augmentation recipe.

    Attributes:
        rotate90: add a rotation by a random multiple of 90° (the reference's ``random_rotate``).
        max_angle: add a rotation uniform in ``[−max_angle, max_angle]`` degrees (0: none).
        zoom: ``(low, high)`` zoom factor range (the reference's ``random_zoom``: ``(0.5, 1.0)``), or None.
        hflip: probability of a horizontal flip. vflip: probability of a vertical flip.
    """

    rotate90: bool = False
    max_angle: float = 0.0
    zoom: tuple[float, float] | None = None
    hflip: float = 0.0
    vflip: float = 0.0

    def __post_init__(self) -> None:
        if self.zoom is not None and not (0 < self.zoom[0] <= self.zoom[1] <= 1):
            raise ConfigError(f"augment.zoom: expected 0 < low <= high <= 1, got {self.zoom}")
        for name in ("hflip", "vflip"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"augment.{name}: a probability in [0, 1], got {getattr(self, name)}")
        if self.max_angle < 0:
            raise ConfigError(f"augment.max_angle: must be >= 0 degrees, got {self.max_angle}")

    @classmethod
    def reference(cls) -> GraspAugment:
        """GG-CNN's training augmentation: a random multiple of 90° and zoom uniform(0.5, 1)."""
        return cls(rotate90=True, zoom=(0.5, 1.0))

    def sample(self, rng: np.random.Generator) -> AugmentParams:
        """Draw one :class:`AugmentParams`."""
        angle = 0.0
        if self.rotate90:
            angle += float(rng.integers(0, 4)) * math.pi / 2
        if self.max_angle > 0:
            angle += math.radians(float(rng.uniform(-self.max_angle, self.max_angle)))
        z = float(rng.uniform(*self.zoom)) if self.zoom is not None else 1.0
        return AugmentParams(
            angle=angle,
            zoom=z,
            hflip=bool(self.hflip > 0 and rng.random() < self.hflip),
            vflip=bool(self.vflip > 0 and rng.random() < self.vflip),
        )


def choose_crop(
    size: tuple[int, int], grasps: np.ndarray, crop: str | tuple[int, int, int] = "gt_center", side: int | None = 300
) -> tuple[int, int, int]:
    """The square crop ``(x0, y0, side)`` (top-left pixel and side, in source pixels).

    Args:
        size: (height, width) of the source image.
        grasps: array[N, 5] ground truth (used by ``"gt_center"`` only).
        crop: ``"gt_center"``: GG-CNN's Cornell crop, centred on the mean ground-truth centre
            (truncated to integers) and shifted to stay inside the image — it uses the labels, so
            it flatters test scores; ``"center"``: the image centre (honest: no label used);
            or an explicit ``(x0, y0, side)`` box (``side`` then ignored).
        side: crop side; None = ``min(height, width)`` (the whole image for square Jacquard views).
            Clamped to ``min(height, width)``.

    Raises:
        ConfigError: unknown ``crop`` or a non-positive side.
    """
    h, w = size
    if isinstance(crop, (tuple, list)):
        if len(crop) != 3 or int(crop[2]) <= 0:
            raise ConfigError(f"crop: expected 'gt_center', 'center' or (x0, y0, side), got {crop!r}")
        return int(crop[0]), int(crop[1]), int(crop[2])
    s = min(h, w) if side is None else min(int(side), h, w)
    if s <= 0:
        raise ConfigError(f"crop_size: must be positive, got {side}")
    if crop == "center":
        return (w - s) // 2, (h - s) // 2, s
    if crop == "gt_center":
        g = np.asarray(grasps, dtype=np.float64).reshape(-1, 5)
        cx, cy = (int(math.floor(v)) for v in g[:, :2].mean(axis=0)) if len(g) else (w // 2, h // 2)
        x0 = max(0, min(cx - s // 2, w - s))
        y0 = max(0, min(cy - s // 2, h - s))
        return x0, y0, s
    raise ConfigError(f"crop: expected 'gt_center', 'center' or (x0, y0, side), got {crop!r}")


def _translate(tx: float, ty: float) -> np.ndarray:
    return np.array([[1.0, 0.0, tx], [0.0, 1.0, ty], [0.0, 0.0, 1.0]])


def view_matrix(box: tuple[int, int, int], out_size: int, params: AugmentParams = AugmentParams()) -> np.ndarray:
    """Source -> output pixel map of a crop ``box = (x0, y0, side)`` resized to ``out_size`` with ``params``.

    The crop's centre maps to the output's centre; about it the view is rotated counter-clockwise on
    screen by ``params.angle``, flipped, and zoomed so that a ``side × zoom`` square fills the output.

    Returns:
        array[3, 3] float64 acting on ``(x, y, 1)`` source pixels.
    """
    x0, y0, side = box
    c_src = ((side - 1) / 2.0 + x0, (side - 1) / 2.0 + y0)
    ca, sa = math.cos(params.angle), math.sin(params.angle)
    rot = np.array([[ca, sa, 0.0], [-sa, ca, 0.0], [0.0, 0.0, 1.0]])
    flips = np.diag([-1.0 if params.hflip else 1.0, -1.0 if params.vflip else 1.0, 1.0])
    s = out_size / (side * params.zoom)
    scale = np.diag([s, s, 1.0])
    c_out = (out_size - 1) / 2.0
    m = _translate(c_out, c_out) @ scale @ flips @ rot @ _translate(-c_src[0], -c_src[1])
    return np.round(m, 12) + 0.0  # snap cos(π/2) ≈ 6e-17 to 0 so quarter turns are exact


def transform_grasps(grasps: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Map grasps through a similarity ``matrix`` (array[3, 3] or [2, 3], source -> output pixels).

    Args:
        grasps: array[N, 5] ``(cx, cy, angle, opening, jaw)``.

    Returns:
        array[N, 5] float32 in output pixels, angle wrapped into ``[−π/2, π/2)``.
    """
    g = np.asarray(grasps, dtype=np.float64).reshape(-1, 5)
    m = np.asarray(matrix, dtype=np.float64)
    a, t = m[:2, :2], m[:2, 2]
    centres = g[:, :2] @ a.T + t
    d = np.stack([np.cos(g[:, 2]), -np.sin(g[:, 2])], axis=1) @ a.T
    angle = wrap_angle(np.arctan2(-d[:, 1], d[:, 0]))
    k = math.sqrt(abs(float(np.linalg.det(a))))
    out = np.stack([centres[:, 0], centres[:, 1], angle, g[:, 3] * k, g[:, 4] * k], axis=1)
    return out.astype(np.float32)


def _reflect_index(i: np.ndarray, n: int) -> np.ndarray:
    """Integer indices folded into ``[0, n)`` by half-sample symmetric reflection (``-1 -> 0``, ``n -> n-1``)."""
    period = 2 * n
    i = np.mod(i, period)
    return np.where(i >= n, period - 1 - i, i)


def warp(
    image: np.ndarray, matrix: np.ndarray, out_shape: tuple[int, int], order: int = 1, antialias: bool = True
) -> np.ndarray:
    """Resample an image through a source -> output ``matrix``.

    Args:
        image: array[H, W] or array[H, W, C].
        matrix: array[3, 3] source -> output map (:func:`view_matrix`).
        out_shape: (height, width) of the output.
        order: 1 = bilinear, 0 = nearest.
        antialias: Gaussian pre-blur with ``σ = (k − 1) / 2`` when ``k > 1`` source pixels fall on one
            output pixel (skimage's rule).

    Returns:
        array[h, w] or array[h, w, C] float32; outside the source, values are reflected.
    """
    img = np.asarray(image, dtype=np.float32)
    inv = np.linalg.inv(np.asarray(matrix, dtype=np.float64))
    h_out, w_out = out_shape
    h, w = img.shape[:2]
    k = 1.0 / math.sqrt(abs(float(np.linalg.det(np.asarray(matrix)[:2, :2]))))
    sigma = (k - 1) / 2 if antialias and k > 1 else 0.0
    # Work on the part of the source the output sees (plus a margin), which keeps large shrinks cheap.
    corners = np.array([[-0.5, -0.5, 1], [w_out - 0.5, -0.5, 1], [-0.5, h_out - 0.5, 1], [w_out - 0.5, h_out - 0.5, 1]])
    src = corners @ inv.T
    pad = int(math.ceil(4 * sigma)) + 2
    xa, xb = max(int(math.floor(src[:, 0].min())) - pad, 0), min(int(math.ceil(src[:, 0].max())) + pad + 1, w)
    ya, yb = max(int(math.floor(src[:, 1].min())) - pad, 0), min(int(math.ceil(src[:, 1].max())) + pad + 1, h)
    if xa >= xb or ya >= yb:
        xa, xb, ya, yb = 0, w, 0, h
    part = img[ya:yb, xa:xb]
    if part.ndim == 2:
        part = part[..., None]
    if sigma > 0:
        blurred = [ndimage.gaussian_filter(part[..., c], sigma, mode="reflect") for c in range(part.shape[2])]
        part = np.stack(blurred, axis=-1)
    inv = _translate(-xa, -ya) @ inv
    # Source pixel coordinates of every output pixel, normalised for grid_sample (align_corners=False:
    # -1 and 1 are the outer edges of the border pixels; "reflection" mirrors about those edges,
    # which is scipy's / skimage's half-sample symmetric padding).
    ph, pw = part.shape[:2]
    ys, xs = np.mgrid[0:h_out, 0:w_out].astype(np.float64)
    sx = inv[0, 0] * xs + inv[0, 1] * ys + inv[0, 2]
    sy = inv[1, 0] * xs + inv[1, 1] * ys + inv[1, 2]
    ix, iy = np.rint(sx), np.rint(sy)
    if np.abs(sx - ix).max() < 1e-6 and np.abs(sy - iy).max() < 1e-6:  # whole pixels: copy exactly
        res = part[_reflect_index(iy.astype(np.int64), ph), _reflect_index(ix.astype(np.int64), pw)]
        return np.ascontiguousarray(res[..., 0] if img.ndim == 2 else res, dtype=np.float32)
    grid = np.stack([(2 * sx + 1) / pw - 1, (2 * sy + 1) / ph - 1], axis=-1)
    src_t = torch.from_numpy(np.ascontiguousarray(part.transpose(2, 0, 1)))[None]
    grid_t = torch.from_numpy(grid.astype(np.float32))[None]
    mode = "nearest" if order == 0 else "bilinear"
    out = F.grid_sample(src_t, grid_t, mode=mode, padding_mode="reflection", align_corners=False)[0]
    res = out.numpy().transpose(1, 2, 0)
    return np.ascontiguousarray(res[..., 0] if img.ndim == 2 else res, dtype=np.float32)


def _about_centre(size: tuple[int, int], params: AugmentParams) -> np.ndarray:
    """Map of ``params`` about the centre of an image of ``size``, output the same size (square only
    stays lossless under quarter turns)."""
    h, w = size
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    ca, sa = math.cos(params.angle), math.sin(params.angle)
    lin = np.array([[ca, sa, 0.0], [-sa, ca, 0.0], [0.0, 0.0, 1.0]])
    lin = np.diag([-1.0 if params.hflip else 1.0, -1.0 if params.vflip else 1.0, 1.0]) @ lin
    lin = np.diag([1 / params.zoom, 1 / params.zoom, 1.0]) @ lin
    return np.round(_translate(cx, cy) @ lin @ _translate(-cx, -cy), 12) + 0.0


def rotate(image: np.ndarray, grasps: np.ndarray, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """Rotate an image (array[H, W(, C)]) and its grasps (array[N, 5]) by ``angle`` radians
    counter-clockwise on screen about the image centre. Returns (float32 image, float32 grasps)."""
    m = _about_centre(image.shape[:2], AugmentParams(angle=angle))
    return warp(image, m, image.shape[:2]), transform_grasps(grasps, m)


def flip(image: np.ndarray, grasps: np.ndarray, horizontal: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Mirror an image and its grasps left-right (``horizontal``) or top-bottom; angles are negated."""
    m = _about_centre(image.shape[:2], AugmentParams(hflip=horizontal, vflip=not horizontal))
    return warp(image, m, image.shape[:2]), transform_grasps(grasps, m)


def zoom(image: np.ndarray, grasps: np.ndarray, factor: float) -> tuple[np.ndarray, np.ndarray]:
    """Keep the central ``factor`` (0 < factor <= 1) of the image, resized back to its size."""
    if not 0 < factor <= 1:
        raise ConfigError(f"zoom factor must be in (0, 1], got {factor}")
    m = _about_centre(image.shape[:2], AugmentParams(zoom=factor))
    return warp(image, m, image.shape[:2]), transform_grasps(grasps, m)
