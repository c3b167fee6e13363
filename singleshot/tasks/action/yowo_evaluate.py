"""YOWO over a dataset: every frame of the evaluated videos, decoded a video at a time by loader
workers, each the key frame of its clip (:func:`detect_dataset`); the detections linked into tubes
and scored by :func:`~singleshot.metrics.action_score.score_action` (:func:`evaluate_yowo`, the YOWO
member's evaluation in training and in ``action val``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch.utils.data import DataLoader

from singleshot.metrics.action_score import score_action
from singleshot.metrics.frame_ap import evaluation_videos
from singleshot.structures import ActionAnnotations, Detections, FrameDets, Tube
from singleshot.tasks.action.config import ActionOptions
from singleshot.tasks.action.data import VideoFrames
from singleshot.tasks.action.predictor import YowoPredictor, frame_dets_of

logger = logging.getLogger(__name__)

__all__ = ["detect_dataset", "evaluate_yowo"]


def detect_dataset(
    predictor: YowoPredictor,
    ann: ActionAnnotations,
    frame_root: str | Path,
    videos: Sequence[str],
    batch: int = 16,
    workers: int = 0,
) -> FrameDets:
    """Detections on every frame of ``videos`` (boxes in each video's annotated frame size)."""
    ds = VideoFrames(ann, frame_root, videos, predictor.prepare)
    loader = DataLoader(ds, batch_size=None, num_workers=workers, prefetch_factor=2 if workers else None)
    per_video: list[list[Detections]] = [[] for _ in videos]
    for i, stored, disk in loader:
        h, w = ann.videos[videos[i]].size
        per_video[i] = predictor.detect_video(stored, (h, w) if h > 0 and w > 0 else disk, batch)
    return frame_dets_of(videos, per_video)


def evaluate_yowo(
    predictor: YowoPredictor,
    ann: ActionAnnotations,
    frame_root: str | Path,
    cfg: ActionOptions,
    videos: Sequence[str] | None = None,
) -> tuple[dict[str, Any], FrameDets, list[Tube]]:
    """Frame-mAP and video-mAP of a YOWO on ``videos`` (default: the test split, else all); ``cfg``
    supplies ``batch``, ``workers`` (loader processes), ``trim``, ``protocol`` and ``match_iou``.

    Returns:
        (metrics of :func:`score_action` plus ``"linking"``, the frame detections, the linked tubes).
    """
    vids = evaluation_videos(ann, videos)
    dets = detect_dataset(predictor, ann, frame_root, vids, max(1, cfg.batch), cfg.workers)
    tubes = predictor.link(dets, {v: ann.videos[v].num_frames for v in vids}, cfg.trim)
    metrics = score_action(ann, dets, tubes, cfg.protocol, iou_thresh=cfg.match_iou, videos=vids)
    linking = predictor.linking
    metrics["linking"] = (
        linking
        + ("" if linking == "viterbi" else " (one-frame tubelets)")
        + (f", trimmed at frame score {cfg.trim:g}" if cfg.trim > 0 else "")
    )
    return metrics, dets, tubes
