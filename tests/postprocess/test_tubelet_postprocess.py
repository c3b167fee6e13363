from __future__ import annotations

import pytest
import torch
from torch import Tensor
from torchvision.ops import box_iou, nms

from singleshot.ops.coders import decode
from singleshot.ops.priors import PriorSpec, generate_priors
from singleshot.postprocess.tubelet import (
    TubeletDetections,
    TubeletPostprocess,
    frames_from_tubelets,
    postprocess_tubelets,
    tubelet_nms_sorted,
)

_SPEC = PriorSpec(64, [8, 4, 2], [8.0, 16.0, 32.0], [8.0, 20.0, 40.0], [20.0, 40.0, 60.0], [[2], [2], [2]])


def _greedy(iou: Tensor, thresh: float) -> list[int]:
    """Plain greedy NMS over candidates already sorted by descending score."""
    kept: list[int] = []
    for j in range(iou.shape[0]):
        if all(float(iou[i, j]) <= thresh for i in kept):
            kept.append(j)
    return kept


def _reference(
    outputs: dict[str, Tensor], priors: Tensor, sizes: list[tuple[int, int]], s: TubeletPostprocess
) -> list[tuple[Tensor, Tensor, Tensor]]:
    """Sample by sample, class by class; per-frame decode with the SSD coder; K = 1 uses torchvision's nms."""
    loc, conf = outputs["loc"], outputs["conf"]
    k = loc.shape[-1] // 4
    results = []
    for b, (h, w) in enumerate(sizes):
        probs = conf[b].softmax(-1)
        scale = torch.tensor([w, h, w, h], dtype=torch.float32)
        tubes = torch.stack([decode(loc[b, :, 4 * j : 4 * j + 4], priors) for j in range(k)], dim=1) * scale
        boxes, scores, labels = [], [], []
        for c in range(1, conf.shape[-1]):
            sc, idx = probs[:, c].topk(min(s.topk_candidates, priors.shape[0]))
            sel = sc > s.score_thresh
            sc, idx = sc[sel], idx[sel]
            cand = tubes[idx]
            if k == 1:
                keep = nms(cand[:, 0], sc, s.nms_thresh)
            else:
                iou = torch.stack([box_iou(cand[:, j], cand[:, j]) for j in range(k)]).mean(0)
                keep = torch.tensor(_greedy(iou, s.nms_thresh), dtype=torch.int64)
            boxes.append(cand[keep])
            scores.append(sc[keep])
            labels.append(torch.full((len(keep),), c - 1))
        bx, sc, lb = torch.cat(boxes), torch.cat(scores), torch.cat(labels)
        order = sc.argsort(descending=True)[: s.max_detections]
        bx = bx[order]
        bx = torch.stack(
            (bx[..., 0].clamp(0, w), bx[..., 1].clamp(0, h), bx[..., 2].clamp(0, w), bx[..., 3].clamp(0, h)), -1
        )
        results.append((bx, sc[order], lb[order]))
    return results


@pytest.mark.parametrize("k", [1, 3])
def test_postprocess_matches_per_class_reference(k: int) -> None:
    g = torch.Generator().manual_seed(k)
    priors = generate_priors(_SPEC)
    p = priors.shape[0]
    outputs = {"loc": torch.randn(2, p, 4 * k, generator=g) * 0.7, "conf": torch.randn(2, p, 4, generator=g) * 2}
    settings = TubeletPostprocess(score_thresh=0.2, topk_candidates=60, max_detections=25)
    sizes = [(240, 320), (120, 100)]
    ours = postprocess_tubelets(outputs, priors, sizes, settings, videos=["a", "b"])
    ref = _reference(outputs, priors, sizes, settings)
    for det, (bx, sc, lb) in zip(ours, ref):
        assert 0 < len(det) <= 25
        assert det.boxes.shape == (len(det), k, 4)
        torch.testing.assert_close(det.scores, sc)
        assert torch.equal(det.labels, lb)
        torch.testing.assert_close(det.boxes, bx, rtol=1e-5, atol=1e-4)
    assert [d.video for d in ours] == ["a", "b"]


def test_tubelet_nms_uses_the_mean_iou_over_frames() -> None:
    base = [0.0, 0.0, 10.0, 10.0]
    far = [100.0, 100.0, 110.0, 110.0]
    shifted = [2.0, 0.0, 12.0, 10.0]  # IoU with base: 80 / 120 = 2/3
    boxes = torch.tensor(
        [
            [base, base],
            [base, far],  # IoUs (1, 0): mean 0.5 > 0.45 -> suppressed by tubelet 0
            [shifted, far],  # IoUs (2/3, 0): mean 1/3 with 0 -> kept
        ]
    )[None]
    keep = tubelet_nms_sorted(boxes, torch.ones(1, 3, dtype=torch.bool), 0.45)
    assert keep.tolist() == [[True, False, True]]
    # invalid candidates are neither kept nor suppress anything
    keep = tubelet_nms_sorted(boxes, torch.tensor([[False, True, True]]), 0.45)
    assert keep.tolist() == [[False, True, False]]  # 2 vs 1: IoUs (2/3, 1) mean 5/6 -> suppressed


def test_tubelet_nms_equals_greedy_reference_over_many_groups() -> None:
    g = torch.Generator().manual_seed(5)
    xy = torch.rand(6, 30, 4, 2, generator=g) * 40
    wh = torch.rand(6, 30, 4, 2, generator=g) * 30 + 5
    boxes = torch.cat((xy, xy + wh), -1)
    valid = torch.rand(6, 30, generator=g) > 0.2
    keep = tubelet_nms_sorted(boxes, valid, 0.3)
    for gi in range(6):
        idx = valid[gi].nonzero().squeeze(1)
        cand = boxes[gi, idx]
        iou = torch.stack([box_iou(cand[:, j], cand[:, j]) for j in range(4)]).mean(0)
        expected = idx[_greedy(iou, 0.3)]
        assert keep[gi].nonzero().squeeze(1).tolist() == expected.tolist()


def test_zero_offsets_decode_to_the_prior_in_frame_pixels() -> None:
    priors = torch.tensor([[0.5, 0.5, 0.2, 0.4]])
    conf = torch.tensor([[[0.0, 5.0]]])
    out = postprocess_tubelets({"loc": torch.zeros(1, 1, 8), "conf": conf}, priors, [(200, 300)])
    expected = torch.tensor([120.0, 60.0, 180.0, 140.0])
    assert out[0].boxes.shape == (1, 2, 4)
    torch.testing.assert_close(out[0].boxes[0], expected.expand(2, 4))
    assert out[0].labels.tolist() == [0]


def _nms_plus_one(boxes: Tensor, scores: Tensor, thresh: float) -> list[int]:
    order = scores.argsort(descending=True).tolist()
    kept: list[int] = []
    for j in order:
        ok = True
        for i in kept:
            iw = min(boxes[i, 2], boxes[j, 2]) - max(boxes[i, 0], boxes[j, 0]) + 1
            ih = min(boxes[i, 3], boxes[j, 3]) - max(boxes[i, 1], boxes[j, 1]) + 1
            inter = max(float(iw), 0.0) * max(float(ih), 0.0)
            area = lambda b: float((b[2] - b[0] + 1) * (b[3] - b[1] + 1))  # noqa: E731
            if inter / (area(boxes[i]) + area(boxes[j]) - inter) > thresh:
                ok = False
                break
        if ok:
            kept.append(j)
    return kept


def test_frames_from_tubelets_act_way() -> None:
    g = torch.Generator().manual_seed(9)
    k, num_frames = 3, 7
    tubelets = []
    for start in range(1, num_frames - k + 2):
        n = 4
        xy = torch.rand(n, k, 2, generator=g) * 50
        wh = torch.rand(n, k, 2, generator=g) * 40 + 10
        tubelets.append(
            TubeletDetections(
                boxes=torch.cat((xy, xy + wh), -1),
                scores=torch.rand(n, generator=g),
                labels=torch.randint(0, 2, (n,), generator=g),
                video="Jump/v1",
                frames=torch.arange(start, start + k),
            )
        )
    out = frames_from_tubelets(tubelets, nms_thresh=0.3)
    assert out.video == "Jump/v1"
    assert out.frames.tolist() == sorted(out.frames.tolist())
    for f in range(1, num_frames + 1):
        # every tubelet covering frame f gives its box at offset f - start
        covering = [t for t in tubelets if int(t.frames[0]) <= f <= int(t.frames[-1])]
        rows = [(t.boxes[:, f - int(t.frames[0])], t.scores, t.labels) for t in covering]
        boxes = torch.cat([r[0] for r in rows])
        scores = torch.cat([r[1] for r in rows])
        labels = torch.cat([r[2] for r in rows])
        expected = set()
        for c in (0, 1):
            idx = (labels == c).nonzero().squeeze(1)
            expected |= {(round(float(scores[idx[j]]), 6), c) for j in _nms_plus_one(boxes[idx], scores[idx], 0.3)}
        sel = out.frames == f
        got = {(round(float(s), 6), int(lb)) for s, lb in zip(out.scores[sel], out.labels[sel])}
        assert got == expected, f
        assert out.scores[sel].tolist() == sorted(out.scores[sel].tolist(), reverse=True)
    recs = out.records()
    assert len(recs) == len(out) and set(recs[0]) == {"video", "frame", "label", "score", "box"}
    per_frame = out.per_frame()
    assert sum(len(d) for d in per_frame.values()) == len(out)


def test_frames_from_tubelets_plus_one_convention() -> None:
    # Two boxes of one frame: IoU 36/126 = 0.286 without +1, 50/150 = 0.333 with it -> suppressed only with +1 at 0.3.
    a, b = [0.0, 0.0, 9.0, 9.0], [5.0, 0.0, 14.0, 9.0]
    t = TubeletDetections(
        boxes=torch.tensor([[a], [b]]),
        scores=torch.tensor([0.9, 0.8]),
        labels=torch.tensor([0, 0]),
        video="v",
        frames=torch.tensor([4]),
    )
    assert len(frames_from_tubelets([t], 0.3, plus_one=True)) == 1
    assert len(frames_from_tubelets([t], 0.3, plus_one=False)) == 2
    assert len(frames_from_tubelets([], 0.3)) == 0
