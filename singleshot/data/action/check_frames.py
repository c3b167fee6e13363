"""Pieces of the action dataset check (:mod:`.check`): the faults of one video's frame folder and
of a video's boxes, and the kinds of fault they report.

A frame folder is checked from the image headers (Pillow's ``Image.open`` and ``.size``) plus a
cheap completeness test: a JPEG must end with its end-of-image marker (a truncated download opens
fine and fails only when decoded), a PNG passes ``Image.verify`` (its chunk checksums).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from singleshot.data.action.frames import list_frame_files
from singleshot.data.action.readers_common import summarize
from singleshot.data.check import Fault

logger = logging.getLogger(__name__)

__all__ = [
    "BAD_BOX",
    "BAD_IMAGE",
    "BOX_OUTSIDE",
    "DUPLICATE",
    "FRAME_SIZE",
    "MALFORMED",
    "MISSING_FILE",
    "MISSING_FRAME",
    "NO_FRAMES",
    "UNKNOWN_CLASS",
    "UNKNOWN_VIDEO",
    "UNREADABLE",
    "box_faults",
    "frame_folder_faults",
    "image_fault",
]

# The kinds of fault (the table's grouping).
MISSING_FILE = "missing file"
UNREADABLE = "unreadable annotation"
MALFORMED = "malformed annotation"
UNKNOWN_CLASS = "unknown class"
UNKNOWN_VIDEO = "unknown video"
DUPLICATE = "duplicate box"
BAD_BOX = "degenerate box"
BOX_OUTSIDE = "box outside image"
NO_FRAMES = "no frames"
MISSING_FRAME = "missing frame"
BAD_IMAGE = "unreadable image"
FRAME_SIZE = "frame size"


def image_fault(path: Path) -> tuple[str | None, tuple[int, int] | None]:
    """(what is wrong with the image file, or None; its (height, width) when the header reads)."""
    try:
        with Image.open(path) as im:
            width, height = im.size
            fmt = im.format
            if fmt == "PNG":
                im.verify()
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        return f"cannot read the image ({type(exc).__name__}: {exc})", None
    if fmt == "JPEG":
        with open(path, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - 64))
            tail = f.read()
        if b"\xff\xd9" not in tail:
            return "truncated JPEG (no end-of-image marker)", (int(height), int(width))
    if width <= 0 or height <= 0:
        return f"empty image ({width}x{height})", None
    return None, (int(height), int(width))


def frame_folder_faults(
    folder: Path, item: str, num_frames: int | None = None
) -> tuple[list[Fault], int, tuple[int, int] | None]:
    """The faults of one video's frame folder: no frames, numbers missing from ``1 … N`` (``N``
    the highest frame on disk, or ``num_frames`` when the annotations say it), unreadable or
    truncated images, frames of another size than frame 1.

    Returns:
        (faults with ``item``, the frame images on disk, (height, width) of the first readable one).
    """
    files = list_frame_files(folder)
    if not files:
        return [Fault(str(folder), NO_FRAMES, "no frame images (expected 00001.jpg or 00001.png ...)", item)], 0, None
    faults: list[Fault] = []
    top = max(max(files), num_frames or 0)
    missing = [f for f in range(1, top + 1) if f not in files]
    if missing:
        faults.append(Fault(str(folder), MISSING_FRAME, f"frames {summarize(missing)} missing from 1..{top}", item))
    size: tuple[int, int] | None = None
    other: list[int] = []
    for f in sorted(files):
        problem, hw = image_fault(files[f])
        if problem is not None:
            faults.append(Fault(str(files[f]), BAD_IMAGE, problem, item))
        if hw is None:
            continue
        if size is None:
            size = hw
        elif hw != size:
            other.append(f)
    if other:
        faults.append(
            Fault(
                str(folder),
                FRAME_SIZE,
                f"frames {summarize(other)} differ in size from the first frame ({size[0]}x{size[1]})",  # type: ignore[index]
                item,
            )
        )
    return faults, len(files), size


def box_faults(
    boxes: np.ndarray, size: tuple[int, int] | None, file: str, item: str, where: Callable[[int], str]
) -> list[Fault]:
    """Faults of boxes ndarray[N, 4] xyxy pixels in frames of ``size`` (height, width; None: not
    checked against a frame): non-finite, degenerate (x2 <= x1 or y2 <= y1), reaching outside the
    frame. ``where(i)`` names box ``i`` (a line, a frame; called for faulty boxes only); one fault
    per kind, naming the first few."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    faults: list[Fault] = []
    finite = np.isfinite(boxes).all(axis=1)
    bad = np.flatnonzero(~finite)
    if bad.size:
        faults.append(Fault(file, MALFORMED, f"non-finite box at {summarize([where(int(i)) for i in bad[:6]])}", item))
    with np.errstate(invalid="ignore"):
        degenerate = finite & ((boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1]))
        outside = finite & ~degenerate & (boxes < 0).any(axis=1)
        if size is not None:
            outside |= finite & ~degenerate & ((boxes[:, 2] > size[1]) | (boxes[:, 3] > size[0]))
    for mask, kind, what in ((degenerate, BAD_BOX, "x2 <= x1 or y2 <= y1"), (outside, BOX_OUTSIDE, "outside")):
        rows = np.flatnonzero(mask)
        if rows.size:
            frame = f" the {size[1]}x{size[0]} frame" if size is not None and kind == BOX_OUTSIDE else ""
            first = boxes[rows[0]].tolist()
            faults.append(
                Fault(
                    file,
                    kind,
                    f"{rows.size} box(es) {what}{frame} at {summarize([where(int(i)) for i in rows[:6]])}, first {first}",
                    item,
                )
            )
    return faults
