"""Helpers shared by the action annotation readers: tube construction, YOWO label lines, list
files, IoU linking of per-frame boxes into tubes, and split lists.

Conventions: frames are 1-based; boxes are xyxy float32 pixels in the video's frame size; labels
are 0-based indices into the class list (files store YOWO classes 1-based).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Collection, Iterable, Sequence
from pathlib import Path

import numpy as np
import torch

from singleshot.data.boxcheck import check_boxes
from singleshot.errors import DataError
from singleshot.ops.boxes import box_iou_np
from singleshot.structures import ActionAnnotations, Tube

logger = logging.getLogger(__name__)

__all__ = [
    "make_tube",
    "parse_label_text",
    "parse_list_lines",
    "read_list_file",
    "read_classes",
    "link_boxes_into_tubes",
    "apply_split_list",
    "summarize",
    "check_boxes_np",
    "as_int",
    "number_array",
]

_FRAME_SUFFIXES = (".txt", ".jpg", ".jpeg", ".png")
_LAYOUT_PREFIXES = ("labels/", "rgb-images/")


def summarize(items: Sequence[str], limit: int = 5) -> str:
    """``'a', 'b', ... (N in all)`` for messages that would otherwise list thousands of names."""
    shown = ", ".join(repr(s) for s in items[:limit])
    return shown + (f", ... ({len(items)} in all)" if len(items) > limit else "")


def check_boxes_np(
    boxes: np.ndarray, size: tuple[int, int] | None, file: str | Path, names: Callable[[int], str]
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`singleshot.data.boxcheck.check_boxes` for NumPy boxes, run only on the rows that need it.

    Args:
        boxes: ndarray[N, 4] float32 xyxy pixels. size: (height, width) or None (unknown).
        file: named in warnings and errors. names: row index -> description, called for flagged rows only.

    Returns:
        (keep ndarray[N] bool, boxes ndarray[N, 4] float32 with flagged rows clipped).
        Degenerate (x2 <= x1 or y2 <= y1) and wholly outside boxes are dropped, boxes partly outside
        the image clipped, each with a warning; a non-finite coordinate is a DataError.
    """
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    flagged = ~np.isfinite(boxes).all(axis=1)
    flagged |= (boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1]) | (boxes < 0).any(axis=1)
    if size is not None:
        flagged |= (boxes[:, 2] > size[1]) | (boxes[:, 3] > size[0])
    keep = np.ones(boxes.shape[0], dtype=bool)
    if not flagged.any():
        return keep, boxes
    rows = np.flatnonzero(flagged)
    sub_keep, sub_boxes = check_boxes(torch.from_numpy(boxes[rows]), size, file, [names(int(r)) for r in rows])
    boxes = boxes.copy()
    keep[rows] = sub_keep.numpy()
    boxes[rows] = sub_boxes.numpy()
    return keep, boxes


def as_int(value: object, what: str) -> int:
    """``value`` (a NumPy or Python integer, an integral float, a one-element array) as an int.

    Raises:
        DataError: ``"{what} should be an integer, got ..."`` for anything else (text, NaN, 2.5,
            a value beyond int32).
    """
    flat = np.asarray(value, dtype=object).ravel() if isinstance(value, np.ndarray) else None
    if flat is not None:
        if flat.size != 1:
            raise DataError(f"{what} should be one integer, got {flat.size} values")
        value = flat[0]
    if isinstance(value, (str, bytes)):
        raise DataError(f"{what} should be an integer, got {value!r}")
    try:
        f = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        raise DataError(f"{what} should be an integer, got {value!r}") from None
    if not np.isfinite(f) or f != int(f) or abs(f) >= 2**31:
        raise DataError(f"{what} should be an integer, got {value!r}")
    return int(f)


def number_array(value: object, what: str, columns: int) -> np.ndarray:
    """``value`` as ndarray[N, columns] float64 of finite numbers below 2**31 in magnitude.

    Raises:
        DataError: ``what`` named, for text or objects, a size not a multiple of ``columns``, or a
            non-finite or huge value.
    """
    try:
        arr = np.asarray(value)
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"dtype {arr.dtype}")
        arr = arr.astype(np.float64).reshape(-1, columns)
    except (TypeError, ValueError, OverflowError) as exc:
        raise DataError(f"{what} should be numbers in rows of {columns} ({exc})") from None
    if not np.isfinite(arr).all() or (np.abs(arr) >= 2**31).any():
        raise DataError(f"{what} holds a non-finite or out-of-range value")
    return arr


def make_tube(video: str, label: int, frames: np.ndarray, boxes: np.ndarray) -> Tube:
    """A ground-truth Tube: frames ndarray[T] int64 (1-based), boxes ndarray[T, 4] float32 xyxy,
    score 1.0 and per-frame scores of ones."""
    frames = np.ascontiguousarray(frames, dtype=np.int64)
    boxes = np.ascontiguousarray(boxes, dtype=np.float32).reshape(-1, 4)
    return Tube(
        video=video,
        label=int(label),
        frames=frames,
        boxes=boxes,
        score=1.0,
        frame_scores=np.ones(frames.shape[0], dtype=np.float32),
    )


def parse_label_text(text: str, file: str | Path, num_classes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Parse YOWO label lines ``cls x1 y1 x2 y2`` (class 1-based, absolute pixels).

    Blank lines are skipped; an empty text is a frame without actors.

    Returns:
        (labels ndarray[N] int64 0-based, boxes ndarray[N, 4] float32 xyxy pixels,
        line numbers ndarray[N] int64, 1-based, for messages).

    Raises:
        DataError: a line without five numbers, a non-integral class id, or a class id outside
            [1, num_classes] (the message names the file, the line number, the id and C).
    """
    labels: list[int] = []
    rows: list[list[float]] = []
    linenos: list[int] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 5:
            raise DataError(f"{file}:{lineno}: expected 'cls x1 y1 x2 y2', got {line.strip()!r}")
        try:
            values = [float(v) for v in fields]
        except ValueError:
            raise DataError(f"{file}:{lineno}: expected numbers 'cls x1 y1 x2 y2', got {line.strip()!r}") from None
        cls = values[0]
        if not np.isfinite(cls) or cls != int(cls):
            raise DataError(f"{file}:{lineno}: class id {fields[0]!r} is not an integer")
        if not 1 <= int(cls) <= num_classes:
            raise DataError(
                f"{file}:{lineno}: class id {int(cls)} outside [1, {num_classes}] "
                f"(class ids are 1-based; the class list has C = {num_classes} names)"
            )
        labels.append(int(cls) - 1)
        rows.append(values[1:])
        linenos.append(lineno)
    return (
        np.asarray(labels, dtype=np.int64),
        np.asarray(rows, dtype=np.float32).reshape(-1, 4),
        np.asarray(linenos, dtype=np.int64),
    )


def parse_list_lines(lines: Iterable[str]) -> list[tuple[str, int | None]]:
    """Parse list-file lines into ``(video, frame)`` pairs.

    Accepted forms: ``Class/video/00009.txt``, ``labels/Class/video/00009.txt``,
    ``rgb-images/Class/video/00009.jpg`` (a key frame, frame 9) and ``Class/video`` or
    ``Class/video.avi`` (a whole video, frame None). Blank lines and ``#`` comments are skipped.
    """
    out: list[tuple[str, int | None]] = []
    for raw in lines:
        line = raw.strip().replace("\\", "/")
        if not line or line.startswith("#"):
            continue
        line = line.split()[0]
        for prefix in _LAYOUT_PREFIXES:
            if line.startswith(prefix):
                line = line[len(prefix) :]
        head, _, last = line.rpartition("/")
        stem, dot, suffix = last.rpartition(".")
        if head and dot and f".{suffix.lower()}" in _FRAME_SUFFIXES and stem.isascii() and stem.isdigit():
            out.append((head, int(stem)))
        else:
            if line.lower().endswith((".avi", ".mp4")):
                line = line.rsplit(".", 1)[0]
            out.append((line.rstrip("/"), None))
    return out


def read_list_file(path: str | Path) -> list[tuple[str, int | None]]:
    """Read a split list (see :func:`parse_list_lines`). Raises DataError when missing."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: split list not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read split list ({exc})") from exc
    return parse_list_lines(text.splitlines())


def read_classes(classes: Sequence[str] | str | Path) -> list[str]:
    """A class list given directly or as a file with one name per line (blank lines skipped)."""
    if isinstance(classes, (str, Path)):
        path = Path(classes)
        try:
            names = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
        except FileNotFoundError:
            raise DataError(f"{path}: classes file not found") from None
        if not names:
            raise DataError(f"{path}: classes file lists no class")
    else:
        names = [str(c) for c in classes]
    if len(set(names)) != len(names):
        raise DataError(f"class list has duplicate names: {names}")
    return names


def link_boxes_into_tubes(video: str, frames: np.ndarray, labels: np.ndarray, boxes: np.ndarray) -> list[Tube]:
    """Link per-frame boxes into one tube per actor.

    Rule (per class, frames in increasing order): the tubes that reached frame f - 1 are the open
    ones; the boxes of frame f are assigned to them by IoU with each tube's last box, as the
    one-to-one assignment of maximum total IoU (``scipy.optimize.linear_sum_assignment``), keeping
    pairs with IoU > 0 only; if then exactly one open tube and one box remain unassigned they are
    linked anyway (a single fast-moving actor). Unassigned boxes start new tubes; open tubes that
    got no box are closed, so a frame without a box of the class ends its tubes.

    Per-frame labels cannot tell everything apart: same-class actors whose boxes overlap may swap
    tubes, and a tube ending at frame f next to one starting at f + 1 is read as one tube.
    Relinking the per-frame boxes of UCF101-24's ``finalAnnots.mat`` reproduces its tubes exactly
    in 3108 of 3194 videos (a greedy highest-IoU-first assignment: 3083).

    Args:
        frames: ndarray[N] int (1-based); labels: ndarray[N] int64 (0-based); boxes: ndarray[N, 4]
            float32 xyxy pixels, one row per box.

    Returns:
        Tubes sorted by (label, start frame), each with strictly increasing frames.
    """
    frames = np.asarray(frames, dtype=np.int64)
    labels = np.asarray(labels, dtype=np.int64)
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    tubes: list[Tube] = []
    for label in np.unique(labels):
        sel = labels == label
        f_cls, b_cls = frames[sel], boxes[sel]
        order = np.argsort(f_cls, kind="stable")
        f_cls, b_cls = f_cls[order], b_cls[order]
        starts = np.flatnonzero(np.r_[True, f_cls[1:] != f_cls[:-1]])
        ends = np.r_[starts[1:], f_cls.shape[0]]
        if starts.shape[0] == f_cls.shape[0]:
            # One box per frame: the rule reduces to cutting at the frame gaps.
            cuts = np.flatnonzero(np.diff(f_cls) != 1) + 1
            for f_run, b_run in zip(np.split(f_cls, cuts), np.split(b_cls, cuts)):
                tubes.append(make_tube(video, int(label), f_run, b_run))
            continue
        tracks: list[tuple[list[int], list[np.ndarray]]] = []
        open_ids: list[int] = []
        for s, e in zip(starts.tolist(), ends.tolist()):
            f = int(f_cls[s])
            cur = b_cls[s:e]
            open_ids = [t for t in open_ids if tracks[t][0][-1] == f - 1]
            assigned = np.full(cur.shape[0], -1, dtype=np.int64)
            if open_ids:
                last = np.stack([tracks[t][1][-1] for t in open_ids])
                iou = box_iou_np(last[:, None], cur[None], dtype=np.float32)  # [open tubes, boxes], continuous
                if iou.shape == (1, 1):
                    rows, cols = np.zeros(1, np.int64), np.zeros(1, np.int64)
                else:
                    from scipy.optimize import linear_sum_assignment

                    rows, cols = linear_sum_assignment(iou, maximize=True)
                for i, j in zip(rows.tolist(), cols.tolist()):
                    if iou[i, j] > 0:
                        assigned[j] = open_ids[i]
                free_tracks = [t for t in open_ids if t not in set(assigned.tolist())]
                free_boxes = np.flatnonzero(assigned < 0)
                if len(free_tracks) == 1 and free_boxes.shape[0] == 1:
                    assigned[free_boxes[0]] = free_tracks[0]
            next_open: list[int] = []
            for j in range(cur.shape[0]):
                t = int(assigned[j])
                if t < 0:
                    tracks.append(([f], [cur[j]]))
                    t = len(tracks) - 1
                else:
                    tracks[t][0].append(f)
                    tracks[t][1].append(cur[j])
                next_open.append(t)
            open_ids = next_open
        for tf, tb in tracks:
            tubes.append(make_tube(video, int(label), np.asarray(tf), np.stack(tb)))
    tubes.sort(key=lambda t: (t.label, t.start))
    return tubes


def apply_split_list(ann: ActionAnnotations, split_list: str | Path, skip: Collection[str] = ()) -> ActionAnnotations:
    """Replace the test split of ``ann`` by the videos of ``split_list`` (in place; returned).

    The list holds whole videos (``Class/video``) or key frames (``Class/video/00009.txt``); key
    frames also become ``ann.keyframes`` for those videos. The training split keeps the source's
    own training videos when it has some, else every other annotated video. Listed videos absent
    from the annotations are dropped with a warning naming them (silently when in ``skip``: the
    videos a dataset check left out).
    """
    entries = read_list_file(split_list)
    if not entries:
        raise DataError(f"{split_list}: split list is empty")
    test: dict[str, None] = {}
    keyframes: dict[str, list[int]] = {}
    missing: dict[str, None] = {}
    for video, frame in entries:
        if video not in ann.videos:
            if video not in skip:
                missing[video] = None
            continue
        test[video] = None
        if frame is not None:
            keyframes.setdefault(video, []).append(frame)
    if missing:
        warnings.warn(
            f"{split_list}: {len(missing)} listed videos are not in the annotations of "
            f"{ann.source} and were dropped: {summarize(list(missing))}",
            stacklevel=3,
        )
    if not test and not skip:
        raise DataError(f"{split_list}: none of its videos is in the annotations of {ann.source}")
    ann.test_videos = list(test)
    base_train = ann.train_videos or list(ann.videos)
    ann.train_videos = [v for v in base_train if v not in test]
    if keyframes:
        merged = dict(ann.keyframes or {})
        merged.update({v: sorted(set(fs)) for v, fs in keyframes.items()})
        ann.keyframes = merged
    return ann
