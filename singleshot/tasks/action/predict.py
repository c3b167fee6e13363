"""``action predict``: online detection on any frame source (a video file, a folder of frames, an
``rtsp://``/``http://`` stream or a camera index), written as the frames arrive: an annotated video,
per-frame detections and tubes as JSON Lines (each tube appended as soon as the linking closes it),
and at the end the JSON files ``action score`` reads.

The member's predictor detects (YOWO's clips ending at each new frame, ACT's K-frame windows, each
frame through ACT's trunk once); :func:`~singleshot.tasks.action.online.online_events` makes each
frame's detections and each closed tube final as early as the member allows; :func:`predict_source`
reads the source (:class:`~singleshot.io.stream.FrameStream`) and writes the outputs.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch

from singleshot.errors import DataError
from singleshot.io.draw import draw_detections
from singleshot.io.jsonlines import json_from_lines
from singleshot.io.stream import FrameStream
from singleshot.io.video import VideoWriter
from singleshot.metrics.action_files import detection_record, tube_record
from singleshot.structures import Detections, Tube
from singleshot.tasks.action.config import ActionConfig
from singleshot.tasks.action.evaluate import load_predictor
from singleshot.tasks.action.online import online_events
from singleshot.tasks.action.predictor import ActionPredictor
from singleshot.tasks.common import explicit_keys, make_config, require, run_folder

logger = logging.getLogger(__name__)

__all__ = [
    "predict",
    "predict_source",
]


def predict_source(predictor: ActionPredictor, source: str | Path, out_dir: Path, cfg: ActionConfig) -> dict[str, Any]:
    """Online detection on any frame source (:class:`~singleshot.io.stream.FrameStream`: a video file, a
    folder of frames, a URL, a camera index), written as the frames arrive under ``out_dir``:

    - ``<stem>.mp4``: each frame with its final detections (score >= ``show_conf``) drawn;
    - ``<stem>_frames.jsonl``: one detection per line (``video, frame, label, score, box``);
    - ``<stem>_tubes.jsonl``: one tube per line, appended as soon as the linking closes it;
    - at the end, ``<stem>_frames.json`` and ``<stem>_tubes.json`` (tubes by descending score), the
      files ``action score`` reads.

    Memory holds a few frames (the clip or K frames plus a batch), never the video. A source that
    breaks or stalls ends the run with everything so far written and closed, then a
    :class:`~singleshot.errors.DataError` saying why. Returns ``{"frames", "detections", "tubes",
    "video", "frame_detections", "tubes_file", "frames_jsonl", "tubes_jsonl", "out", "skipped"}``.
    """
    stream = FrameStream(source, timeout=cfg.timeout)
    name = cfg.video_name or stream.name
    stem = out_dir / stream.name
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {k: Path(f"{stem}{k}") for k in (".mp4", "_frames.jsonl", "_tubes.jsonl", "_frames.json", "_tubes.json")}
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


# ---------------------------------------------------------------- mode
def predict(args: dict[str, str]) -> dict:
    """Online detection on a video, a folder of frames, a stream or a camera: annotated video, detections and tubes as they come."""
    cfg = make_config(ActionConfig, args, batch=8)
    require(cfg, "source")
    predictor = load_predictor(cfg, explicit_keys(args))
    with run_folder(cfg, "predict", reads={"source": cfg.source}) as out:
        return dict(predict_source(predictor, cfg.source, out, cfg), save_dir=str(out))
