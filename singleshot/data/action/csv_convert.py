"""A CSV of per-frame boxes (:mod:`.csv_table`) plus the videos' frames -> a YOWO-layout root and
an ACT ``*-GT.pkl`` (``action convert from=csv``).

Frames (``frames=``) come from one of:

- a folder of video files, ``<video>.mp4`` / ``.avi`` / ... (or ``<Class>/<video>.avi``), decoded
  with PyAV into ``rgb-images/<Class>/<video>/00001.jpg ...``;
- a YOWO root (``rgb-images/<Class>/<video>/00001.jpg``); when it is ``dst`` itself the frames are
  used where they are and only the annotations are written;
- a folder of frame folders, ``<video>/00001.jpg`` (or ``<Class>/<video>/00001.jpg``).

Frame images taken from a folder are hard-linked into ``dst`` (copied where a link is impossible).
A CSV video is found by its name (``Class/video`` or ``video``), else by its last part. Its name
in the output is ``Class/video``: the CSV's when it has a class part, else the source's, else the
video's most frequent label as the class folder.

Written under ``dst``: ``rgb-images/``, ``labels/`` (a label file for every annotated frame),
``trainlist.txt`` / ``testlist.txt`` (every annotated frame of the split's videos), ``classes.txt``
(the class list in label order; every class also gets a folder, so the class list read back is the
same) and ``<csv stem>-GT.pkl`` (ACT). The split: the videos of ``split_list`` are the test
videos; else ``test_fraction`` of each class's videos (``n x fraction`` rounded, halves up; sorted
by name, evenly spaced) are; with neither (``test_fraction=0``) every video is in both lists (for
scoring only: training then uses every video and evaluates on the same ones).
"""

from __future__ import annotations

import logging
import math
import os
import shutil
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from singleshot.atomic import write_text
from singleshot.data.action.csv_table import BoxRow, BoxTable, Gap, read_box_csv, row_problem, track_tubes
from singleshot.data.action.frames import extract_video_to_yowo, list_frame_files
from singleshot.data.action.readers_act import write_act_pickle
from singleshot.data.action.readers_common import read_list_file, summarize
from singleshot.data.action.readers_yowo import CLASSES_FILE, write_yowo_labels
from singleshot.data.image_io import image_size
from singleshot.errors import ConfigError, DataError
from singleshot.io.video import is_video
from singleshot.structures import ActionAnnotations, VideoAnnotation

logger = logging.getLogger(__name__)

__all__ = ["SourceVideo", "convert_box_csv", "index_frame_source", "resolve_videos", "source_lookup"]


@dataclass(frozen=True)
class SourceVideo:
    """A video of the frames source: ``rel`` its name there (``video`` or ``Class/video``, no
    suffix), ``path`` the video file or frame folder."""

    rel: str
    path: Path

    @property
    def is_file(self) -> bool:
        return self.path.is_file()


def _scan(base: Path) -> dict[str, SourceVideo]:
    """Video files and frame folders at depth 1 and 2 under ``base``, by relative name."""
    found: dict[str, SourceVideo] = {}

    def visit(folder: Path, prefix: str, depth: int) -> None:
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            return
        for e in entries:
            path = folder / e.name
            if e.is_file() and is_video(path):
                found.setdefault(prefix + path.stem, SourceVideo(prefix + path.stem, path))
            elif e.is_dir():
                if list_frame_files(path):
                    found.setdefault(prefix + e.name, SourceVideo(prefix + e.name, path))
                elif depth < 2:
                    visit(path, f"{prefix}{e.name}/", depth + 1)

    visit(base, "", 1)
    return found


def index_frame_source(frames: str | Path) -> tuple[Path, dict[str, SourceVideo]]:
    """``(folder scanned, {name: SourceVideo})`` of a frames source (see the module docstring):
    ``frames/rgb-images`` for a YOWO root, else ``frames``.

    Raises:
        DataError: ``frames`` is not a folder, or holds no video file and no frame folder.
    """
    root = Path(frames)
    if not root.is_dir():
        raise DataError(f"{root}: frames source not found (a folder of videos, of frame folders, or a YOWO root)")
    base = root / "rgb-images" if (root / "rgb-images").is_dir() else root
    found = _scan(base)
    if not found:
        raise DataError(f"{base}: holds no video file and no frame folder (<video>/00001.jpg)")
    return base, found


def source_lookup(index: dict[str, SourceVideo]) -> Callable[[str], SourceVideo | str]:
    """``video -> its SourceVideo`` (by exact name, else by the last part of the name), or a
    message saying why there is none (no source of that name, or several)."""
    by_last: dict[str, list[SourceVideo]] = {}
    for src in index.values():
        by_last.setdefault(src.rel.rsplit("/", 1)[-1], []).append(src)

    def find(video: str) -> SourceVideo | str:
        if video in index:
            return index[video]
        hits = by_last.get(video.rsplit("/", 1)[-1], [])
        if len(hits) == 1:
            return hits[0]
        if hits:
            return f"video {video!r} fits several sources: {summarize([str(h.path) for h in hits])}"
        return (
            f"unknown video {video!r}: no video file or frame folder of that name (found: {summarize(sorted(index))})"
        )

    return find


def resolve_videos(table: BoxTable, index: dict[str, SourceVideo], frames: str | Path) -> dict[str, SourceVideo]:
    """``{CSV video: its SourceVideo}`` (see :func:`source_lookup`).

    Raises:
        DataError: ``"<csv>:<line>: unknown video ..."`` naming the first row of a video found
            nowhere under ``frames``, or of a name that fits several sources.
    """
    find = source_lookup(index)
    first_line = {r.video: r.line for r in reversed(table.rows)}
    out: dict[str, SourceVideo] = {}
    for video in table.videos:
        found = find(video)
        if isinstance(found, str):
            raise DataError(f"{table.path}:{first_line[video]}: {found} under {frames}")
        out[video] = found
    return out


def _output_name(video: str, src: SourceVideo, rows: Sequence[BoxRow], classes: Sequence[str]) -> str:
    if "/" in video:
        return video
    if "/" in src.rel:
        return src.rel
    counts = Counter(r.label for r in rows)
    top = max(counts.values())
    label = min((c for c in counts if counts[c] == top), key=classes.index)
    return f"{label}/{video}"


def _frame_folder_info(folder: Path) -> tuple[int, tuple[int, int]]:
    files = list_frame_files(folder)
    missing = [f for f in range(1, max(files) + 1) if f not in files]
    if missing:
        raise DataError(f"{folder}: frame images are not numbered 1..{max(files)}: missing {summarize(missing)}")
    return len(files), image_size(files[1])


def _link_frames(folder: Path, target: Path) -> int:
    """Hard-link (else copy) the frame images of ``folder`` into ``target`` as 00001.jpg|png ..."""
    target.mkdir(parents=True, exist_ok=True)
    files = list_frame_files(folder)
    for f, path in files.items():
        suffix = ".png" if path.suffix.lower() == ".png" else ".jpg"
        out = target / f"{f:05d}{suffix}"
        try:
            os.link(path, out)
        except OSError:
            shutil.copy2(path, out)
    return len(files)


def _check_rows(rows: Sequence[BoxRow], num_frames: int, size: tuple[int, int], csv_path: str) -> None:
    for row in rows:
        problem = row_problem(row, num_frames, size)
        if problem is not None:
            raise DataError(f"{csv_path}:{row.line}: {problem}")


def _split(
    names: list[str], split_list: str | Path | None, test_fraction: float, aliases: dict[str, str]
) -> tuple[list[str], list[str], str]:
    """(train videos, test videos, how the split was made)."""
    if split_list:
        test: dict[str, None] = {}
        unknown = []
        for video, _ in read_list_file(split_list):
            name = aliases.get(video) or aliases.get(video.rsplit("/", 1)[-1])
            if name is None:
                unknown.append(video)
            else:
                test[name] = None
        if unknown:
            logger.warning(
                "%s: %d listed videos are not in the table: %s", split_list, len(unknown), summarize(unknown)
            )
        if not test:
            raise DataError(f"{split_list}: none of its videos is in the box table")
        return [n for n in names if n not in test], [n for n in names if n in test], f"test videos from {split_list}"
    if test_fraction == 0.0:
        logger.warning("test_fraction=0 and no split_list: every video is in both trainlist.txt and testlist.txt")
        return list(names), list(names), "every video in train and test"
    per_class: dict[str, list[str]] = {}
    for n in sorted(names):
        per_class.setdefault(n.split("/", 1)[0], []).append(n)
    chosen: set[str] = set()
    for videos in per_class.values():
        k = math.floor(len(videos) * test_fraction + 0.5)  # halves round up
        chosen.update(videos[int((i + 0.5) * len(videos) / k)] for i in range(k))
    return [n for n in names if n not in chosen], [n for n in names if n in chosen], f"test_fraction={test_fraction}"


def convert_box_csv(
    csv_path: str | Path,
    frames: str | Path,
    dst: str | Path,
    classes: Sequence[str] | None = None,
    split_list: str | Path | None = None,
    test_fraction: float = 0.0,
    quality: int = 95,
) -> dict[str, Any]:
    """Convert a box table and its videos' frames into a YOWO root plus an ACT pickle under ``dst``
    (see the module docstring; frames 1-based, boxes xyxy pixels of the frames, clipped to them).

    Args:
        classes: the class list in label order (labels outside it are errors); default: the
            table's labels, sorted.
        split_list: a list of test videos (``Class/video`` or ``video``, one per line).
        test_fraction: without ``split_list``, the fraction of each class's videos to test on.
        quality: JPEG quality of frames decoded from video files.

    Returns:
        ``{"dst", "pickle", "classes", "n_videos", "n_train", "n_test", "split", "n_tubes",
        "n_boxes", "label_files", "frames_written", "clipped", "n_gaps", "gaps"}``; ``gaps`` lists
        each run of missing frames inside a track as ``{"video", "actor", "label", "missing":
        [first, last]}`` (each gap splits the track's tube).

    Raises:
        DataError: ``"<csv>:<line>: ..."`` for a malformed row, an unknown video, a frame beyond
            the video's length or a box wholly outside its frames; a frame folder with missing
            frames; an unreadable video; ``dst`` already holding a dataset. What this call wrote
            is removed again on such an error.
        ConfigError: ``test_fraction`` outside [0, 1].
    """
    if not 0.0 <= test_fraction <= 1.0:
        raise ConfigError(f"test_fraction={test_fraction}: expected a fraction in [0, 1]")
    table = read_box_csv(csv_path, classes)
    class_list = list(classes) if classes else table.labels
    base, index = index_frame_source(frames)
    sources = resolve_videos(table, index, frames)
    rows_of: dict[str, list[BoxRow]] = {}
    for row in table.rows:
        rows_of.setdefault(row.video, []).append(row)
    names = {v: _output_name(v, sources[v], rows_of[v], class_list) for v in table.videos}
    clash = [n for n, c in Counter(names.values()).items() if c > 1]
    if clash:
        raise DataError(f"{csv_path}: several table videos become the same output video(s) {summarize(clash)}")
    dst = Path(dst)
    in_place = base.name == "rgb-images" and base.parent.resolve() == dst.resolve()
    made = [dst / sub for sub in ("labels",) + (() if in_place else ("rgb-images",))]
    pickle_path = dst / f"{Path(csv_path).stem}-GT.pkl"
    files = [pickle_path, dst / "trainlist.txt", dst / "testlist.txt", dst / CLASSES_FILE]
    taken = [p.name for p in made + files if p.exists()]
    if taken:
        raise DataError(f"{dst}: already holds {', '.join(taken)}; choose a fresh dst")
    try:
        return _write(
            table, class_list, sources, names, rows_of, dst, in_place, pickle_path, split_list, test_fraction, quality
        )
    except BaseException:
        for path in made:
            shutil.rmtree(path, ignore_errors=True)
        for path in files:
            path.unlink(missing_ok=True)
        raise


def _write(
    table: BoxTable,
    class_list: list[str],
    sources: dict[str, SourceVideo],
    names: dict[str, str],
    rows_of: dict[str, list[BoxRow]],
    dst: Path,
    in_place: bool,
    pickle_path: Path,
    split_list: str | Path | None,
    test_fraction: float,
    quality: int,
) -> dict[str, Any]:
    info: dict[str, tuple[int, tuple[int, int]]] = {}
    for video, src in sources.items():  # frame folders first: their rows are checked before anything is written
        if not src.is_file:
            info[video] = _frame_folder_info(src.path)
            _check_rows(rows_of[video], *info[video], table.path)
    written = 0
    for video, src in sources.items():
        target = dst / "rgb-images" / names[video]
        if src.is_file:
            count = extract_video_to_yowo(src.path, dst, names[video], quality=quality)
            written += count
            info[video] = (count, image_size(target / "00001.jpg"))
            _check_rows(rows_of[video], *info[video], table.path)
        elif not in_place:
            written += _link_frames(src.path, target)
    index = {c: i for i, c in enumerate(class_list)}
    videos: dict[str, VideoAnnotation] = {}
    gaps: list[Gap] = []
    clipped = 0
    for video in table.videos:
        num_frames, size = info[video]
        tubes, found, cut = track_tubes(rows_of[video], names[video], index, size)
        videos[names[video]] = VideoAnnotation(names[video], num_frames, size, tubes)
        gaps += found
        clipped += cut
    aliases = {**{v: names[v] for v in names}, **{n: n for n in names.values()}}
    aliases.update({n.rsplit("/", 1)[-1]: n for n in names.values()})
    train, test, how = _split(list(videos), split_list, test_fraction, aliases)
    ann = ActionAnnotations(class_list, videos, train, test, None, str(table.path))
    for sub in ("rgb-images", "labels"):
        for name in class_list:
            (dst / sub / name).mkdir(parents=True, exist_ok=True)
    write_text(dst / CLASSES_FILE, "".join(c + "\n" for c in class_list))
    label_files = write_yowo_labels(ann, dst)
    write_act_pickle(ann, pickle_path)
    if gaps:
        logger.warning(
            "%s: %d gap(s) of missing frames inside tracks, each splitting its tube: %s",
            table.path,
            len(gaps),
            summarize([f"{g.video} {g.label} frames {g.after + 1}..{g.before - 1}" for g in gaps]),
        )
    if clipped:
        logger.warning("%s: %d box(es) reaching outside their frames were clipped to them", table.path, clipped)
    return {
        "dst": str(dst),
        "pickle": str(pickle_path),
        "classes": class_list,
        "n_videos": len(videos),
        "n_train": len(train),
        "n_test": len(test),
        "split": how,
        "n_tubes": sum(len(va.tubes) for va in videos.values()),
        "n_boxes": len(table.rows),
        "label_files": label_files,
        "frames_written": written,
        "clipped": clipped,
        "n_gaps": len(gaps),
        "gaps": [g.to_dict() for g in gaps],
    }
