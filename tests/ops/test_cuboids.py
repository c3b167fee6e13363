from __future__ import annotations

import torch
from torch import Tensor
from torchvision.ops import box_iou

from singleshot.ops.boxes import cxcywh_to_xyxy
from singleshot.ops.coders import decode, encode
from singleshot.ops.cuboids import (
    anchor_cuboids,
    decode_tubelets,
    encode_tubelets,
    match_cuboids,
    tubelet_iou,
)
from singleshot.ops.matcher import match_priors
from singleshot.ops.priors import generate_priors, prior_spec


def _tubelets(n: int, k: int, g: torch.Generator, size: float = 100.0) -> Tensor:
    xy = torch.rand(n, k, 2, generator=g) * size * 0.7
    wh = torch.rand(n, k, 2, generator=g) * size * 0.3 + 2
    return torch.cat((xy, xy + wh), dim=-1)


def test_anchor_cuboids_repeat_each_prior() -> None:
    priors = torch.arange(12, dtype=torch.float32).view(3, 4)
    cub = anchor_cuboids(priors, 5)
    assert cub.shape == (3, 5, 4)
    for j in range(5):
        assert torch.equal(cub[:, j], priors)


def test_tubelet_iou_is_mean_of_torchvision_per_frame_iou() -> None:
    g = torch.Generator().manual_seed(0)
    a, b = _tubelets(5, 3, g), _tubelets(7, 3, g)
    ref = torch.stack([box_iou(a[:, j], b[:, j]) for j in range(3)]).mean(0)
    torch.testing.assert_close(tubelet_iou(a, b), ref)
    # batched leading dims
    torch.testing.assert_close(tubelet_iou(a[None].expand(2, -1, -1, -1), b), ref[None].expand(2, -1, -1))


def test_tubelet_iou_hand_values_and_plus_one() -> None:
    # frame 0 identical (IoU 1), frame 1 half overlap (IoU 1/3): mean 2/3
    a = torch.tensor([[[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 10.0]]])
    b = torch.tensor([[[0.0, 0.0, 10.0, 10.0], [5.0, 0.0, 15.0, 10.0]]])
    assert float(tubelet_iou(a, b)) == torch.tensor(2 / 3).item()
    # +1 pixels: frame 1 widths 11, intersection 6 x 11 = 66, union 242 - 66 = 176
    expected = (1.0 + 66.0 / 176.0) / 2
    assert abs(float(tubelet_iou(a, b, plus_one=True)) - expected) < 1e-6


def test_match_cuboids_k1_equals_ssd_matcher() -> None:
    g = torch.Generator().manual_seed(1)
    priors = cxcywh_to_xyxy(generate_priors(prior_spec("voc300"))) * 300
    counts = [3, 0, 5, 1]
    m = max(counts)
    gt = torch.zeros(len(counts), m, 4)
    valid = torch.zeros(len(counts), m, dtype=torch.bool)
    for i, c in enumerate(counts):
        gt[i, :c] = _tubelets(c, 1, g, 300.0)[:, 0]
        valid[i, :c] = True
    ref = match_priors(gt, valid, priors)
    ours = match_cuboids(gt[:, :, None], valid, priors)
    assert torch.equal(ours, ref)


def test_match_cuboids_mean_iou_threshold_and_force_best() -> None:
    priors = torch.tensor([[0.0, 0.0, 10.0, 10.0], [50.0, 50.0, 60.0, 60.0], [100.0, 0.0, 110.0, 10.0]])
    gt = torch.tensor(
        [
            # tubelet A: equals prior 0 in 2 of 3 frames, far away in the third: mean IoU 2/3 -> regular match
            [[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 10.0], [200.0, 200.0, 210.0, 210.0]],
            # tubelet B: equals prior 1 in one frame only: mean 1/3 < 0.5, forced onto prior 1 (its best)
            [[50.0, 50.0, 60.0, 60.0], [300.0, 300.0, 310.0, 310.0], [300.0, 300.0, 310.0, 310.0]],
            # padding
            [[100.0, 0.0, 110.0, 10.0]] * 3,
        ]
    )[None]
    valid = torch.tensor([[True, True, False]])
    matched = match_cuboids(gt, valid, priors)
    assert matched.tolist() == [[0, 1, -1]]  # prior 2 would match the padded row if it counted
    # B's overlap with prior 1 really is below the threshold: its match comes from the force rule
    overlap = tubelet_iou(gt[0, 1:2], anchor_cuboids(priors, 3))
    assert abs(float(overlap[0, 1]) - 1 / 3) < 1e-6
    # A alone: prior 0 by threshold, nothing else
    only_a = match_cuboids(gt[:, :1], torch.tensor([[True]]), priors)
    assert only_a.tolist() == [[0, -1, -1]]


def test_match_cuboids_batch_equals_single_samples() -> None:
    g = torch.Generator().manual_seed(2)
    priors = cxcywh_to_xyxy(generate_priors(prior_spec("voc300"))) * 100
    gts = [_tubelets(n, 4, g) for n in (2, 4, 0)]
    m = 4
    batch = torch.zeros(3, m, 4, 4)
    valid = torch.zeros(3, m, dtype=torch.bool)
    for i, t in enumerate(gts):
        batch[i, : len(t)] = t
        valid[i, : len(t)] = True
    together = match_cuboids(batch, valid, priors)
    for i, t in enumerate(gts):
        alone = match_cuboids(t[None], torch.ones(1, len(t), dtype=torch.bool), priors)
        assert torch.equal(together[i], alone[0])
    assert (together[2] == -1).all()
    assert (together[1] >= 0).sum() >= 4  # every ground truth gets at least its forced prior


def test_tubelet_coder_is_the_ssd_coder_per_frame_and_round_trips() -> None:
    g = torch.Generator().manual_seed(3)
    priors = generate_priors(prior_spec("voc300"))[:50]
    tubes = _tubelets(50, 6, g, 1.0).clamp(0, 1)
    deltas = encode_tubelets(tubes, priors)
    assert deltas.shape == (50, 6, 4)
    for j in range(6):
        torch.testing.assert_close(deltas[:, j], encode(tubes[:, j], priors))
    torch.testing.assert_close(decode_tubelets(deltas, priors), tubes, rtol=1e-5, atol=1e-5)
    # with leading batch dims and the head's [.., P, 4K] layout
    loc = deltas.flatten(-2)[None].expand(2, -1, -1)
    out = decode_tubelets(loc.unflatten(-1, (6, 4)), priors)
    for j in range(6):
        torch.testing.assert_close(out[:, :, j], decode(loc[..., 4 * j : 4 * j + 4], priors))
