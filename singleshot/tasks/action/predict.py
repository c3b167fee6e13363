"""``action predict``: online detection on any frame source (a video file, a folder of frames, an
``rtsp://``/``http://`` stream or a camera index), written as the frames arrive: an annotated video,
per-frame detections and tubes as JSON Lines (each tube appended as soon as the linking closes it),
and at the end the JSON files ``action score`` reads.

The member's predictor detects (YOWO's clips ending at each new frame, ACT's K-frame windows, each
frame through ACT's trunk once); :func:`~singleshot.tasks.action.online.online_events` makes each
frame's detections and each closed tube final as early as the member allows; :func:`predict_source`
reads the source (:class:`~singleshot.io.stream.FrameStream`) and writes the outputs.

A folder that holds no frame images itself but video files and/or sub-folders of frames is a set of
videos (:func:`video_sources`), predicted one after the other by :func:`predict_folder`: each under
a name no other of them shares, an undecodable one skipped and listed in ``skipped.txt``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch

from singleshot.errors import ConfigError, DataError
from singleshot.io.draw import draw_detections
from singleshot.io.jsonlines import json_from_lines
from singleshot.io.stream import FRAME_SUFFIXES, FrameStream
from singleshot.io.video import VideoWriter, is_video
from singleshot.metrics.action_files import detection_record, tube_record
from singleshot.structures import Detections, Tube
from singleshot.tasks.action.config import ActionConfig
from singleshot.tasks.action.evaluate import load_predictor
from singleshot.tasks.action.online import online_events
from singleshot.tasks.action.predictor import ActionPredictor
from singleshot.tasks.common import explicit_keys, make_config, require, run_folder
from singleshot.tasks.predict_files import SkippedInputs, unique_ids

logger = logging.getLogger(__name__)

__all__ = [
    "predict",
    "predict_folder",
    "predict_source",
    "video_sources",
]

#: What :func:`predict_source` writes for a video ``<stem>``: ``<stem><suffix>`` for each suffix.
OUTPUT_SUFFIXES = (".mp4", "_frames.jsonl", "_tubes.jsonl", "_frames.json", "_tubes.json")


def predict_source(
    predictor: ActionPredictor, source: str | Path, out_dir: Path, cfg: ActionConfig, name: str | None = None
) -> dict[str, Any]:
    """Online detection on any frame source (:class:`~singleshot.io.stream.FrameStream`: a video file, a
    folder of frames, a URL, a camera index), written as the frames arrive under ``out_dir``:

    - ``<stem>.mp4``: each frame with its final detections (score >= ``show_conf``) drawn;
    - ``<stem>_frames.jsonl``: one detection per line (``video, frame, label, score, box``);
    - ``<stem>_tubes.jsonl``: one tube per line, appended as soon as the linking closes it;
    - at the end, ``<stem>_frames.json`` and ``<stem>_tubes.json`` (tubes by descending score), the
      files ``action score`` reads.

    Memory holds a few frames (the clip or K frames plus a batch), never the video. A source that
    breaks or stalls ends the run with everything so far written and closed, then a
    :class:`~singleshot.errors.DataError` saying why. ``name``, when given, is both ``<stem>`` and the
    video's name in the records (default: the source's name for the files, ``cfg.video_name`` or it
    in the records). Returns ``{"frames", "detections", "tubes", "video", "frame_detections",
    "tubes_file", "frames_jsonl", "tubes_jsonl", "out", "skipped"}``.
    """
    stream = FrameStream(source, timeout=cfg.timeout)
    stem = out_dir / (name or stream.name)
    name = name or cfg.video_name or stream.name
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {k: Path(f"{stem}{k}") for k in OUTPUT_SUFFIXES}
    counts = {"frames": 0, "detections": 0, "tubes": 0}
    writer: VideoWriter | None = None
    classes = predictor.class_names
    try:
        with (
            open(paths["_frames.jsonl"], "w", encoding="utf-8") as fj,
            open(paths["_tubes.jsonl"], "w", encoding="utf-8") as tj,
        ):
            for event in online_events(predictor, stream, name, max(1, cfg.batch), cfg.trim):
                if isinstance(event, Tube):
                    tj.write(json.dumps(tube_record(event)) + "\n")
                    tj.flush()
                    counts["tubes"] += 1
                    continue
                for box, score, label in zip(event.boxes.tolist(), event.scores.tolist(), event.labels.tolist()):
                    fj.write(json.dumps(detection_record(name, event.frame, label, score, box)) + "\n")
                counts["detections"] += len(event.scores)
                counts["frames"] += 1
                if writer is None:
                    h, w = event.image.shape[:2]
                    writer = VideoWriter(paths[".mp4"], stream.fps, w, h)
                dets = Detections(
                    torch.from_numpy(event.boxes).float(),
                    torch.from_numpy(event.scores).float(),
                    torch.from_numpy(event.labels),
                )
                writer.write(draw_detections(event.image, dets, classes, cfg.show_conf))
                if counts["frames"] % 100 == 0:
                    fj.flush()
    finally:
        if writer is not None:
            writer.close()
    if counts["frames"] == 0 and stream.error is None:
        raise DataError(f"{source}: no frames decoded")
    json_from_lines(paths["_frames.jsonl"], paths["_frames.json"])
    json_from_lines(paths["_tubes.jsonl"], paths["_tubes.json"], sort_key=lambda r: -float(r["score"]))
    logger.info("wrote %s.mp4, %s_frames.json(l) and %s_tubes.json(l)", stem, stem, stem)
    result = {
        **counts,
        "video": str(paths[".mp4"]) if writer is not None else None,
        "frame_detections": str(paths["_frames.json"]),
        "tubes_file": str(paths["_tubes.json"]),
        "frames_jsonl": str(paths["_frames.jsonl"]),
        "tubes_jsonl": str(paths["_tubes.jsonl"]),
        "out": str(out_dir),
        "skipped": stream.skipped,
    }
    if stream.error:
        raise DataError(
            f"{stream.error}; the {counts['frames']} frames before it were processed and written under {out_dir}"
        )
    return result


def _frame_images(folder: Path) -> bool:
    return any(p.is_file() and p.suffix.lower() in FRAME_SUFFIXES for p in folder.iterdir())


def video_sources(source: str | Path) -> list[Path] | None:
    """The videos of a folder of videos, sorted by name: its video files and its sub-folders that
    hold frame images; None when ``source`` is not a folder, holds frame images itself (it is one
    video's frames) or holds no videos."""
    folder = Path(str(source))
    if str(source).strip().isdigit() or not folder.is_dir() or _frame_images(folder):  # a camera index
        return None
    videos = sorted(p for p in folder.iterdir() if (p.is_file() and is_video(p)) or (p.is_dir() and _frame_images(p)))
    return videos or None


def predict_folder(predictor: ActionPredictor, videos: list[Path], out_dir: Path, cfg: ActionConfig) -> dict[str, Any]:
    """:func:`predict_source` of each of ``videos`` (:func:`video_sources` of ``cfg.source``), named
    by its file stem or folder name made unique (``a.mp4``, ``a.avi`` -> ``a``, ``a_1``, said in the
    log). A video that cannot be opened or decoded is skipped with a warning (what it wrote before
    breaking, if anything, is kept), listed in ``skipped.txt`` and counted as ``skipped_inputs``;
    when none can be read, a :class:`~singleshot.errors.DataError`.

    Returns:
        ``{"videos", "frames", "detections", "tubes", "out", "skipped", "per_video"}``: totals, and
        ``per_video`` (name -> :func:`predict_source`'s result).

    Raises:
        ConfigError: ``video_name`` given (it names one video).
    """
    if cfg.video_name:
        raise ConfigError(
            f"video_name={cfg.video_name} names one video but source={cfg.source} holds {len(videos)}; "
            "each is named by its file or folder name"
        )
    names = unique_ids(videos, [p.stem if p.is_file() else p.name for p in videos], "video")
    skipped = SkippedInputs(cfg.source, "video")
    per_video: dict[str, dict[str, Any]] = {}
    for path, name in zip(videos, names):
        try:
            per_video[name] = predict_source(predictor, path, out_dir, cfg, name=name)
        except DataError as exc:
            skipped.add(path, exc, name)
            if not (out_dir / f"{name}.mp4").exists():  # no frame: remove its empty files
                for suffix in OUTPUT_SUFFIXES:
                    (out_dir / f"{name}{suffix}").unlink(missing_ok=True)
    skipped.require_some(len(per_video))
    totals = {k: sum(int(r[k]) for r in per_video.values()) for k in ("frames", "detections", "tubes", "skipped")}
    result = {"videos": len(per_video), **totals, "out": str(out_dir), "per_video": per_video}
    return skipped.report(out_dir, result)


# ---------------------------------------------------------------- mode
def predict(args: dict[str, str]) -> dict:
    """Online detection on a video, a folder of frames or of videos, a stream or a camera: annotated video, detections and tubes as they come."""
    cfg = make_config(ActionConfig, args, batch=8)
    require(cfg, "source")
    predictor = load_predictor(cfg, explicit_keys(args))
    videos = video_sources(cfg.source)
    with run_folder(cfg, "predict", reads={"source": cfg.source}) as out:
        if videos is not None:
            return dict(predict_folder(predictor, videos, out, cfg), save_dir=str(out))
        return dict(predict_source(predictor, cfg.source, out, cfg), save_dir=str(out))
