"""Conversions between grasp rectangles (4 corners) and grasp parameters ``(cx, cy, angle, opening, jaw)``.

Conventions (the project's, shared with :class:`singleshot.structures.Grasps`):

* Pixel coordinates ``(x, y)``: x to the right, y down; pixel ``(row i, column j)`` has its centre
  at ``(x=j, y=i)`` (the reference GG-CNN treats annotation coordinates as pixel indices too).
* ``angle`` in radians, counter-clockwise *as seen on screen*: the gripper opens along the unit
  vector ``(cos θ, −sin θ)``. Angles are wrapped into ``[−π/2, π/2)``: a grasp and the same grasp
  turned by π are one grasp.
* ``opening`` is the rectangle's extent along that direction (how far the gripper opens),
  ``jaw`` its extent across it (the size of the gripper plates).

Cornell rectangles: 4 corners, the first edge ``p0 → p1`` runs along the opening, ``p1 → p2`` along the
jaw. Its angle is ``arctan2(−(y1 − y0), x1 − x0)`` (the GG-CNN reference's ``GraspRectangle.angle``),
its centre the mean of the four corners (the reference truncates the centre to integers and
rounds the corners; we keep floats).

Jacquard lines ``x;y;theta_deg;opening;jaw``: Jacquard's ``theta`` turns the other way on screen
(clockwise for positive values, i.e. counter-clockwise in the y-down image frame), so
``angle = −radians(theta)``. The GG-CNN reference does the same (``Grasp(..., -theta/180*pi, ...)``
in ``load_from_jacquard_file``, and ``to_jacquard`` writes ``-angle``); the real samples confirm it:
with this sign the gripper's finger positions fall off the object's mask far more often than with
the opposite one (see ``tests/data/grasp/test_jacquard.py``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from singleshot.errors import DataError

__all__ = [
    "wrap_angle",
    "corners_to_grasps",
    "grasps_to_corners",
    "jacquard_to_grasps",
    "grasps_to_jacquard",
    "grasps_float32",
]

_HALF_PI = np.pi / 2


def wrap_angle(angle: np.ndarray | float) -> np.ndarray:
    """Wrap grasp angles (radians) into ``[−π/2, π/2)``: grasps are symmetric under a turn by π."""
    a = np.asarray(angle, dtype=np.float64)
    return (a + _HALF_PI) % np.pi - _HALF_PI


def corners_to_grasps(corners: np.ndarray) -> np.ndarray:
    """Grasp rectangles given by their corners to grasp parameters.

    Args:
        corners: array[N, 4, 2] of ``(x, y)`` pixels, in Cornell order (``p0 → p1`` along the opening,
            ``p1 → p2`` along the jaw).

    Returns:
        array[N, 5] float64 ``(cx, cy, angle, opening, jaw)``: centre = mean of the corners, angle of
        ``p0 → p1`` wrapped into ``[−π/2, π/2)``, opening = ``|p1 − p0|``, jaw = ``|p2 − p1|``.
    """
    c = np.asarray(corners, dtype=np.float64).reshape(-1, 4, 2)
    centre = c.mean(axis=1)
    edge = c[:, 1] - c[:, 0]
    side = c[:, 2] - c[:, 1]
    angle = wrap_angle(np.arctan2(-edge[:, 1], edge[:, 0]))
    opening = np.hypot(edge[:, 0], edge[:, 1])
    jaw = np.hypot(side[:, 0], side[:, 1])
    return np.stack([centre[:, 0], centre[:, 1], angle, opening, jaw], axis=1)


def grasps_to_corners(grasps: np.ndarray) -> np.ndarray:
    """Grasp parameters to rectangle corners in Cornell order.

    Args:
        grasps: array[N, 5] ``(cx, cy, angle, opening, jaw)`` pixels / radians.

    Returns:
        array[N, 4, 2] float64 ``(x, y)`` corners ``p0, p1, p2, p3``: ``p0 → p1`` runs along the
        opening direction ``(cos θ, −sin θ)``, ``p1 → p2`` along ``(sin θ, cos θ)`` (jaw).
        :func:`corners_to_grasps` inverts it (up to the angle wrap).
    """
    g = np.asarray(grasps, dtype=np.float64).reshape(-1, 5)
    cx, cy, th, op, jaw = g.T
    u = np.stack([np.cos(th), -np.sin(th)], axis=1) * (op / 2)[:, None]  # half opening vector
    n = np.stack([np.sin(th), np.cos(th)], axis=1) * (jaw / 2)[:, None]  # half jaw vector
    c = np.stack([cx, cy], axis=1)
    return np.stack([c - u - n, c + u - n, c + u + n, c - u + n], axis=1)


def jacquard_to_grasps(rows: np.ndarray) -> np.ndarray:
    """Jacquard rows ``(x, y, theta_deg, opening, jaw)`` to ``(cx, cy, angle, opening, jaw)``.

    ``angle = −radians(theta_deg)`` wrapped into ``[−π/2, π/2)`` (see the module docstring).
    """
    r = np.asarray(rows, dtype=np.float64).reshape(-1, 5)
    out = r.copy()
    out[:, 2] = wrap_angle(-np.deg2rad(r[:, 2]))
    return out


def grasps_to_jacquard(grasps: np.ndarray) -> list[str]:
    """Grasp parameters to Jacquard lines ``x;y;theta_deg;opening;jaw`` (theta = −degrees(angle))."""
    g = np.asarray(grasps, dtype=np.float64).reshape(-1, 5)
    return [f"{x:.4f};{y:.4f};{-np.rad2deg(a):.4f};{o:.4f};{j:.4f}" for x, y, a, o, j in g]


def grasps_float32(grasps: np.ndarray, source: str | Path) -> np.ndarray:
    """Grasps array[N, 5] as float32, checked finite (a value beyond float32's range, or a centre or
    size that overflowed in the conversion, would otherwise become ``inf`` and break the crop).

    Raises:
        DataError: a grasp of ``source`` (named in the message, with the grasp's index) is not finite.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        g = np.asarray(grasps, dtype=np.float64).reshape(-1, 5).astype(np.float32)
    bad = ~np.isfinite(g).all(axis=1)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{source}: grasp {k + 1} (of the file's usable ones) has values too large to use "
            f"({np.asarray(grasps, dtype=np.float64).reshape(-1, 5)[k].tolist()})"
        )
    return g
