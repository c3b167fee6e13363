"""Prediction files of the action family: read and write.

* Frame detections JSON (``pred=``): a list of ``{"video": "Class/video", "frame": 1-based int,
  "label": 0-based int, "score": float, "box": [x1, y1, x2, y2]}`` in the video's pixels.
* Tubes JSON (``tubes=``): a list of ``{"video", "label", "score", "frames": [1-based ints,
  strictly increasing], "boxes": [[x1, y1, x2, y2], ...]}`` plus an optional ``"frame_scores"``.
* ACT's own files: ``all_dets.npy``-style arrays [M, 8] of rows ``(video_idx, frame, label,
  score, x1, y1, x2, y2)`` whose ``video_idx`` indexes the evaluated video list, and
  ``<Class>/<video>_tubes.pkl`` pickles ``{label: [(tube [T, 6] rows frame x1 y1 x2 y2 score,
  tube_score), ...]}`` (read through the restricted unpickler, never ``pickle.load``).

Malformed input raises :class:`~singleshot.errors.DataError` naming the file and the entry index.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from singleshot.atomic import write_text
from singleshot.data.action.safe_pickle import safe_load_pickle
from singleshot.errors import DataError
from singleshot.io.jsonlines import read_json_lines
from singleshot.structures import FrameDets, Tube

logger = logging.getLogger(__name__)

__all__ = [
    "read_act_detections",
    "read_act_tubes",
    "read_frame_detections",
    "read_frame_predictions",
    "read_tube_predictions",
    "read_tubes",
    "write_frame_detections",
    "write_tubes",
    "detection_record",
    "tube_record",
]


def _load_json_list(path: Path, what: str) -> list:
    """The list of a JSON file, or the records of a JSON Lines file (``*.jsonl``: one object per line,
    blank lines ignored; a line cut short by a crash is named)."""
    if Path(path).suffix.lower() == ".jsonl":
        return read_json_lines(path, what)
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise DataError(f"{path}: {what} file not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: cannot read {what} JSON ({exc})") from exc
    if not isinstance(data, list):
        raise DataError(f"{path}: {what} JSON must be a list of objects, not a {type(data).__name__}")
    return data


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _is_index(x: Any, low: int) -> bool:
    return _is_number(x) and float(x).is_integer() and x >= low


def _check_box(box: Any) -> str | None:
    if not isinstance(box, (list, tuple)) or len(box) != 4 or not all(_is_number(v) for v in box):
        return f"box must be 4 finite numbers [x1, y1, x2, y2], got {box!r}"
    if box[2] < box[0] or box[3] < box[1]:
        return f"box {list(box)} has x2 < x1 or y2 < y1"
    return None


def _detection_problem(entry: Any) -> str | None:
    """Why one frame-detection entry is malformed (None when it is fine)."""
    if not isinstance(entry, dict):
        return f"expected an object, got {type(entry).__name__}"
    for key in ("video", "frame", "label", "score", "box"):
        if key not in entry:
            return f"missing key {key!r}"
    if not isinstance(entry["video"], str) or not entry["video"]:
        return f"'video' must be a non-empty string, got {entry['video']!r}"
    if not _is_index(entry["frame"], 1):
        return f"'frame' must be an integer >= 1 (1-based), got {entry['frame']!r}"
    if not _is_index(entry["label"], 0):
        return f"'label' must be an integer >= 0 (0-based), got {entry['label']!r}"
    if not _is_number(entry["score"]):
        return f"'score' must be a finite number, got {entry['score']!r}"
    return _check_box(entry["box"])


def read_frame_detections(path: str | Path) -> FrameDets:
    """Read a frame-detections JSON (see the module doc) into :class:`FrameDets`.

    Raises:
        DataError: unreadable file or a malformed entry (the message names the file and index).
    """
    path = Path(path)
    data = _load_json_list(path, "frame detections")
    if not data:
        return FrameDets([], np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0), np.zeros((0, 4)))
    try:
        names = [e["video"] for e in data]
        num = np.array([(e["frame"], e["label"], e["score"]) for e in data]).reshape(-1, 3)
        box = np.array([e["box"] for e in data]).reshape(len(data), -1)
        ok = (
            num.dtype.kind in "iuf"
            and box.dtype.kind in "iuf"
            and box.shape[1] == 4
            and all(type(v) is str for v in names)
            and all(names)
        )
    except (TypeError, KeyError, IndexError, ValueError):
        ok = False
    if ok:
        num, box = num.astype(np.float64), box.astype(np.float64)
        bad = (
            ~np.isfinite(num).all(axis=1)
            | ~np.isfinite(box).all(axis=1)
            | (num[:, 0] < 1)
            | (num[:, 0] != np.round(num[:, 0]))
            | (num[:, 1] < 0)
            | (num[:, 1] != np.round(num[:, 1]))
            | (box[:, 2] < box[:, 0])
            | (box[:, 3] < box[:, 1])
        )
        ok = not bad.any()
    if not ok:
        for i, entry in enumerate(data):
            problem = _detection_problem(entry)
            if problem:
                raise DataError(f"{path}: detection #{i}: {problem}")
        raise DataError(f"{path}: malformed frame detections (a value of an unexpected type)")
    index: dict[str, int] = {}
    video = np.fromiter((index.setdefault(v, len(index)) for v in names), np.int64, len(names))
    return FrameDets(list(index), video, num[:, 0].astype(np.int64), num[:, 1].astype(np.int64), num[:, 2], box)


def detection_record(video: str, frame: int, label: int, score: float, box: Sequence[float]) -> dict[str, Any]:
    """One frame detection as the frame-detections JSON holds it (frame 1-based, label 0-based, box xyxy pixels)."""
    return {
        "video": video,
        "frame": int(frame),
        "label": int(label),
        "score": float(score),
        "box": [float(v) for v in box],
    }


def tube_record(t: Tube) -> dict[str, Any]:
    """One tube as the tubes JSON holds it (``frame_scores`` included when set)."""
    rec: dict[str, Any] = {
        "video": t.video,
        "label": int(t.label),
        "score": float(t.score),
        "frames": np.asarray(t.frames).astype(int).tolist(),
        "boxes": np.asarray(t.boxes, dtype=np.float64).tolist(),
    }
    if t.frame_scores is not None:
        rec["frame_scores"] = np.asarray(t.frame_scores, dtype=np.float64).tolist()
    return rec


def write_frame_detections(path: str | Path, dets: FrameDets) -> None:
    """Write :class:`FrameDets` as a frame-detections JSON."""
    names = dets.videos
    records = [
        {"video": names[v], "frame": f, "label": c, "score": s, "box": b}
        for v, f, c, s, b in zip(
            dets.video.tolist(), dets.frame.tolist(), dets.label.tolist(), dets.score.tolist(), dets.boxes.tolist()
        )
    ]
    write_text(path, json.dumps(records))


def _tube_from_entry(entry: Any) -> Tube | str:
    """A Tube, or a string saying why ``entry`` is malformed."""
    if not isinstance(entry, dict):
        return f"expected an object, got {type(entry).__name__}"
    for key in ("video", "label", "score", "frames", "boxes"):
        if key not in entry:
            return f"missing key {key!r}"
    if not isinstance(entry["video"], str) or not entry["video"]:
        return f"'video' must be a non-empty string, got {entry['video']!r}"
    if not _is_index(entry["label"], 0):
        return f"'label' must be an integer >= 0 (0-based), got {entry['label']!r}"
    if not _is_number(entry["score"]):
        return f"'score' must be a finite number, got {entry['score']!r}"
    frames, boxes = entry["frames"], entry["boxes"]
    if not isinstance(frames, list) or not frames or not all(_is_index(f, 1) for f in frames):
        return "'frames' must be a non-empty list of integers >= 1 (1-based)"
    if any(b <= a for a, b in zip(frames, frames[1:])):
        return "'frames' must be strictly increasing"
    if not isinstance(boxes, list) or len(boxes) != len(frames):
        return f"'boxes' must be a list with one box per frame ({len(frames)})"
    for k, box in enumerate(boxes):
        problem = _check_box(box)
        if problem:
            return f"boxes[{k}]: {problem}"
    scores = entry.get("frame_scores")
    if scores is not None and (
        not isinstance(scores, list) or len(scores) != len(frames) or not all(_is_number(s) for s in scores)
    ):
        return f"'frame_scores' must be a list of {len(frames)} finite numbers"
    return Tube(
        video=entry["video"],
        label=int(entry["label"]),
        frames=np.asarray(frames, dtype=np.int64),
        boxes=np.asarray(boxes, dtype=np.float32),
        score=float(entry["score"]),
        frame_scores=None if scores is None else np.asarray(scores, dtype=np.float32),
    )


def read_tubes(path: str | Path) -> list[Tube]:
    """Read a tubes JSON (see the module doc).

    Raises:
        DataError: unreadable file or a malformed entry (names the file and the tube's index).
    """
    path = Path(path)
    out: list[Tube] = []
    for i, entry in enumerate(_load_json_list(path, "tubes")):
        tube = _tube_from_entry(entry)
        if isinstance(tube, str):
            raise DataError(f"{path}: tube #{i}: {tube}")
        out.append(tube)
    return out


def write_tubes(path: str | Path, tubes: Sequence[Tube]) -> None:
    """Write tubes as a tubes JSON (:func:`tube_record` each)."""
    write_text(path, json.dumps([tube_record(t) for t in tubes]))


def read_act_detections(path: str | Path, videos: Sequence[str]) -> FrameDets:
    """Read ACT's frame detections ``.npy`` [M, 8] (no pickles allowed); ``video_idx`` indexes ``videos``.

    Raises:
        DataError: unreadable file, wrong shape, non-finite values, or an index outside ``videos``.
    """
    path = Path(path)
    try:
        rows = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise DataError(f"{path}: detections file not found") from None
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read ACT detections .npy ({exc})") from exc
    if rows.ndim != 2 or rows.shape[1] != 8:
        raise DataError(
            f"{path}: ACT detections must be an array [M, 8] (video_idx, frame, label, score, "
            f"x1, y1, x2, y2), got shape {list(rows.shape)}"
        )
    rows = rows.astype(np.float64)
    bad = ~np.isfinite(rows).all(axis=1)
    bad |= (rows[:, 0] < 0) | (rows[:, 0] >= len(videos)) | (rows[:, 1] < 1) | (rows[:, 2] < 0)
    bad |= (rows[:, :3] != np.round(rows[:, :3])).any(axis=1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{path}: row #{i} {rows[i, :4].tolist()} is not (video_idx in 0..{len(videos) - 1}, "
            "frame >= 1, label >= 0, finite score and box)"
        )
    return FrameDets.from_array(rows, videos)


def _tubes_of_pickle(path: Path, video: str) -> list[Tube]:
    data = safe_load_pickle(path)
    if not isinstance(data, dict):
        raise DataError(
            f"{path}: ACT tubes pickle must hold a dict {{label: [(tube, score)]}}, not {type(data).__name__}"
        )
    out: list[Tube] = []
    for label, entries in data.items():
        if not _is_index(label if not isinstance(label, np.integer) else int(label), 0):
            raise DataError(f"{path}: key {label!r} is not a 0-based label")
        for i, entry in enumerate(entries):
            if not isinstance(entry, (list, tuple)) or len(entry) != 2:
                raise DataError(f"{path}: label {int(label)} entry #{i}: expected (tube [T, 6], score)")
            arr, score = np.asarray(entry[0], dtype=np.float64), entry[1]
            if arr.ndim != 2 or arr.shape[1] < 5 or arr.shape[0] == 0:
                raise DataError(
                    f"{path}: label {int(label)} entry #{i}: tube must be [T, 6] "
                    f"(frame x1 y1 x2 y2 score), got shape {list(arr.shape)}"
                )
            frames = np.rint(arr[:, 0]).astype(np.int64)
            if not np.isfinite(arr).all() or frames[0] < 1 or (np.diff(frames) <= 0).any():
                raise DataError(
                    f"{path}: label {int(label)} entry #{i}: frames must be >= 1 and strictly increasing, values finite"
                )
            if not _is_number(float(score)):
                raise DataError(f"{path}: label {int(label)} entry #{i}: tube score {score!r} is not finite")
            scores = arr[:, 5].astype(np.float32) if arr.shape[1] > 5 else None
            out.append(Tube(video, int(label), frames, arr[:, 1:5].astype(np.float32), float(score), scores))
    return out


def read_act_tubes(path: str | Path, videos: Sequence[str] | None = None) -> list[Tube]:
    """Read ACT / MOC tube pickles.

    Args:
        path: one ``<video>_tubes.pkl`` (its video is ``<parent folder>/<stem without _tubes>``) or
            the folder holding ``<Class>/<video>_tubes.pkl``.
        videos: with a folder, the videos to read (each file must exist); default: every
            ``*/*_tubes.pkl`` found.
    """
    path = Path(path)
    if path.is_file():
        stem = path.name[: -len("_tubes.pkl")] if path.name.endswith("_tubes.pkl") else path.stem
        return _tubes_of_pickle(path, f"{path.parent.name}/{stem}")
    if not path.is_dir():
        raise DataError(f"{path}: ACT tubes file or folder not found")
    if videos is None:
        files = sorted(path.glob("*/*_tubes.pkl"))
        if not files:
            raise DataError(f"{path}: no <Class>/<video>_tubes.pkl files found")
        videos = [f"{f.parent.name}/{f.name[: -len('_tubes.pkl')]}" for f in files]
    out: list[Tube] = []
    for video in videos:
        file = path / f"{video}_tubes.pkl"
        if not file.is_file():
            raise DataError(f"{file}: extracted tubes of video {video!r} are missing")
        out.extend(_tubes_of_pickle(file, video))
    return out


def read_frame_predictions(path: str | Path, videos: Sequence[str]) -> FrameDets:
    """Frame detections from a ``.json`` (DESIGN format) or an ACT ``.npy`` (rows index ``videos``)."""
    path = Path(path)
    if path.suffix.lower() == ".npy":
        return read_act_detections(path, videos)
    return read_frame_detections(path)


def read_tube_predictions(path: str | Path, videos: Sequence[str] | None = None) -> list[Tube]:
    """Tubes from a ``.json`` (DESIGN format), an ACT ``*_tubes.pkl`` or a folder of them."""
    path = Path(path)
    if path.is_dir() or path.suffix.lower() in (".pkl", ".pickle"):
        return read_act_tubes(path, videos)
    return read_tubes(path)
