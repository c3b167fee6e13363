from __future__ import annotations

import pytest
import torch
from torchvision.models.detection import ssd300_vgg16
from torchvision.ops import box_iou

from singleshot.losses.multibox import MultiBoxLoss, assign_targets, background_loss, hard_negative_mask, pad_targets
from singleshot.ops.boxes import cxcywh_to_xyxy
from singleshot.ops.priors import generate_priors, prior_spec
from singleshot.structures import BoxTarget


def _targets(counts: list[int], num_classes: int, g: torch.Generator, size: int = 300) -> list[BoxTarget]:
    out = []
    for n in counts:
        xy = torch.rand(n, 2, generator=g) * size * 0.7
        wh = torch.rand(n, 2, generator=g) * size * 0.3 + 4
        out.append(
            BoxTarget(
                boxes=torch.cat((xy, xy + wh), 1),
                labels=torch.randint(0, num_classes, (n,), generator=g),
                difficult=torch.zeros(n, dtype=torch.bool),
                size=(size, size),
            )
        )
    return out


@pytest.fixture(scope="module")
def tv_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return ssd300_vgg16(weights=None, weights_backbone=None, num_classes=6).eval()


def _torchvision_loss(model: torch.nn.Module, targets: list[BoxTarget], outputs: dict, priors: torch.Tensor) -> dict:
    anchors = cxcywh_to_xyxy(priors) * 300
    tv_targets = [{"boxes": t.boxes, "labels": t.labels + 1} for t in targets]
    matched = []
    for t in tv_targets:
        if t["boxes"].numel() == 0:
            matched.append(torch.full((anchors.shape[0],), -1, dtype=torch.int64))
        else:
            matched.append(model.proposal_matcher(box_iou(t["boxes"], anchors)))
    return model.compute_loss(tv_targets, outputs, [anchors] * len(targets), matched)


@pytest.mark.parametrize("counts", [[3, 1, 4, 2], [2, 0, 5], [0, 0]])
def test_equals_torchvision_compute_loss(tv_model: torch.nn.Module, counts: list[int]) -> None:
    g = torch.Generator().manual_seed(sum(counts) + len(counts))
    priors = generate_priors(prior_spec("coco300"))
    p = priors.shape[0]
    targets = _targets(counts, 5, g)
    outputs = {
        "cls_logits": torch.randn(len(counts), p, 6, generator=g) * 2,
        "bbox_regression": torch.randn(len(counts), p, 4, generator=g),
    }
    ours = MultiBoxLoss(priors)(outputs, targets)
    theirs = _torchvision_loss(tv_model, targets, outputs, priors)
    torch.testing.assert_close(ours["loc"], theirs["bbox_regression"], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ours["conf"], theirs["classification"], rtol=1e-5, atol=1e-6)


def test_conf_targets_are_matched_prior_classes_not_raw_labels() -> None:
    # one object of class 2 (0-based): its matched priors carry 3, every other prior 0
    priors = generate_priors(prior_spec("voc300"))
    t = BoxTarget(boxes=torch.tensor([[30.0, 40.0, 120.0, 200.0]]), labels=torch.tensor([2]), size=(300, 300))
    labels, _ = assign_targets(pad_targets([t], torch.device("cpu")), priors)
    assert set(labels.unique().tolist()) == {0, 3}
    assert int((labels == 3).sum()) >= 1


def test_hard_negatives_three_per_positive_highest_loss() -> None:
    ce = torch.tensor([[0.1, 0.9, 0.5, 0.8, 0.7, 0.2, 5.0, 0.3]])
    pos = torch.zeros_like(ce, dtype=torch.bool)
    pos[0, 6] = True
    neg = hard_negative_mask(ce, pos, 3.0)
    assert neg.nonzero()[:, 1].tolist() == [1, 3, 4]
    # no positives -> no negatives
    assert not hard_negative_mask(ce, torch.zeros_like(pos), 3.0).any()


def test_image_without_objects_gives_finite_zero_loss_and_gradients() -> None:
    priors = generate_priors(prior_spec("voc300"))
    logits = torch.randn(2, priors.shape[0], 3, requires_grad=True)
    reg = torch.randn(2, priors.shape[0], 4, requires_grad=True)
    loss = MultiBoxLoss(priors)({"cls_logits": logits, "bbox_regression": reg}, [BoxTarget(size=(300, 300))] * 2)
    total = loss["loc"] + loss["conf"]
    total.backward()
    assert total.item() == 0.0 and torch.isfinite(logits.grad).all()


def test_background_loss_equals_log_softmax_including_extreme_rows() -> None:
    """The fast path (unshifted exp, chunked) and its exact fallback for overflowing, underflowing
    and NaN rows, against ``-log_softmax(x)[..., 0]``."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 50, 6, generator=g) * 4
    x[0, 1] = torch.tensor([200.0, 150.0, -3.0, 0.0, 1.0, 2.0])  # exp overflows
    x[1, 2] = -500.0 + torch.arange(6.0)  # exp underflows to 0
    x[2, 3] = -95.0 + torch.arange(6.0)  # subnormal sums: too few significant bits
    x[2, 4, 1] = float("nan")
    expected = -torch.log_softmax(x.double(), dim=-1)[..., 0].float()
    for chunk in (1, 100, 1 << 20):
        got = background_loss(x, chunk_elements=chunk)
        assert torch.isnan(got[2, 4])
        mask = ~torch.isnan(expected)
        torch.testing.assert_close(got[mask], expected[mask], rtol=1e-5, atol=1e-5)
