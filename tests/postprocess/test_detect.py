from __future__ import annotations

import torch
from torchvision.models.detection import ssd300_vgg16
from torchvision.ops import batched_nms

from singleshot.ops.boxes import cxcywh_to_xyxy
from singleshot.ops.priors import generate_priors, prior_spec
from singleshot.postprocess.detect import DetectPostprocess, grouped_nms, postprocess_detections


def test_grouped_nms_equals_torchvision_batched_nms() -> None:
    g = torch.Generator().manual_seed(0)
    xy = torch.rand(300, 2, generator=g) * 100
    boxes = torch.cat((xy, xy + torch.rand(300, 2, generator=g) * 40 + 1), 1)
    scores = torch.rand(300, generator=g)
    groups = torch.randint(0, 7, (300,), generator=g)
    ours = grouped_nms(boxes, scores, groups, 0.45)
    theirs = batched_nms(boxes, scores, groups, 0.45)
    assert torch.equal(ours, theirs)


def test_postprocess_equals_torchvision() -> None:
    torch.manual_seed(0)
    model = ssd300_vgg16(weights=None, weights_backbone=None, num_classes=5).eval()
    priors = generate_priors(prior_spec("coco300"))
    g = torch.Generator().manual_seed(3)
    b, p = 3, priors.shape[0]
    outputs = {
        "cls_logits": torch.randn(b, p, 5, generator=g) * 3,
        "bbox_regression": torch.randn(b, p, 4, generator=g),
    }
    anchors = [cxcywh_to_xyxy(priors) * 300] * b
    theirs = model.postprocess_detections(outputs, anchors, [(300, 300)] * b)
    ours = postprocess_detections(outputs, priors, [(300, 300)] * b, DetectPostprocess())
    for o, t in zip(ours, theirs):
        assert len(o) == len(t["scores"]) and len(o) > 0
        # equal scores may come in either order: compare in (score, label) order
        oi, ti = _order(o.scores, o.labels + 1), _order(t["scores"], t["labels"])
        torch.testing.assert_close(o.scores[oi], t["scores"][ti])
        assert torch.equal(o.labels[oi] + 1, t["labels"][ti])
        torch.testing.assert_close(o.boxes[oi], t["boxes"][ti], atol=1e-3, rtol=0)


def _order(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    by_label = torch.argsort(labels, stable=True)
    return by_label[torch.argsort(scores[by_label], descending=True, stable=True)]


def test_boxes_scaled_to_each_image_and_capped() -> None:
    priors = generate_priors(prior_spec("voc300"))
    p = priors.shape[0]
    logits = torch.full((2, p, 3), -10.0)
    logits[:, :, 1] = 10.0  # every prior is confidently class 0
    out = postprocess_detections(
        {"cls_logits": logits, "bbox_regression": torch.zeros(2, p, 4)},
        priors,
        [(100, 200), (300, 50)],
        DetectPostprocess(max_detections=7),
    )
    assert [len(d) for d in out] == [7, 7]
    assert float(out[0].boxes[:, 0::2].max()) <= 200 and float(out[0].boxes[:, 1::2].max()) <= 100
    assert float(out[1].boxes[:, 0::2].max()) <= 50 and float(out[1].boxes[:, 1::2].max()) <= 300
    assert bool((out[0].labels == 0).all())
