"""Per-video coverage of the ground truth (``action val``'s worst videos), by hand."""

from __future__ import annotations

import numpy as np
import pytest

from singleshot.metrics.action_diagnostics import video_recalls
from singleshot.structures import ActionAnnotations, Tube, VideoAnnotation

BOX = [10.0, 10.0, 40.0, 40.0]


def _gt() -> ActionAnnotations:
    videos = {}
    for name in ("C/a", "C/b", "C/c"):
        frames = np.arange(1, 5, dtype=np.int64)
        videos[name] = VideoAnnotation(name, 6, (100, 100), [Tube(name, 0, frames, np.tile(BOX, (4, 1)))])
    return ActionAnnotations(["p", "q"], videos, test_videos=["C/a", "C/b", "C/c"])


def test_video_recalls_by_hand() -> None:
    near = [12.0, 12.0, 42.0, 42.0]  # IoU 784 / 1016 with BOX
    rows = [
        [0, 1, 0, 0.9, *BOX],  # a: frames 1-4 all covered
        [0, 2, 0, 0.9, *near],
        [0, 3, 0, 0.9, *BOX],
        [0, 4, 0, 0.9, *BOX],
        [1, 1, 0, 0.9, *BOX],  # b: frame 1 covered, frame 2 only below show_conf,
        [1, 2, 0, 0.1, *BOX],
        [1, 3, 1, 0.9, *BOX],  # frame 3 by the wrong class, frame 4 on the wrong frame (5)
        [1, 5, 0, 0.9, *BOX],
        [2, 2, 0, 0.9, 60.0, 60.0, 90.0, 90.0],  # c: one far-off box
    ]
    got = video_recalls(_gt(), np.asarray(rows), conf=0.3)
    assert [r.video for r in got] == ["C/c", "C/b", "C/a"]  # lowest recall first
    c, b, a = got
    assert (c.found, c.boxes, c.recall) == (0, 4, 0.0) and c.missed_frames.tolist() == [1, 2, 3, 4]
    assert (b.found, b.boxes) == (1, 4) and b.missed_frames.tolist() == [2, 3, 4]
    assert (a.found, a.boxes, a.recall) == (4, 4, 1.0) and a.missed_frames.size == 0
    # a stricter IoU than the near box's 0.77 misses frame 2 of a
    strict = {r.video: r for r in video_recalls(_gt(), np.asarray(rows), conf=0.3, iou=0.8)}
    assert strict["C/a"].missed_frames.tolist() == [2]
    assert strict["C/a"].recall == pytest.approx(0.75)
