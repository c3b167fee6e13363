"""Per-frame ground-truth files of YOWO's evaluation folder (``groundtruths_jhmdb/``,
``groundtruths_ucf/``): one file ``<class>_<video>_<frame:05d>.txt`` per annotated frame, lines
``cls x1 y1 x2 y2`` (class 1-based, absolute pixels). Read from the folder or from a zip of it.

Video names contain underscores, so the frame is parsed from the end of the name and the class by
matching the known class names as prefixes (the longest match wins); the class ids inside the files
give the labels. Videos are named ``"<class>/<video>"`` as in the YOWO layout and ACT's pickles.
"""

from __future__ import annotations

import logging
import os
import warnings
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from singleshot.data.action.readers_common import (
    check_boxes_np,
    link_boxes_into_tubes,
    parse_label_text,
    read_classes,
)
from singleshot.errors import DataError
from singleshot.structures import ActionAnnotations, VideoAnnotation

logger = logging.getLogger(__name__)

__all__ = [
    "JHMDB_CLASSES",
    "UCF24_CLASSES",
    "FrameGroundTruth",
    "read_yowo_groundtruth_dir",
    "frame_ground_truth_to_annotations",
    "is_yowo_groundtruth",
]

JHMDB_CLASSES = [
    "brush_hair",
    "catch",
    "clap",
    "climb_stairs",
    "golf",
    "jump",
    "kick_ball",
    "pick",
    "pour",
    "pullup",
    "push",
    "run",
    "shoot_ball",
    "shoot_bow",
    "shoot_gun",
    "sit",
    "stand",
    "swing_baseball",
    "throw",
    "walk",
    "wave",
]
"""J-HMDB-21 classes in YOWO's (alphabetical) order: file class id k is ``JHMDB_CLASSES[k - 1]``."""

UCF24_CLASSES = [
    "Basketball",
    "BasketballDunk",
    "Biking",
    "CliffDiving",
    "CricketBowling",
    "Diving",
    "Fencing",
    "FloorGymnastics",
    "GolfSwing",
    "HorseRiding",
    "IceDancing",
    "LongJump",
    "PoleVault",
    "RopeClimbing",
    "SalsaSpin",
    "SkateBoarding",
    "Skiing",
    "Skijet",
    "SoccerJuggling",
    "Surfing",
    "TennisSwing",
    "TrampolineJumping",
    "VolleyballSpiking",
    "WalkingWithDog",
]
"""UCF101-24 classes in ACT's and YOWO's order (the sorted class folders)."""


@dataclass
class FrameGroundTruth:
    """Per-frame ground truth.

    Attributes:
        classes: class names; labels index this list.
        frames: ``{(video, frame): (boxes ndarray[N, 4] float32 xyxy pixels, labels ndarray[N] int64
            0-based)}``; frame 1-based; N may be 0 (an empty file: a frame without actors).
        source: the folder or zip read.
    """

    classes: list[str]
    frames: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    source: str = ""

    @property
    def videos(self) -> list[str]:
        """The videos, sorted."""
        return sorted({v for v, _ in self.frames})


def _entries(path: Path) -> Iterator[tuple[str, str, bytes]]:
    """(display path, file name, content) of every ``.txt`` file of a folder or zip."""
    if path.is_dir():
        for entry in sorted(os.scandir(path), key=lambda e: e.name):
            if entry.name.endswith(".txt") and entry.is_file():
                yield str(path / entry.name), entry.name, Path(entry.path).read_bytes()
        return
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataError(f"{path}: cannot open as a zip archive ({exc})") from exc
    with archive:
        for info in archive.infolist():
            name = info.filename.rsplit("/", 1)[-1]
            if info.is_dir() or not name.endswith(".txt") or name.startswith("."):
                continue
            yield f"{path}:{info.filename}", name, archive.read(info)


def _split_name(name: str, classes: Sequence[str], file: str, cache: dict[str, str]) -> tuple[str, int]:
    """``<class>_<video>_<frame:05d>.txt`` -> (``"<class>/<video>"``, frame); ``cache`` maps the
    ``<class>_<video>`` part to the video name already parsed."""
    stem = name[: -len(".txt")]
    head, sep, tail = stem.rpartition("_")
    if not sep or not (tail.isascii() and tail.isdigit()) or not head:
        raise DataError(f"{file}: file name is not '<class>_<video>_<frame:05d>.txt'")
    video = cache.get(head)
    if video is None:
        matches = [c for c in classes if head.startswith(c + "_")]
        if not matches:
            raise DataError(f"{file}: file name starts with none of the classes {list(classes)}")
        cls = max(matches, key=len)
        video = cache[head] = f"{cls}/{head[len(cls) + 1 :]}"
    return video, int(tail)


def is_yowo_groundtruth(path: str | Path) -> bool:
    """True for a ``.zip`` or for a folder holding ``*_00001.txt``-style files (no ``labels/``)."""
    path = Path(path)
    if path.is_file():
        return path.suffix.lower() == ".zip"
    if not path.is_dir():
        return False
    for entry in os.scandir(path):
        stem, _, suffix = entry.name.rpartition(".")
        if suffix == "txt" and stem[-6:-5] == "_" and stem[-5:].isascii() and stem[-5:].isdigit():
            return True
    return False


def read_yowo_groundtruth_dir(
    path_or_zip: str | Path, classes: Sequence[str] | str | Path | None = None
) -> FrameGroundTruth:
    """Read YOWO's per-frame ground-truth folder or a zip of it.

    Args:
        path_or_zip: the folder (e.g. ``groundtruths_jhmdb/``) or a ``.zip`` holding it.
        classes: class names (list or file); default :data:`JHMDB_CLASSES`.

    Returns:
        FrameGroundTruth keyed ``("<class>/<video>", frame)``.

    Raises:
        DataError: a missing path, a file name that does not parse, a malformed line or a class id
            outside [1, C]. A box with x2 <= x1 or y2 <= y1 is dropped with a warning.
    """
    path = Path(path_or_zip)
    if not path.exists():
        raise DataError(f"{path}: ground-truth folder or zip not found")
    names = read_classes(classes) if classes is not None else list(JHMDB_CLASSES)
    gt = FrameGroundTruth(classes=names, source=str(path))
    cache: dict[str, str] = {}
    keys: list[tuple[str, int]] = []
    counts: list[int] = []
    all_labels: list[np.ndarray] = []
    all_boxes: list[np.ndarray] = []
    where: list[tuple[str, int]] = []  # (member, line) of each box, for messages
    for file, name, content in _entries(path):
        video, frame = _split_name(name, names, file, cache)
        try:
            text = content.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DataError(f"{file}: not a text file ({exc})") from exc
        labels, boxes, lines = parse_label_text(text, file, len(names))
        keys.append((video, frame))
        counts.append(labels.shape[0])
        all_labels.append(labels)
        all_boxes.append(boxes)
        member = file[len(str(path)) + 1 :]
        where += [(member, n) for n in lines.tolist()]
    if not keys:
        raise DataError(f"{path}: holds no '<class>_<video>_<frame:05d>.txt' file")
    labels_np = np.concatenate(all_labels)
    keep, boxes_np = check_boxes_np(
        np.concatenate(all_boxes), None, path, lambda k: f"{where[k][0]} line {where[k][1]}"
    )
    # The class named by the file name, per box: a mismatch hints at a wrong class order.
    index = {c: i for i, c in enumerate(names)}
    name_class = np.repeat(np.array([index[v.split("/", 1)[0]] for v, _ in keys], np.int64), counts)
    mismatched = list(dict.fromkeys(where[k][0] for k in np.flatnonzero(name_class != labels_np).tolist()))
    offsets = np.cumsum([0] + counts)
    for i, key in enumerate(keys):
        a, b = offsets[i], offsets[i + 1]
        k = keep[a:b]
        gt.frames[key] = (boxes_np[a:b][k], labels_np[a:b][k])
    if mismatched:
        warnings.warn(
            f"{path}: {len(mismatched)} files hold class ids of another class than their name's "
            f"(first: {mismatched[0]}); is the class list in the right order?",
            stacklevel=2,
        )
    return gt


def frame_ground_truth_to_annotations(gt: FrameGroundTruth, size: tuple[int, int] = (240, 320)) -> ActionAnnotations:
    """Link per-frame ground truth into tubes (per class, frame to frame by IoU, see
    :func:`~singleshot.data.action.readers_common.link_boxes_into_tubes`).

    Every video becomes a test video and every file's frame a key frame. The files say neither the
    frame count nor the frame size: ``num_frames`` is the last frame with a file and ``size`` is
    the given (height, width) (J-HMDB-21 and UCF101-24 frames are 320x240).
    """
    per_video: dict[str, list[tuple[int, np.ndarray, np.ndarray]]] = {}
    for (video, frame), (boxes, labels) in gt.frames.items():
        per_video.setdefault(video, []).append((frame, boxes, labels))
    videos: dict[str, VideoAnnotation] = {}
    keyframes: dict[str, list[int]] = {}
    for video in sorted(per_video):
        items = sorted(per_video[video], key=lambda t: t[0])
        frames = np.concatenate([np.full(lab.shape, f, np.int64) for f, _, lab in items])
        labels = np.concatenate([lab for _, _, lab in items])
        boxes = np.concatenate([b.reshape(-1, 4) for _, b, _ in items])
        tubes = link_boxes_into_tubes(video, frames, labels, boxes)
        videos[video] = VideoAnnotation(
            video=video, num_frames=items[-1][0], size=(int(size[0]), int(size[1])), tubes=tubes
        )
        keyframes[video] = [f for f, _, _ in items]
    return ActionAnnotations(
        classes=list(gt.classes),
        videos=videos,
        train_videos=[],
        test_videos=list(videos),
        keyframes=keyframes,
        source=gt.source,
    )
