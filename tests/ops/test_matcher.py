from __future__ import annotations

import torch
from torchvision.models.detection._utils import SSDMatcher
from torchvision.ops import box_iou

from singleshot.ops.boxes import cxcywh_to_xyxy
from singleshot.ops.matcher import match_priors
from singleshot.ops.priors import generate_priors, prior_spec


def test_matches_torchvision_ssd_matcher_per_image() -> None:
    g = torch.Generator().manual_seed(0)
    priors = cxcywh_to_xyxy(generate_priors(prior_spec("voc300")))
    counts = [3, 0, 5, 1]
    m = max(counts)
    gt = torch.zeros(len(counts), m, 4)
    valid = torch.zeros(len(counts), m, dtype=torch.bool)
    for i, n in enumerate(counts):
        xy = torch.rand(n, 2, generator=g) * 0.7
        wh = torch.rand(n, 2, generator=g) * 0.3 + 0.02
        gt[i, :n] = torch.cat((xy, xy + wh), 1)
        valid[i, :n] = True
    ours = match_priors(gt, valid, priors)
    matcher = SSDMatcher(0.5)
    for i, n in enumerate(counts):
        if n == 0:
            assert bool((ours[i] == -1).all())
            continue
        theirs = matcher(box_iou(gt[i, :n], priors))
        assert torch.equal(ours[i], theirs)


def test_force_best_prior_below_threshold() -> None:
    priors = torch.tensor([[0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0]])
    # a small box inside the first prior: IoU 0.04 < 0.5, still matched to it
    gt = torch.tensor([[[0.1, 0.1, 0.2, 0.2]]])
    out = match_priors(gt, torch.tensor([[True]]), priors)
    assert out.tolist() == [[0, -1]]


def test_padding_never_matches() -> None:
    priors = torch.tensor([[0.0, 0.0, 0.5, 0.5]])
    gt = torch.tensor([[[0.0, 0.0, 0.5, 0.5], [0.0, 0.0, 0.5, 0.5]]])
    out = match_priors(gt, torch.tensor([[True, False]]), priors)
    assert out.tolist() == [[0]]


def test_chunking_and_per_image_priors_do_not_change_the_result() -> None:
    """Duplicate ground truths (ties on the short axis), invalid rows in the middle, a batch split
    into one-image chunks or none, and priors given per image: the same matches as torchvision's
    matcher on each image's valid boxes."""
    g = torch.Generator().manual_seed(3)
    priors = cxcywh_to_xyxy(generate_priors(prior_spec("voc300"))) * 300
    b, m = 5, 6
    xy = (torch.rand(b, m, 2, generator=g) * 200).round()
    gt = torch.cat((xy, xy + (torch.rand(b, m, 2, generator=g) * 90 + 10).round()), -1)
    gt[:, 3] = gt[:, 1]  # duplicates: the later one keeps the shared best prior
    valid = torch.ones(b, m, dtype=torch.bool)
    valid[1, 2] = valid[2, 0] = False
    valid[4] = False  # an image with nothing
    whole = match_priors(gt, valid, priors, chunk_elements=1 << 30)
    assert torch.equal(whole, match_priors(gt, valid, priors, chunk_elements=1))
    assert torch.equal(whole, match_priors(gt, valid, priors[None].expand(b, -1, -1), chunk_elements=1000))
    matcher = SSDMatcher(0.5)
    for i in range(b):
        keep = valid[i].nonzero().squeeze(1)
        if len(keep) == 0:
            assert bool((whole[i] == -1).all())
            continue
        theirs = matcher(box_iou(gt[i, keep], priors))
        expected = torch.where(theirs >= 0, keep[theirs.clamp(min=0)], -1)
        assert torch.equal(whole[i], expected)


def test_threshold_zero_never_matches_padding_or_empty_images() -> None:
    priors = torch.tensor([[0.0, 0.0, 0.5, 0.5], [0.6, 0.6, 1.0, 1.0]])
    gt = torch.tensor([[[0.0, 0.0, 0.4, 0.4], [0.6, 0.6, 1.0, 1.0]], [[0.0, 0.0, 0.5, 0.5], [0.0, 0.0, 0.0, 0.0]]])
    valid = torch.tensor([[True, False], [False, False]])
    out = match_priors(gt, valid, priors, iou_threshold=0.0)
    assert out.tolist() == [[0, 0], [-1, -1]]
