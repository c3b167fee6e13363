"""Online action prediction: each frame's detections as soon as they are final, each tube as soon as
the linking closes it, with memory that does not grow with the video.

:func:`online_events` turns a member's predictor and an iterable of frames into a stream of
:class:`FrameEvent` (frame ``t``, its image and its final detections) and :class:`~singleshot.structures.Tube`
(a closed, trimmed tube):

- ACT: frame ``t`` is final once the window starting at ``t`` is done (every window covering it);
  its detections are ACT's per-frame pooling of those windows' tubelets (NMS 0.3), as offline.
  Tubes come from :class:`~singleshot.postprocess.tube_link_act.OnlineACTLinker` over the windows'
  linking candidates: the same tubes as offline linking, handed out when they close.
- YOWO: frame ``t`` is final when its clip is done. ``linking=act|moc``: one-frame tubelets through
  the online linker; ``linking=viterbi`` (YOWO's) needs the whole video, so its tubes come at the
  end of the source (the per-frame detections are kept for it, compactly).

Over a finite source the events hold exactly the frame detections and tubes of the member's
``predict_video`` (tests check it).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from singleshot.postprocess.tube_link_act import OnlineACTLinker
from singleshot.postprocess.tubelet import TubeletDetections, frames_from_tubelets
from singleshot.structures import Tube
from singleshot.tasks.action.act_predictor import ACTPredictor
from singleshot.tasks.action.predictor import (
    YowoPredictor,
    checked_yowo_linking,
    frame_dets_of,
    link_params_of,
    trim_tubes,
)

__all__ = ["FrameEvent", "online_events"]


@dataclass
class FrameEvent:
    """One frame whose detections are final.

    Attributes:
        frame: 1-based frame number. image: the frame, uint8 [H, W, 3] RGB.
        boxes: float64 [M, 4] xyxy pixels; scores: float64 [M]; labels: int64 [M] 0-based.
    """

    frame: int
    image: np.ndarray
    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray


def online_events(
    predictor: Any, frames: Iterable[np.ndarray], name: str, batch: int = 8, trim: float = 0.0
) -> Iterator[FrameEvent | Tube]:
    """Frame events and closed tubes of ``frames`` (uint8 [H, W, 3] RGB) under ``predictor`` (an
    :class:`ACTPredictor` or a :class:`YowoPredictor`), in the order they become final."""
    if isinstance(predictor, ACTPredictor):
        return _act_events(predictor, frames, name, batch, trim)
    if isinstance(predictor, YowoPredictor):
        return _yowo_events(predictor, frames, name, batch, trim)
    raise TypeError(f"online prediction needs an ACT or a YOWO predictor, not {type(predictor).__name__}")


def _closed(tubes: Iterable[Tube], trim: float) -> list[Tube]:
    return trim_tubes(list(tubes), trim)


def _act_events(p: ACTPredictor, frames: Iterable[np.ndarray], name: str, batch: int, trim: float) -> Iterator:
    raw: deque[np.ndarray] = deque()

    def tap() -> Iterator[np.ndarray]:
        for frame in frames:
            raw.append(frame)
            yield frame

    state: dict[str, Any] = {}
    linker = OnlineACTLinker(name, p.k, p.model.num_classes, p.link_params)
    recent: deque[TubeletDetections] = deque()  # the windows covering frames not yet final
    done = 0

    def final(upto: int) -> Iterator[FrameEvent]:
        nonlocal done
        if upto <= done:
            return
        pooled = frames_from_tubelets(list(recent), video=name)
        f, boxes = pooled.frames.numpy(), pooled.boxes.double().numpy()
        scores, labels = pooled.scores.double().numpy(), pooled.labels.numpy()
        for t in range(done + 1, upto + 1):
            m = f == t
            yield FrameEvent(t, raw.popleft(), boxes[m], scores[m], labels[m])
        done = upto
        while recent and int(recent[0].frames[-1]) <= done:
            recent.popleft()

    for starts, (dets, cands) in p.window_parts(tap(), max(1, batch), state):
        for start, tubelets, (cand_boxes, cand_scores) in zip(starts, dets, cands):
            boxes = cand_boxes.cpu().numpy().astype(np.float32)
            scores = cand_scores.cpu().numpy().astype(np.float32)
            step = {c: (boxes, scores[:, c]) for c in range(scores.shape[1])} if len(boxes) else {}
            yield from _closed(linker.step(start, step), trim)
            recent.append(tubelets)
        yield from final(starts[-1])
    yield from final(state.get("frames", 0))
    yield from _closed(linker.finish(), trim)


def _yowo_events(p: YowoPredictor, frames: Iterable[np.ndarray], name: str, batch: int, trim: float) -> Iterator:
    linking = checked_yowo_linking(p.linking)
    linker = None if linking == "viterbi" else OnlineACTLinker(name, 1, p.model.num_classes, link_params_of(linking))
    kept = []
    count = 0
    for t, frame, dets in p.stream(frames, max(1, batch)):
        count = t
        boxes = dets.boxes.double().cpu().numpy().reshape(-1, 4)
        scores = dets.scores.double().cpu().numpy()
        labels = dets.labels.cpu().numpy().astype(np.int64)
        yield FrameEvent(t, frame, boxes, scores, labels)
        if linker is None:
            kept.append(dets)
            continue
        step = {int(c): (boxes[labels == c][:, None], scores[labels == c]) for c in np.unique(labels).tolist()}
        yield from _closed(linker.step(t, step), trim)
    if linker is not None:
        yield from _closed(linker.finish(), trim)
    elif kept:
        yield from p.link(frame_dets_of([name], [kept]), {name: count}, trim)
