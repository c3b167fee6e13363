"""Linking detections into action tubes: ACT's tubelet linking and YOWO's Viterbi linking.

* :func:`link_act` (``tube_link_act``): K-frame tubelets per start frame -> tubes, ACT ``BuildTubes``
  (``ACTLinkParams()``: NMS 0.3, top 10, link IoU 0.2, gap 5, min score 0.01, min length 15;
  :func:`moc_link_params` for MOC-Detector's values).
* :func:`link_viterbi` (``tube_link_viterbi``): per-frame detections -> tubes, YOWO
  ``link_bbxes_between_frames`` (edge IoU + s1 + s2 + 0.5 s1 s2, at most 3 paths, 3D NMS 0.3).

Both return :class:`singleshot.structures.Tube` lists (frames 1-based, boxes xyxy pixels).
"""

from __future__ import annotations

from singleshot.postprocess.tube_link_act import (
    ACTLinkParams,
    link_act,
    moc_link_params,
    nms_tubelets,
    tubelets_from_act_rows,
    tubelets_from_moc_dict,
)
from singleshot.postprocess.tube_link_viterbi import link_viterbi

__all__ = [
    "ACTLinkParams",
    "link_act",
    "link_viterbi",
    "moc_link_params",
    "nms_tubelets",
    "tubelets_from_act_rows",
    "tubelets_from_moc_dict",
]
