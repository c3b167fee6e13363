"""Cornell grasping dataset reader.

Layout: ``<root>/[01..10/]pcdXXXXr.png`` (RGB 640×480), ``pcdXXXXd.tiff`` (float32 depth in metres,
made from the cloud ``pcdXXXX.txt`` by :func:`singleshot.data.grasp.pcd.convert_cornell_pcd`),
``pcdXXXXcpos.txt`` / ``pcdXXXXcneg.txt``: 4 lines ``x y`` per rectangle, ``p0 → p1`` along the
gripper's opening (see :mod:`singleshot.data.grasp.rects`). Files may sit directly in the root or in
subfolders (the download's ``01`` … ``10``). Samples are ordered by image number, which for the real
layout equals GG-CNN's order (sorted paths ``*/pcd*cpos.txt``).

Rectangle files: blank lines are ignored; a rectangle with a NaN coordinate (a few real files have
them) is skipped with a warning naming the file and line; a line that is not two numbers, or a
trailing incomplete rectangle, raises :class:`DataError` naming the file and line (numbers are
plain ASCII decimals, see :mod:`.numbers`). An image whose
positive file holds no usable rectangle is skipped with a warning (``strict=True``: DataError).

Objects: Cornell's download identifies objects only through files this layout lacks, so
``object_id`` is None unless an object map is given: a text file (or dict) with one line
``<image stem or number> <object id>`` per image (the synthetic generator writes ``objects.txt``).
Object-wise splits without a map fall back to contiguous blocks (see :mod:`.splits`).
"""

from __future__ import annotations

import logging
import math
import re
import warnings
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from singleshot.data.grasp.depth import read_depth_tiff, repair_depth
from singleshot.data.grasp.numbers import parse_number
from singleshot.data.grasp.records import GraspImage, GraspSample
from singleshot.data.grasp.rects import corners_to_grasps, grasps_float32
from singleshot.data.image_io import read_image_rgb
from singleshot.errors import DataError

logger = logging.getLogger(__name__)

__all__ = [
    "RectangleFile",
    "cornell_rectangle_files",
    "find_cornell_samples",
    "load_cornell",
    "parse_cornell_rectangles",
    "read_cornell_rectangles",
    "read_object_map",
]

_POS_NAME = re.compile(r"^pcd(\d+)cpos\.txt$")


@dataclass(frozen=True)
class RectangleFile:
    """What a Cornell rectangle file holds.

    Attributes:
        corners: array[N, 4, 2] float64 ``(x, y)`` corners of the usable rectangles.
        lines: N line numbers (1-based), where each usable rectangle starts.
        skipped: for each rectangle left out for a non-finite coordinate, its first such line.
    """

    corners: np.ndarray
    lines: tuple[int, ...]
    skipped: tuple[int, ...]


def parse_cornell_rectangles(path: str | Path) -> RectangleFile:
    """Parse a Cornell rectangle file (``cpos.txt`` / ``cneg.txt``) without warnings: see
    :func:`read_cornell_rectangles`, which warns for each rectangle in :attr:`RectangleFile.skipped`.

    Raises:
        DataError: missing or unreadable file, a line that is not two numbers (see
            :func:`~singleshot.data.grasp.numbers.parse_number`), or an incomplete last rectangle
            (the message names the file and line number).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise DataError(f"{path}: cannot read rectangle file ({exc})") from exc
    points: list[tuple[float, float, int]] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        try:
            if len(parts) != 2:
                raise ValueError
            x, y = parse_number(parts[0]), parse_number(parts[1])
        except ValueError:
            raise DataError(f"{path}: line {lineno}: expected two numbers 'x y', got {line.strip()[:60]!r}") from None
        points.append((x, y, lineno))
    if len(points) % 4:
        start = points[len(points) - len(points) % 4][2]
        raise DataError(
            f"{path}: line {start}: incomplete rectangle ({len(points) % 4} of 4 corners at the end of the file)"
        )
    rects: list[list[tuple[float, float]]] = []
    lines: list[int] = []
    skipped: list[int] = []
    for k in range(0, len(points), 4):
        corners = points[k : k + 4]
        bad = [ln for x, y, ln in corners if not (math.isfinite(x) and math.isfinite(y))]
        if bad:
            skipped.append(bad[0])
            continue
        rects.append([(x, y) for x, y, _ in corners])
        lines.append(corners[0][2])
    return RectangleFile(np.asarray(rects, dtype=np.float64).reshape(-1, 4, 2), tuple(lines), tuple(skipped))


def read_cornell_rectangles(path: str | Path) -> np.ndarray:
    """Read a Cornell rectangle file (``cpos.txt`` / ``cneg.txt``).

    Returns:
        array[N, 4, 2] float64 ``(x, y)`` corners of the usable rectangles (NaN ones skipped with a warning).

    Raises:
        DataError: missing file, a line that is not two numbers, or an incomplete last rectangle
            (the message names the file and line number).
    """
    parsed = parse_cornell_rectangles(path)
    for line in parsed.skipped:
        warnings.warn(f"{path}: line {line}: rectangle with a non-finite coordinate skipped", stacklevel=2)
    return parsed.corners


def read_object_map(source: str | Path | Mapping[str, str]) -> dict[str, str]:
    """Image -> object map from a dict or a text file of lines ``<stem or number> <object id>``.

    Keys are normalised to Cornell stems (``"100"`` -> ``"pcd0100"``). Blank and ``#`` lines are ignored.
    """
    if isinstance(source, Mapping):
        items = [(str(k), str(v)) for k, v in source.items()]
    else:
        path = Path(source)
        if not path.is_file():
            raise DataError(f"{path}: object map not found")
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise DataError(f"{path}: cannot read object map ({exc})") from exc
        items = []
        for lineno, line in enumerate(text.splitlines(), start=1):
            parts = line.split()
            if not parts or parts[0].startswith("#"):
                continue
            if len(parts) < 2:
                raise DataError(f"{path}: line {lineno}: expected '<image> <object id>', got {line.strip()!r}")
            items.append((parts[0], parts[1]))
    return {(f"pcd{int(k):04d}" if k.isdecimal() else k): v for k, v in items}


def cornell_rectangle_files(root: str | Path) -> list[Path]:
    """The positive rectangle files ``pcdXXXXcpos.txt`` in ``root`` and its subfolders, ordered by
    image number (then path)."""
    root = Path(root)
    files = [p for p in list(root.glob("pcd*cpos.txt")) + list(root.glob("*/pcd*cpos.txt")) if _POS_NAME.match(p.name)]
    return sorted(files, key=lambda p: (int(_POS_NAME.match(p.name).group(1)), str(p)))  # type: ignore[union-attr]


def find_cornell_samples(
    root: str | Path,
    strict: bool = False,
    object_map: str | Path | Mapping[str, str] | None = None,
    unread: Collection[str] = (),
) -> list[GraspSample]:
    """List the annotated images of a Cornell root.

    Args:
        root: folder holding ``pcdXXXXcpos.txt`` files directly or in subfolders.
        strict: raise :class:`DataError` (instead of warning and skipping) for an image without
            positive rectangles or without its depth and RGB files.
        object_map: optional image -> object map (see :func:`read_object_map`).
        unread: image ids listed as found without reading or checking their files (the items a
            dataset check found faulty: callers drop them after splitting, so that leaving them
            out does not change the split of the others).

    Returns:
        Samples ordered by image number. Every listed sample not in ``unread`` has at least one
        positive rectangle.

    Raises:
        DataError: ``root`` holds no ``cpos.txt`` file, or a rectangle file is malformed.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: Cornell root not found")
    files = cornell_rectangle_files(root)
    if not files:
        raise DataError(f"{root}: no Cornell rectangle file (pcdXXXXcpos.txt) found here or in its subfolders")
    objects = read_object_map(object_map) if object_map is not None else {}
    samples: list[GraspSample] = []
    for pos in files:
        number = int(_POS_NAME.match(pos.name).group(1))  # type: ignore[union-attr]
        stem = pos.name[: -len("cpos.txt")]
        checked = stem not in unread
        if checked and len(read_cornell_rectangles(pos)) == 0:
            msg = f"{pos}: no usable positive rectangle"
            if strict:
                raise DataError(msg)
            warnings.warn(msg + "; image skipped", stacklevel=2)
            continue
        depth = pos.with_name(stem + "d.tiff")
        rgb = pos.with_name(stem + "r.png")
        neg = pos.with_name(stem + "cneg.txt")
        for f, hint in ((depth, " (make it from the cloud with convert_cornell_pcd)"), (rgb, "")):
            if checked and not f.is_file():
                if strict:
                    raise DataError(f"{f}: not found{hint}")
                warnings.warn(f"{f}: not found{hint}; inputs that need it will fail for {stem}", stacklevel=2)
        samples.append(
            GraspSample(
                image_id=stem,
                format="cornell",
                grasp_path=pos,
                depth_path=depth if depth.is_file() else None,
                rgb_path=rgb if rgb.is_file() else None,
                neg_path=neg if neg.is_file() else None,
                object_id=objects.get(stem),
                index=number,
            )
        )
    if object_map is not None:
        unmapped = [s.image_id for s in samples if s.object_id is None]
        if unmapped:
            msg = f"{root}: {len(unmapped)} images missing from the object map (e.g. {unmapped[0]})"
            warnings.warn(msg, stacklevel=2)
    return samples


def load_cornell(sample: GraspSample, depth: bool = True, rgb: bool = False) -> GraspImage:
    """Read one Cornell sample.

    Args:
        sample: from :func:`find_cornell_samples`.
        depth: read (and repair, with a warning) the depth image.
        rgb: read the RGB image.

    Returns:
        :class:`GraspImage` with positive grasps (and negatives when ``cneg.txt`` exists) as
        float32 ``(cx, cy, angle, opening, jaw)``.

    Raises:
        DataError: a requested file is missing or unreadable, a rectangle too large for float32,
            or depth and RGB sizes differ.
    """
    grasps = grasps_float32(corners_to_grasps(read_cornell_rectangles(sample.grasp_path)), sample.grasp_path)
    negs = (
        grasps_float32(corners_to_grasps(read_cornell_rectangles(sample.neg_path)), sample.neg_path)
        if sample.neg_path is not None
        else np.zeros((0, 5), dtype=np.float32)
    )
    d = r = None
    size: tuple[int, int] | None = None
    if depth:
        if sample.depth_path is None:
            raise DataError(
                f"{sample.grasp_path}: no depth image {sample.image_id}d.tiff beside it (convert_cornell_pcd makes it)"
            )
        d = repair_depth(read_depth_tiff(sample.depth_path), sample.depth_path)
        size = (int(d.shape[0]), int(d.shape[1]))
    if rgb:
        if sample.rgb_path is None:
            raise DataError(f"{sample.grasp_path}: no RGB image {sample.image_id}r.png beside it")
        r = read_image_rgb(sample.rgb_path).permute(1, 2, 0).numpy()
        rs = (int(r.shape[0]), int(r.shape[1]))
        if size is not None and rs != size:
            raise DataError(f"{sample.rgb_path}: RGB size {rs} differs from the depth image's {size}")
        size = rs
    return GraspImage(sample.image_id, d, r, grasps, negs, size or (0, 0))
