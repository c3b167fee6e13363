"""ACT's linking candidates (``dets_all``): no cap before the 0.7 NMS by default (ACT runs its
``nms_tubelets`` over every cuboid), ``pre_top=`` / ``cand_min_score=`` reaching the predictor,
and the block-wise greedy NMS against the plain greedy rule."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from singleshot.config import build_config
from singleshot.errors import ConfigError
from singleshot.models.act import act_tiny
from singleshot.tasks.action.act_predictor import act_predictor
from singleshot.tasks.action.act_tubelets import (
    CandidateSettings,
    candidate_settings,
    greedy_tubelet_nms,
    linking_candidates,
)
from singleshot.tasks.action.config import ActionConfig

pytestmark = pytest.mark.usefixtures("one_thread")

K = 2


def _outputs(n_dup: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """``n_dup`` identical cuboids (one prior, zero offsets) scoring 0.9 … 0.5, then one cuboid
    elsewhere scoring 0.3: the best-score order puts the distinct one at rank ``n_dup + 1``."""
    p = n_dup + 1
    priors = torch.tensor([[0.3, 0.3, 0.2, 0.2]]).repeat(p, 1)
    priors[-1] = torch.tensor([0.75, 0.75, 0.2, 0.2])
    probs = torch.full((p, 3), 0.0)
    probs[:-1, 1] = torch.linspace(0.9, 0.5, n_dup)
    probs[-1, 2] = 0.3
    probs[:, 0] = 1.0 - probs[:, 1:].sum(1)  # background
    conf = probs.clamp(min=1e-9).log()[None]
    loc = torch.zeros(1, p, 4 * K)
    return {"conf": conf, "loc": loc}, priors


def test_a_candidate_beyond_the_old_cap_of_1000_still_enters_the_nms() -> None:
    outputs, priors = _outputs(1000)
    boxes, scores = linking_candidates(outputs, priors, [(100, 100)])[0]
    # ACT: the first duplicate suppresses the other 999 (mean IoU 1 > 0.7), the distinct cuboid
    # (rank 1001) is kept; a cap of 1000 before the NMS lost it
    assert boxes.shape == (2, K, 4) and scores.shape == (2, 2)
    torch.testing.assert_close(boxes[1, 0], torch.tensor([65.0, 65.0, 85.0, 85.0]))
    torch.testing.assert_close(scores[:, 1], torch.tensor([0.0, 0.3]), atol=1e-6, rtol=0)
    capped = linking_candidates(outputs, priors, [(100, 100)], CandidateSettings(pre_top=1000))[0][0]
    assert capped.shape == (1, K, 4)


def test_pre_top_key_reaches_the_predictor() -> None:
    assert CandidateSettings().pre_top == 0 and candidate_settings(ActionConfig()) == CandidateSettings()
    cfg = build_config(ActionConfig, overrides={"model": "act", "pre_top": "7", "cand_min_score": "0"})
    assert candidate_settings(cfg) == CandidateSettings(pre_top=7, min_score=0.0)
    meta = {"family": "act", "arch_kwargs": {"k": K, "image_size": 64, "width": 0.25}, "input_size": [64, 64]}
    predictor = act_predictor(act_tiny(3, k=K, image_size=64, width=0.25), meta, cfg)
    assert predictor.candidates.pre_top == 7 and predictor.candidates.min_score == 0.0
    with pytest.raises(ConfigError, match="pre_top=-1"):
        candidate_settings(ActionConfig(pre_top=-1))


def _plain_greedy(boxes: np.ndarray, thresh: float, keep: int) -> list[int]:
    def iou(a: np.ndarray, b: np.ndarray) -> float:
        iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - iw * ih
        return iw * ih / union if union > 0 else 0.0

    kept: list[int] = []
    for j in range(len(boxes)):
        if len(kept) == keep:
            break
        if all(np.mean([iou(boxes[j, f], boxes[q, f]) for f in range(boxes.shape[1])]) <= thresh for q in kept):
            kept.append(j)
    return kept


@pytest.mark.parametrize(("thresh", "keep", "block"), [(0.3, 1000, 16), (0.5, 25, 7), (0.1, 3, 64)])
def test_block_wise_greedy_nms_equals_the_plain_rule(thresh: float, keep: int, block: int) -> None:
    g = torch.Generator().manual_seed(1)
    xy = torch.rand(150, K, 2, generator=g) * 60
    wh = torch.rand(150, 1, 2, generator=g) * 30 + 5
    boxes = torch.cat([xy, xy + wh], -1)  # score-sorted by construction: rank = index
    got = greedy_tubelet_nms(boxes, thresh, keep, block=block)
    assert got.dtype == torch.bool and got.shape == (150,)
    assert got.nonzero().squeeze(1).tolist() == _plain_greedy(boxes.numpy().astype(np.float64), thresh, keep)
