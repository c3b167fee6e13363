"""Jacquard grasping dataset reader.

Layout: ``<root>/[...]/<object>/<n>_<object>_RGB.png`` (1024×1024), ``<n>_<object>_perfect_depth.tiff``
(float32 metres, LZW-compressed: Pillow reads it as mode ``F``), ``<n>_<object>_stereo_depth.tiff``
(holes marked −1), ``<n>_<object>_mask.png`` and ``<n>_<object>_grasps.txt`` with lines
``x;y;theta_deg;opening;jaw`` in pixels of the 1024×1024 image. Jacquard's ``theta`` turns the
opposite way to this project's angle: ``angle = −radians(theta)`` (see :mod:`.rects`).

Grasp files: blank lines ignored; a line with NaN skipped with a warning naming file and line;
a line that is not 5 numbers (plain ASCII decimals, see :mod:`.numbers`) separated by ``;``
raises :class:`DataError` naming file and line.
Samples are ordered by path (GG-CNN's sorted ``*/*_grasps.txt``); ``object_id`` is the object's folder.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from singleshot.data.grasp.depth import read_depth_tiff, repair_depth
from singleshot.data.grasp.numbers import parse_number
from singleshot.data.grasp.records import GraspImage, GraspSample
from singleshot.data.grasp.rects import grasps_float32, jacquard_to_grasps
from singleshot.data.image_io import read_image_rgb
from singleshot.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

__all__ = [
    "GraspFile",
    "find_jacquard_samples",
    "jacquard_grasp_files",
    "load_jacquard",
    "parse_jacquard_grasps",
    "read_jacquard_grasps",
]

_SUFFIX = "_grasps.txt"


@dataclass(frozen=True)
class GraspFile:
    """What a Jacquard grasp file holds.

    Attributes:
        rows: array[N, 5] float64 raw rows ``(x, y, theta_deg, opening, jaw)`` of the usable lines.
        lines: N line numbers (1-based) of those rows.
        skipped: line numbers of the lines left out for a non-finite value.
    """

    rows: np.ndarray
    lines: tuple[int, ...]
    skipped: tuple[int, ...]


def parse_jacquard_grasps(path: str | Path) -> GraspFile:
    """Parse a Jacquard ``_grasps.txt`` without warnings: see :func:`read_jacquard_grasps`, which
    warns for each line in :attr:`GraspFile.skipped`.

    Raises:
        DataError: missing or unreadable file, or a line that is not 5 numbers separated by ``;``
            (see :func:`~singleshot.data.grasp.numbers.parse_number`; the message names the file and line).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise DataError(f"{path}: cannot read grasp file ({exc})") from exc
    rows: list[list[float]] = []
    lines: list[int] = []
    skipped: list[int] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.strip().split(";")
        try:
            if len(parts) != 5:
                raise ValueError
            vals = [parse_number(p.strip()) for p in parts]
        except ValueError:
            raise DataError(
                f"{path}: line {lineno}: expected 'x;y;theta_deg;opening;jaw', got {line.strip()[:60]!r}"
            ) from None
        if not all(math.isfinite(v) for v in vals):
            skipped.append(lineno)
            continue
        rows.append(vals)
        lines.append(lineno)
    return GraspFile(np.asarray(rows, dtype=np.float64).reshape(-1, 5), tuple(lines), tuple(skipped))


def read_jacquard_grasps(path: str | Path) -> np.ndarray:
    """Read a Jacquard ``_grasps.txt``.

    Returns:
        array[N, 5] float64 raw rows ``(x, y, theta_deg, opening, jaw)`` (convert with
        :func:`~singleshot.data.grasp.rects.jacquard_to_grasps`); lines with a non-finite value are
        skipped with a warning.

    Raises:
        DataError: unreadable file or a malformed line (named by its number).
    """
    parsed = parse_jacquard_grasps(path)
    for line in parsed.skipped:
        warnings.warn(f"{path}: line {line}: grasp with a non-finite value skipped", stacklevel=2)
    return parsed.rows


def jacquard_grasp_files(root: str | Path) -> list[Path]:
    """The grasp files ``*_grasps.txt`` under ``root`` (any depth of subfolders), sorted by path."""
    return sorted(Path(root).rglob("*" + _SUFFIX))


def find_jacquard_samples(
    root: str | Path, depth: str = "perfect", strict: bool = False, unread: Collection[str] = ()
) -> list[GraspSample]:
    """List the annotated views under a Jacquard root (any depth of subfolders).

    Args:
        root: a folder containing ``<object>/<n>_<object>_grasps.txt`` files.
        depth: ``"perfect"`` (rendered depth, the reference's choice) or ``"stereo"``.
        strict: raise instead of warning for a view without grasps or without its depth/RGB file.
        unread: view ids listed as found without reading or checking their files (the items a
            dataset check found faulty: callers drop them after splitting, so that leaving them out
            does not change the split of the others).

    Returns:
        Samples sorted by path.

    Raises:
        ConfigError: unknown ``depth``. DataError: no grasp file under ``root``, or a malformed one.
    """
    if depth not in ("perfect", "stereo"):
        raise ConfigError(f"depth: expected 'perfect' or 'stereo', got {depth!r}")
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: Jacquard root not found")
    files = jacquard_grasp_files(root)
    if not files:
        raise DataError(f"{root}: no Jacquard grasp file (*_grasps.txt) found under it")
    samples: list[GraspSample] = []
    for g in files:
        stem = g.name[: -len(_SUFFIX)]
        checked = stem not in unread
        if checked and len(read_jacquard_grasps(g)) == 0:
            if strict:
                raise DataError(f"{g}: no usable grasp")
            warnings.warn(f"{g}: no usable grasp; view skipped", stacklevel=2)
            continue
        d = g.with_name(f"{stem}_{depth}_depth.tiff")
        rgb = g.with_name(f"{stem}_RGB.png")
        mask = g.with_name(f"{stem}_mask.png")
        for f in (d, rgb):
            if checked and not f.is_file():
                if strict:
                    raise DataError(f"{f}: not found")
                warnings.warn(f"{f}: not found; inputs that need it will fail for {stem}", stacklevel=2)
        head = stem.split("_", 1)[0]
        samples.append(
            GraspSample(
                image_id=stem,
                format="jacquard",
                grasp_path=g,
                depth_path=d if d.is_file() else None,
                rgb_path=rgb if rgb.is_file() else None,
                mask_path=mask if mask.is_file() else None,
                object_id=g.parent.name,
                index=int(head) if head.isdecimal() else 0,
            )
        )
    return samples


def load_jacquard(sample: GraspSample, depth: bool = True, rgb: bool = False) -> GraspImage:
    """Read one Jacquard view; grasps converted to ``(cx, cy, angle, opening, jaw)`` float32.

    Raises:
        DataError: a requested file is missing or unreadable, a grasp too large for float32, or
            depth and RGB sizes differ.
    """
    grasps = grasps_float32(jacquard_to_grasps(read_jacquard_grasps(sample.grasp_path)), sample.grasp_path)
    d = r = None
    size: tuple[int, int] | None = None
    if depth:
        if sample.depth_path is None:
            raise DataError(f"{sample.grasp_path}: no depth image beside it")
        d = repair_depth(read_depth_tiff(sample.depth_path), sample.depth_path)
        size = (int(d.shape[0]), int(d.shape[1]))
    if rgb:
        if sample.rgb_path is None:
            raise DataError(f"{sample.grasp_path}: no RGB image beside it")
        r = read_image_rgb(sample.rgb_path).permute(1, 2, 0).numpy()
        rs = (int(r.shape[0]), int(r.shape[1]))
        if size is not None and rs != size:
            raise DataError(f"{sample.rgb_path}: RGB size {rs} differs from the depth image's {size}")
        size = rs
    return GraspImage(sample.image_id, d, r, grasps, np.zeros((0, 5), dtype=np.float32), size or (0, 0))
