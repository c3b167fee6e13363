"""Datasets a mode generates once and then reuses (the demos' ``project/demo_data``, the action
demo's flow images): :func:`ensure_dataset`.

A completed write leaves one marker file, ``.complete-<key>``: ``key`` names the generator's
arguments, and the marker (JSON) records

* ``files``: every file the write left under the folder, with its size and modification time
  (nanoseconds), except those of subfolders that carry their own marker (a nested generated
  dataset, such as ``demo_data/flow-dis``);
* ``reads``: a fingerprint of the files the write read
  (:func:`~singleshot.data.check.files_fingerprint` of ``reads``: paths, sizes, times).

The folder is reused only when the marker of ``key`` is there, every recorded file still has its
size and time, and the read files are unchanged; the log says so. Otherwise (other arguments, a file
edited or deleted, an input changed, a marker from an older singleshot) the old markers are removed
and the dataset is written again. An interrupted write leaves no marker.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path

from singleshot.atomic import atomic_write
from singleshot.data.check import files_fingerprint
from singleshot.io.folders import require_folder_path

logger = logging.getLogger(__name__)

__all__ = ["dataset_marker", "ensure_dataset"]

_MARKER_PREFIX = ".complete-"


def dataset_marker(root: str | Path, key: str) -> Path:
    """``root/.complete-<key>``: the marker a completed :func:`ensure_dataset` write leaves."""
    return Path(root) / f"{_MARKER_PREFIX}{key}"


def _written_files(root: Path) -> dict[str, list[int]]:
    """``{relative path: [size, mtime_ns]}`` of the files under ``root`` (markers and subfolders with
    their own marker left out)."""
    out: dict[str, list[int]] = {}
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        dirs[:] = sorted(d for d in dirs if not any((here / d).glob(f"{_MARKER_PREFIX}*")))
        for name in files:
            if here == root and name.startswith(_MARKER_PREFIX):
                continue
            st = (here / name).stat()
            out[(here / name).relative_to(root).as_posix()] = [st.st_size, st.st_mtime_ns]
    return out


def _stale(root: Path, marker: Path, reads: str) -> str:
    """Why the dataset under ``root`` cannot be reused (``""``: it can)."""
    if not marker.is_file():
        return "written for other arguments" if any(root.glob(f"{_MARKER_PREFIX}*")) else "not written yet"
    try:
        saved = json.loads(marker.read_text())
        files = saved["files"]
        saved_reads = saved["reads"]
    except (OSError, ValueError, TypeError, KeyError):
        return f"{marker.name} was written by an older singleshot, without a record of its files"
    if saved_reads != reads:
        return "the files it was made from changed since"
    for rel, (size, mtime) in files.items():
        try:
            st = (root / rel).stat()
        except OSError:
            return f"{rel} is missing"
        if (st.st_size, st.st_mtime_ns) != (size, mtime):
            return f"{rel} changed since it was written"
    return ""


def ensure_dataset(
    root: str | Path, key: str, write: Callable[[Path], object], reads: Iterable[str | Path] = ()
) -> Path:
    """The generated dataset described by ``key`` under ``root``, written by ``write(root)`` only
    when the folder does not hold it unchanged (see the module doc); ``reads``: the files ``write``
    reads, whose change also calls for a new write. Returns ``root`` as a Path."""
    root = Path(root)
    require_folder_path(root, f"generated dataset folder {root}")
    marker = dataset_marker(root, key)
    read_stamp = files_fingerprint(reads)
    why = _stale(root, marker, read_stamp)
    if not why:
        logger.info(
            "generated dataset %s reused: %s says it was written for %s, and its files are unchanged since "
            "(same sizes and times)",
            root,
            marker.name,
            key,
        )
        return root
    for old in root.glob(f"{_MARKER_PREFIX}*"):
        old.unlink()
    logger.info("writing the generated dataset to %s (%s)", root, why)
    write(root)
    text = json.dumps({"key": key, "reads": read_stamp, "files": _written_files(root)}).encode()
    atomic_write(marker, lambda f: f.write(text))
    return root
