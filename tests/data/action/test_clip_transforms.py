"""Clip augmentation: same draw for every frame, boxes follow the pixels, references from torchvision
and colorsys."""

from __future__ import annotations

import colorsys

import numpy as np
import pytest
import torch
from torchvision import tv_tensors
from torchvision.ops import box_iou
from torchvision.transforms.v2 import functional as F

from singleshot.data.action.clip_transforms import (
    ActClipAugment,
    ClipResize,
    TubeletIoUCrop,
    YowoClipAugment,
    crop_clip,
    flip_clip,
    hsv_distort,
    hsv_to_rgb,
    resize_clip,
    rgb_to_hsv,
    sanitize_tubelets,
)


def _bb(boxes: torch.Tensor, hw: tuple[int, int]) -> tv_tensors.BoundingBoxes:
    return tv_tensors.BoundingBoxes(boxes.reshape(-1, 4), format="XYXY", canvas_size=hw)


def test_flip_twice_is_identity_and_matches_torchvision() -> None:
    g = torch.Generator().manual_seed(0)
    clip = torch.randint(0, 256, (3, 3, 10, 14), dtype=torch.uint8, generator=g)
    boxes = torch.tensor([[[1.0, 2, 5, 7], [2, 2, 6, 8]], [[8, 0, 14, 3], [7, 1, 13, 4]]])  # [N=2, K=2, 4]
    c1, b1 = flip_clip(clip, boxes)
    c2, b2 = flip_clip(c1, b1)
    assert torch.equal(c2, clip) and torch.equal(b2, boxes)
    assert torch.equal(c1, clip.flip(-1))
    ref = F.horizontal_flip(_bb(boxes, (10, 14))).as_subclass(torch.Tensor)
    assert torch.equal(b1.reshape(-1, 4), ref)


def test_crop_with_padding_matches_reference() -> None:
    g = torch.Generator().manual_seed(1)
    clip = torch.randint(1, 256, (2, 3, 12, 16), dtype=torch.uint8, generator=g)
    boxes = torch.tensor([[1.0, 1, 6, 6], [10, 4, 15, 11]])
    out, ob = crop_clip(clip, boxes, top=-2, left=3, height=10, width=16, fill=7)
    assert out.shape == (2, 3, 10, 16)
    ref = torch.full((2, 3, 16, 20), 7, dtype=torch.uint8)  # pad 2 rows on top, 3 columns on the right
    ref[:, :, 2:14, 0:16] = clip
    assert torch.equal(out, ref[:, :, 0:10, 3:19])
    tv = F.crop(_bb(boxes, (12, 16)), top=-2, left=3, height=10, width=16).as_subclass(torch.Tensor)
    assert torch.allclose(ob, tv)


def test_resize_boxes_match_torchvision() -> None:
    clip = torch.zeros((2, 3, 30, 40), dtype=torch.uint8)
    boxes = torch.tensor([[[3.0, 4, 20, 25]] * 2])
    out, ob = resize_clip(clip, boxes, (45, 20))
    assert out.shape == (2, 3, 45, 20)
    ref = F.resize(_bb(boxes, (30, 40)), [45, 20]).as_subclass(torch.Tensor)
    assert torch.allclose(ob.reshape(-1, 4), ref)


def test_hsv_round_trip_and_colorsys() -> None:
    g = torch.Generator().manual_seed(2)
    rgb = torch.rand((2, 3, 5, 6), generator=g)
    rgb[0, :, 0, 0] = 0.5  # a grey: hue 0, saturation 0
    hsv = rgb_to_hsv(rgb)
    assert torch.allclose(hsv_to_rgb(hsv), rgb, atol=1e-5)
    for t, y, x in [(0, 0, 0), (0, 1, 2), (1, 4, 5), (1, 2, 3)]:
        ref = colorsys.rgb_to_hsv(*rgb[t, :, y, x].tolist())
        assert np.allclose(hsv[t, :, y, x].tolist(), ref, atol=1e-5)
    out = hsv_distort(rgb, 0.3, 1.4, 0.7)
    for t, y, x in [(0, 1, 2), (1, 3, 3)]:
        h, s, v = colorsys.rgb_to_hsv(*rgb[t, :, y, x].tolist())
        ref = colorsys.hsv_to_rgb((h + 0.3) % 1.0, min(s * 1.4, 1.0), min(v * 0.7, 1.0))
        assert np.allclose(out[t, :, y, x].tolist(), ref, atol=1e-5)


def test_sanitize_drops_tubelet_with_one_degenerate_frame() -> None:
    boxes = torch.tensor([[[0.0, 0, 5, 5], [0, 0, 5, 0.5]], [[1, 1, 4, 4], [1, 1, 4, 4]]])
    labels = torch.tensor([3, 4])
    b, lab = sanitize_tubelets(boxes, labels, 1.0)
    assert lab.tolist() == [4] and b.shape == (1, 2, 4)
    b2, lab2 = sanitize_tubelets(boxes[:, 0], labels, 1.0)
    assert lab2.tolist() == [3, 4]


def _same_frames_clip(seed: int, t: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    frame = torch.randint(0, 256, (3, 40, 56), dtype=torch.uint8, generator=g)
    return frame.expand(t, 3, 40, 56).contiguous(), torch.tensor([[8.0, 6, 30, 28], [30, 12, 50, 36]])


@pytest.mark.parametrize("kind", ["yowo", "act"])
def test_identical_frames_stay_identical(kind: str) -> None:
    for seed in range(6):
        clip, boxes = _same_frames_clip(seed)
        torch.manual_seed(seed)
        if kind == "yowo":
            out, _, _ = YowoClipAugment(32)(clip, boxes, torch.tensor([0, 1]))
        else:
            out, _, _ = ActClipAugment(32, 4)(clip, boxes[:, None].expand(2, 4, 4), torch.tensor([0, 1]))
        assert out.shape == (4, 3, 32, 32) and out.dtype == torch.float32
        assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
        for k in range(1, 4):
            assert torch.equal(out[k], out[0]), (seed, k)


def _moving_box_clip(k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """K black frames of 48x64 with a white filled box moving right; boxes [1, K, 4] pixel edges."""
    clip = torch.zeros((k, 3, 48, 64), dtype=torch.uint8)
    boxes = torch.zeros((1, k, 4))
    for i in range(k):
        x0, y0 = 10 + 3 * i, 12
        clip[i, :, y0 : y0 + 18, x0 : x0 + 22] = 255
        boxes[0, i] = torch.tensor([x0, y0, x0 + 22, y0 + 18])
    return clip, boxes


def _extent(frame: torch.Tensor) -> torch.Tensor | None:
    """Pixel-edge extent [x1, y1, x2, y2] of the bright pixels of one float frame [3, H, W]."""
    mask = frame.mean(0) > 0.5
    if not bool(mask.any()):
        return None
    ys, xs = torch.nonzero(mask, as_tuple=True)
    return torch.tensor([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=torch.float32)


@pytest.mark.parametrize("kind", ["yowo", "act"])
def test_boxes_follow_the_pixels(kind: str) -> None:
    k = 3
    kept = 0
    for seed in range(12):
        clip, boxes = _moving_box_clip(k)
        torch.manual_seed(seed)
        if kind == "yowo":
            aug = YowoClipAugment(40, hue=0.0, saturation=1.0, exposure=1.0)
            out, ob, lab = aug(clip, boxes, torch.tensor([5]))  # boxes [N, K, 4] work here too
        else:  # mean fill (~124/255) stays below the 0.5 threshold
            out, ob, lab = ActClipAugment(40, k, photometric=False)(clip, boxes, torch.tensor([5]))
        if ob.shape[0] == 0:
            continue
        kept += 1
        assert lab.tolist() == [5] and ob.shape == (1, k, 4)
        for i in range(k):
            ext = _extent(out[i])
            assert ext is not None, (seed, i)
            # bilinear resizing blurs edges by up to ~1 output pixel on each side
            assert torch.allclose(ext, ob[0, i], atol=1.6), (seed, i, ext, ob[0, i])
    assert kept >= 4


def test_tubelet_iou_crop_respects_mean_iou_constraint() -> None:
    boxes = torch.tensor(
        [[[10.0, 10, 60, 50], [14, 10, 64, 50], [18, 12, 68, 52]], [[70, 5, 90, 20], [70, 6, 90, 21], [71, 6, 91, 21]]]
    )
    bb = _bb(boxes, (80, 100))
    crop = TubeletIoUCrop(3, sampler_options=[0.6])
    for seed in range(10):
        torch.manual_seed(seed)
        p = crop.make_params([tv_tensors.Image(torch.zeros(3, 3, 80, 100)), bb])
        x0, y0 = p["left"], p["top"]
        window = torch.tensor([[x0, y0, x0 + p["width"], y0 + p["height"]]], dtype=torch.float32)
        inside = p["is_within_crop_area"].view(2, 3)
        assert (inside == inside[:, :1]).all()  # a whole tubelet is in or out
        means = torch.stack([box_iou(window, boxes[n]).mean() for n in range(2)])
        centres = (boxes[..., :2] + boxes[..., 2:]) / 2
        wholly = ((centres > window[0, :2]) & (centres < window[0, 2:])).all(-1).all(-1)
        assert torch.equal(inside[:, 0], wholly)
        assert float(means[wholly].max()) >= 0.6


def test_augment_is_reproducible_under_a_seed() -> None:
    clip, boxes = _moving_box_clip(4)
    outs = []
    for _ in range(2):
        torch.manual_seed(11)
        outs.append(ActClipAugment(32, 4)(clip, boxes, torch.tensor([0])))
    assert torch.equal(outs[0][0], outs[1][0]) and torch.equal(outs[0][1], outs[1][1])


def test_clip_resize_keeps_every_box() -> None:
    clip = torch.full((2, 3, 20, 40), 255, dtype=torch.uint8)
    boxes = torch.tensor([[0.0, 0, 40, 20], [10, 10, 10.2, 10.1]])
    out, ob, lab = ClipResize((10, 10))(clip, boxes, torch.tensor([1, 2]))
    assert out.shape == (2, 3, 10, 10) and torch.allclose(out, torch.ones_like(out))
    assert lab.tolist() == [1, 2] and torch.allclose(ob[0], torch.tensor([0.0, 0, 10, 10]))
