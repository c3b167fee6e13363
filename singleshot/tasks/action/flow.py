"""``action flow``: dense optical flow of videos, written as ACT's flow images, with no download.

``singleshot action flow src=<video file | folder of videos | frames root> dst=<root> [method=dis|tvl1]
[workers=2]`` writes ``<dst>/<Class>/<video>/<frame:05d>.jpg``, the layout of the RGB frames (and of
ACT's ``FlowBrox04`` folders), which ``action train model=act modality=rgb+flow flow=<dst>`` reads.

* ``src``: a video file (its name under ``dst`` is ``video_name=``, else its stem); a folder of video
  files (``<Class>/<video>.avi`` as UCF101 ships them); or a frames root, ``<Class>/<video>/<frame:05d>.jpg``
  (or ``.png``; a YOWO root is read through its ``rgb-images/``). Every folder of frame images and
  every video file under ``src`` is one video, named by its path relative to ``src``.
* Frame t's flow image is the flow from frame t to t + 1, encoded as ACT's (x, y, magnitude around
  128, 16 levels per pixel, clipped; :mod:`singleshot.data.action.flow`); the last frame repeats the
  one before it. JPEG quality ``quality=`` (95).
* ``method=dis`` (default): OpenCV's DIS flow, preset medium. ``method=tvl1``: OpenCV-contrib's dual
  TV-L1. DIS is the default for speed at equal accuracy on what matters here: measured on this
  project's 2-core CPU (``benchmarks/bench_flow.py``, one thread, per frame pair) DIS takes
  2.3–2.7 ms at 160x120 and 8.6–16 ms at 320x240, TV-L1 232–589 ms and 0.69–1.9 s (80–200x
  slower), and both recover a (3, -2) px translation to within 1/8 px after encoding. UCF101-24's
  ~580k frames at 320x240 are thus about 1.4–2.6 core-hours with DIS and 110–300 with TV-L1; the
  demo's 196 videos (6,256 frames at 160x120) take 33 s end to end (reading, flow, JPEG writing) in
  one process. Brox et al.'s flow (ACT's) has no CPU implementation in OpenCV.
* Resumable: each video is written into ``<dst>/<Class>/.<video>.partial`` and renamed when done, so
  a killed run leaves no half video. Each video folder holds ``.source.json``, a stamp of what it was
  computed from: the source's files (the video file, or the frame images) by path, size and
  modification time (:func:`~singleshot.data.check.files_fingerprint`), the method and the JPEG
  quality. A video whose stamp matches is skipped (and the log says so); one whose source changed (a
  re-extracted video, another ``src`` with the same names) is computed again. A folder without a
  stamp (an older singleshot's, or flow made elsewhere) is kept as it is, with a warning.
  ``<dst>/flow.json`` records the method and the encoding (training copies it into the flow
  stream's metadata); a ``dst`` holding another method's flow is refused.
* ``workers=N`` (N > 1) computes N videos at a time in N spawned processes (one OpenCV thread each;
  each starts by importing the package, a few seconds); 0 or 1: in this process. A tqdm bar counts
  the videos. A video that fails (a corrupt file, a missing frame) is
  reported by name after the others are written (``DataError``).

The result (last stdout line): ``{"dst", "method", "videos", "written", "skipped", "frames",
"seconds", "ms_per_frame"}`` (frames and time of the videos written by this run).
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import shutil
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from singleshot.atomic import write_text
from singleshot.data.action.flow import FLOW_CENTRE, FLOW_METHODS, FLOW_SCALE, flow_estimator, video_flow_images
from singleshot.data.action.frames import list_frame_files
from singleshot.errors import ConfigError, DataError
from singleshot.io.video import is_video, read_frames
from singleshot.tasks.action.flow_stamps import SOURCE_STAMP, log_reuse, read_stamp, source_stamp
from singleshot.tasks.common import make_config, require

logger = logging.getLogger(__name__)

__all__ = [
    "FLOW_INFO",
    "FlowJob",
    "FlowOptions",
    "compute_flow",
    "find_flow_jobs",
    "flow_mode",
    "read_flow_info",
]

#: The file in ``dst`` that records how its flow images were made.
FLOW_INFO = "flow.json"


@dataclass
class FlowOptions:
    """The keys of ``action flow``."""

    src: str = ""  # a video file, a folder of video files, or a frames root <Class>/<video>/<frame:05d>.jpg
    dst: str = ""  # the flow root written: <dst>/<Class>/<video>/<frame:05d>.jpg
    method: str = "dis"  # dis (OpenCV DIS, medium preset) | tvl1 (OpenCV-contrib dual TV-L1, ~80x slower)
    workers: int = 2  # videos computed at a time, one process each (0 or 1: in this process)
    video_name: str = ""  # src a single video: its name under dst (default: the file or folder name)
    quality: int = 95  # JPEG quality of the flow images


def _frame_array(path: Path) -> np.ndarray:
    """One frame image as uint8 RGB [H, W, 3] (Pillow straight to NumPy: no tensor copy on the way).

    Raises:
        DataError: naming the file when it cannot be decoded.
    """
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise DataError(f"{path}: cannot decode image ({e})") from None


@dataclass(frozen=True)
class FlowJob:
    """One video: ``name`` (``Class/video``, its folder under dst) and ``source`` (a video file or a
    folder of frame images)."""

    name: str
    source: Path

    def frames(self) -> Iterator[np.ndarray]:
        """The source's frames, uint8 RGB [H, W, 3], in order.

        Raises:
            DataError: an unreadable video or frame, or frame numbers with a gap (names the file/folder).
        """
        if self.source.is_file():
            yield from read_frames(self.source)
            return
        files = list_frame_files(self.source)
        if sorted(files) != list(range(1, len(files) + 1)):
            gap = next(i for i in range(1, len(files) + 2) if i not in files)
            raise DataError(f"{self.source}: frame {gap:05d} is missing (frames must be numbered 1 … N)")
        for f in range(1, len(files) + 1):
            yield _frame_array(files[f])

    def num_frames(self) -> int | None:
        """Frame images of a folder source; None for a video file (known only by decoding it)."""
        return None if self.source.is_file() else len(list_frame_files(self.source))


def find_flow_jobs(src: str | Path, video_name: str = "", skip: str | Path | None = None) -> list[FlowJob]:
    """The videos under ``src`` (see the module doc), sorted by name; ``skip``: a folder left out (dst).

    Raises:
        DataError: ``src`` does not exist or holds no video file nor frame folder.
    """
    src = Path(src)
    if not src.exists():
        raise DataError(f"{src}: source not found (a video file, a folder of videos or a frames root)")
    if src.is_file():
        if not is_video(src):
            raise DataError(f"{src}: not a video file (expected one of the suffixes PyAV reads, e.g. .mp4, .avi)")
        return [FlowJob(video_name or src.stem, src)]
    if list_frame_files(src):
        return [FlowJob(video_name or src.name, src)]
    root = src / "rgb-images" if (src / "rgb-images").is_dir() else src
    skip_dir = Path(skip).resolve() if skip else None
    jobs: list[FlowJob] = []
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and (here / d).resolve() != skip_dir)
        rel = here.relative_to(root)
        if rel.parts and list_frame_files(here):
            jobs.append(FlowJob(rel.as_posix(), here))
            dirs[:] = []
        jobs.extend(FlowJob((rel / Path(f).stem).as_posix(), here / f) for f in sorted(files) if is_video(Path(f)))
    if not jobs:
        raise DataError(f"{root}: no video files and no folders of frame images (<Class>/<video>/00001.jpg)")
    names = [j.name for j in jobs]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise DataError(f"{root}: two sources give the same video name {dup[0]!r} (a video file beside its frames?)")
    return sorted(jobs, key=lambda j: j.name)


def _state(job: FlowJob, dst: Path, method: str, quality: int) -> str:
    """``"done"`` (the folder's stamp matches), ``"stale"`` (its source, method or quality changed),
    ``"unstamped"`` (a whole folder without a stamp: kept) or ``"todo"`` (no folder, or an incomplete one)."""
    out = dst / job.name
    if not out.is_dir():
        return "todo"
    saved = read_stamp(out)
    if saved is not None:
        if saved[0] != source_stamp(job.source, method, quality):
            return "stale"
        return "done" if len(list_frame_files(out)) == saved[1] else "todo"
    expected = job.num_frames()
    whole = len(list_frame_files(out)) == expected if expected is not None else bool(list_frame_files(out))
    return "unstamped" if whole else "todo"


def _write_job(job: FlowJob, dst: Path, method: str, quality: int) -> tuple[str, int, str]:
    """Compute and write one video's flow images and stamp (temporary folder, renamed when complete).

    Returns ``(name, frames written, error message or "")``: a failing video is reported, not raised,
    so that the other videos are still written.
    """
    out = dst / job.name
    tmp = out.parent / f".{out.name}.partial"
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        # stamped before the source is read: a file changed meanwhile leaves a stale stamp, never a wrong one
        stamp = {"stamp": source_stamp(job.source, method, quality), "source": str(job.source), "method": method}
        count = 0
        for count, image in enumerate(video_flow_images(job.frames(), method, str(job.source)), start=1):
            Image.fromarray(image).save(tmp / f"{count:05d}.jpg", format="JPEG", quality=int(quality))
        if count == 0:
            raise DataError(f"{job.source}: no frames")
        (tmp / SOURCE_STAMP).write_text(json.dumps(dict(stamp, quality=int(quality), frames=count)))
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
        return job.name, count, ""
    except Exception as e:  # noqa: BLE001 - reported with the video's name once the others are done
        shutil.rmtree(tmp, ignore_errors=True)
        text = str(e)
        return job.name, 0, text if str(job.source) in text else f"{job.source}: {type(e).__name__}: {text}"


def _worker_init() -> None:
    import cv2

    cv2.setNumThreads(1)


def _flow_info(method: str, quality: int) -> dict[str, Any]:
    return {
        "method": method,
        "encoding": "act",
        "channels": ["x", "y", "magnitude"],
        "scale": FLOW_SCALE,
        "centre": FLOW_CENTRE,
        "direction": "frame t -> t + 1; the last frame repeats its predecessor",
        "quality": int(quality),
    }


def read_flow_info(flow_root: str | Path) -> dict[str, Any]:
    """``<flow_root>/flow.json`` (how ``action flow`` made the images); ``{}`` for other flow roots
    (e.g. ACT's Brox JPEGs)."""
    path = Path(flow_root) / FLOW_INFO
    if not path.is_file():
        return {}
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: unreadable ({e})") from None
    return info if isinstance(info, dict) else {}


def compute_flow(
    src: str | Path,
    dst: str | Path,
    method: str = "dis",
    workers: int = 0,
    video_name: str = "",
    quality: int = 95,
) -> dict[str, Any]:
    """Flow images of every video under ``src`` into ``dst`` (see the module doc); the mode's result.

    Raises:
        ConfigError: an unknown method, or ``dst`` made by another method.
        DataError: ``src`` missing or empty; after the others are written, the videos that failed.
    """
    if method not in FLOW_METHODS:
        raise ConfigError(f"method={method!r}: optical flow methods are {', '.join(FLOW_METHODS)}")
    flow_estimator(method)  # fails now, not in each worker, when OpenCV lacks the method
    dst = Path(dst)
    jobs = find_flow_jobs(src, video_name, skip=dst)
    info = read_flow_info(dst)
    if info and info.get("method") != method:
        raise ConfigError(
            f"{dst / FLOW_INFO}: this folder holds flow of method {info.get('method')!r}; "
            f"pass method={info.get('method')} or another dst"
        )
    dst.mkdir(parents=True, exist_ok=True)
    write_text(dst / FLOW_INFO, json.dumps(_flow_info(method, quality), indent=2))
    states = {j.name: _state(j, dst, method, quality) for j in jobs}
    todo = [j for j in jobs if states[j.name] in ("todo", "stale")]
    log_reuse(method, dst, list(states.values()))
    from tqdm import tqdm

    t0 = time.perf_counter()
    results: list[tuple[str, int, str]] = []
    with tqdm(total=len(todo), desc=f"flow {method}", unit="video", disable=None) as bar:
        if workers > 1 and len(todo) > 1:
            # spawned, not forked: a fork of a process whose OpenCV thread pool is running can deadlock
            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(min(workers, len(todo)), mp_context=ctx, initializer=_worker_init) as pool:
                futures = [pool.submit(_write_job, j, dst, method, quality) for j in todo]
                for fut in as_completed(futures):
                    results.append(fut.result())
                    bar.update(1)
        else:
            for j in todo:
                results.append(_write_job(j, dst, method, quality))
                bar.update(1)
    seconds = time.perf_counter() - t0
    failed = sorted(msg for _, _, msg in results if msg)
    frames = sum(n for _, n, _ in results)
    logger.info("flow (%s): %d videos, %d frames written in %.1f s", method, len(todo) - len(failed), frames, seconds)
    if failed:
        raise DataError(
            f"flow: {len(failed)} of {len(todo)} videos failed (the others were written to {dst}): " + "; ".join(failed)
        )
    return {
        "dst": str(dst),
        "method": method,
        "videos": len(jobs),
        "written": len(todo),
        "skipped": len(jobs) - len(todo),
        "frames": frames,
        "seconds": round(seconds, 2),
        "ms_per_frame": round(1000 * seconds / frames, 2) if frames else None,
    }


def flow_mode(args: dict[str, str]) -> dict:
    """Optical flow images for ACT's flow stream (OpenCV DIS or TV-L1) of videos or frame folders ``src=`` under ``dst=``."""
    cfg = make_config(FlowOptions, args)
    require(cfg, "src", "dst")
    return compute_flow(cfg.src, cfg.dst, cfg.method, max(0, cfg.workers), cfg.video_name, cfg.quality)
