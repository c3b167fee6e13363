"""Per-frame boxes in a CSV table, one row per box, and the tubes they make.

Columns, in this order when the file has no header::

    video, frame, x1, y1, x2, y2, label[, actor]

- ``video``: the video's name, ``video`` or ``Class/video`` (a video file's suffix is dropped).
- ``frame``: 1-based frame number (frame 1 is the video's first frame, ``00001.jpg``).
- ``x1, y1, x2, y2``: the box in pixels of the video's frames, xyxy (``x2 > x1``, ``y2 > y1``).
- ``label``: the class NAME.
- ``actor``: optional; the rows of one (video, actor, label) are one track. Without it, every
  (video, label) is one actor, so two boxes of one class on one frame need an actor column.

A header is optional: when the first row's ``frame`` field is not a number it is read as a
header, and the columns are then found by name (in any order; other columns are ignored). Blank
lines and lines starting with ``#`` are skipped.

Tubes: the rows of a track, sorted by frame, make tubes of consecutive frames; a missing frame
(a *gap*) ends one tube and starts the next. ACT's ground-truth tubes are runs of consecutive
frames (its tubelet sampling takes a tube to cover every frame from its first to its last, and its
spatio-temporal IoU pairs boxes frame by frame), and filling a gap by interpolation would invent
ground-truth boxes on frames nobody annotated, changing frame-mAP: so gaps split, and each is
reported.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from singleshot.data.action.readers_common import make_tube
from singleshot.errors import DataError
from singleshot.io.video import VIDEO_SUFFIXES
from singleshot.structures import Tube

logger = logging.getLogger(__name__)

__all__ = [
    "CSV_COLUMNS",
    "BoxRow",
    "BoxTable",
    "Gap",
    "parse_box_csv",
    "read_box_csv",
    "row_problem",
    "track_tubes",
]

#: The columns of a box table (``actor`` optional), in the order of a table without header.
CSV_COLUMNS = ("video", "frame", "x1", "y1", "x2", "y2", "label", "actor")
_REQUIRED = CSV_COLUMNS[:7]


@dataclass(frozen=True)
class BoxRow:
    """One row of a box table.

    Attributes:
        line: 1-based line number in the file (for messages).
        video: the video's name as written (normalised: ``/`` separators, no video-file suffix).
        frame: 1-based frame. box: (x1, y1, x2, y2) pixels. label: the class name.
        actor: the track name (``""``: one track per (video, label)).
    """

    line: int
    video: str
    frame: int
    box: tuple[float, float, float, float]
    label: str
    actor: str = ""


@dataclass
class BoxTable:
    """The rows of a box table file (``path``), in file order."""

    path: str
    rows: list[BoxRow] = field(default_factory=list)

    @property
    def videos(self) -> list[str]:
        """The videos, in order of first appearance."""
        return list(dict.fromkeys(r.video for r in self.rows))

    @property
    def labels(self) -> list[str]:
        """The class names used, sorted."""
        return sorted({r.label for r in self.rows})


@dataclass(frozen=True)
class Gap:
    """Missing frames inside a track: the track's boxes stop after ``after`` and resume at ``before``."""

    video: str
    actor: str
    label: str
    after: int
    before: int

    def to_dict(self) -> dict[str, object]:
        return {
            "video": self.video,
            "actor": self.actor,
            "label": self.label,
            "missing": [self.after + 1, self.before - 1],
        }


def _video_name(text: str) -> str | None:
    """``text`` as a video name (``video`` or ``Class/video``), or None when it cannot be one."""
    name = text.strip().replace("\\", "/").strip("/")
    stem, dot, suffix = name.rpartition(".")
    if dot and stem and f".{suffix.lower()}" in VIDEO_SUFFIXES:
        name = stem
    parts = name.split("/")
    if not name or len(parts) > 2 or any(p in ("", ".", "..") or p != p.strip() for p in parts):
        return None
    return name


def _number(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{what} {text.strip()!r} is not a number") from None
    if not np.isfinite(value) or abs(value) >= 2**31:
        raise ValueError(f"{what} {text.strip()!r} is not a finite number")
    return value


def _parse_row(fields: Sequence[str], columns: dict[str, int], line: int, classes: set[str] | None) -> BoxRow:
    """One row; ValueError saying what is wrong."""
    need = max(columns[c] for c in _REQUIRED) + 1
    if len(fields) < need or (not columns.get("_header") and len(fields) > len(CSV_COLUMNS)):
        raise ValueError(f"expected the fields {', '.join(CSV_COLUMNS[:7])}[, actor], got {len(fields)} fields")
    get = {c: fields[i] for c, i in columns.items() if c != "_header" and i < len(fields)}
    video = _video_name(get["video"])
    if video is None:
        raise ValueError(f"video {get['video']!r} is not a name 'video' or 'Class/video'")
    frame_value = _number(get["frame"], "frame")
    if frame_value != int(frame_value):
        raise ValueError(f"frame {get['frame'].strip()!r} is not an integer")
    frame = int(frame_value)
    if frame < 1:
        raise ValueError(f"frame {frame} < 1 (frames are 1-based)")
    x1, y1, x2, y2 = (_number(get[c], c) for c in ("x1", "y1", "x2", "y2"))
    if x2 <= x1 or y2 <= y1:
        raise ValueError(f"degenerate box ({x1:g}, {y1:g}, {x2:g}, {y2:g}): needs x2 > x1 and y2 > y1")
    label = get["label"].strip()
    if not label or "/" in label or "\\" in label:
        raise ValueError(f"label {get['label']!r} is not a class name")
    if classes is not None and label not in classes:
        raise ValueError(f"class {label!r} is not in the class list {sorted(classes)}")
    return BoxRow(line, video, frame, (x1, y1, x2, y2), label, get.get("actor", "").strip())


def _header(fields: Sequence[str]) -> dict[str, int] | None:
    """Column positions of a header row, or None when the row is data (its frame field a number)."""
    if len(fields) > 1:
        try:
            float(fields[1])
            return None
        except ValueError:
            pass
    names = [f.strip().lower() for f in fields]
    missing = [c for c in _REQUIRED if c not in names]
    if missing:
        raise ValueError(f"header {list(fields)} lacks the column(s) {missing} (or the row's frame is not a number)")
    return {"_header": 1, **{c: names.index(c) for c in CSV_COLUMNS if c in names}}


def parse_box_csv(
    text: str, path: str | Path, classes: Sequence[str] | None = None
) -> tuple[list[BoxRow], list[tuple[int, str, str]]]:
    """Every row of a box table (see the module docstring) and every problem found.

    Args:
        text: the file's text. path: named in messages. classes: when given, labels must be in it.

    Returns:
        (the good rows in file order, problems as ``(line, video or "", message)``): a malformed
        row (field count, a non-number, NaN, a non-integral frame or frame < 1, x2 <= x1 or
        y2 <= y1, an empty or unknown label, a video that is no name), a second box of one track
        on one frame (the row is left out), a header without the required columns.
    """
    allowed = set(classes) if classes is not None else None
    columns: dict[str, int] | None = None
    rows: list[BoxRow] = []
    problems: list[tuple[int, str, str]] = []
    seen: dict[tuple[str, str, str, int], int] = {}
    for line, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        try:
            fields = next(csv.reader([raw], skipinitialspace=True))
        except (csv.Error, StopIteration) as exc:
            problems.append((line, "", f"not a CSV line ({exc})"))
            continue
        if columns is None:
            try:
                columns = _header(fields)
            except ValueError as exc:
                problems.append((line, "", str(exc)))
                return rows, problems  # no usable columns: nothing more can be read
            if columns is not None:
                continue
            columns = {c: i for i, c in enumerate(CSV_COLUMNS)}
        try:
            row = _parse_row(fields, columns, line, allowed)
        except ValueError as exc:
            video = _video_name(fields[0]) if fields else None
            problems.append((line, video or "", str(exc)))
            continue
        key = (row.video, row.actor, row.label, row.frame)
        if key in seen:
            who = f"actor {row.actor!r}" if row.actor else "no actor column"
            problems.append(
                (line, row.video, f"a second {row.label!r} box on frame {row.frame} ({who}; first on line {seen[key]})")
            )
            continue
        seen[key] = line
        rows.append(row)
    return rows, problems


def read_box_csv(path: str | Path, classes: Sequence[str] | None = None) -> BoxTable:
    """Read a box table (see :func:`parse_box_csv`).

    Raises:
        DataError: ``"<file>:<line>: <what is wrong>"`` for the first problem (the dataset check,
            ``action check data=<file>``, lists them all), a missing or non-UTF-8 file, or a file
            without rows.
    """
    path = Path(path)
    text = _read_text(path)
    rows, problems = parse_box_csv(text, path, classes)
    if problems:
        line, _, message = problems[0]
        more = (
            f" (and {len(problems) - 1} more problem(s): `action check data={path}` lists them)"
            if len(problems) > 1
            else ""
        )
        raise DataError(f"{path}:{line}: {message}{more}")
    if not rows:
        raise DataError(f"{path}: holds no box rows (columns: {', '.join(CSV_COLUMNS[:7])}[, actor])")
    return BoxTable(str(path), rows)


def _read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: box table not found") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc})") from exc
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc})") from None


def row_problem(row: BoxRow, num_frames: int, size: tuple[int, int]) -> str | None:
    """What is wrong with ``row`` in a video of ``num_frames`` frames of ``size`` (height, width):
    a frame beyond the video or a box wholly outside the frame; None when nothing (a box partly
    outside is clipped by :func:`track_tubes`)."""
    if row.frame > num_frames:
        return f"frame {row.frame} beyond the {num_frames} frames of video {row.video!r}"
    x1, y1, x2, y2 = row.box
    h, w = size
    if x2 <= 0 or y2 <= 0 or x1 >= w or y1 >= h:
        return f"box ({x1:g}, {y1:g}, {x2:g}, {y2:g}) lies wholly outside the {w}x{h} frames of video {row.video!r}"
    return None


def track_tubes(
    rows: Sequence[BoxRow], video: str, class_index: dict[str, int], size: tuple[int, int] | None = None
) -> tuple[list[Tube], list[Gap], int]:
    """The tubes of one video's rows (see the module docstring).

    Args:
        rows: the rows of one video. video: the tubes' video name (e.g. ``Class/video``).
        class_index: class name -> 0-based label. size: (height, width); boxes are clipped to it.

    Returns:
        (tubes sorted by (label, start frame), the gaps, the number of boxes clipped).
    """
    tracks: dict[tuple[str, str], list[BoxRow]] = {}
    for row in rows:
        tracks.setdefault((row.actor, row.label), []).append(row)
    tubes: list[Tube] = []
    gaps: list[Gap] = []
    clipped = 0
    for (actor, label), track in tracks.items():
        track = sorted(track, key=lambda r: r.frame)
        frames = np.array([r.frame for r in track], dtype=np.int64)
        boxes = np.array([r.box for r in track], dtype=np.float64).reshape(-1, 4)
        if size is not None:
            h, w = size
            limit = np.array([w, h, w, h], dtype=np.float64)
            inside = np.clip(boxes, 0.0, limit)
            clipped += int((inside != boxes).any(axis=1).sum())
            boxes = inside
        cuts = np.flatnonzero(np.diff(frames) != 1) + 1
        gaps += [Gap(video, actor, label, int(frames[c - 1]), int(frames[c])) for c in cuts.tolist()]
        for f_run, b_run in zip(np.split(frames, cuts), np.split(boxes, cuts)):
            tubes.append(make_tube(video, class_index[label], f_run, b_run.astype(np.float32)))
    tubes.sort(key=lambda t: (t.label, t.start))
    return tubes, gaps, clipped
