"""``action val``'s pictures, written beside its ``metrics.json`` (``plots=true``, the default):

* ``PR_curve.png``: each class's frame-level precision-recall curve under the evaluation's
  protocol (:func:`~singleshot.metrics.action_diagnostics.frame_pr_curves`; its frame-AP in the
  legend) and their mean in bold;
* ``AP_per_class.png``: the frame-AP of each class (``metrics.json``'s ``per_class``) as sorted bars;
* ``worst/``: for the videos whose ground truth the detections cover least (boxes covered at IoU
  ``match_iou`` by a detection of their class scoring at least ``show_conf``), three of the frames
  where a box was missed, side by side: ground truth in green, detections in red.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from singleshot.data.action.frames import read_clip_frames
from singleshot.io.draw import GT_COLOR, PRED_COLOR, draw_boxes, draw_text, enlarge, side_by_side, write_image
from singleshot.io.eval_plots import plot_ap_bars, plot_pr_curves
from singleshot.metrics.action_diagnostics import VideoRecall, frame_pr_curves, video_recalls
from singleshot.metrics.frame_ap import FRAME_PROTOCOLS
from singleshot.structures import ActionAnnotations, FrameDets

logger = logging.getLogger(__name__)

__all__ = ["WORST_VIDEOS", "write_action_pictures"]

#: Videos drawn under ``worst/``, and frames per video.
WORST_VIDEOS = 4
FRAMES_PER_VIDEO = 3
_SIDE = 320  # smaller frames are enlarged by a whole factor towards this long side
_MAX_DRAWN = 20  # detections drawn per frame, best first


def write_action_pictures(
    out: Path,
    ann: ActionAnnotations,
    frame_root: str | Path,
    dets: FrameDets,
    metrics: dict[str, Any],
    protocol: str,
    match_iou: float = 0.5,
    show_conf: float = 0.3,
    worst: int = WORST_VIDEOS,
) -> list[str]:
    """Write the pictures of one evaluation into ``out``; returns the names written (relative to ``out``).

    Args:
        ann: the ground truth; its test split (else every video) was evaluated.
        frame_root: the folder holding ``rgb-images/``.
        dets: every frame detection of the evaluation (boxes xyxy in each video's annotated size).
        metrics: the evaluation's result (``per_class`` frame-AP).
        protocol: ``yowo`` or ``act`` (the frame-mAP switches); match_iou: its IoU threshold.
        show_conf: detections drawn, and counted as covering a box, score at least this.
    """
    names = list(ann.classes)
    curves = frame_pr_curves(ann, dets, protocol, match_iou)
    title = f"Frame-level precision-recall, IoU {match_iou:g} ({protocol} protocol)"
    plot_pr_curves(
        out / "PR_curve.png",
        names,
        [(curves[n].recall, curves[n].precision) for n in names],
        [curves[n].ap for n in names],
        title,
        "frame-mAP",
    )
    per_class = metrics.get("per_class", {})
    aps = [per_class.get(n, {}).get("frame_ap") for n in names]
    aps_f = [float("nan") if a is None else float(a) for a in aps]
    plot_ap_bars(out / "AP_per_class.png", names, aps_f, f"Frame-AP@{match_iou:g} per class", "frame-AP")
    written = ["PR_curve.png", "AP_per_class.png"]
    plus_one = FRAME_PROTOCOLS[protocol].plus_one
    recalls = video_recalls(ann, dets, None, show_conf, match_iou, plus_one)
    chosen = [r for r in recalls if r.boxes and r.found < r.boxes][: max(0, int(worst))]
    for old in (out / "worst").glob("*.jpg"):  # a reused run folder: the last run's pictures
        old.unlink()
    for rank, rec in enumerate(chosen):
        name = f"worst/{rank + 1:02d}_{rec.video.replace('/', '__')}.jpg"
        write_image(out / name, _video_strip(ann, frame_root, dets, rec, names, show_conf))
        written.append(name)
    return written


def _video_strip(
    ann: ActionAnnotations,
    frame_root: str | Path,
    dets: FrameDets,
    rec: VideoRecall,
    names: Sequence[str],
    show_conf: float,
) -> np.ndarray:
    """uint8 [H, W, 3]: up to three frames of ``rec.video`` with missed boxes, spread over them."""
    picks = np.unique(np.linspace(0, len(rec.missed_frames) - 1, FRAMES_PER_VIDEO).round().astype(int))
    frames = [int(rec.missed_frames[i]) for i in picks]
    images = read_clip_frames(frame_root, rec.video, frames).permute(0, 2, 3, 1).numpy()
    va = ann.videos[rec.video]
    disk_h, disk_w = images.shape[1:3]
    h, w = va.size if min(va.size) > 0 else (disk_h, disk_w)
    scale = max(1, _SIDE // max(disk_h, disk_w))
    to_pixels = np.array([disk_w / w, disk_h / h, disk_w / w, disk_h / h]) * scale
    vi = dets.videos.index(rec.video) if rec.video in dets.videos else -1
    mine = np.flatnonzero((dets.video == vi) & (dets.score >= show_conf))
    tiles = []
    for f, image in zip(frames, images):
        canvas = enlarge(image, scale)
        g_box, g_lab = va.boxes_at(f)
        canvas = draw_boxes(canvas, (g_box * to_pixels).tolist(), GT_COLOR, [names[i] for i in g_lab.tolist()])
        here = mine[dets.frame[mine] == f]
        here = here[np.argsort(-dets.score[here], kind="stable")][:_MAX_DRAWN]
        captions = [f"{names[int(lab)]} {s:.2f}" for lab, s in zip(dets.label[here], dets.score[here])]
        canvas = draw_boxes(canvas, (dets.boxes[here] * to_pixels).tolist(), PRED_COLOR, captions)
        tiles.append(draw_text(canvas, f"frame {f}"))
    strip = side_by_side(tiles)
    strip = np.concatenate((np.full((14, strip.shape[1], 3), 255, np.uint8), strip))  # a title line on top
    return draw_text(strip, f"{rec.video}: {rec.found} of {rec.boxes} boxes found", (0.0, 0.0))
