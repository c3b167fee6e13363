"""What each video folder written by ``action flow`` was computed from: ``<dst>/<video>/.source.json``.

The stamp (:func:`source_stamp`) is a fingerprint of the video's source files (the video file, or
the frame images of its folder) by resolved path, size and modification time
(:func:`~singleshot.data.check.files_fingerprint`), with the flow method and the JPEG quality. A
folder is reused only while its stamp equals the current one, so a re-extracted video, or another
``src`` whose videos have the same names, is computed again instead of being served old flow.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from singleshot.data.action.frames import list_frame_files
from singleshot.data.check import files_fingerprint

logger = logging.getLogger(__name__)

__all__ = ["SOURCE_STAMP", "log_reuse", "read_stamp", "source_stamp"]

#: The file in each video's flow folder that stamps what it was computed from.
SOURCE_STAMP = ".source.json"


def source_stamp(source: Path, method: str, quality: int) -> str:
    """Fingerprint of what the flow images of ``source`` (a video file or a folder of frame images)
    are computed from: its files by resolved path, size and modification time, the method and the
    JPEG quality."""
    files = [source] if source.is_file() else list(list_frame_files(source).values())
    extra = json.dumps({"source": str(source.resolve()), "method": method, "quality": int(quality)})
    return files_fingerprint([Path(f).resolve() for f in files], extra)


def read_stamp(folder: Path) -> tuple[str, int] | None:
    """(stamp, flow images written) of ``folder/.source.json``; None when there is none (or it cannot be read)."""
    try:
        saved = json.loads((folder / SOURCE_STAMP).read_text())
        stamp, frames = saved["stamp"], int(saved["frames"])
    except (OSError, ValueError, TypeError, KeyError):
        return None
    return (stamp, frames) if isinstance(stamp, str) else None


def log_reuse(method: str, dst: Path, states: list[str]) -> None:
    """Log what is reused and why that is valid, what is recomputed and why, from the videos'
    states (``done``, ``stale``, ``unstamped``, ``todo``); a warning for folders kept without a stamp."""
    n = {s: states.count(s) for s in ("done", "stale", "unstamped", "todo")}
    logger.info(
        "flow (%s) of %d videos into %s: %d reused (source files, method and quality unchanged since they were "
        "written: same paths, sizes and times), %d recomputed (source changed since), %d new or incomplete",
        method,
        len(states),
        dst,
        n["done"],
        n["stale"],
        n["todo"],
    )
    if n["unstamped"]:
        logger.warning(
            "flow: %d video folders under %s carry no %s (written by an older singleshot or another tool), so "
            "whether they match their source is unknown; kept as they are (delete them to recompute)",
            n["unstamped"],
            dst,
            SOURCE_STAMP,
        )
