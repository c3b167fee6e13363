"""Rendering of the synthetic action videos: moving shapes whose *motion* is the class.

Every class uses the same shapes (rectangle, ellipse, diamond, triangle; half-length 10-16 px,
aspect 1.5-2.5), the same colour palette and the same base size range, drawn at random per actor,
so one frame cannot tell the class; the motion over a few frames does:

- ``Bounce``: vertical hops, ``y = y0 - A |sin(pi (t + phase) / P)|`` (A 14-24 px, P 6-10 frames);
- ``Pulse``: the size swells and shrinks, ``size0 * exp(A sin(2 pi t / P + phase))`` (A 0.30-0.45,
  P 8-12 frames);
- ``Slide``: constant speed, 2.5-4 px/frame within 50 degrees of horizontal, reflected at the walls
  of the actor's region;
- ``Spin``: rotation about the centre at 0.30-0.50 rad/frame, either way.

Every motion is strong within a few frames (what a 4-frame tubelet or an 8-frame clip sees): a
slide moves 7-12 px over 4 frames, a pulse changes the size by up to ~40%, a spin turns 50-85 degrees.

(Pixel values are for 120x160 frames and scale with the frame.) An actor exists only during its
action (frames ``sf ... ef``, 1-based, often strictly inside the video); about 30% of the videos
have two actors of the video's class, one in each half of the frame, so their boxes never touch; a
third of the one-actor videos also hold a static distractor shape that is never annotated. The
background is a smooth colour field with blotches and strokes, fixed per video, plus fresh pixel
noise in every frame (uniform integers in [-10, 10]).

Boxes are the tight extent of the pixels at least half covered by the shape: ``x1 = first column,
x2 = last column + 1`` (pixel edges, integers), likewise for rows.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

logger = logging.getLogger(__name__)

__all__ = ["SYNTH_ACTION_CLASSES", "SynthActor", "render_action_video"]

#: Class names (alphabetical, as folder names sort): label i = SYNTH_ACTION_CLASSES[i].
SYNTH_ACTION_CLASSES: tuple[str, ...] = ("Bounce", "Pulse", "Slide", "Spin")

_KINDS = ("rect", "ellipse", "diamond", "triangle")
_PALETTE = np.array(
    [
        (220, 60, 50),
        (50, 170, 70),
        (50, 90, 220),
        (230, 200, 50),
        (190, 70, 200),
        (40, 190, 200),
        (240, 140, 40),
        (235, 235, 235),
        (30, 30, 30),
    ],
    dtype=np.float32,
)
_SUPER = 4  # supersampling per pixel side of the coverage masks


@dataclass
class SynthActor:
    """One actor: its 0-based label, 1-based first/last frame and per-frame boxes (ndarray[L, 4]
    float32 xyxy pixel edges)."""

    label: int
    start: int
    end: int
    boxes: np.ndarray


def _coverage(
    kind: str, cx: float, cy: float, a: float, b: float, theta: float, h: int, w: int
) -> tuple[np.ndarray, int, int]:
    """Anti-aliased coverage of one shape: (alpha float32 [ph, pw], x0, y0) of the patch it touches.

    ``a``/``b``: half-length along / across the shape's axis, which points at angle ``theta``.
    """
    r = math.hypot(a, b) + 1.0
    x0, y0 = max(int(math.floor(cx - r)), 0), max(int(math.floor(cy - r)), 0)
    x1, y1 = min(int(math.ceil(cx + r)), w), min(int(math.ceil(cy + r)), h)
    s = _SUPER
    xs = x0 + (np.arange((x1 - x0) * s, dtype=np.float32) + 0.5) / s - cx
    ys = y0 + (np.arange((y1 - y0) * s, dtype=np.float32) + 0.5) / s - cy
    c, sn = math.cos(theta), math.sin(theta)
    u = xs[None, :] * c + ys[:, None] * sn
    v = ys[:, None] * c - xs[None, :] * sn
    if kind == "rect":
        inside = (np.abs(u) <= a) & (np.abs(v) <= b)
    elif kind == "ellipse":
        inside = (u / a) ** 2 + (v / b) ** 2 <= 1.0
    elif kind == "diamond":
        inside = np.abs(u) / a + np.abs(v) / b <= 1.0
    else:  # triangle: base at u = -a, apex at u = +a
        inside = (u >= -a) & (u <= a) & (np.abs(v) <= b * (a - u) / (2.0 * a))
    alpha = inside.reshape(y1 - y0, s, x1 - x0, s).mean(axis=(1, 3), dtype=np.float32)
    return alpha, x0, y0


def _tight_box(alpha: np.ndarray, x0: int, y0: int) -> np.ndarray:
    solid = alpha >= 0.5
    cols, rows = np.flatnonzero(solid.any(axis=0)), np.flatnonzero(solid.any(axis=1))
    if cols.size == 0:
        return np.zeros(4, np.float32)
    return np.array([x0 + cols[0], y0 + rows[0], x0 + cols[-1] + 1, y0 + rows[-1] + 1], np.float32)


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Static textured background, float32 [h, w, 3] in 0..255, low saturation."""
    coarse = rng.uniform(60, 200, (4, 5, 3))
    grey = coarse.mean(axis=2, keepdims=True)
    coarse = grey + 0.4 * (coarse - grey)
    field = np.asarray(Image.fromarray(coarse.astype(np.uint8)).resize((w, h), Image.Resampling.BICUBIC), np.float32)
    blot = rng.normal(128.0, 40.0, (max(h // 12, 2), max(w // 12, 2))).clip(0, 255).astype(np.uint8)
    blots = np.asarray(Image.fromarray(blot).resize((w, h), Image.Resampling.BILINEAR), np.float32)
    canvas = Image.fromarray((field + 0.45 * (blots[..., None] - 128.0)).clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    for _ in range(int(rng.integers(2, 6))):
        g = int(rng.integers(40, 220))
        pts = [(float(rng.uniform(-0.1, 1.1) * w), float(rng.uniform(-0.1, 1.1) * h)) for _ in range(3)]
        draw.line(pts, fill=(g, g, g), width=int(rng.integers(1, 3)))
    return np.asarray(canvas, dtype=np.float32)


def _reflect(u: np.ndarray, span: float) -> np.ndarray:
    """Positions ``u`` folded into [0, span], as a point moving between two walls bounces off them."""
    if span <= 0.0:
        return np.zeros_like(u)
    m = np.mod(u, 2.0 * span)
    return np.where(m <= span, m, 2.0 * span - m)


def _motion(
    rng: np.random.Generator, action: str, length: int, scale: float, shrink: float, room: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-frame (centre offsets [L, 2], half-axes [L, 2], angles [L]) of one actor.

    ``room``: (width, height) of the region the actor must stay in; slides and bounces use the
    room left by the shape's size. ``shrink`` (<= 1) scales the shape down when it does not fit.
    """
    t = np.arange(length, dtype=np.float64)
    a = rng.uniform(10.0, 16.0) * scale * shrink
    half = np.tile([a, a / rng.uniform(1.5, 2.5)], (length, 1))
    angle = np.full(length, rng.uniform(0.0, math.pi))
    centre = np.zeros((length, 2))
    r = float(np.hypot(half[0, 0], half[0, 1])) + 1.0
    free_x, free_y = (max(float(v) - 2.0 * r, 0.0) for v in room)  # the centre's range of travel
    if action == "Slide":
        speed = rng.uniform(2.5, 4.0) * scale
        phi = rng.uniform(-1.0, 1.0) * math.radians(50.0) + (math.pi if rng.random() < 0.5 else 0.0)
        centre[:, 0] = _reflect(rng.uniform(0.0, 2.0 * free_x) + t * speed * math.cos(phi), free_x)
        centre[:, 1] = _reflect(rng.uniform(0.0, 2.0 * free_y) + t * speed * math.sin(phi), free_y)
    elif action == "Bounce":
        amp, period = min(rng.uniform(14.0, 24.0) * scale, free_y), rng.uniform(6.0, 10.0)
        centre[:, 1] = -amp * np.abs(np.sin(math.pi * (t + rng.uniform(0.0, period)) / period))
    elif action == "Spin":
        angle = angle + rng.choice([-1.0, 1.0]) * rng.uniform(0.30, 0.50) * t
    elif action == "Pulse":
        amp, period = rng.uniform(0.30, 0.45), rng.uniform(8.0, 12.0)
        half = half * np.exp(amp * np.sin(2.0 * math.pi * t / period + rng.uniform(0.0, 2.0 * math.pi)))[:, None]
    else:
        raise ValueError(f"unknown synthetic action {action!r}; choose from {SYNTH_ACTION_CLASSES}")
    return centre, half, angle


def _place(
    rng: np.random.Generator, action: str, length: int, region: tuple[float, float, float, float], scale: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw an actor's motion until its whole path (with a rotation-safe margin) fits ``region``."""
    rx0, ry0, rx1, ry1 = region
    for attempt in range(40):
        centre, half, angle = _motion(rng, action, length, scale, 0.95**attempt, (rx1 - rx0, ry1 - ry0))
        r = np.hypot(half[:, 0], half[:, 1]) + 1.0
        lo, hi = (centre - r[:, None]).min(axis=0), (centre + r[:, None]).max(axis=0)
        span = hi - lo
        if span[0] <= rx1 - rx0 and span[1] <= ry1 - ry0:
            ox = rng.uniform(rx0 - lo[0], rx1 - hi[0])
            oy = rng.uniform(ry0 - lo[1], ry1 - hi[1])
            return centre + np.array([ox, oy]), half, angle
    raise RuntimeError(f"cannot fit a {action} actor of {length} frames into region {region}")  # pragma: no cover


def _links(boxes: np.ndarray) -> bool:
    """True when every box overlaps the previous one (the YOWO label reader links them into one tube)."""
    lt = np.maximum(boxes[1:, :2], boxes[:-1, :2])
    rb = np.minimum(boxes[1:, 2:], boxes[:-1, 2:])
    return bool((rb - lt > 0).all()) and bool((boxes[:, 2:] > boxes[:, :2]).all())


def render_action_video(
    rng: np.random.Generator, size: tuple[int, int], num_frames: int, label: int
) -> tuple[np.ndarray, list[SynthActor]]:
    """Draw one synthetic video of class ``SYNTH_ACTION_CLASSES[label]``.

    Returns:
        (frames uint8 ndarray[T, H, W, 3] RGB, the actors with their per-frame tight boxes).
    """
    h, w = size
    action = SYNTH_ACTION_CLASSES[label]
    scale = min(h / 120.0, w / 160.0)
    background = _background(rng, h, w)
    two = rng.random() < 0.3
    m = 2.0
    regions = [(m, m, w / 2 - m, h - m), (w / 2 + m, m, w - m, h - m)] if two else [(m, m, w - m, h - m)]
    plans = []  # (start, colour, per-frame coverage patches, boxes)
    for region in regions:
        for _ in range(50):
            length = int(rng.integers(min(num_frames, max(10, num_frames // 3)), num_frames + 1))
            start = int(rng.integers(1, num_frames - length + 2))
            if any(start == p[0] + len(p[3]) or p[0] == start + length for p in plans):
                continue  # a tube ending right before another begins would read as one tube
            centre, half, angle = _place(rng, action, length, region, scale)
            kind = _KINDS[int(rng.integers(len(_KINDS)))]
            colour = _PALETTE[int(rng.integers(len(_PALETTE)))] + rng.uniform(-20, 20, 3).astype(np.float32)
            patches = [_coverage(kind, *c, *hf, th, h, w) for c, hf, th in zip(centre, half, angle)]
            boxes = np.stack([_tight_box(*p) for p in patches])
            if _links(boxes):
                plans.append((start, colour.clip(0, 255), patches, boxes))
                break
    if not plans:  # pragma: no cover - 50 draws of a single actor cannot all fail
        raise RuntimeError(f"could not place a {action} actor in a {h}x{w} video of {num_frames} frames")
    if not two and rng.random() < 0.35:  # a static distractor, never annotated
        a = rng.uniform(10.0, 16.0) * scale
        kind = _KINDS[int(rng.integers(len(_KINDS)))]
        colour = _PALETTE[int(rng.integers(len(_PALETTE)))]
        cx, cy = rng.uniform(a + 2, w - a - 2), rng.uniform(a + 2, h - a - 2)
        alpha, x0, y0 = _coverage(kind, cx, cy, a, a / rng.uniform(1.5, 2.5), rng.uniform(0, math.pi), h, w)
        patch = background[y0 : y0 + alpha.shape[0], x0 : x0 + alpha.shape[1]]
        patch += alpha[..., None] * (colour - patch)
    video = np.repeat(np.rint(background).astype(np.int16)[None], num_frames, axis=0)
    for start, colour, patches, _ in plans:
        for i, (alpha, x0, y0) in enumerate(patches):
            patch = video[start - 1 + i, y0 : y0 + alpha.shape[0], x0 : x0 + alpha.shape[1]]
            patch[:] = np.rint(patch + alpha[..., None] * (colour - patch))
    video += rng.integers(-10, 11, video.shape, dtype=np.int16)  # fresh pixel noise, std ~6
    frames = video.clip(0, 255, out=video).astype(np.uint8)
    return frames, [SynthActor(label, p[0], p[0] + len(p[3]) - 1, p[3]) for p in plans]
