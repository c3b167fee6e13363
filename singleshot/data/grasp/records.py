"""Plain records shared by the Cornell and Jacquard readers."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["GraspSample", "GraspImage"]


@dataclass(frozen=True)
class GraspSample:
    """Where one annotated image lives on disk (nothing is read until it is loaded).

    Attributes:
        image_id: file stem used in prediction files (``"pcd0100"``, ``"0_1a9fa4c2..."``).
        format: ``"cornell"`` or ``"jacquard"``.
        grasp_path: the positive rectangles (``pcdXXXXcpos.txt``) or Jacquard ``_grasps.txt``.
        depth_path: float32 depth TIFF, or None when absent.
        rgb_path: RGB PNG, or None when absent.
        neg_path: Cornell's negative rectangles (``cneg.txt``), or None.
        mask_path: Jacquard's object mask, or None.
        object_id: the object shown (Jacquard: its folder; Cornell: from an object map, else None).
        index: the image's number (Cornell ``XXXX``, Jacquard view number), for ordering.
    """

    image_id: str
    format: str
    grasp_path: Path
    depth_path: Path | None
    rgb_path: Path | None
    neg_path: Path | None = None
    mask_path: Path | None = None
    object_id: str | None = None
    index: int = 0


@dataclass
class GraspImage:
    """One loaded image with its grasps, in the original image's pixels.

    Attributes:
        image_id: as :attr:`GraspSample.image_id`.
        depth: array[H, W] float32 metres, holes repaired; None when not requested.
        rgb: array[H, W, 3] uint8; None when not requested.
        grasps: array[N, 5] float32 ``(cx, cy, angle, opening, jaw)`` positive grasps
            (angle radians CCW on screen, see :mod:`singleshot.data.grasp.rects`).
        negatives: array[M, 5] float32 negative grasps (Cornell ``cneg.txt``; empty otherwise).
        size: (height, width).
    """

    image_id: str
    depth: np.ndarray | None
    rgb: np.ndarray | None
    grasps: np.ndarray
    negatives: np.ndarray = field(default_factory=lambda: np.zeros((0, 5), dtype=np.float32))
    size: tuple[int, int] = (0, 0)
