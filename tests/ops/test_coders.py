from __future__ import annotations

import math

import torch
from torchvision.models.detection._utils import BoxCoder

from singleshot.ops.boxes import cxcywh_to_xyxy, xyxy_to_cxcywh
from singleshot.ops.coders import decode, encode


def _random_priors(n: int, g: torch.Generator) -> torch.Tensor:
    cxy = torch.rand(n, 2, generator=g)
    wh = torch.rand(n, 2, generator=g) * 0.5 + 0.05
    return torch.cat((cxy, wh), dim=1)


def test_round_trip_and_zero_delta_is_the_prior() -> None:
    g = torch.Generator().manual_seed(0)
    priors = _random_priors(50, g)
    boxes = cxcywh_to_xyxy(_random_priors(50, g))
    torch.testing.assert_close(decode(encode(boxes, priors), priors), boxes, atol=1e-5, rtol=0)
    # zero offsets decode to the prior itself: centres come from priors[:, :2], sizes from priors[:, 2:]
    torch.testing.assert_close(decode(torch.zeros(50, 4), priors), cxcywh_to_xyxy(priors))


def test_equals_torchvision_box_coder_and_clamp() -> None:
    g = torch.Generator().manual_seed(1)
    priors = _random_priors(40, g)
    boxes = cxcywh_to_xyxy(_random_priors(40, g))
    coder = BoxCoder(weights=(10.0, 10.0, 5.0, 5.0))
    anchors = cxcywh_to_xyxy(priors)
    torch.testing.assert_close(encode(boxes, priors), coder.encode_single(boxes, anchors), atol=1e-4, rtol=1e-4)
    deltas = torch.randn(40, 4, generator=g) * 3
    deltas[:5, 2:] = 100.0  # exercises the clamp at log(1000/16)
    theirs = coder.decode_single(deltas, anchors)
    ours = decode(deltas, priors)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)
    assert torch.isfinite(ours).all()
    w = xyxy_to_cxcywh(ours[:5])[:, 2]
    torch.testing.assert_close(w, priors[:5, 2] * math.exp(math.log(1000 / 16)), rtol=1e-5, atol=0)
