"""Geometry of grasp rectangles: corners, point tests, exact and rasterised IoU, angle differences.

Convention (the same as :class:`singleshot.structures.Grasps`): a grasp is ``(cx, cy, angle,
opening, jaw)`` in pixels of an image with x to the right and y down. ``angle`` is in radians,
counter-clockwise as seen on screen, so the opening runs along ``d = (cos θ, −sin θ)`` and the jaw
along the perpendicular ``n = (sin θ, cos θ)``. A pixel ``(row r, column c)`` is the point
``(x = c, y = r)``: pixel centres sit on integer coordinates.

Two IoUs are offered:

* ``"polygon"``: the exact area of the intersection of the two rectangles (Sutherland–Hodgman
  clipping of one convex quadrilateral by the four half-planes of the other, vectorised over pairs,
  in float64) divided by the exact area of their union.
* ``"raster"``: the reference GG-CNN evaluation (dougsm/ggcnn ``GraspRectangle.iou``): both
  rectangles are rasterised as the sets of pixel centres (r ≥ 0, c ≥ 0, no upper clipping) that lie
  inside or on the boundary of the rectangle (modern ``skimage.draw.polygon`` semantics) and the
  IoU counts pixels. Boundary pixels are decided with a tolerance of ``RASTER_EPS`` pixels, so a
  pixel centre lying exactly on an edge is always inside (skimage decides such pixels by floating
  point round-off, which may go either way).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor

__all__ = [
    "RASTER_EPS",
    "IoUMode",
    "angle_diff",
    "grasp_corners",
    "grasp_iou",
    "iou_aligned",
    "points_in_grasps",
    "polygon_area",
    "polygon_iou_aligned",
    "raster_iou_aligned",
]

RASTER_EPS = 1e-6
"""Tolerance (pixels) with which a pixel centre on a rectangle's edge counts as inside (far above
the round-off of float64 coordinates, far below any meaningful distance)."""

_CLIP_EPS = 1e-9  # a vertex this far (pixels) outside a half-plane still counts as inside it
_SLOTS = 16  # vertex slots of a clipped polygon (a rectangle clipped by 4 half-planes has <= 8)
_RASTER_BLOCK = 1 << 22  # pixels × pairs evaluated at once by raster_iou_aligned

IoUMode = Literal["polygon", "raster"]


def _as_grasps(g: Tensor, name: str) -> Tensor:
    if g.shape[-1] != 5:
        raise ValueError(f"{name} must have a last dimension of 5 (cx, cy, angle, opening, jaw), got {tuple(g.shape)}")
    return g


def grasp_corners(grasps: Tensor) -> Tensor:
    """Corners of grasp rectangles.

    Args:
        grasps: Tensor[..., 5] ``(cx, cy, angle, opening, jaw)`` pixels / radians.

    Returns:
        Tensor[..., 4, 2] ``(x, y)`` pixels, in the order of the reference's ``Grasp.as_gr``:
        p0 = c − (opening/2)·d − (jaw/2)·n, p1 = c + (opening/2)·d − (jaw/2)·n,
        p2 = c + (opening/2)·d + (jaw/2)·n, p3 = c − (opening/2)·d + (jaw/2)·n, so that the edge
        p0 → p1 runs along the opening (Cornell's convention) and ``atan2(−(y1 − y0), x1 − x0)`` is
        the angle.
    """
    g = _as_grasps(grasps, "grasps")
    cx, cy, theta, opening, jaw = g.unbind(-1)
    c, s = torch.cos(theta), torch.sin(theta)
    d = torch.stack((c, -s), dim=-1) * (opening / 2)[..., None]  # half opening vector
    n = torch.stack((s, c), dim=-1) * (jaw / 2)[..., None]  # half jaw vector
    centre = torch.stack((cx, cy), dim=-1)
    return torch.stack((centre - d - n, centre + d - n, centre + d + n, centre - d + n), dim=-2)


def angle_diff(a: Tensor, b: Tensor) -> Tensor:
    """Absolute difference of grasp angles modulo π (a grasp turned by π is the same grasp).

    Args:
        a, b: broadcastable tensors of angles in radians.

    Returns:
        Tensor of differences in [0, π/2].
    """
    return torch.remainder(a - b + math.pi / 2, math.pi).sub(math.pi / 2).abs()


def points_in_grasps(grasps: Tensor, x: Tensor, y: Tensor, eps: float = RASTER_EPS) -> Tensor:
    """Whether points lie inside (or on the boundary of) grasp rectangles.

    Args:
        grasps: Tensor[..., 5] rectangles.
        x, y: point coordinates (pixels) broadcastable against ``grasps[..., 0]``.
        eps: tolerance in pixels; a point up to ``eps`` outside an edge counts as inside.

    Returns:
        bool Tensor of the broadcast shape.
    """
    g = _as_grasps(grasps, "grasps")
    cx, cy, theta, opening, jaw = g.unbind(-1)
    dx, dy = x - cx, y - cy
    c, s = torch.cos(theta), torch.sin(theta)
    u = dx * c - dy * s  # along the opening
    v = dx * s + dy * c  # along the jaw
    return (u.abs() <= opening / 2 + eps) & (v.abs() <= jaw / 2 + eps)


def polygon_area(poly: Tensor, count: Tensor) -> Tensor:
    """Absolute area of simple polygons stored in fixed slots.

    Args:
        poly: Tensor[P, M, 2] vertices ``(x, y)`` in order; slots ``>= count`` are ignored.
        count: Tensor[P] int64, number of valid vertices of each polygon.

    Returns:
        Tensor[P] areas (shoelace formula); polygons with fewer than 3 vertices have area 0.
    """
    m = poly.shape[1]
    idx = torch.arange(m, device=poly.device)
    valid = idx[None] < count[:, None]
    nxt = torch.where(idx[None] + 1 < count[:, None], idx[None] + 1, torch.zeros_like(idx)[None])
    q = poly.gather(1, nxt[..., None].expand(-1, -1, 2))
    cross = poly[..., 0] * q[..., 1] - poly[..., 1] * q[..., 0]
    return (cross * valid).sum(dim=1).abs() / 2


def _clip_halfplane(poly: Tensor, count: Tensor, normal: Tensor, offset: Tensor) -> tuple[Tensor, Tensor]:
    """Clip convex polygons by the half-planes ``normal · p <= offset`` (Sutherland–Hodgman).

    Args:
        poly: Tensor[P, M, 2]; count: Tensor[P]; normal: Tensor[P, 2]; offset: Tensor[P].

    Returns:
        (Tensor[P, _SLOTS, 2], Tensor[P]) the clipped polygons, valid vertices first.
    """
    p, m, _ = poly.shape
    idx = torch.arange(m, device=poly.device)[None].expand(p, m)
    valid = idx < count[:, None]
    nxt = torch.where(idx + 1 < count[:, None], idx + 1, torch.zeros_like(idx))
    nxt_pt = poly.gather(1, nxt[..., None].expand(-1, -1, 2))
    s_cur = offset[:, None] - (poly * normal[:, None]).sum(-1)  # >= 0 inside
    s_nxt = offset[:, None] - (nxt_pt * normal[:, None]).sum(-1)
    in_cur, in_nxt = s_cur >= -_CLIP_EPS, s_nxt >= -_CLIP_EPS
    crossing = valid & (in_cur != in_nxt)
    denom = torch.where(crossing, s_cur - s_nxt, torch.ones_like(s_cur))
    t = (s_cur / denom).clamp(0.0, 1.0)
    cut = poly + t[..., None] * (nxt_pt - poly)
    # Each input vertex emits itself (if inside) then the crossing point (if its edge crosses).
    cand = torch.stack((poly, cut), dim=2).reshape(p, 2 * m, 2)
    keep = torch.stack((valid & in_cur, crossing), dim=2).reshape(p, 2 * m)
    order = torch.argsort((~keep).to(torch.int8), dim=1, stable=True)
    cand = cand.gather(1, order[..., None].expand(-1, -1, 2))
    new_count = keep.sum(dim=1)
    if cand.shape[1] < _SLOTS:
        cand = torch.cat((cand, cand.new_zeros(p, _SLOTS - cand.shape[1], 2)), dim=1)
    return cand[:, :_SLOTS], new_count.clamp(max=_SLOTS)


def polygon_iou_aligned(a: Tensor, b: Tensor) -> Tensor:
    """Exact IoU of the rectangles ``a[i]`` and ``b[i]``.

    Args:
        a, b: Tensor[P, 5] grasps ``(cx, cy, angle, opening, jaw)``.

    Returns:
        Tensor[P] IoU in [0, 1] (0 where the union has zero area), in ``a``'s floating dtype.
    """
    a, b = _as_grasps(a, "a"), _as_grasps(b, "b")
    out_dtype = a.dtype if a.is_floating_point() else torch.float32
    a64, b64 = a.to(torch.float64).reshape(-1, 5), b.to(torch.float64).reshape(-1, 5)
    p = a64.shape[0]
    if p == 0:
        return a.new_zeros((0,), dtype=out_dtype)
    poly = grasp_corners(a64)
    count = torch.full((p,), 4, dtype=torch.int64, device=a.device)
    cx, cy, theta, opening, jaw = b64.unbind(-1)
    c, s = torch.cos(theta), torch.sin(theta)
    d = torch.stack((c, -s), dim=-1)
    n = torch.stack((s, c), dim=-1)
    centre = torch.stack((cx, cy), dim=-1)
    for axis, half in ((d, opening / 2), (-d, opening / 2), (n, jaw / 2), (-n, jaw / 2)):
        # axis · (p − centre) <= half  ⇔  axis · p <= half + axis · centre
        poly, count = _clip_halfplane(poly, count, axis, half + (axis * centre).sum(-1))
    inter = polygon_area(poly, count)
    area_a = a64[:, 3].abs() * a64[:, 4].abs()
    area_b = opening.abs() * jaw.abs()
    union = area_a + area_b - inter
    iou = torch.where(union > 0, inter / union.clamp(min=1e-300), torch.zeros_like(union))
    return iou.clamp(0.0, 1.0).to(out_dtype)


def raster_iou_aligned(a: Tensor, b: Tensor, eps: float = RASTER_EPS) -> Tensor:
    """IoU of the rectangles ``a[i]`` and ``b[i]`` counted in pixels, as the reference evaluation.

    Each rectangle is the set of integer points ``(x = c, y = r)`` with ``r >= 0`` and ``c >= 0``
    that lie inside or on it (see the module docstring); IoU = |A ∩ B| / |A ∪ B|, 0 when the union
    is empty.

    Args:
        a, b: Tensor[P, 5] grasps.
        eps: boundary tolerance in pixels.

    Returns:
        Tensor[P] IoU in ``a``'s floating dtype.
    """
    a, b = _as_grasps(a, "a"), _as_grasps(b, "b")
    out_dtype = a.dtype if a.is_floating_point() else torch.float32
    a64, b64 = a.to(torch.float64).reshape(-1, 5), b.to(torch.float64).reshape(-1, 5)
    p = a64.shape[0]
    if p == 0:
        return a.new_zeros((0,), dtype=out_dtype)
    corners = torch.cat((grasp_corners(a64), grasp_corners(b64)), dim=1)  # [P, 8, 2]
    lo = corners.amin(dim=1).floor().clamp(min=0)  # [P, 2] grid origin (no negative pixels)
    hi = corners.amax(dim=1).ceil()
    extent = (hi - lo + 1).clamp(min=1).amax(dim=0).to(torch.int64)  # common grid size (x, y)
    ex, ey = int(extent[0]), int(extent[1])
    gx = torch.arange(ex, dtype=torch.float64, device=a.device)
    gy = torch.arange(ey, dtype=torch.float64, device=a.device)
    out = torch.empty(p, dtype=torch.float64, device=a.device)
    step = max(1, _RASTER_BLOCK // (ex * ey))
    for i in range(0, p, step):  # blocks of pairs, to bound memory
        sl = slice(i, i + step)
        x = lo[sl, 0, None, None] + gx[None, None, :]  # [p, 1, ex]
        y = lo[sl, 1, None, None] + gy[None, :, None]  # [p, ey, 1]
        in_a = points_in_grasps(a64[sl, None, None], x, y, eps)
        in_b = points_in_grasps(b64[sl, None, None], x, y, eps)
        inter = (in_a & in_b).sum(dim=(1, 2)).to(torch.float64)
        union = (in_a | in_b).sum(dim=(1, 2)).to(torch.float64)
        out[sl] = torch.where(union > 0, inter / union.clamp(min=1), torch.zeros_like(union))
    return out.to(out_dtype)


def iou_aligned(a: Tensor, b: Tensor, mode: IoUMode = "polygon") -> Tensor:
    """IoU of ``a[i]`` and ``b[i]`` (Tensor[P, 5] each) by ``mode``: ``"polygon"`` or ``"raster"``."""
    if mode == "polygon":
        return polygon_iou_aligned(a, b)
    if mode == "raster":
        return raster_iou_aligned(a, b)
    raise ValueError(f"unknown grasp IoU mode {mode!r}; use 'polygon' or 'raster'")


def grasp_iou(a: Tensor, b: Tensor, mode: IoUMode = "polygon") -> Tensor:
    """IoU of every rectangle of ``a`` with every rectangle of ``b``.

    Args:
        a: Tensor[N, 5]; b: Tensor[M, 5] grasps ``(cx, cy, angle, opening, jaw)``.
        mode: ``"polygon"`` (exact) or ``"raster"`` (reference pixel counting).

    Returns:
        Tensor[N, M] IoU.
    """
    a, b = _as_grasps(a, "a").reshape(-1, 5), _as_grasps(b, "b").reshape(-1, 5)
    n, m = a.shape[0], b.shape[0]
    aa = a[:, None].expand(n, m, 5).reshape(-1, 5)
    bb = b[None].expand(n, m, 5).reshape(-1, 5)
    return iou_aligned(aa, bb, mode).reshape(n, m)
