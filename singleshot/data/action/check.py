"""One-pass check of an action dataset: every annotation and every frame header, every fault at
once (see :mod:`singleshot.data.check` for the report and the cache).

:func:`check_action_data` looks at ``data`` as the readers do:

- a YOWO root (:func:`~.check_yowo.check_yowo_root`);
- an ACT ``*-GT.pkl``, UCF101-24's ``finalAnnots.mat`` or ``pyannot.pkl``: each video's tubes
  (fields, labels, frames beyond the video, degenerate boxes or boxes outside the frame), the
  split lists' videos, and the video's frame folder under the frame root (``rgb-images/`` beside
  the file, or ``frames=``) when there is one: frames ``1 … nframes`` present and readable;
- a box table ``.csv`` (:mod:`.csv_table`): every row, and with ``frames=`` (videos or frame
  folders, as ``action convert from=csv`` reads them) every video found, frames within its length
  and boxes inside its frames;
- anything else the readers take (YOWO's per-frame ground-truth folder or zip): read once, its
  first error reported as a fault of the whole dataset.

Items are videos (``Class/video``; for a box table the table's video names): ``bad=skip`` leaves
exactly those out.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from singleshot.data.action.check_frames import (
    BAD_BOX,
    BAD_IMAGE,
    BOX_OUTSIDE,
    DUPLICATE,
    MALFORMED,
    MISSING_FILE,
    UNKNOWN_CLASS,
    UNKNOWN_VIDEO,
    UNREADABLE,
    box_faults,
    frame_folder_faults,
)
from singleshot.data.action.check_yowo import check_yowo_root
from singleshot.data.action.csv_convert import SourceVideo, index_frame_source, source_lookup
from singleshot.data.action.csv_table import BoxRow, parse_box_csv, row_problem
from singleshot.data.action.frames import list_frame_files
from singleshot.data.action.readers import load_action_annotations
from singleshot.data.action.readers_act import act_header, act_video, split_videos
from singleshot.data.action.readers_common import read_classes, read_list_file
from singleshot.data.action.readers_ucf import (
    is_pyannot_dict,
    load_mat_records,
    mat_video,
    mat_video_name,
    pyannot_video,
)
from singleshot.data.action.readers_yowo import is_yowo_root, video_folders
from singleshot.data.action.safe_pickle import safe_load_pickle
from singleshot.data.check import CheckReport, Fault, cached_check, files_fingerprint, run_checks
from singleshot.errors import DataError
from singleshot.io.video import read_frames
from singleshot.structures import VideoAnnotation

logger = logging.getLogger(__name__)

__all__ = ["BEYOND", "check_action_data", "check_box_csv", "check_tube_file"]

#: Kind of an annotated frame past the video's frame count.
BEYOND = "frame beyond video"

_VERSION = "action-check-1"


def _kind(message: str) -> str:
    """The fault kind of a reader's DataError message."""
    low = message.lower()
    if "not in the class list" in low or (("class id" in low or "label" in low) and "outside" in low):
        return UNKNOWN_CLASS
    if "a second" in low:
        return DUPLICATE
    if "degenerate" in low:
        return BAD_BOX
    return MALFORMED


def _sort(faults: list[Fault]) -> list[Fault]:
    return sorted(faults, key=lambda f: (f.file, f.kind, f.message))


def _frame_files(frame_root: Path | None) -> list[Path]:
    if frame_root is None:
        return []
    top = frame_root / "rgb-images"
    return [p for v in video_folders(top) for p in list_frame_files(top / v).values()]


# ---------------------------------------------------------------- tube files: ACT, finalAnnots.mat, pyannot.pkl
def _parse_tubes(
    path: Path, classes: Sequence[str] | str | Path | None, split: int
) -> tuple[list[str], dict[str, Callable[[], tuple[VideoAnnotation, Any]]], list[str], bool]:
    """(videos, ``{video: () -> (VideoAnnotation, _)}``, the videos the file's own splits list,
    whether it is a UCF101-24 file, whose test split is a ``testlistNN.txt`` beside it)."""
    if path.suffix.lower() == ".mat":
        records = load_mat_records(path)
        names = [mat_video_name(r, i, path) for i, r in enumerate(records)]
        class_names = read_classes(classes) if classes is not None else sorted({n.split("/", 1)[0] for n in names})
        build = {n: (lambda r=r, n=n: mat_video(r, n, class_names, path)) for r, n in zip(records, names)}
        return names, build, [], True
    data = safe_load_pickle(path)
    if is_pyannot_dict(data):
        names = [str(v) for v in data]
        class_names = read_classes(classes) if classes is not None else sorted({n.split("/", 1)[0] for n in names})
        build = {n: (lambda k=k, n=n: pyannot_video(data[k], n, class_names, path)) for k, n in zip(data, names)}
        return names, build, [], True
    labels, nframes, resolution, gttubes = act_header(data, str(path))
    listed = split_videos(data.get("train_videos"), split, "train_videos", str(path))
    listed += split_videos(data.get("test_videos"), split, "test_videos", str(path))
    build = {
        str(k): (lambda k=k, num=num: (act_video(k, num, resolution, gttubes, labels, str(path)), None))
        for k, num in nframes.items()
    }
    return list(build), build, listed, False


def _tube_faults(path: Path, va: VideoAnnotation) -> list[Fault]:
    faults: list[Fault] = []
    for k, tube in enumerate(va.tubes):
        if len(tube) and int(tube.frames[-1]) > va.num_frames:
            faults.append(
                Fault(str(path), BEYOND, f"tube {k} reaches frame {int(tube.frames[-1])} of {va.num_frames}", va.video)
            )
    if not va.tubes:
        return faults
    ends = np.cumsum([len(t) for t in va.tubes])

    def where(i: int) -> str:
        k = int(np.searchsorted(ends, i, side="right"))
        return f"tube {k} frame {int(va.tubes[k].frames[i - (ends[k] - len(va.tubes[k]))])}"

    boxes = np.concatenate([np.asarray(t.boxes).reshape(-1, 4) for t in va.tubes])
    return faults + box_faults(boxes, va.size, str(path), va.video, where)


def check_tube_file(
    path: str | Path,
    frame_root: str | Path | None = None,
    split_list: str | Path | None = None,
    split: int = 1,
    classes: Sequence[str] | str | Path | None = None,
    use_cache: bool = True,
    workers: int = 0,
) -> CheckReport:
    """Check an ACT ``*-GT.pkl``, ``finalAnnots.mat`` or ``pyannot.pkl`` and, when ``frame_root``
    holds ``rgb-images/``, each annotated video's frames there (see the module docstring)."""
    path = Path(path)
    frames = Path(frame_root) if frame_root is not None and (Path(frame_root) / "rgb-images").is_dir() else None
    guess = path.parent / f"testlist{split:02d}.txt"  # UCF101-24's split beside the file (ACT's is inside)
    given = [Path(split_list)] if split_list is not None else []
    name = str(path)
    key = f"{_VERSION} tubes classes={classes} split={split} lists={given} frames={frames}"

    def compute() -> CheckReport:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                videos, build, listed, is_ucf = _parse_tubes(path, classes, split)
        except DataError as exc:
            text = str(exc)
            unreadable = any(w in text for w in ("not found", "cannot read", "not a valid pickle", "refused", "empty"))
            return CheckReport(name, 0, [Fault(name, UNREADABLE if unreadable else MALFORMED, text)])
        lists = given or ([guess] if is_ucf and guess.is_file() else [])
        faults: list[Fault] = []
        parsed: dict[str, VideoAnnotation] = {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tubes past nframes are reported below, not warned
            for video in videos:
                try:
                    parsed[video] = build[video]()[0]
                except DataError as exc:
                    faults.append(Fault(name, _kind(str(exc)), str(exc), video))
        for video in parsed.values():
            faults += _tube_faults(path, video)
        known = set(videos)
        faults += [
            Fault(name, UNKNOWN_VIDEO, f"the split lists {v!r}, which has no annotation", v)
            for v in listed
            if v not in known
        ]
        for lst in lists:
            try:
                entries = read_list_file(lst)
            except DataError as exc:
                faults.append(Fault(str(lst), UNREADABLE, str(exc)))
                continue
            faults += [
                Fault(str(lst), UNKNOWN_VIDEO, f"{v!r} has no annotation", v) for v, _ in entries if v not in known
            ]
        if frames is not None:
            faults += run_checks(
                list(parsed.values()),
                lambda va: frame_folder_faults(frames / "rgb-images" / va.video, va.video, va.num_frames)[0],
                lambda va: (str(frames / "rgb-images" / va.video), va.video),
                workers,
                desc="checking frames",
            )
        return CheckReport(name, len(videos), _sort(faults))

    files = [path, *(given or [guess]), *_frame_files(frames)]
    return cached_check(files_fingerprint(files, key), compute, use_cache)


# ---------------------------------------------------------------- box tables
def _video_length(src: SourceVideo, item: str) -> tuple[list[Fault], int, tuple[int, int] | None]:
    """(faults, frames, (height, width)) of a video file (decoded) or a frame folder."""
    if not src.is_file:
        return frame_folder_faults(src.path, item)
    count, size = 0, None
    try:
        for frame in read_frames(src.path):
            count += 1
            size = size or (int(frame.shape[0]), int(frame.shape[1]))
    except DataError as exc:
        return [Fault(str(src.path), BAD_IMAGE, str(exc), item)], 0, None
    if count == 0:
        return [Fault(str(src.path), BAD_IMAGE, "the video has no frames", item)], 0, None
    return [], count, size


def check_box_csv(
    path: str | Path,
    frames: str | Path | None = None,
    classes: Sequence[str] | None = None,
    use_cache: bool = True,
    workers: int = 0,
) -> CheckReport:
    """Check a box table (:mod:`.csv_table`) and, with ``frames``, its videos there (see the module docstring)."""
    path = Path(path)
    name = str(path)
    index: dict[str, SourceVideo] = {}
    fatal: list[Fault] = []
    if frames is not None:
        try:
            _, index = index_frame_source(frames)
        except DataError as exc:
            fatal.append(Fault(str(frames), MISSING_FILE, str(exc)))
    files = [path] + [p for s in index.values() for p in ([s.path] if s.is_file else list_frame_files(s.path).values())]
    key = f"{_VERSION} csv classes={list(classes or [])} frames={frames}"

    def compute() -> CheckReport:
        try:
            text = path.read_bytes().decode("utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            return CheckReport(name, 0, [Fault(name, UNREADABLE, f"cannot read the box table ({exc})")])
        rows, problems = parse_box_csv(text, path, classes)
        faults = [Fault(name, _kind(msg), f"line {line}: {msg}", video) for line, video, msg in problems]
        rows_of: dict[str, list[BoxRow]] = {}
        for row in rows:
            rows_of.setdefault(row.video, []).append(row)
        n_items = len(rows_of.keys() | {v for _, v, _ in problems if v})
        if frames is None or not index:
            return CheckReport(name, n_items, _sort(faults))
        find = source_lookup(index)

        def check(video: str) -> list[Fault]:
            src = find(video)
            if isinstance(src, str):
                return [Fault(name, UNKNOWN_VIDEO, f"line {rows_of[video][0].line}: {src} under {frames}", video)]
            found, count, size = _video_length(src, video)
            for row in rows_of[video] if size is not None else []:
                problem = row_problem(row, count, size)
                if problem is not None:
                    kind = BEYOND if problem.startswith("frame") else BOX_OUTSIDE
                    found.append(Fault(name, kind, f"line {row.line}: {problem}", video))
            return found

        faults += run_checks(list(rows_of), check, lambda v: (name, v), workers, desc="checking videos")
        return CheckReport(name, n_items, _sort(faults))

    if fatal:
        return CheckReport(name, 0, fatal)
    return cached_check(files_fingerprint(files, key), compute, use_cache)


# ---------------------------------------------------------------- dispatch
def check_action_data(
    path: str | Path,
    frames: str | Path | None = None,
    split_list: str | Path | None = None,
    split: int = 1,
    classes: Sequence[str] | str | Path | None = None,
    use_cache: bool = True,
    workers: int = 0,
) -> CheckReport:
    """Check the action dataset ``path`` (see the module docstring).

    Args:
        path: a YOWO root, an ACT ``*-GT.pkl``, ``finalAnnots.mat``, ``pyannot.pkl``, a box table
            ``.csv``, or another source the readers take.
        frames: the folder holding ``rgb-images/`` (default: ``path`` when a folder, else its
            parent); for a box table, its videos or frame folders (none: rows only).
        split_list, split, classes: as the readers take them.
        use_cache: reuse the result of an earlier check of the same, unchanged files.
        workers: threads (0: automatic).
    """
    path = Path(path)
    if not path.exists():
        return CheckReport(str(path), 0, [Fault(str(path), MISSING_FILE, "dataset not found")])
    suffix = path.suffix.lower()
    if path.is_dir() and is_yowo_root(path):
        return check_yowo_root(path, split_list, split, classes, use_cache, workers)
    if suffix == ".csv":
        names = read_classes(classes) if classes is not None else None
        return check_box_csv(path, frames, names, use_cache, workers)
    if suffix in (".pkl", ".pickle", ".mat"):
        root = Path(frames) if frames else path.parent
        return check_tube_file(path, root, split_list, split, classes, use_cache, workers)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ann = load_action_annotations(path, split_list=split_list, split=split, classes=classes)
    except DataError as exc:
        return CheckReport(str(path), 0, [Fault(str(path), MALFORMED, str(exc))])
    return CheckReport(str(path), len(ann.videos))
