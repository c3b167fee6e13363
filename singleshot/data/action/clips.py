"""Which frames make a training or test sample: YOWO clips and ACT tubelets.

Frame numbers are 1-based everywhere (frame 1 is ``00001.jpg``), as in every dataset of the family.

- A YOWO clip of ``T`` frames *ends* at its key frame: frames ``key - i * d`` for ``i = T-1 ... 0``
  (key frame last), with temporal stride ``d``. Frames before the video's start are clamped to
  frame 1 (the repeated first frame), which is the convention of the references; the original YOWO
  code instead wraps around to the end of the video (``wrap=True``). During training YOWO draws
  ``d`` uniformly from {1, 2} per clip (:func:`sample_clip_stride`).
- An ACT tubelet is ``K`` consecutive frames ``start ... start + K - 1``. For training, a start is
  valid when the window lies wholly inside or wholly outside every ground-truth tube of the video
  and wholly inside at least one (:func:`act_valid_starts`): each tubelet then has a box on every
  frame or none at all.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch

from singleshot.structures import VideoAnnotation

logger = logging.getLogger(__name__)

__all__ = ["yowo_clip_frames", "sample_clip_stride", "act_valid_starts", "act_all_starts", "tubelet_boxes"]


def yowo_clip_frames(key: int, length: int, stride: int, num_frames: int, *, wrap: bool = False) -> list[int]:
    """The frames of a YOWO clip ending at ``key``.

    Args:
        key: the key frame (1-based); it is the clip's last frame.
        length: number of frames ``T`` (>= 1).
        stride: temporal stride ``d`` (>= 1) between consecutive clip frames.
        num_frames: frames in the video (frames are ``1 ... num_frames``).
        wrap: out-of-range frames wrap around the video (the original YOWO code) instead of being
            clamped into ``[1, num_frames]`` (the default: early frames repeat frame 1).

    Returns:
        ``T`` 1-based frame numbers ``[key - (T-1)d, ..., key - d, key]`` after clamping/wrapping.
    """
    if length < 1 or stride < 1 or num_frames < 1:
        raise ValueError(f"length, stride and num_frames must be >= 1, got {length}, {stride}, {num_frames}")
    frames = [int(key) - i * int(stride) for i in range(length - 1, -1, -1)]
    if wrap:
        return [(f - 1) % num_frames + 1 for f in frames]
    return [min(max(f, 1), num_frames) for f in frames]


def sample_clip_stride(generator: torch.Generator | None = None, choices: Sequence[int] = (1, 2)) -> int:
    """A training stride drawn uniformly from ``choices`` (YOWO: {1, 2}).

    Args:
        generator: torch generator to draw from; ``None`` uses torch's global generator (which
            :class:`~singleshot.engine.sampler.SeededDataset` seeds per sample).
    """
    if len(choices) == 0:
        raise ValueError("choices must not be empty")
    k = int(torch.randint(0, len(choices), (1,), generator=generator))
    return int(choices[k])


def _presence(video: VideoAnnotation) -> np.ndarray:
    """bool ndarray[M, num_frames + 1]: ``[m, f]`` is True when tube ``m`` has a box on frame ``f``."""
    present = np.zeros((len(video.tubes), video.num_frames + 1), dtype=bool)
    for m, tube in enumerate(video.tubes):
        frames = np.asarray(tube.frames, dtype=np.int64)
        frames = frames[(frames >= 1) & (frames <= video.num_frames)]
        present[m, frames] = True
    return present


def act_valid_starts(video: VideoAnnotation, K: int) -> list[int]:
    """Start frames of the ``K``-frame training tubelets of a video (ACT's rule).

    A start ``s`` (window ``s ... s + K - 1``, all inside ``1 ... num_frames``) is valid when, for
    every ground-truth tube, the window's frames are either all annotated by that tube or none of
    them is, and at least one tube annotates all of them. Tubes with gaps are handled frame by frame.

    Returns:
        the valid 1-based start frames, increasing.
    """
    if K < 1:
        raise ValueError(f"K must be >= 1, got {K}")
    last = video.num_frames - K + 1
    if last < 1 or not video.tubes:
        return []
    present = _presence(video).astype(np.int64)
    cum = np.concatenate([np.zeros((present.shape[0], 1), np.int64), np.cumsum(present[:, 1:], axis=1)], axis=1)
    starts = np.arange(1, last + 1)
    count = cum[:, starts + K - 1] - cum[:, starts - 1]  # [M, S] annotated frames in each window
    inside = count == K
    ok = ((count == 0) | inside).all(axis=0) & inside.any(axis=0)
    return [int(s) for s in starts[ok]]


def act_all_starts(video: VideoAnnotation, K: int) -> list[int]:
    """Every start frame ``1 ... num_frames - K + 1`` (ACT's test-time sliding window)."""
    return list(range(1, video.num_frames - K + 2))


def tubelet_boxes(video: VideoAnnotation, start: int, K: int) -> tuple[np.ndarray, np.ndarray]:
    """Ground-truth tubelets on frames ``start ... start + K - 1``.

    Only tubes with a box on every one of the ``K`` frames give a tubelet (at a valid training
    start, a tube touching the window covers it entirely).

    Returns:
        (boxes ndarray[N, K, 4] float32 xyxy pixels of the video's frame size, labels ndarray[N]
        int64 0-based), tubes in the video's order.
    """
    wanted = np.arange(start, start + K)
    boxes, labels = [], []
    for tube in video.tubes:
        frames = np.asarray(tube.frames)
        pos = np.searchsorted(frames, wanted)
        if frames.size and np.array_equal(frames[np.minimum(pos, frames.size - 1)], wanted):
            boxes.append(np.asarray(tube.boxes, dtype=np.float32)[pos])
            labels.append(int(tube.label))
    if not boxes:
        return np.zeros((0, K, 4), np.float32), np.zeros((0,), np.int64)
    return np.stack(boxes).astype(np.float32), np.asarray(labels, np.int64)
