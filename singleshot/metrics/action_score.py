"""``score`` for the action family: frame-mAP and video-mAP from prediction files.

Ground truth: anything :func:`singleshot.data.action.readers.load_action_annotations` reads (ACT
``*-GT.pkl``, a YOWO-layout root, ``finalAnnots.mat``, ``pyannot.pkl``), or ActionAnnotations.
Frame detections (``pred``): a frames JSON or ACT ``.npy`` rows (see :mod:`.action_files`).
Tubes (``tubes``): a tubes JSON, an ACT ``*_tubes.pkl`` or a folder of them. Without tubes, the
frame detections are linked by the caller's ``link`` function (metrics link nothing themselves; the
``score`` mode passes :func:`singleshot.postprocess.tube_link_viterbi.link_viterbi`, YOWO's Viterbi
linking): under ``protocol="yowo"`` that is the protocol's own linking; ACT's linking needs K-frame
tubelets, which a frames file does not hold, so under ``protocol="act"`` the frame detections are
also Viterbi-linked and the result says so in its ``"linking"`` entry.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from singleshot.errors import ConfigError, DataError
from singleshot.metrics.action_files import read_frame_predictions, read_tube_predictions
from singleshot.metrics.frame_ap import FRAME_PROTOCOLS, evaluation_videos, frame_ap
from singleshot.metrics.mismatch import prediction_mismatches
from singleshot.metrics.video_ap import VIDEO_THRESHOLDS, video_ap
from singleshot.structures import ActionAnnotations, FrameDets, Tube

logger = logging.getLogger(__name__)

__all__ = ["ACTION_METRIC_KEYS", "FrameLinker", "score_action"]

#: Links frame detections (boxes xyxy pixels, frames 1-based) into tubes, given ``{video: frame count}``.
FrameLinker = Callable[[FrameDets, dict[str, int]], list[Tube]]

#: How the ``"linking"`` entry describes a linking under ``protocol="act"``, by ``link_name``.
_LINK_DESCRIPTIONS = {"viterbi": "YOWO's Viterbi linking"}

ACTION_METRIC_KEYS: tuple[str, ...] = (
    "frame_map",
    "video_map@0.2",
    "video_map@0.5",
    "video_map@0.75",
    "video_map@0.5:0.95",
)


def _check_dets(dets: FrameDets, gt: ActionAnnotations, source: str) -> None:
    """DataError naming ``source`` and the first offending entry: unknown video, label out of
    range, or a frame beyond the video's frame count."""
    if len(dets) == 0:
        return
    known = np.array([v in gt.videos for v in dets.videos], dtype=bool)
    if not known[dets.video].all():
        i = int(np.flatnonzero(~known[dets.video])[0])
        name = dets.videos[dets.video[i]]
        raise DataError(f"{source}: detection #{i}: video {name!r} is not in the ground truth {gt.source!r}")
    n_cls = len(gt.classes)
    if (dets.label >= n_cls).any():
        i = int(np.flatnonzero(dets.label >= n_cls)[0])
        raise DataError(f"{source}: detection #{i}: label {int(dets.label[i])} outside 0..{n_cls - 1}")
    limit = np.array([gt.videos[v].num_frames if v in gt.videos else 0 for v in dets.videos], dtype=np.int64)
    lim = limit[dets.video]
    over = (lim > 0) & (dets.frame > lim)
    if over.any():
        i = int(np.flatnonzero(over)[0])
        raise DataError(
            f"{source}: detection #{i}: frame {int(dets.frame[i])} beyond the {int(lim[i])} frames "
            f"of video {dets.videos[dets.video[i]]!r}"
        )


def _check_tubes(tubes: Sequence[Tube], gt: ActionAnnotations, source: str) -> None:
    n_cls = len(gt.classes)
    for i, t in enumerate(tubes):
        if t.video not in gt.videos:
            raise DataError(f"{source}: tube #{i}: video {t.video!r} is not in the ground truth {gt.source!r}")
        if not 0 <= int(t.label) < n_cls:
            raise DataError(f"{source}: tube #{i}: label {t.label} outside 0..{n_cls - 1}")


def _nan_to_none(x: float) -> float | None:
    return None if math.isnan(x) else float(x)


def score_action(
    gt_path: str | Path | ActionAnnotations,
    pred_path: str | Path | FrameDets | None,
    tubes_path: str | Path | Sequence[Tube] | None = None,
    protocol: str = "yowo",
    *,
    iou_thresh: float = 0.5,
    split_list: str | Path | None = None,
    split: int = 1,
    videos: Sequence[str] | None = None,
    link: FrameLinker | None = None,
    link_name: str = "viterbi",
) -> dict[str, Any]:
    """Frame-mAP and video-mAP of action predictions.

    Args:
        gt_path: ground-truth path (read by ``load_action_annotations(gt_path, split_list, split)``)
            or ActionAnnotations.
        pred_path: frame detections (frames JSON, ACT ``.npy`` whose rows index the evaluated video
            list, or FrameDets); None to score tubes only.
        tubes_path: tubes (JSON, ACT pickle(s) or a list of Tube); None links ``pred_path`` with ``link``.
        protocol: ``"yowo"`` or ``"act"`` (frame-mAP switches of :mod:`.frame_ap`, video-AP form).
        iou_thresh: frame-mAP IoU threshold.
        videos: evaluated videos (default: the ground truth's test split, else every video).
        link: links the frame detections of the evaluated videos into tubes, called as
            ``link(dets, {video: frame count})``; needed when ``tubes_path`` is None (the ``score``
            mode passes :func:`~singleshot.postprocess.tube_link_viterbi.link_viterbi`).
        link_name: the name of ``link`` reported in ``"linking"``.

    Returns:
        ``{"frame_map", "video_map@0.2", "video_map@0.5", "video_map@0.75", "video_map@0.5:0.95"}``
        (fractions; ``frame_map`` None without frame detections), ``"per_class": {name:
        {"frame_ap", "video_ap@0.2", ...}}`` (None for a class without ground truth),
        ``"protocol"``, ``"linking"`` (how the tubes were obtained), ``"n_videos"``,
        ``"n_detections"``, ``"n_tubes"``, and ``"mismatches"``: for predictions and tubes read from
        files, the evaluated videos without any (``"gt_without_predictions"`` /
        ``"gt_without_tubes"``: ``{"count", "first"}``; they still count as misses) and the predicted
        videos outside the evaluated ones (``"predictions_not_in_gt"`` / ``"tubes_not_in_gt"``:
        ground-truth videos of another split, ignored), each also a warning
        (:func:`~singleshot.metrics.mismatch.prediction_mismatches`); ``{}`` for in-memory inputs.

    Raises:
        ConfigError: unknown protocol, neither predictions nor tubes, or no tubes and no ``link``.
        DataError: unreadable or malformed files (naming the file and the entry).
    """
    if protocol not in FRAME_PROTOCOLS:
        raise ConfigError(f"protocol={protocol!r} is unknown; use one of {sorted(FRAME_PROTOCOLS)}")
    if pred_path is None and tubes_path is None:
        raise ConfigError("score needs pred= (frame detections) or tubes= (linked tubes)")
    if isinstance(gt_path, ActionAnnotations):
        gt = gt_path
    else:
        from singleshot.data.action.readers import load_action_annotations

        gt = load_action_annotations(gt_path, split_list=split_list, split=split)
    try:
        vids = evaluation_videos(gt, videos)
    except ValueError as exc:
        raise DataError(str(exc)) from exc

    dets: FrameDets | None = None
    mismatches: dict[str, Any] = {}
    outside = "ignored (not in the evaluated split)"
    if pred_path is not None:
        if isinstance(pred_path, FrameDets):
            dets, source = pred_path, "predictions"
        else:
            dets, source = read_frame_predictions(pred_path, vids), str(pred_path)
        _check_dets(dets, gt, source)
        if not isinstance(pred_path, FrameDets):
            predicted = [dets.videos[i] for i in np.unique(dets.video)]
            mismatches.update(prediction_mismatches(vids, predicted, source, "videos", outside=outside))

    if tubes_path is not None:
        if isinstance(tubes_path, (str, Path)):
            wanted = None if Path(tubes_path).is_file() else vids
            tubes, t_source = read_tube_predictions(tubes_path, wanted), str(tubes_path)
            _check_tubes(tubes, gt, t_source)
            tubed = [t.video for t in tubes]
            mismatches.update(prediction_mismatches(vids, tubed, t_source, "videos", outside=outside, kind="tubes"))
        else:
            tubes, t_source = list(tubes_path), "tubes"
            _check_tubes(tubes, gt, t_source)
        linking = "given"
    else:
        assert dets is not None
        if link is None:
            raise ConfigError("scoring frame detections without tubes= needs a link function to link them into tubes")
        in_eval, _ = dets.reindex(vids)
        tubes = link(in_eval, {v: gt.videos[v].num_frames for v in vids})
        described = _LINK_DESCRIPTIONS.get(link_name, f"{link_name} linking")
        linking = (
            link_name
            if protocol == "yowo"
            else (
                f"{link_name} (ACT linking needs K-frame tubelets; the frame detections were linked with {described})"
            )
        )

    result: dict[str, Any] = {"frame_map": None}
    per_class: dict[str, dict[str, float | None]] = {name: {} for name in gt.classes}
    if dets is not None:
        f = frame_ap(gt, dets, protocol, iou_thresh, vids)
        result["frame_map"] = f["frame_map"]
        for name, value in f["per_class"].items():
            per_class[name]["frame_ap"] = _nan_to_none(value)
    v = video_ap(gt, tubes, protocol, VIDEO_THRESHOLDS, vids)
    for key in ACTION_METRIC_KEYS[1:]:
        result[key] = v[key]
    coco = [f"{t:g}" for t in (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)]
    for name, aps in v["per_class"].items():
        for t in ("0.2", "0.5", "0.75"):
            per_class[name][f"video_ap@{t}"] = _nan_to_none(aps[t])
        mean = float(np.mean([aps[t] for t in coco]))
        per_class[name]["video_ap@0.5:0.95"] = _nan_to_none(mean)
    result.update(
        {
            "per_class": per_class,
            "protocol": protocol,
            "linking": linking,
            "n_videos": len(vids),
            "n_detections": 0 if dets is None else len(dets),
            "n_tubes": v["n_tubes"],
            "mismatches": mismatches,
        }
    )
    return result
