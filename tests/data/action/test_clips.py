"""Clip frame selection (YOWO) and tubelet starts / boxes (ACT) against hand-worked and brute-force answers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from singleshot.data.action.clips import (
    act_all_starts,
    act_valid_starts,
    sample_clip_stride,
    tubelet_boxes,
    yowo_clip_frames,
)
from singleshot.structures import Tube, VideoAnnotation


def _tube(label: int, frames: list[int], offset: float = 0.0) -> Tube:
    f = np.asarray(frames, dtype=np.int64)
    boxes = np.stack([f + offset, f + 1.0, f + offset + 10.0, f + 20.0], axis=1).astype(np.float32)
    return Tube(video="C/v", label=label, frames=f, boxes=boxes)


def test_yowo_clip_frames_hand_worked() -> None:
    assert yowo_clip_frames(10, 3, 1, 40) == [8, 9, 10]
    assert yowo_clip_frames(5, 4, 2, 10) == [1, 1, 3, 5]  # 5-6 = -1 is clamped to frame 1
    assert yowo_clip_frames(1, 3, 1, 10) == [1, 1, 1]
    assert yowo_clip_frames(12, 2, 1, 10) == [10, 10]  # key beyond the video: clamped too
    assert yowo_clip_frames(2, 4, 1, 10, wrap=True) == [9, 10, 1, 2]  # original YOWO loops
    assert yowo_clip_frames(7, 1, 2, 10) == [7]
    with pytest.raises(ValueError):
        yowo_clip_frames(5, 0, 1, 10)


def test_sample_clip_stride_is_seeded_and_covers_choices() -> None:
    draws = [sample_clip_stride(torch.Generator().manual_seed(s)) for s in range(40)]
    assert set(draws) == {1, 2}
    again = [sample_clip_stride(torch.Generator().manual_seed(s)) for s in range(40)]
    assert draws == again
    assert sample_clip_stride(torch.Generator().manual_seed(0), choices=(3,)) == 3


def _brute_valid(video: VideoAnnotation, K: int) -> list[int]:
    sets = [set(t.frames.tolist()) for t in video.tubes]
    out = []
    for s in range(1, video.num_frames - K + 2):
        window = set(range(s, s + K))
        inside = [window <= fs for fs in sets]
        outside = [not (window & fs) for fs in sets]
        if all(i or o for i, o in zip(inside, outside)) and any(inside):
            out.append(s)
    return out


def test_act_valid_starts_hand_worked() -> None:
    video = VideoAnnotation("C/v", 12, (240, 320), [_tube(0, list(range(3, 11)))])
    assert act_valid_starts(video, 3) == [3, 4, 5, 6, 7, 8]
    assert act_valid_starts(video, 8) == [3]
    assert act_valid_starts(video, 9) == []
    assert act_valid_starts(VideoAnnotation("C/v", 12, (240, 320), []), 3) == []


def test_act_valid_starts_matches_brute_force_with_overlaps_and_gaps() -> None:
    rng = np.random.default_rng(3)
    for trial in range(30):
        n = int(rng.integers(10, 40))
        tubes = []
        for m in range(int(rng.integers(1, 4))):
            a, b = sorted(rng.integers(1, n + 1, 2).tolist())
            frames = [f for f in range(a, b + 1) if not (trial % 3 == 0 and f == (a + b) // 2 and b - a > 2)]
            tubes.append(_tube(m, frames))
        video = VideoAnnotation("C/v", n, (240, 320), tubes)
        for K in (1, 3, 6):
            assert act_valid_starts(video, K) == _brute_valid(video, K), (trial, K)


def test_act_all_starts() -> None:
    video = VideoAnnotation("C/v", 10, (240, 320), [])
    assert act_all_starts(video, 3) == list(range(1, 9))
    assert act_all_starts(video, 11) == []


def test_tubelet_boxes_values_and_partial_tubes_left_out() -> None:
    video = VideoAnnotation(
        "C/v", 20, (240, 320), [_tube(2, list(range(3, 11))), _tube(1, list(range(6, 16)), offset=100.0)]
    )
    boxes, labels = tubelet_boxes(video, 6, 4)  # frames 6..9: both tubes cover them
    assert boxes.shape == (2, 4, 4) and boxes.dtype == np.float32
    assert labels.tolist() == [2, 1]
    np.testing.assert_array_equal(boxes[0, :, 0], [6, 7, 8, 9])
    np.testing.assert_array_equal(boxes[1, :, 0], [106, 107, 108, 109])
    np.testing.assert_array_equal(boxes[1, 2], [108, 9, 118, 28])
    boxes, labels = tubelet_boxes(video, 9, 4)  # frames 9..12: the first tube ends at 10
    assert labels.tolist() == [1] and boxes.shape == (1, 4, 4)
    boxes, labels = tubelet_boxes(video, 17, 3)
    assert boxes.shape == (0, 3, 4) and labels.shape == (0,)
    gap = VideoAnnotation("C/v", 20, (240, 320), [_tube(0, [1, 2, 4, 5])])
    assert tubelet_boxes(gap, 1, 3)[0].shape[0] == 0  # frame 3 missing
