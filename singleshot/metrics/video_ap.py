"""Video-mAP of action tubes: AP at several spatio-temporal IoU thresholds.

Spatio-temporal IoU and 3D NMS are :mod:`singleshot.ops.tubes` (ACT's ``iou3dt`` / ``nms3dt``):
temporal IoU of the frame spans (inclusive counts) times the mean per-frame spatial IoU over their
intersection, with the +1 pixel convention of both reference scripts unless ``plus_one=False``.

Video-AP per class (ACT ``videoAP`` and YOWO ``video_ap_one_class`` agree on it): tubes are 3D-NMSed
at 0.3 within each (video, class), ranked by score across videos (stable sort), and each takes the
ground-truth tube of its class and video of highest ST-IoU among those *not yet matched*; a match
at ST-IoU >= threshold is a true positive. AP form: ACT's trapezoids under the raw curve from
(0, 1) (``protocol="act"``) or the VOC all-point envelope (``protocol="yowo"``; YOWO adds 1e-5 to the
recall denominator, left out here). mAP is over the classes with a ground-truth tube; the 0.5:0.95
figure is the mean of the mAPs at 0.5, 0.55, ..., 0.95.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import numpy as np

from singleshot.metrics.frame_ap import average_precision, evaluation_videos, match_ranked
from singleshot.ops.tubes import nms_3d, pack_tubes, st_iou_pairs
from singleshot.structures import ActionAnnotations, Tube

logger = logging.getLogger(__name__)

__all__ = ["COCO_STYLE_THRESHOLDS", "VIDEO_AP_FORMS", "VIDEO_THRESHOLDS", "video_ap"]

COCO_STYLE_THRESHOLDS: tuple[float, ...] = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))
VIDEO_THRESHOLDS: tuple[float, ...] = (0.2, 0.5, 0.75) + COCO_STYLE_THRESHOLDS
VIDEO_AP_FORMS: dict[str, str] = {"act": "trapezoid", "yowo": "voc"}


def _thresholds(thresholds: Sequence[float] | None) -> list[float]:
    values = VIDEO_THRESHOLDS if thresholds is None else thresholds
    return sorted({round(float(t), 6) for t in values})


def video_ap(
    gt: ActionAnnotations,
    tubes: Sequence[Tube],
    protocol: str = "act",
    thresholds: Sequence[float] | None = None,
    videos: Sequence[str] | None = None,
    *,
    nms_thresh: float | None = 0.3,
    ap: str | None = None,
    plus_one: bool = True,
) -> dict:
    """Video-mAP of detected tubes.

    Args:
        gt: ground truth with tubes (frames 1-based, boxes xyxy pixels).
        tubes: detected tubes (any videos; those outside the evaluated list are left out, a video
            unknown to ``gt`` is a ValueError).
        protocol: ``"act"`` (trapezoid AP) or ``"yowo"`` (VOC all-point AP); ``ap`` overrides the form.
        thresholds: ST-IoU thresholds (default 0.2, 0.5, 0.75 and 0.5:0.05:0.95).
        videos: evaluated videos (default: ``gt.test_videos``, else all).
        nms_thresh: 3D NMS threshold within (video, class); None skips NMS.
        plus_one: +1 pixel convention in the spatial IoUs.

    Returns:
        ``{"video_map@0.2", "video_map@0.5", "video_map@0.75", "video_map@0.5:0.95"}`` (each key
        present when its thresholds were evaluated) plus ``"video_map_by_threshold": {"0.2": mAP,
        ...}``, ``"per_class": {name: {"0.2": AP, ...}}`` (AP ``nan`` without ground truth) and
        ``"n_tubes"`` (after NMS).
    """
    if protocol not in VIDEO_AP_FORMS:
        raise ValueError(f"unknown video-mAP protocol {protocol!r} (use one of {sorted(VIDEO_AP_FORMS)})")
    form = ap or VIDEO_AP_FORMS[protocol]
    ths = _thresholds(thresholds)
    vids = evaluation_videos(gt, videos)
    vid_index = {v: i for i, v in enumerate(vids)}
    unknown = sorted({t.video for t in tubes} - set(gt.videos))
    if unknown:
        raise ValueError(f"tubes name {len(unknown)} videos absent from the ground truth, e.g. {unknown[0]!r}")
    n_cls = len(gt.classes)
    bad = [t for t in tubes if not 0 <= int(t.label) < n_cls]
    if bad:
        raise ValueError(f"a tube of video {bad[0].video!r} has label {bad[0].label} outside 0..{n_cls - 1}")
    dets = [t for t in tubes if t.video in vid_index]
    if len(dets) < len(tubes):
        logger.info("video-mAP: %d tubes on videos outside the evaluated list left out", len(tubes) - len(dets))
    if nms_thresh is not None and dets:
        dets = [dets[i] for i in nms_3d(dets, nms_thresh, plus_one)]
    gts = [t for v in vids for t in gt.videos[v].tubes]
    d_label = np.fromiter((int(t.label) for t in dets), np.int64, len(dets))
    d_video = np.fromiter((vid_index[t.video] for t in dets), np.int64, len(dets))
    d_score = np.fromiter((float(t.score) for t in dets), np.float64, len(dets))
    g_label = np.fromiter((int(t.label) for t in gts), np.int64, len(gts))
    g_video = np.fromiter((vid_index[t.video] for t in gts), np.int64, len(gts))
    packed_d, packed_g = pack_tubes(dets), pack_tubes(gts)

    per_class: dict[str, dict[str, float]] = {}
    for c, name in enumerate(gt.classes):
        gi = np.flatnonzero(g_label == c)
        gi = gi[np.argsort(g_video[gi], kind="stable")]
        di = np.flatnonzero(d_label == c)
        di = di[np.argsort(-d_score[di], kind="stable")]
        if gi.size == 0:
            per_class[name] = {f"{t:g}": math.nan for t in ths}
            continue
        gv = g_video[gi]
        uniq, first, counts = np.unique(gv, return_index=True, return_counts=True)
        pos = np.minimum(np.searchsorted(uniq, d_video[di]), uniq.shape[0] - 1)
        has = uniq[pos] == d_video[di]
        row = np.where(has, pos, uniq.shape[0])
        n_pair = np.where(has, counts[pos], 0)
        pair_d = np.repeat(np.arange(di.shape[0]), n_pair)
        pair_s = np.arange(int(n_pair.sum())) - np.repeat(np.cumsum(n_pair) - n_pair, n_pair)
        pair_g = first[pos][pair_d] + pair_s
        iou = np.full((di.shape[0], int(counts.max())), -1.0)
        iou[pair_d, pair_s] = st_iou_pairs(packed_d, di[pair_d], packed_g, gi[pair_g], plus_one)
        per_class[name] = {
            f"{t:g}": average_precision(match_ranked(row, iou, uniq.shape[0], t, "remaining"), gi.shape[0], form)
            for t in ths
        }
    by_thresh: dict[str, float] = {}
    for t in ths:
        vals = [pc[f"{t:g}"] for pc in per_class.values() if not math.isnan(pc[f"{t:g}"])]
        by_thresh[f"{t:g}"] = float(np.mean(vals)) if vals else 0.0
    if not gts:
        logger.warning("video-mAP: the evaluated videos have no ground-truth tube; mAP set to 0")
    out: dict = {}
    for t in (0.2, 0.5, 0.75):
        if f"{t:g}" in by_thresh:
            out[f"video_map@{t:g}"] = by_thresh[f"{t:g}"]
    if all(f"{t:g}" in by_thresh for t in COCO_STYLE_THRESHOLDS):
        out["video_map@0.5:0.95"] = float(np.mean([by_thresh[f"{t:g}"] for t in COCO_STYLE_THRESHOLDS]))
    out.update({"video_map_by_threshold": by_thresh, "per_class": per_class, "n_tubes": len(dets)})
    return out
