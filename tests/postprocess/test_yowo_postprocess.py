"""Tests of YOWO decoding and inference: hand-set outputs, a round trip through the loss's target
encoding, NMS checked against torchvision.ops.nms / batched_nms, and no per-frame cap unless
``max_det`` sets one (YOWO keeps every box its NMS keeps)."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from torchvision.ops import batched_nms, nms

from singleshot.config import build_config
from singleshot.losses.region_targets import assign_region_targets, pad_region_targets
from singleshot.postprocess.yowo import decode_region, yowo_postprocess
from singleshot.structures import TubeletTarget
from singleshot.tasks.action.config import ActionConfig
from singleshot.tasks.action.predictor import postprocess_settings

ANCHORS = torch.tensor([[1.0, 1.0], [1.5, 2.5], [3.0, 2.0]])


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


def test_decode_hand_set_output() -> None:
    # Grid H=4, W=5 on a 96 x 128 input: cells are 24 px high and 25.6 px wide.
    out = torch.zeros(1, 3, 7, 4, 5)
    a, row, col = 1, 2, 3
    out[0, a, 0, row, col] = _logit(0.25)
    out[0, a, 1, row, col] = _logit(0.75)
    out[0, a, 2, row, col] = math.log(2.0)
    out[0, a, 3, row, col] = 0.0
    out[0, a, 4, row, col] = _logit(0.9)
    out[0, a, 5:, row, col] = torch.tensor([0.0, math.log(3.0)])
    boxes, conf, prob = decode_region(out.reshape(1, 21, 4, 5), ANCHORS, 2, (96, 128))
    assert boxes.shape == (1, 60, 4) and conf.shape == (1, 60) and prob.shape == (1, 60, 2)
    n = a * 20 + row * 5 + col
    cx, cy, w, h = (3 + 0.25) * 25.6, (2 + 0.75) * 24.0, 1.5 * 2.0 * 25.6, 2.5 * 24.0
    torch.testing.assert_close(boxes[0, n], torch.tensor([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]))
    assert float(conf[0, n]) == pytest.approx(0.9)
    torch.testing.assert_close(prob[0, n], torch.tensor([0.25, 0.75]))
    # An untouched prediction: anchor 0 in cell (0, 0) is a 1-cell box centred in its cell.
    torch.testing.assert_close(boxes[0, 0], torch.tensor([0.0, 0.0, 25.6, 24.0]))
    assert float(conf[0, 0]) == pytest.approx(0.5)


def test_round_trip_with_loss_encoding() -> None:
    boxes = torch.tensor([[[5.0, 7.0, 40.0, 90.0]], [[60.0, 10.0, 127.0, 50.0]], [[30.0, 30.0, 42.0, 41.0]]])
    targets = [TubeletTarget(boxes=boxes, labels=torch.tensor([0, 1, 1]))]
    grid = torch.zeros(1, 3, 4, 5, 4)
    assign = assign_region_targets(pad_region_targets(targets, 2), grid, ANCHORS, (96, 128), 0.6)
    assert assign.index.shape[1] == 3
    out = torch.zeros(1, 3, 7, 4, 5)
    bi, ai, rj, ci = assign.index
    tx, ty, tw, th = assign.coords.unbind(-1)
    out[bi, ai, 0, rj, ci] = torch.log(tx / (1 - tx))
    out[bi, ai, 1, rj, ci] = torch.log(ty / (1 - ty))
    out[bi, ai, 2, rj, ci] = tw
    out[bi, ai, 3, rj, ci] = th
    decoded, _, _ = decode_region(out.reshape(1, 21, 4, 5), ANCHORS, 2, (96, 128))
    n = ai * 20 + rj * 5 + ci
    torch.testing.assert_close(decoded[0, n], boxes[:, 0], atol=1e-3, rtol=0)


def _random_out(seed: int, num_classes: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    out = torch.randn(2, 3, 5 + num_classes, 4, 5, generator=g)
    out[:, :, 2:4] *= 0.5  # keep boxes of a few cells so that many overlap
    return out.reshape(2, 3 * (5 + num_classes), 4, 5)


def test_yowo_mode_matches_torchvision_nms() -> None:
    out = _random_out(0, 4)
    boxes, conf, prob = decode_region(out, ANCHORS, 4, (96, 128))
    dets = yowo_postprocess(
        {"out": out}, ANCHORS, 4, (96, 128), [(96, 128)] * 2, conf_thresh=0.05, max_det=1000, clip=False
    )
    for i, det in enumerate(dets):
        best, label = prob[i].max(dim=-1)
        cand = (conf[i] * best > 0.05).nonzero().squeeze(1)
        keep = cand[nms(boxes[i, cand], conf[i, cand], 0.4)]  # class-agnostic, ranked by objectness
        want = sorted(zip((conf[i, keep] * best[keep]).tolist(), label[keep].tolist(), boxes[i, keep].tolist()))
        got = sorted(zip(det.scores.tolist(), det.labels.tolist(), det.boxes.tolist()))
        assert len(got) == len(want) > 3
        for (s1, l1, b1), (s2, l2, b2) in zip(got, want):
            assert s1 == pytest.approx(s2) and l1 == l2 and b1 == pytest.approx(b2, abs=1e-4)
        assert torch.all(det.scores[:-1] >= det.scores[1:])


def test_per_class_mode_matches_torchvision_batched_nms() -> None:
    out = _random_out(1, 3)
    boxes, conf, prob = decode_region(out, ANCHORS, 3, (96, 128))
    dets = yowo_postprocess(
        {"out": out},
        ANCHORS,
        3,
        (96, 128),
        [(96, 128)] * 2,
        conf_thresh=0.05,
        max_det=1000,
        mode="per_class",
        clip=False,
    )
    for i, det in enumerate(dets):
        scores = conf[i, :, None] * prob[i]
        n, c = (scores > 0.05).nonzero(as_tuple=True)
        keep = batched_nms(boxes[i, n], scores[n, c], c, 0.4)
        want = sorted(zip(scores[n, c][keep].tolist(), c[keep].tolist()))
        got = sorted(zip(det.scores.tolist(), det.labels.tolist()))
        assert len(got) == len(want) > 3
        assert [l for _, l in got] == [l for _, l in want]
        assert [s for s, _ in got] == pytest.approx([s for s, _ in want])


def test_all_classes_and_max_det() -> None:
    out = torch.full((1, 3, 8, 2, 2), -20.0)  # confidences ~0: nothing passes ...
    out[:, :, :4] = 0.0
    out[0, 0, 4, 0, 0] = 0.0  # ... except one prediction with objectness 0.5
    out[0, 0, 5:, 0, 0] = torch.log(torch.tensor([0.6, 0.3, 0.1]))
    out = out.reshape(1, 24, 2, 2)
    kw = dict(anchors=ANCHORS, num_classes=3, input_size=(64, 64), orig_sizes=[(64, 64)], conf_thresh=0.1)
    one = yowo_postprocess({"out": out}, **kw)[0]
    assert one.labels.tolist() == [0] and one.scores.tolist() == pytest.approx([0.3])
    every = yowo_postprocess({"out": out}, all_classes=True, **kw)[0]
    # 0.5 x 0.3 = 0.15 passes 0.1; 0.5 x 0.1 does not. Same box for both.
    assert every.labels.tolist() == [0, 1] and every.scores.tolist() == pytest.approx([0.3, 0.15])
    assert torch.equal(every.boxes[0], every.boxes[1])
    capped = yowo_postprocess({"out": out}, all_classes=True, max_det=1, **kw)[0]
    assert capped.labels.tolist() == [0]


def test_boxes_scaled_to_original_frame_and_clipped() -> None:
    out = torch.full((1, 3, 6, 7, 7), -20.0)
    out[:, :, :4] = 0.0  # every box centred in its cell with its anchor's size
    out[0, 0, 4, 3, 3] = 5.0  # anchor 0 (1 x 1 cell) in the central cell: [96, 96, 128, 128] on 224²
    out[0, 2, 4, 6, 6] = 5.0  # anchor 2 (3 x 2 cells) in the corner cell: leaves the frame
    out[0, :, 5] = 0.0
    out = out.reshape(1, 18, 7, 7)
    det = yowo_postprocess({"out": out}, ANCHORS, 1, (224, 224), [(240, 320)], image_ids=["v/00001"])[0]
    assert det.image_id == "v/00001" and len(det) == 2
    sx, sy = 320 / 224, 240 / 224
    centre = [96 * sx, 96 * sy, 128 * sx, 128 * sy]
    corner = [(6.5 - 1.5) * 32 * sx, (6.5 - 1.0) * 32 * sy, 320.0, 240.0]  # right/bottom clipped
    got = sorted(det.boxes.tolist())
    assert got[0] == pytest.approx(centre, abs=1e-3) and got[1] == pytest.approx(corner, abs=1e-3)


def test_bad_arguments() -> None:
    out = torch.zeros(1, 20, 2, 2)
    with pytest.raises(ValueError, match="3 anchors"):
        decode_region(out, ANCHORS, 2, (64, 64))
    with pytest.raises(ValueError, match="mode"):
        bad_mode: Any = "nope"
        yowo_postprocess({"out": torch.zeros(1, 21, 2, 2)}, ANCHORS, 2, (64, 64), [(64, 64)], mode=bad_mode)


def test_no_per_frame_cap_by_default_as_yowo() -> None:
    """YOWO keeps every box that survives its NMS; a frame with more than the old caps (200 here,
    100 in the CLI) keeps them all unless ``max_det`` sets a cap."""
    anchors = torch.tensor([[1.0, 1.0]])
    h = w = 16  # 256 one-cell boxes that touch but never overlap: NMS keeps each of them
    out = torch.zeros(1, 1, 6, h, w)
    out[0, 0, 4] = 4.0  # objectness 0.98 everywhere
    out[0, 0, 5] = torch.linspace(0, 1, h * w).reshape(h, w)  # one class: distinct scores
    dets = yowo_postprocess({"out": out.reshape(1, 6, h, w)}, anchors, 1, (256, 256), [(256, 256)])[0]
    assert len(dets) == h * w == 256
    assert bool((dets.scores[:-1] >= dets.scores[1:]).all())
    capped = yowo_postprocess({"out": out.reshape(1, 6, h, w)}, anchors, 1, (256, 256), [(256, 256)], max_det=100)[0]
    assert len(capped) == 100 and torch.equal(capped.scores, dets.scores[:100])


def test_max_det_key_default_and_reach() -> None:
    assert postprocess_settings(ActionConfig())["max_det"] == 0
    cfg = build_config(ActionConfig, overrides={"max_det": "7"})
    assert postprocess_settings(cfg)["max_det"] == 7
    # weights that recorded a cap keep it; an explicit key replaces it
    meta = {"postprocess": {"max_det": 100, "conf_thresh": 0.005, "nms_thresh": 0.4, "mode": "yowo"}}
    assert postprocess_settings(ActionConfig(), meta)["max_det"] == 100
    assert postprocess_settings(cfg, meta)["max_det"] == 7
