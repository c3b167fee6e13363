"""The dataset check of a YOWO-layout root (see :mod:`.readers_yowo` for the layout).

One unit per video (its frame folder and its label files) and one per list file, checked in
parallel (:func:`singleshot.data.check.run_checks`). Faults, each naming the video as its item:

- frames: no frame images, numbers missing from ``1 … N``, unreadable or truncated images, frames
  of different sizes (:func:`~.check_frames.frame_folder_faults`);
- label files: unreadable, a malformed line (not five numbers), a class id outside the class
  list, boxes non-finite, degenerate or outside the frame, a label file for a frame beyond the
  last frame image;
- list files (``trainlist.txt``, ``testlist.txt``, ``split_list``): a line naming a video that is
  in neither ``labels/`` nor ``rgb-images/``, or a key frame without a label file.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from singleshot.data.action.check_frames import (
    MALFORMED,
    MISSING_FILE,
    MISSING_FRAME,
    UNKNOWN_CLASS,
    UNKNOWN_VIDEO,
    UNREADABLE,
    box_faults,
    frame_folder_faults,
)
from singleshot.data.action.frames import list_frame_files
from singleshot.data.action.readers_common import parse_label_text, parse_list_lines, read_classes
from singleshot.data.action.readers_yowo import CLASSES_FILE, find_list, label_files, video_folders
from singleshot.data.check import CheckReport, Fault, cached_check, files_fingerprint, run_checks
from singleshot.errors import DataError

logger = logging.getLogger(__name__)

__all__ = ["check_yowo_root"]

_VERSION = "action-yowo-check-1"


@dataclass(frozen=True)
class _Video:
    name: str
    frames: dict[int, Path]
    labels: dict[int, Path]


@dataclass(frozen=True)
class _List:
    path: Path


def _class_names(root: Path, classes: Sequence[str] | str | Path | None) -> list[str]:
    if classes is None and (root / CLASSES_FILE).is_file():
        classes = root / CLASSES_FILE
    if classes is not None:
        return read_classes(classes)
    names = {p.name for sub in ("labels", "rgb-images") for p in (root / sub).iterdir() if p.is_dir()}
    return sorted(names)


def _check_video(root: Path, unit: _Video, num_classes: int) -> list[Fault]:
    faults, count, size = frame_folder_faults(root / "rgb-images" / unit.name, unit.name)
    last = max(unit.frames) if unit.frames else 0
    beyond = [f for f in sorted(unit.labels) if f > last]
    if beyond and unit.frames:
        faults.append(
            Fault(
                str(root / "labels" / unit.name),
                MISSING_FRAME,
                f"label files for frames {beyond[:5]} beyond the last frame image {last:05d}",
                unit.name,
            )
        )
    boxes: list[np.ndarray] = []
    where: list[str] = []
    for frame in sorted(unit.labels):
        path = unit.labels[frame]
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            faults.append(Fault(str(path), UNREADABLE, f"cannot read the label file ({exc})", unit.name))
            continue
        try:
            _, box, lines = parse_label_text(text, path.name, num_classes)
        except DataError as exc:
            kind = UNKNOWN_CLASS if "class id" in str(exc) and "outside" in str(exc) else MALFORMED
            faults.append(Fault(str(path), kind, str(exc), unit.name))
            continue
        boxes.append(box)
        where += [f"{frame:05d}.txt:{n}" for n in lines.tolist()]
    if boxes:
        faults += box_faults(
            np.concatenate(boxes), size, str(root / "labels" / unit.name), unit.name, where.__getitem__
        )
    return faults


def _check_list(unit: _List, videos: dict[str, _Video]) -> list[Fault]:
    try:
        text = unit.path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return [Fault(str(unit.path), UNREADABLE, f"cannot read the list ({exc})")]
    faults: list[Fault] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        for video, frame in parse_list_lines([line]):
            if video not in videos:
                faults.append(
                    Fault(str(unit.path), UNKNOWN_VIDEO, f"line {lineno}: {video!r} is no video of the root", video)
                )
            elif frame is not None and frame not in videos[video].labels:
                faults.append(
                    Fault(
                        str(unit.path),
                        MISSING_FILE,
                        f"line {lineno}: key frame {frame} of {video!r} has no label file labels/{video}/{frame:05d}.txt",
                        video,
                    )
                )
    return faults


def check_yowo_root(
    root: str | Path,
    split_list: str | Path | None = None,
    split: int = 1,
    classes: Sequence[str] | str | Path | None = None,
    use_cache: bool = True,
    workers: int = 0,
) -> CheckReport:
    """Check every frame header, label file and list line of a YOWO root (see the module docstring).

    Args:
        root: the folder holding ``labels/`` and ``rgb-images/``.
        split_list, split, classes: as :func:`~.readers_yowo.read_yowo_root` reads them.
        use_cache: reuse the result of an earlier check of the same, unchanged files.
        workers: threads (0: automatic).

    Returns:
        The report; items are videos (``Class/video``).
    """
    root = Path(root)
    name = f"{root} (YOWO layout)"
    missing = [sub for sub in ("labels", "rgb-images") if not (root / sub).is_dir()]
    if missing:
        return CheckReport(
            name,
            0,
            [
                Fault(str(root / m), MISSING_FILE, "folder not found (a YOWO root holds labels/ and rgb-images/)")
                for m in missing
            ],
        )
    try:
        names = _class_names(root, classes)
    except DataError as exc:
        return CheckReport(name, 0, [Fault(str(root), UNREADABLE, str(exc))])
    all_videos = sorted(set(video_folders(root / "labels")) | set(video_folders(root / "rgb-images")))
    videos: dict[str, _Video] = {}
    for video in all_videos:
        folder = root / "labels" / video
        labels = label_files(folder) if folder.is_dir() else {}
        videos[video] = _Video(video, list_frame_files(root / "rgb-images" / video), labels)
    lists = [p for p in (find_list(root, "trainlist", split), find_list(root, "testlist", split)) if p is not None]
    extra_faults: list[Fault] = []
    if split_list is not None:
        if Path(split_list).is_file():
            lists = [lists[0]] if lists and lists[0].name.startswith("trainlist") else []
            lists.append(Path(split_list))
        else:
            extra_faults.append(Fault(str(split_list), MISSING_FILE, "split list not found"))
    files: list[Path] = [*lists, *(p for v in videos.values() for p in (*v.frames.values(), *v.labels.values()))]
    if (root / CLASSES_FILE).is_file():
        files.append(root / CLASSES_FILE)
    key = f"{_VERSION} classes={names} lists={[str(p) for p in lists]} videos={len(videos)}"

    def compute() -> CheckReport:
        units: list[_Video | _List] = [*videos.values(), *(_List(p) for p in lists)]

        def check(unit: _Video | _List) -> list[Fault]:
            return _check_video(root, unit, len(names)) if isinstance(unit, _Video) else _check_list(unit, videos)

        def describe(unit: _Video | _List) -> tuple[str, str]:
            return (str(root / "labels" / unit.name), unit.name) if isinstance(unit, _Video) else (str(unit.path), "")

        faults = run_checks(units, check, describe, workers, desc="checking videos")
        return CheckReport(name, len(videos), faults)

    report = cached_check(files_fingerprint(files, key), compute, use_cache)
    if extra_faults:
        report.faults = sorted(report.faults + extra_faults, key=lambda f: (f.file, f.kind, f.message))
    return report
