"""YOWO layout (wei-tim/YOWO): reader and writer of ``labels/`` and the split lists.

Layout under a root::

    rgb-images/<Class>/<video>/00001.jpg|png ...   the frames (1-based, 5 digits)
    labels/<Class>/<video>/00009.txt               one line per actor: ``cls x1 y1 x2 y2``
                                                   (class 1-based, absolute pixels)
    trainlist.txt, testlist.txt                    key frames: ``Class/video/00009.txt`` or
                                                   ``labels/Class/video/00009.txt``
    classes.txt                                    optional: the class names in label order

The per-frame boxes are linked into one tube per actor by
:func:`~singleshot.data.action.readers_common.link_boxes_into_tubes` (per class, frame to frame,
by the one-to-one assignment of maximum total IoU). ``num_frames`` is the number of frame images
on disk, ``size`` the first frame's (read from its header). An empty label file is a frame without
actors.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

import numpy as np

from singleshot.atomic import write_text
from singleshot.data.action.frames import video_frame_info
from singleshot.data.action.readers_common import (
    check_boxes_np,
    link_boxes_into_tubes,
    parse_label_text,
    read_classes,
    read_list_file,
    summarize,
)
from singleshot.errors import DataError
from singleshot.structures import ActionAnnotations, VideoAnnotation

logger = logging.getLogger(__name__)

__all__ = [
    "CLASSES_FILE",
    "find_list",
    "is_yowo_root",
    "label_files",
    "read_yowo_root",
    "video_folders",
    "write_yowo_labels",
]

#: Optional file of a YOWO root naming its classes in label order, one per line (YOWO's own roots
#: have none: their order is the sorted class folders).
CLASSES_FILE = "classes.txt"


def is_yowo_root(path: str | Path) -> bool:
    """True when ``path`` is a folder with a ``labels/`` subfolder."""
    return (Path(path) / "labels").is_dir()


def _subdirs(folder: Path) -> list[str]:
    try:
        return sorted(e.name for e in os.scandir(folder) if e.is_dir())
    except FileNotFoundError:
        return []


def video_folders(top: Path) -> list[str]:
    """``Class/video`` names of the two-level folders under ``top``."""
    return [f"{c}/{v}" for c in _subdirs(top) for v in _subdirs(top / c)]


def label_files(folder: Path) -> dict[int, Path]:
    """``{frame: path}`` of the ``<frame:05d>.txt`` label files in one video's label folder."""
    out: dict[int, Path] = {}
    for entry in os.scandir(folder):
        stem, dot, suffix = entry.name.rpartition(".")
        if dot and suffix == "txt" and stem.isascii() and stem.isdigit():
            out[int(stem)] = folder / entry.name
    return out


def _read_video_labels(
    root: Path,
    video: str,
    size: tuple[int, int],
    num_frames: int,
    classes: list[str],
    mismatch: list[str],
    label_frames: dict[str, set[int]],
    empty_files: set[tuple[str, int]],
) -> VideoAnnotation:
    folder = root / "labels" / video
    files = label_files(folder) if folder.is_dir() else {}
    label_frames[video] = set(files)
    frames: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    boxes: list[np.ndarray] = []
    names: list[tuple[int, int]] = []
    for frame in sorted(files):
        path = files[frame]
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(f"{path}: cannot read label file ({exc})") from exc
        lab, box, lines = parse_label_text(text, path, len(classes))
        if lab.size == 0:
            empty_files.add((video, frame))
            continue
        frames.append(np.full(lab.shape, frame, dtype=np.int64))
        labels.append(lab)
        boxes.append(box)
        names += [(frame, n) for n in lines.tolist()]
    if not frames:
        return VideoAnnotation(video=video, num_frames=num_frames, size=size, tubes=[])
    f_all, l_all, b_all = np.concatenate(frames), np.concatenate(labels), np.concatenate(boxes)
    keep, b_all = check_boxes_np(b_all, size, folder, lambda k: f"{names[k][0]:05d}.txt line {names[k][1]}")
    f_all, l_all, b_all = f_all[keep], l_all[keep], b_all[keep]
    beyond = np.unique(f_all[f_all > num_frames])
    if beyond.size:
        warnings.warn(
            f"{folder}: label files for frames {beyond.tolist()[:5]} lie beyond the {num_frames} "
            "frame images on disk; kept",
            stacklevel=4,
        )
    folder_class = video.split("/", 1)[0]
    if folder_class in classes and not np.any(l_all == classes.index(folder_class)):  # none of its boxes
        mismatch.append(video)
    tubes = link_boxes_into_tubes(video, f_all, l_all, b_all)
    return VideoAnnotation(video=video, num_frames=num_frames, size=size, tubes=tubes)


def find_list(root: Path, stem: str, split: int) -> Path | None:
    """``root/<stem>.txt``, else ``root/<stem><split:02d>.txt``, else None."""
    for name in (f"{stem}.txt", f"{stem}{split:02d}.txt"):
        if (root / name).is_file():
            return root / name
    return None


def _read_split(
    path: Path,
    label_frames: Mapping[str, set[int]],
    empty_files: set[tuple[str, int]],
    skip: Collection[str] = (),
) -> tuple[list[str], dict[str, list[int]]]:
    """Videos (in list order) and key frames of one list file; warns about entries that point to
    missing label files (dropped) or to empty ones (kept: a frame without actors). Entries of the
    videos in ``skip`` are dropped silently."""
    order: dict[str, None] = {}
    keyframes: dict[str, list[int]] = {}
    missing: list[str] = []
    empty: list[str] = []
    for video, frame in read_list_file(path):
        if video in skip:
            continue
        label = f"labels/{video}" + (f"/{frame:05d}.txt" if frame is not None else "")
        if video not in label_frames:
            missing.append(label)
            continue
        order[video] = None
        if frame is None:
            continue
        if frame not in label_frames[video]:
            missing.append(label)
            continue
        if (video, frame) in empty_files:
            empty.append(label)
        keyframes.setdefault(video, []).append(frame)
    if missing:
        warnings.warn(
            f"{path}: {len(missing)} entries point to missing label files or videos and were dropped: "
            f"{summarize(missing)}",
            stacklevel=4,
        )
    if empty:
        warnings.warn(
            f"{path}: {len(empty)} entries point to empty label files (kept as frames without actors): "
            f"{summarize(empty)}",
            stacklevel=4,
        )
    return list(order), {v: sorted(set(fs)) for v, fs in keyframes.items()}


def read_yowo_root(
    root: str | Path,
    split_list: str | Path | None = None,
    split: int = 1,
    classes: Sequence[str] | str | Path | None = None,
    skip: Collection[str] = (),
) -> ActionAnnotations:
    """Read a YOWO-layout root (see the module docstring).

    Args:
        root: the folder holding ``labels/`` and ``rgb-images/``.
        split_list: a test list replacing ``testlist.txt``.
        split: when ``testlist.txt``/``trainlist.txt`` are absent, ``testlist{split:02d}.txt`` /
            ``trainlist{split:02d}.txt`` are tried.
        classes: class names (a list or a file with one name per line); default: the root's
            ``classes.txt`` when there is one (written by ``action convert from=csv``), else the
            sorted union of the class folders of ``labels/`` and ``rgb-images/``.
        skip: videos (``Class/video``) to leave out, e.g. those a dataset check found faulty.

    Returns:
        ActionAnnotations: videos of ``labels/`` and ``rgb-images/``; train/test videos and
        key frames from the lists (keyframes None when there is no list).

    Raises:
        DataError: a missing ``labels/`` or ``rgb-images/``, a labelled video without frame images,
            a malformed label line or a class id outside [1, C] (file and line named).
    """
    root = Path(root)
    for sub in ("labels", "rgb-images"):
        if not (root / sub).is_dir():
            raise DataError(f"{root / sub}: folder not found (a YOWO root holds labels/ and rgb-images/)")
    if classes is None and (root / CLASSES_FILE).is_file():
        classes = root / CLASSES_FILE
    names = (
        read_classes(classes)
        if classes is not None
        else sorted(set(_subdirs(root / "labels")) | set(_subdirs(root / "rgb-images")))
    )
    if not names:
        raise DataError(f"{root}: no class folders under labels/ or rgb-images/")
    all_videos = sorted(set(video_folders(root / "labels")) | set(video_folders(root / "rgb-images")))
    videos: dict[str, VideoAnnotation] = {}
    mismatch: list[str] = []
    label_frames: dict[str, set[int]] = {}
    empty_files: set[tuple[str, int]] = set()
    skip = set(skip)
    for video in all_videos:
        if video in skip:
            continue
        num_frames, size = video_frame_info(root, video)
        videos[video] = _read_video_labels(root, video, size, num_frames, names, mismatch, label_frames, empty_files)
    if mismatch:
        warnings.warn(
            f"{root}: in {len(mismatch)} videos the class ids name another class than the video's "
            f"folder ({summarize(mismatch)}); pass the dataset's class list (classes=...)",
            stacklevel=2,
        )
    ann = ActionAnnotations(classes=names, videos=videos, source=str(root))
    train_path = find_list(root, "trainlist", split)
    test_path = Path(split_list) if split_list is not None else find_list(root, "testlist", split)
    if test_path is not None and not test_path.is_file():
        raise DataError(f"{test_path}: split list not found")
    keyframes: dict[str, list[int]] = {}
    test: list[str] = []
    if test_path is not None:
        test, kf = _read_split(test_path, label_frames, empty_files, skip)
        keyframes.update(kf)
    if train_path is not None:
        train, kf = _read_split(train_path, label_frames, empty_files, skip)
        test_set = set(test)
        ann.train_videos = [v for v in train if v not in test_set]
        keyframes.update({v: f for v, f in kf.items() if v not in test_set})
    ann.test_videos = test
    ann.keyframes = keyframes if (train_path is not None or test_path is not None) else None
    return ann


def _fmt(value: float) -> str:
    """Shortest text that reads back as the same float32 (``188`` for 188.0)."""
    return np.format_float_positional(np.float32(value), trim="-")


def write_yowo_labels(
    ann: ActionAnnotations,
    root: str | Path,
    keyframes: Mapping[str, Sequence[int]] | None = None,
    prefix_labels: bool = False,
) -> int:
    """Write ``labels/<video>/<frame:05d>.txt`` for every frame that has a box, and the lists.

    Args:
        ann: the annotations (tubes with frames 1-based, boxes xyxy pixels).
        root: the YOWO root (frame images are not written here: see
            :func:`~singleshot.data.action.frames.extract_video_to_yowo`).
        keyframes: ``{video: [frame, ...]}`` listed in ``trainlist.txt`` (videos of
            ``ann.train_videos``) and ``testlist.txt`` (``ann.test_videos``); default
            ``ann.keyframes``, else every annotated frame. A key frame without boxes gets an empty
            label file (a frame without actors).
        prefix_labels: write list lines as ``labels/Class/video/00009.txt`` instead of
            ``Class/video/00009.txt``.

    Returns:
        The number of label files written.

    Raises:
        DataError: a label outside the class list, or a label folder that already holds files.
    """
    root = Path(root)
    per_frame: dict[str, dict[int, list[str]]] = {}
    for video, va in ann.videos.items():
        frames: dict[int, list[str]] = {}
        for tube in va.tubes:
            if not 0 <= tube.label < len(ann.classes):
                raise DataError(f"{root}: video {video!r} has a tube of label {tube.label} outside the class list")
            for f, box in zip(tube.frames.tolist(), np.asarray(tube.boxes, np.float32).reshape(-1, 4)):
                frames.setdefault(int(f), []).append(f"{tube.label + 1} " + " ".join(_fmt(v) for v in box))
        per_frame[video] = frames
    if keyframes is None:
        keyframes = ann.keyframes if ann.keyframes is not None else {v: sorted(fr) for v, fr in per_frame.items()}
    written = 0
    for video, frames in per_frame.items():
        wanted = set(frames) | {int(f) for f in keyframes.get(video, [])}
        if not wanted:
            continue
        folder = root / "labels" / video
        if folder.is_dir() and label_files(folder):
            raise DataError(f"{folder}: already holds label files; write into a fresh root")
        folder.mkdir(parents=True, exist_ok=True)
        for f in sorted(wanted):
            lines = frames.get(f, [])
            write_text(folder / f"{f:05d}.txt", "".join(ln + "\n" for ln in lines))
            written += 1
    prefix = "labels/" if prefix_labels else ""
    for name, split_videos in (("trainlist.txt", ann.train_videos), ("testlist.txt", ann.test_videos)):
        if not split_videos:
            continue
        lines = [f"{prefix}{v}/{int(f):05d}.txt" for v in split_videos for f in sorted(keyframes.get(v, []))]
        write_text(root / name, "".join(ln + "\n" for ln in lines))
    logger.info("wrote %d label files under %s", written, root / "labels")
    return written
