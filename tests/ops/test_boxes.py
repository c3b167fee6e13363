from __future__ import annotations

import torch
from torchvision.ops import box_iou

from singleshot.ops.boxes import clip_boxes, pairwise_iou


def test_pairwise_iou_matches_torchvision_and_batches() -> None:
    g = torch.Generator().manual_seed(0)
    a = torch.rand(3, 7, 4, generator=g) * 50
    a[..., 2:] += a[..., :2]
    b = torch.rand(11, 4, generator=g) * 50
    b[:, 2:] += b[:, :2]
    ours = pairwise_iou(a, b)
    assert ours.shape == (3, 7, 11)
    for i in range(3):
        torch.testing.assert_close(ours[i], box_iou(a[i], b))


def test_plus_one_convention_by_hand() -> None:
    a = torch.tensor([[0.0, 0.0, 9.0, 9.0]])
    b = torch.tensor([[5.0, 0.0, 14.0, 9.0]])
    # +1: 10x10 boxes overlapping 5x10 -> 50 / 150; without: 9x9 overlapping 4x9 -> 36 / 126
    assert abs(pairwise_iou(a, b, plus_one=True).item() - 50 / 150) < 1e-7
    assert abs(pairwise_iou(a, b).item() - 36 / 126) < 1e-7


def test_degenerate_boxes_give_zero_not_nan() -> None:
    a = torch.tensor([[1.0, 1.0, 1.0, 1.0]])
    assert pairwise_iou(a, a).item() == 0.0


def test_clip() -> None:
    out = clip_boxes(torch.tensor([[-5.0, 2.0, 120.0, 90.0]]), height=80, width=100)
    assert out.tolist() == [[0.0, 2.0, 100.0, 80.0]]


def test_pairwise_iou_is_differentiable() -> None:
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0]], requires_grad=True)
    b = torch.tensor([[1.0, 1.0, 3.0, 3.0], [5.0, 5.0, 6.0, 6.0]])
    iou = pairwise_iou(a, b)
    iou.sum().backward()
    assert torch.allclose(iou.detach(), torch.tensor([[1 / 7, 0.0]]))
    assert a.grad is not None and torch.isfinite(a.grad).all()


def test_pairwise_iou_into_buffers_equals_plain() -> None:
    g = torch.Generator().manual_seed(1)
    a = torch.rand(2, 5, 4, generator=g) * 40
    a[..., 2:] += a[..., :2]
    b = torch.rand(9, 4, generator=g) * 40
    b[:, 2:] += b[:, :2]
    out = torch.full((2, 5, 9), 7.0)
    work = (torch.full((2, 5, 9), -3.0), torch.full((2, 5, 9), 5.0))
    res = pairwise_iou(a, b, out=out, work=work)
    assert res.data_ptr() == out.data_ptr()
    assert torch.equal(res, pairwise_iou(a, b))
