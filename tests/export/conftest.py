"""Helpers shared by the export tests."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest
import torch

from singleshot.structures import Detections


def _assert_same(got: Sequence[Detections], ref: Sequence[Detections], score_atol: float = 1e-4, box_atol: float = 1e-2) -> None:
    """Every detection of ``ref`` has its own partner in ``got`` (same label, score and box within
    tolerance), image by image. Matching instead of sorting: near-equal scores may come in any order."""
    assert len(got) == len(ref)
    for g, r in zip(got, ref):
        assert len(g) == len(r)
        close = (
            (g.labels[None, :] == r.labels[:, None])
            & ((g.scores[None, :] - r.scores[:, None]).abs() <= score_atol)
            & ((g.boxes[None, :, :] - r.boxes[:, None, :]).abs().amax(-1) <= box_atol)
        )  # [len(r), len(g)]
        used = torch.zeros(len(g), dtype=torch.bool)
        for i in range(len(r)):
            free = (close[i] & ~used).nonzero()
            assert len(free) > 0, f"no match for detection {i}: label {int(r.labels[i])} score {float(r.scores[i]):.6f} box {r.boxes[i].tolist()}"
            used[free[0, 0]] = True


@pytest.fixture()
def assert_same_detections() -> Callable[..., None]:
    return _assert_same
