"""Tests of the YOWO region loss against hand-computed values and a plain-Python loop reference
written from the description of YOWO's build_targets / RegionLoss / FocalLoss."""

from __future__ import annotations

import math
import time

import pytest
import torch
from torch import nn
from torchvision.ops import box_iou

from singleshot.errors import DataError
from singleshot.losses.region import RegionLoss
from singleshot.losses.region_targets import RegionTargets, assign_region_targets, pad_region_targets
from singleshot.ops.region import region_grid_boxes, split_region_output
from singleshot.postprocess.yowo import yowo_postprocess
from singleshot.structures import TubeletTarget


def _target(boxes: list[list[float]], labels: list[int], video: str = "Class/v") -> TubeletTarget:
    if not boxes:
        return TubeletTarget(video=video)
    return TubeletTarget(
        boxes=torch.tensor(boxes, dtype=torch.float32).reshape(-1, 1, 4),
        labels=torch.tensor(labels, dtype=torch.int64),
        video=video,
    )


def _sl1(d: float) -> float:
    return 0.5 * d * d if abs(d) < 1.0 else abs(d) - 0.5


def _sig(v: float) -> float:
    return 1.0 / (1.0 + math.exp(-v))


def _iou_cxcywh(p: tuple[float, ...], q: tuple[float, ...]) -> float:
    iw = min(p[0] + p[2] / 2, q[0] + q[2] / 2) - max(p[0] - p[2] / 2, q[0] - q[2] / 2)
    ih = min(p[1] + p[3] / 2, q[1] + q[3] / 2) - max(p[1] - p[3] / 2, q[1] - q[3] / 2)
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    return inter / (p[2] * p[3] + q[2] * q[3] - inter)


def reference_loss(
    out: torch.Tensor,
    gts: list[list[tuple[list[float], int]]],
    anchors: list[tuple[float, float]],
    num_classes: int,
    input_size: tuple[int, int],
    seen: int | None = None,
    prior_scale: float = 1.0,
    object_scale: float = 5.0,
    noobject_scale: float = 1.0,
    ignore_thresh: float = 0.6,
) -> dict[str, float]:
    """Loop over images, ground truths and cells, one scalar at a time (YOWO's order of writes)."""
    bsz, _, hh, ww = out.shape
    na = len(anchors)
    o = out.reshape(bsz, na, 5 + num_classes, hh, ww).tolist()
    ih, iw = input_size
    coord = conf_l = cls_l = 0.0
    for b in range(bsz):
        grid_gts = []
        for (x1, y1, x2, y2), lab in gts[b]:
            gx, gy = (x1 + x2) / 2 * ww / iw, (y1 + y2) / 2 * hh / ih
            grid_gts.append(((gx, gy, (x2 - x1) * ww / iw, (y2 - y1) * hh / ih), lab))
        pred = {}
        for a in range(na):
            for i in range(hh):
                for j in range(ww):
                    v = o[b][a]
                    pred[a, i, j] = (
                        j + _sig(v[0][i][j]),
                        i + _sig(v[1][i][j]),
                        anchors[a][0] * math.exp(v[2][i][j]),
                        anchors[a][1] * math.exp(v[3][i][j]),
                    )
        resp: dict[tuple[int, int, int], tuple[tuple[float, ...], tuple[float, ...], int]] = {}
        for g, lab in grid_gts:
            best_iou, best_a = 0.0, -1
            for a in range(na):
                s = _iou_cxcywh((0, 0, anchors[a][0], anchors[a][1]), (0, 0, g[2], g[3]))
                if s > best_iou:
                    best_iou, best_a = s, a
            gi, gj = int(g[0]), int(g[1])
            t = (g[0] - gi, g[1] - gj, math.log(g[2] / anchors[best_a][0]), math.log(g[3] / anchors[best_a][1]))
            resp[best_a, gj, gi] = (t, g, lab)  # a later ground truth overwrites
        warm = seen is not None and seen < 12800
        for (a, i, j), p in pred.items():
            v = o[b][a]
            x, y, tw, th = _sig(v[0][i][j]), _sig(v[1][i][j]), v[2][i][j], v[3][i][j]
            c = _sig(v[4][i][j])
            if (a, i, j) in resp:
                t, g, lab = resp[a, i, j]
                coord += sum(_sl1(u - w) for u, w in zip((x, y, tw, th), t)) / 2
                conf_l += object_scale * (c - _iou_cxcywh(p, g)) ** 2 / 2
                logits = [v[5 + k][i][j] for k in range(num_classes)]
                mx = max(logits)
                z = sum(math.exp(q - mx) for q in logits)
                pt = math.exp(logits[lab] - mx) / z
                cls_l += -((1 - pt) ** 2) * math.log(pt)
                continue
            if warm:
                coord += prior_scale * sum(_sl1(u - w) for u, w in zip((x, y, tw, th), (0.5, 0.5, 0.0, 0.0))) / 2
            best = max((_iou_cxcywh(p, g) for g, _ in grid_gts), default=0.0)
            if best <= ignore_thresh:
                conf_l += noobject_scale * c * c / 2
    return {"loss_coord": coord, "loss_conf": conf_l, "loss_cls": cls_l}


def _close(got: dict[str, torch.Tensor], want: dict[str, float], rel: float = 1e-5) -> None:
    for k, v in want.items():
        assert float(got[k]) == pytest.approx(v, rel=rel, abs=1e-6), k


def test_hand_computed_one_gt_two_anchors() -> None:
    # 96x96 input, 3x3 grid (32 px cells); gt centre (62, 52) px -> (1.9375, 1.625) cells, size 1.5 x 2.
    anchors = torch.tensor([[1.0, 1.0], [1.5, 2.5]])
    targets = [_target([[38.0, 20.0, 86.0, 84.0]], [2])]
    out = torch.zeros(1, 2 * 8, 3, 3)
    padded = pad_region_targets(targets, 3)
    boxes = region_grid_boxes(split_region_output(out, 2, 3), anchors)
    assign = assign_region_targets(padded, boxes, anchors, (96, 96), 0.6)
    # Shape IoU: anchor 0 -> 1/3, anchor 1 -> 3/3.75 = 0.8: anchor 1, cell row 1, column 1.
    assert assign.index.tolist() == [[0], [1], [1], [1]]
    torch.testing.assert_close(assign.coords, torch.tensor([[0.9375, 0.625, 0.0, math.log(2.0 / 2.5)]]))
    losses = RegionLoss(3, anchors)({"out": out}, targets, (96, 96))
    coord = (0.5 * 0.4375**2 + 0.5 * 0.125**2 + 0.0 + 0.5 * math.log(0.8) ** 2) / 2
    # Responsible prediction: centre (1.5, 1.5), size 1.5 x 2.5; overlap 1.0625 x 2.0 with the gt.
    iou = 2.125 / (3.75 + 3.0 - 2.125)
    conf = 5 * (0.5 - iou) ** 2 / 2 + 17 * 0.25 / 2  # no other prediction reaches IoU 0.6
    cls = (2.0 / 3.0) ** 2 * math.log(3.0)
    _close(losses, {"loss_coord": coord, "loss_conf": conf, "loss_cls": cls})


def test_rescore_false_targets_one_at_the_responsible_prediction() -> None:
    # the case above: only the responsible prediction's confidence term changes, its target 1 instead of the IoU
    anchors = torch.tensor([[1.0, 1.0], [1.5, 2.5]])
    targets = [_target([[38.0, 20.0, 86.0, 84.0]], [2])]
    out = torch.zeros(1, 2 * 8, 3, 3)
    yowo = RegionLoss(3, anchors)({"out": out}, targets, (96, 96))
    darknet = RegionLoss(3, anchors, rescore=False)({"out": out}, targets, (96, 96))
    _close(
        darknet,
        {
            "loss_coord": float(yowo["loss_coord"]),
            "loss_cls": float(yowo["loss_cls"]),
            "loss_conf": 5 * (0.5 - 1.0) ** 2 / 2 + 17 * 0.25 / 2,
        },
    )


@pytest.mark.parametrize("iou, ignored", [(0.7, True), (0.5, False)])
def test_ignore_rule(iou: float, ignored: bool) -> None:
    # gt = cell (1, 1) exactly; anchor 0 (1x1) is responsible and predicts it exactly (IoU 1);
    # anchor 1 in the same cell predicts a concentric square of side sqrt(iou): IoU = side².
    anchors = torch.tensor([[1.0, 1.0], [2.0, 2.0]])
    out = torch.zeros(1, 2, 6, 3, 3)
    out[:, :, 4] = -30.0  # every confidence ~0 ...
    out[0, 1, 4, 1, 1] = 0.0  # ... except anchor 1 in the gt's cell: 0.5
    out[0, 1, 2:4, 1, 1] = math.log(math.sqrt(iou) / 2.0)
    targets = [_target([[32.0, 32.0, 64.0, 64.0]], [0])]
    losses = RegionLoss(1, anchors)({"out": out.reshape(1, 12, 3, 3)}, targets, (96, 96))
    expected = 5 * 1.0 / 2 + (0.0 if ignored else 0.25 / 2)
    assert float(losses["loss_conf"]) == pytest.approx(expected, abs=1e-5)


def test_empty_image_only_no_object_loss() -> None:
    torch.manual_seed(0)
    out = torch.randn(1, 3 * 7, 4, 4)
    conf = torch.sigmoid(out.reshape(1, 3, 7, 4, 4)[:, :, 4])
    anchors = torch.tensor([[1.0, 1.0], [2.0, 1.0], [1.0, 3.0]])
    losses = RegionLoss(2, anchors, noobject_scale=2.0)({"out": out}, [_target([], [])], (64, 64))
    assert float(losses["loss_coord"]) == 0.0 and float(losses["loss_cls"]) == 0.0
    assert float(losses["loss_conf"]) == pytest.approx(float(2.0 * conf.square().sum() / 2), rel=1e-6)


def _random_case() -> tuple[torch.Tensor, list[TubeletTarget], list[list[tuple[list[float], int]]]]:
    g = torch.Generator().manual_seed(3)
    out = torch.randn(4, 3 * 9, 5, 6, generator=g) * 0.8
    # Image 2: every prediction about as large as the map, so the central ones overlap its
    # whole-image ground truth by IoU > 0.6 and are ignored, the outer ones are not.
    grown = out.view(4, 3, 9, 5, 6)
    for a, (aw, ah) in enumerate([(0.7, 1.2), (1.6, 2.5), (3.5, 4.0)]):
        grown[2, a, 2] = math.log(6.0 / aw)
        grown[2, a, 3] = math.log(5.0 / ah)
    raw = [
        # The 1st and 3rd ground truths share a cell and an anchor: the 3rd must win.
        [([10.0, 12.0, 60.0, 70.0], 1), ([70.0, 5.0, 110.0, 40.0], 3), ([11.0, 14.0, 58.0, 66.0], 2)],
        [],
        [([0.0, 0.0, 120.0, 100.0], 0)],
        [([30.0, 40.0, 44.0, 52.0], 2), ([90.0, 60.0, 119.0, 99.0], 1)],
    ]
    targets = [_target([bx for bx, _ in r], [lb for _, lb in r]) for r in raw]
    return out, targets, raw


@pytest.mark.parametrize("seen, prior_scale", [(None, 1.0), (0, 1.0), (100, 0.01), (12800, 1.0)])
def test_matches_loop_reference(seen: int | None, prior_scale: float) -> None:
    out, targets, raw = _random_case()
    anchors = [(0.7, 1.2), (1.6, 2.5), (3.5, 4.0)]
    loss = RegionLoss(4, torch.tensor(anchors), prior_scale=prior_scale)
    got = loss({"out": out}, targets, (100, 120), seen=seen)
    want = reference_loss(out, raw, anchors, 4, (100, 120), seen=seen, prior_scale=prior_scale)
    _close(got, want, rel=1e-4)


def test_same_cell_and_anchor_later_gt_wins() -> None:
    anchors = torch.tensor([[1.0, 1.0], [3.0, 3.0]])
    a, b = [10.0, 10.0, 40.0, 40.0], [12.0, 12.0, 38.0, 42.0]  # same cell (0, 0), both anchor 0
    pred = torch.zeros(1, 2, 4, 4, 4)
    for order, labels in (([a, b], [5, 7]), ([b, a], [7, 5])):
        padded = pad_region_targets([_target(order, labels)], 8)
        assign = assign_region_targets(padded, pred, anchors, (128, 128), 0.6)
        assert assign.index.tolist() == [[0], [0], [0], [0]]
        assert assign.labels.tolist() == [labels[1]]
        x1, y1, x2, y2 = order[1]
        assert float(assign.coords[0, 0]) == pytest.approx((x1 + x2) / 2 / 32)


def test_batched_equals_sum_of_single_images_and_mean() -> None:
    out, targets, _ = _random_case()
    loss = RegionLoss(4, torch.tensor([(0.7, 1.2), (1.6, 2.5), (3.5, 4.0)]))
    whole = loss({"out": out}, targets, (100, 120))
    single = [loss({"out": out[i : i + 1]}, [targets[i]], (100, 120)) for i in range(4)]
    for k in whole:
        assert float(whole[k]) == pytest.approx(sum(float(s[k]) for s in single), rel=1e-5)
    loss.reduction = "mean"
    mean = loss({"out": out}, targets, (100, 120))
    for k in whole:
        assert float(mean[k]) == pytest.approx(float(whole[k]) / 4, rel=1e-6)


def test_padded_targets_accepted() -> None:
    out, targets, _ = _random_case()
    loss = RegionLoss(4, torch.tensor([(0.7, 1.2), (1.6, 2.5), (3.5, 4.0)]))
    padded = pad_region_targets(targets, 4)
    assert isinstance(padded, RegionTargets) and padded.boxes.shape == (4, 3, 4)
    a, b = loss({"out": out}, targets, (100, 120)), loss({"out": out}, padded, (100, 120))
    assert all(float(a[k]) == float(b[k]) for k in a)


def test_gradient_finite_on_extreme_outputs() -> None:
    out, targets, _ = _random_case()
    out = (out * 40.0).requires_grad_(True)
    loss = RegionLoss(4, torch.tensor([(0.7, 1.2), (1.6, 2.5), (3.5, 4.0)]))
    losses = loss({"out": out}, targets, (100, 120), seen=0)
    total = sum(losses.values())
    total.backward()
    assert torch.isfinite(total) and out.grad is not None and torch.isfinite(out.grad).all()
    assert out.grad.abs().sum() > 0


def test_target_errors_and_repairs() -> None:
    with pytest.raises(DataError, match="Fencing/v_1"):
        pad_region_targets([_target([[0.0, 0.0, 5.0, 5.0]], [4], video="Fencing/v_1")], 4)
    with pytest.warns(UserWarning, match="Golf/v_2"):
        flat = _target([[3.0, 3.0, 3.0, 9.0], [1.0, 1.0, 9.0, 9.0]], [0, 1], video="Golf/v_2")
        padded = pad_region_targets([flat], 4)
    assert padded.valid.tolist() == [[False, True]]
    with pytest.raises(ValueError, match="anchors"):
        RegionLoss(2, torch.tensor([[1.0, -1.0]]))


def test_tubelet_uses_last_frame() -> None:
    t = TubeletTarget(boxes=torch.tensor([[[0.0, 0.0, 5.0, 5.0], [1.0, 2.0, 30.0, 40.0]]]), labels=torch.tensor([1]))
    assert pad_region_targets([t], 2).boxes.tolist() == [[[1.0, 2.0, 30.0, 40.0]]]


def test_tiny_head_overfits_two_boxes() -> None:
    # One intra-op thread: tiny convolutions spend far longer in thread hand-offs than in arithmetic
    # when the two cores are shared with other test workers.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        anchors = torch.tensor([[1.0, 1.5], [2.5, 2.0]])
        head = nn.Sequential(nn.Conv2d(8, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 2 * (5 + 3), 1))
        x = torch.randn(2, 8, 7, 7)
        targets = [_target([[20.0, 30.0, 70.0, 110.0]], [1]), _target([[100.0, 40.0, 200.0, 120.0]], [2])]
        loss = RegionLoss(3, anchors)
        opt = torch.optim.Adam(head.parameters(), lr=1e-2)
        start = time.perf_counter()
        first = last = 0.0
        for step in range(200):
            total = sum(loss({"out": head(x)}, targets, (224, 224)).values())
            opt.zero_grad()
            total.backward()
            opt.step()
            if step == 0:
                first = float(total.detach())
            last = float(total.detach())
        elapsed = time.perf_counter() - start
        with torch.no_grad():
            dets = yowo_postprocess({"out": head(x)}, anchors, 3, (224, 224), [(224, 224)] * 2)
    finally:
        torch.set_num_threads(threads)
    assert last < 0.1 * first
    for det, t in zip(dets, targets):  # the best detection of each clip is its ground truth
        assert int(det.labels[0]) == int(t.labels[0])
        assert float(box_iou(det.boxes[:1], t.boxes[:, 0])[0, 0]) > 0.9
    assert elapsed < 15.0  # about 2-4 s on two shared cores; only pathological slowness fails
