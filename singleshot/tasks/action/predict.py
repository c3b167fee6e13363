"""``action predict``: online detection on a raw video (a video file or a folder of frames), the
detections linked into tubes, written as an annotated video and two JSON files.

The member's predictor does the detection and linking
(:meth:`~singleshot.tasks.action.predictor.ActionPredictor.predict_video`: YOWO's clips ending at each
new frame, ACT's K-frame windows); this module reads the source (:func:`frame_source`), draws the
tubes (:func:`draw_tube_boxes`) and writes the outputs (:func:`write_prediction_outputs`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from singleshot.data.image_io import read_image_rgb
from singleshot.errors import DataError
from singleshot.io.draw import color_of
from singleshot.io.video import VideoWriter, is_video, read_frames, video_fps
from singleshot.metrics.action_files import write_frame_detections, write_tubes
from singleshot.structures import FrameDets, Tube
from singleshot.tasks.action.config import ActionConfig
from singleshot.tasks.action.evaluate import load_predictor
from singleshot.tasks.action.predictor import ActionPredictor
from singleshot.tasks.common import make_config, require, run_dir

logger = logging.getLogger(__name__)

__all__ = [
    "IMAGE_SUFFIXES",
    "draw_tube_boxes",
    "frame_source",
    "predict",
    "predict_source",
    "tube_boxes_by_frame",
    "write_prediction_outputs",
]

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}


def frame_source(source: Path) -> tuple[Callable[[], Iterator[np.ndarray]], float]:
    """(a function that iterates the frames as uint8 [H, W, 3] RGB, frames per second)."""
    if source.is_file() and is_video(source):
        return (lambda: read_frames(source)), video_fps(source)
    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise DataError(f"{source}: folder holds no frame images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        return (lambda: (read_image_rgb(p).permute(1, 2, 0).numpy() for p in files)), 25.0
    if not source.exists():
        raise DataError(f"{source}: source not found")
    raise DataError(f"{source}: not a video file nor a folder of frames")


def draw_tube_boxes(
    image: np.ndarray, items: Sequence[tuple[int, int, float, Sequence[float]]], class_names: Sequence[str]
) -> np.ndarray:
    """Draw ``(tube id, label, score, box xyxy pixels)`` items on a copy of ``image`` (uint8 [H, W, 3] RGB),
    coloured by tube id and captioned ``#id class score``."""
    canvas = Image.fromarray(image)
    draw = ImageDraw.Draw(canvas)
    for tube_id, label, score, box in items:
        color = color_of(tube_id)
        draw.rectangle(list(box), outline=color, width=2)
        name = class_names[label] if 0 <= label < len(class_names) else str(label)
        text = f"#{tube_id} {name} {score:.2f}"
        x, y = float(box[0]), max(0.0, float(box[1]) - 11)
        draw.rectangle((x, y, x + 6 * len(text) + 2, y + 11), fill=color)
        draw.text((x + 1, y), text, fill=(0, 0, 0))
    return np.asarray(canvas)


def tube_boxes_by_frame(
    tubes: Sequence[Tube], min_score: float
) -> dict[int, list[tuple[int, int, float, list[float]]]]:
    """``{frame: [(tube id = index in tubes, label, frame score, box)]}`` for the frames whose linked
    detection scores at least ``min_score``."""
    out: dict[int, list[tuple[int, int, float, list[float]]]] = {}
    for tid, t in enumerate(tubes):
        scores = t.frame_scores if t.frame_scores is not None else np.full(len(t), t.score)
        for f, s, b in zip(t.frames.tolist(), scores.tolist(), t.boxes.tolist()):
            if s >= min_score:
                out.setdefault(int(f), []).append((tid, int(t.label), float(s), b))
    return out


def predict_source(predictor: ActionPredictor, source: Path, out_dir: Path, cfg: ActionConfig) -> dict[str, Any]:
    """Online detection on a video file or a folder of frames; writes under ``out_dir``:
    ``<stem>.mp4`` (tube boxes with tube id, class and per-frame score), ``<stem>_frames.json``
    (per-frame detections) and ``<stem>_tubes.json`` (linked tubes, by descending score). Returns
    ``{"frames", <the member's own entries (ACT: "windows")>, "detections", "tubes", "video", ...}``."""
    frames_of, fps = frame_source(source)
    name = cfg.video_name or source.stem
    pred = predictor.predict_video(frames_of(), name, max(1, cfg.batch), cfg.trim)
    if pred.num_frames == 0:
        raise DataError(f"{source}: no frames decoded")
    written = write_prediction_outputs(
        out_dir, source.stem, pred.dets, pred.tubes, frames_of, fps, pred.size, predictor.class_names, cfg.show_conf
    )
    return {"frames": pred.num_frames, **pred.extra, **written}


def write_prediction_outputs(
    out_dir: Path,
    stem_name: str,
    dets: FrameDets,
    tubes: Sequence[Tube],
    frames_of: Callable[[], Iterable[np.ndarray]],
    fps: float,
    size: tuple[int, int],
    class_names: Sequence[str],
    show_conf: float,
) -> dict[str, Any]:
    """Write ``<stem>_frames.json`` (frame detections), ``<stem>_tubes.json`` and ``<stem>.mp4`` (the
    frames of ``frames_of()`` — uint8 [H, W, 3] each, ``size`` = (H, W) — with the tubes drawn) under
    ``out_dir``. Returns ``{"detections", "tubes", "video", "frame_detections", "tubes_file", "out"}``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = out_dir / stem_name
    write_frame_detections(f"{stem}_frames.json", dets)
    write_tubes(f"{stem}_tubes.json", tubes)
    drawn = tube_boxes_by_frame(tubes, show_conf)
    with VideoWriter(Path(f"{stem}.mp4"), fps, size[1], size[0]) as writer:
        for f, frame in enumerate(frames_of(), start=1):
            writer.write(draw_tube_boxes(frame, drawn.get(f, []), class_names))
    logger.info("wrote %s.mp4, %s_frames.json and %s_tubes.json", stem, stem, stem)
    return {
        "detections": len(dets),
        "tubes": len(tubes),
        "video": f"{stem}.mp4",
        "frame_detections": f"{stem}_frames.json",
        "tubes_file": f"{stem}_tubes.json",
        "out": str(out_dir),
    }


# ---------------------------------------------------------------- mode
def predict(args: dict[str, str]) -> dict:
    """Online detection on a video file or a folder of frames: annotated video, frames JSON, tubes JSON."""
    cfg = make_config(ActionConfig, args, batch=8)
    require(cfg, "source")
    return predict_source(load_predictor(cfg), Path(cfg.source), run_dir(cfg, "predict"), cfg)
