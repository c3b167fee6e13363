"""Action inference over whole videos: raw-video prediction (``action predict``) and dataset evaluation.

* :func:`predict_source`: a video file or a folder of frames, run online (each new frame is the key
  frame of the clip ending at it), per-frame detections linked into tubes, an annotated video.
* :func:`detect_dataset` / :func:`evaluate_action`: every frame of the evaluated videos of a dataset,
  decoded a video at a time by loader workers, scored by :func:`~singleshot.metrics.action_score.score_action`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from singleshot.data.action.frames import read_clip_frames
from singleshot.data.image_io import read_image_rgb
from singleshot.errors import DataError
from singleshot.io.draw import color_of
from singleshot.io.video import VideoWriter, is_video, read_frames, video_fps
from singleshot.metrics.action_files import write_frame_detections, write_tubes
from singleshot.metrics.frame_ap import FrameDets
from singleshot.structures import ActionAnnotations, Detections, Tube
from singleshot.tasks.action import ActionConfig, frame_dets_of

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}


# ---------------------------------------------------------------- dataset evaluation
class VideoFrames(Dataset):
    """Item ``i``: ``(i, prepared frames of video i (all of them, 1 … num_frames), frame size on disk (h, w))``.

    ``prepare`` maps Tensor[N, 3, H, W] uint8 to the predictor's stored form (e.g. resized uint8).
    """

    def __init__(self, ann: ActionAnnotations, frame_root: str | Path, videos: Sequence[str],
                 prepare: Callable[[Tensor], Tensor]) -> None:
        self.ann, self.root, self.videos, self.prepare = ann, Path(frame_root), list(videos), prepare

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, i: int) -> tuple[int, Tensor, tuple[int, int]]:
        va = self.ann.videos[self.videos[i]]
        frames = read_clip_frames(self.root, va.video, range(1, va.num_frames + 1))
        return i, self.prepare(frames), (int(frames.shape[-2]), int(frames.shape[-1]))


def detect_dataset(predictor: Any, ann: ActionAnnotations, frame_root: str | Path, videos: Sequence[str],
                   batch: int = 16, workers: int = 0) -> FrameDets:
    """Detections on every frame of ``videos`` (boxes in each video's annotated frame size)."""
    ds = VideoFrames(ann, frame_root, videos, predictor.prepare)
    loader = DataLoader(ds, batch_size=None, num_workers=workers, prefetch_factor=2 if workers else None)
    per_video: list[list[Detections]] = [[] for _ in videos]
    for i, stored, disk in loader:
        h, w = ann.videos[videos[i]].size
        per_video[i] = predictor.detect_video(stored, (h, w) if h > 0 and w > 0 else disk, batch)
    return frame_dets_of(videos, per_video)


def evaluate_action(predictor: Any, ann: ActionAnnotations, frame_root: str | Path, cfg: ActionConfig,
                    videos: Sequence[str] | None = None) -> tuple[dict[str, Any], FrameDets, list[Tube]]:
    """Frame-mAP and video-mAP of ``predictor`` on ``videos`` (default: the test split, else all).

    Returns:
        (metrics of :func:`score_action` plus ``"linking"``, the frame detections, the linked tubes).
    """
    from singleshot.metrics.action_score import score_action
    from singleshot.metrics.frame_ap import evaluation_videos

    if hasattr(predictor, "evaluate"):  # a family with its own evaluation (ACT: tubelets, cache, workers)
        return predictor.evaluate(ann, frame_root, cfg, videos)
    vids = evaluation_videos(ann, videos)
    dets = detect_dataset(predictor, ann, frame_root, vids, max(1, cfg.batch), cfg.workers)
    tubes = predictor.link(dets, {v: ann.videos[v].num_frames for v in vids}, cfg.trim)
    metrics = score_action(ann, dets, tubes, cfg.protocol, iou_thresh=cfg.match_iou, videos=vids)
    linking = getattr(predictor, "linking", "viterbi")
    metrics["linking"] = linking + ("" if linking == "viterbi" else " (one-frame tubelets)") + (
        f", trimmed at frame score {cfg.trim:g}" if cfg.trim > 0 else "")
    return metrics, dets, tubes


# ---------------------------------------------------------------- raw video prediction
def _frame_source(source: Path) -> tuple[Callable[[], Iterator[np.ndarray]], float]:
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


def draw_tube_boxes(image: np.ndarray, items: Sequence[tuple[int, int, float, Sequence[float]]],
                    class_names: Sequence[str]) -> np.ndarray:
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


def tube_boxes_by_frame(tubes: Sequence[Tube], min_score: float) -> dict[int, list[tuple[int, int, float, list[float]]]]:
    """``{frame: [(tube id = index in tubes, label, frame score, box)]}`` for the frames whose linked
    detection scores at least ``min_score``."""
    out: dict[int, list[tuple[int, int, float, list[float]]]] = {}
    for tid, t in enumerate(tubes):
        scores = t.frame_scores if t.frame_scores is not None else np.full(len(t), t.score)
        for f, s, b in zip(t.frames.tolist(), scores.tolist(), t.boxes.tolist()):
            if s >= min_score:
                out.setdefault(int(f), []).append((tid, int(t.label), float(s), b))
    return out


def predict_source(predictor: Any, source: Path, out_dir: Path, cfg: ActionConfig) -> dict[str, Any]:
    """Online detection on a video file or a folder of frames; writes under ``out_dir``:
    ``<stem>.mp4`` (tube boxes with tube id, class and per-frame score), ``<stem>_frames.json``
    (per-frame detections) and ``<stem>_tubes.json`` (linked tubes, by descending score)."""
    if hasattr(predictor, "predict_source"):  # a family with its own video pass (ACT: K-frame windows)
        return predictor.predict_source(source, out_dir, cfg)
    frames_of, fps = _frame_source(source)
    name = cfg.video_name or source.stem
    per_frame: list[Detections] = []
    size = (0, 0)
    for _, frame, dets in predictor.stream(frames_of(), max(1, cfg.batch)):
        per_frame.append(dets)
        size = (int(frame.shape[0]), int(frame.shape[1]))
    if not per_frame:
        raise DataError(f"{source}: no frames decoded")
    dets_all = frame_dets_of([name], [per_frame])
    tubes = predictor.link(dets_all, {name: len(per_frame)}, cfg.trim)
    tubes.sort(key=lambda t: -t.score)
    written = write_prediction_outputs(out_dir, source.stem, dets_all, tubes, frames_of, fps, size,
                                       predictor.class_names, cfg.show_conf)  # fmt: skip
    return {"frames": len(per_frame), **written}


def write_prediction_outputs(out_dir: Path, stem_name: str, dets: Any, tubes: list, frames_of: Callable[[], Iterable],
                             fps: float, size: tuple[int, int], class_names: Sequence[str], show_conf: bool) -> dict:  # fmt: skip
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
        "detections": len(dets), "tubes": len(tubes), "video": f"{stem}.mp4", "frame_detections": f"{stem}_frames.json",
        "tubes_file": f"{stem}_tubes.json", "out": str(out_dir),
    }  # fmt: skip
