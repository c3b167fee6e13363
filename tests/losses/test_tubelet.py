from __future__ import annotations

import math
import time

import pytest
import torch
from torch import Tensor

from singleshot.errors import DataError
from singleshot.losses.multibox import MultiBoxLoss
from singleshot.losses.tubelet import TubeletLoss, assign_cuboids, pad_tubelet_targets
from singleshot.models.act import act_tiny
from singleshot.ops.priors import generate_priors, prior_spec
from singleshot.structures import BoxTarget, TubeletTarget


def _boxes(n: int, k: int, g: torch.Generator, size: int = 300) -> Tensor:
    xy = torch.rand(n, k, 2, generator=g) * size * 0.7
    wh = torch.rand(n, k, 2, generator=g) * size * 0.3 + 4
    return torch.cat((xy, xy + wh), -1)


@pytest.mark.parametrize("counts", [[3, 1, 4, 2], [2, 0, 5], [0, 0]])
def test_k1_equals_multibox_loss(counts: list[int]) -> None:
    g = torch.Generator().manual_seed(len(counts) + sum(counts))
    priors = generate_priors(prior_spec("voc300"))
    p = priors.shape[0]
    boxes = [_boxes(n, 1, g) for n in counts]
    labels = [torch.randint(0, 5, (n,), generator=g) for n in counts]
    logits = torch.randn(len(counts), p, 6, generator=g) * 2
    regression = torch.randn(len(counts), p, 4, generator=g)
    ours = TubeletLoss(priors, 1)(
        {"loc": regression, "conf": logits},
        [TubeletTarget(boxes=b, labels=lb, size=(300, 300)) for b, lb in zip(boxes, labels)],
    )
    ref = MultiBoxLoss(priors)(
        {"bbox_regression": regression, "cls_logits": logits},
        [BoxTarget(boxes=b[:, 0], labels=lb, size=(300, 300)) for b, lb in zip(boxes, labels)],
    )
    torch.testing.assert_close(ours["loss_loc"], ref["loc"], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ours["loss_conf"], ref["conf"], rtol=1e-5, atol=1e-6)


def test_hand_check_of_the_one_over_k_weight_and_the_mining() -> None:
    # Three far-apart priors (cxcywh, normalised); one ground-truth tubelet of K=2 frames sitting
    # exactly on prior 0 in both frames: prior 0 is the only positive and its targets are 0.
    priors = torch.tensor([[0.1, 0.1, 0.1, 0.1], [0.5, 0.5, 0.1, 0.1], [0.9, 0.9, 0.1, 0.1]])
    box = torch.tensor([5.0, 5.0, 15.0, 15.0])  # prior 0 in a 100 x 100 input
    target = TubeletTarget(boxes=box.expand(1, 2, 4).clone(), labels=torch.tensor([1]), size=(100, 100))
    loc = torch.zeros(1, 3, 8)
    loc[0, 0] = torch.tensor([0.5, -0.5, 0.5, 0.5, 2.0, 0.0, -3.0, 0.0])
    logits = torch.tensor([[[0.0, 1.0, 2.0], [1.0, 0.0, 0.0], [0.0, 2.0, 0.0]]])
    out = TubeletLoss(priors, 2)({"loc": loc, "conf": logits}, [target])
    # smooth-L1 (beta 1): 4 x 0.125 for the +-0.5 values, 1.5 and 2.5 for 2 and -3, 0 elsewhere
    loc_sum = 4 * 0.125 + 1.5 + 2.5
    assert float(out["loss_loc"]) == pytest.approx(loc_sum / 2)  # weight 1/K, one positive

    # conf: the positive against class 2 (label 1 + 1), and min(3 x 1, 2) = 2 negatives
    def ce(row: list[float], cls: int) -> float:
        return math.log(sum(math.exp(v) for v in row)) - row[cls]

    expected = ce([0.0, 1.0, 2.0], 2) + ce([1.0, 0.0, 0.0], 0) + ce([0.0, 2.0, 0.0], 0)
    assert float(out["loss_conf"]) == pytest.approx(expected, rel=1e-6)
    weighted = TubeletLoss(priors, 2, loc_weight=1.0)({"loc": loc, "conf": logits}, [target])
    assert float(weighted["loss_loc"]) == pytest.approx(loc_sum)


def test_batch_loss_is_the_positive_weighted_sum_of_sample_losses() -> None:
    g = torch.Generator().manual_seed(7)
    priors = generate_priors(prior_spec("voc300"))
    k = 3
    targets = [
        TubeletTarget(boxes=_boxes(n, k, g), labels=torch.randint(0, 4, (n,), generator=g), size=(300, 300))
        for n in (2, 0, 3)
    ]
    loc = torch.randn(3, priors.shape[0], 4 * k, generator=g)
    conf = torch.randn(3, priors.shape[0], 5, generator=g)
    loss = TubeletLoss(priors, k)
    together = loss({"loc": loc, "conf": conf}, targets)

    def npos(t: TubeletTarget) -> int:
        labels, _ = assign_cuboids(pad_tubelet_targets([t], k, torch.device("cpu")), priors)
        return int((labels > 0).sum())

    counts = [npos(t) for t in targets]
    assert counts[1] == 0 and counts[0] >= 2 and counts[2] >= 3
    for key in ("loss_loc", "loss_conf"):
        parts = [
            loss({"loc": loc[i : i + 1], "conf": conf[i : i + 1]}, [t])[key] * max(n, 1)
            for i, (t, n) in enumerate(zip(targets, counts))
        ]
        assert float(parts[1]) == 0.0  # a sample without ground truth contributes nothing
        torch.testing.assert_close(together[key] * sum(counts), sum(parts), rtol=1e-5, atol=1e-5)


def test_samples_without_ground_truth_give_zero_finite_loss() -> None:
    priors = generate_priors(prior_spec("voc300"))
    loc = torch.randn(2, priors.shape[0], 8, requires_grad=True)
    conf = torch.randn(2, priors.shape[0], 3, requires_grad=True)
    empty = [TubeletTarget(size=(300, 300)), TubeletTarget(boxes=torch.zeros(0, 2, 4), size=(300, 300))]
    out = TubeletLoss(priors, 2)({"loc": loc, "conf": conf}, empty)
    assert out["loss_loc"].item() == 0.0 and out["loss_conf"].item() == 0.0
    (out["loss_loc"] + out["loss_conf"]).backward()
    assert torch.isfinite(loc.grad).all() and torch.isfinite(conf.grad).all()


def test_tubelets_of_the_wrong_length_name_the_sample() -> None:
    priors = generate_priors(prior_spec("voc300"))
    bad = TubeletTarget(
        boxes=torch.zeros(1, 3, 4),
        labels=torch.zeros(1, dtype=torch.int64),
        video="Run/v_01",
        frames=torch.tensor([4, 5, 6]),
        size=(300, 300),
    )
    outputs = {"loc": torch.zeros(1, priors.shape[0], 8), "conf": torch.zeros(1, priors.shape[0], 3)}
    with pytest.raises(DataError, match="Run/v_01"):
        TubeletLoss(priors, 2)(outputs, [bad])


def _moving_square(
    k: int, size: int, start: tuple[int, int], step: tuple[int, int], side: int, color: list[float], label: int
) -> tuple[Tensor, TubeletTarget]:
    """K frames of a coloured square moving by ``step`` pixels per frame, and its tubelet."""
    frames = torch.zeros(k, 3, size, size)
    boxes = []
    for j in range(k):
        x, y = start[0] + step[0] * j, start[1] + step[1] * j
        frames[j, :, y : y + side, x : x + side] = torch.tensor(color)[:, None, None]
        boxes.append([x, y, x + side, y + side])
    target = TubeletTarget(
        boxes=torch.tensor([boxes], dtype=torch.float32), labels=torch.tensor([label]), size=(size, size)
    )
    return frames, target


def test_act_tiny_overfits_two_synthetic_clips() -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model: one thread is fastest and immune to a busy machine
    try:
        torch.manual_seed(0)
        k, size = 3, 64
        f0, t0 = _moving_square(k, size, (8, 10), (5, 0), 20, [1.0, -1.0, 0.5], 0)
        f1, t1 = _moving_square(k, size, (30, 6), (0, 6), 24, [-1.0, 1.0, 1.0], 1)
        frames, targets = torch.stack([f0, f1]), [t0, t1]
        model = act_tiny(2, k=k, image_size=size, width=0.5)
        loss = TubeletLoss(model.priors, k)
        opt = torch.optim.Adam(model.parameters(), lr=3e-3)
        start = time.perf_counter()
        history = []
        for _ in range(30):
            parts = loss(model(frames), targets)
            total = parts["loss_loc"] + parts["loss_conf"]
            history.append(total.item())
            opt.zero_grad()
            total.backward()
            opt.step()
        assert history[-1] < history[0] / 20, history
        assert time.perf_counter() - start < 30
    finally:
        torch.set_num_threads(threads)
