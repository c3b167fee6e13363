"""Conv + ReLU fusion for inference: same outputs, same state dict, training unaffected."""

from __future__ import annotations

import copy

import torch
from torch import nn

from singleshot.models.fuse import ConvReLU2d, fuse_conv_relu
from singleshot.models.ssd import ssd300
from singleshot.models.tiny import ssd_tiny


def test_fused_ssd300_gives_the_same_outputs() -> None:
    torch.manual_seed(0)
    model = ssd300(20).eval()
    fused = copy.deepcopy(model)
    n = fuse_conv_relu(fused)
    assert n == 15 + 8  # 13 VGG convs + fc6 + fc7, and the 8 extra convs
    assert fused.state_dict().keys() == model.state_dict().keys()
    x = torch.randn(2, 3, 300, 300)
    with torch.inference_mode():
        a, b = model(x), fused(x.contiguous(memory_format=torch.channels_last))
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-4, rtol=1e-4), key


def test_fused_model_still_trains_like_the_original() -> None:
    torch.manual_seed(0)
    model = ssd_tiny(3, image_size=96)
    fused = copy.deepcopy(model)
    assert fuse_conv_relu(fused) > 0
    assert any(isinstance(m, ConvReLU2d) for m in fused.modules())
    size = model.image_size
    x = torch.randn(2, 3, size, size)
    out_a, out_b = model(x), fused(x)
    loss_a = sum(v.square().mean() for v in out_a.values())
    loss_b = sum(v.square().mean() for v in out_b.values())
    loss_a.backward()
    loss_b.backward()
    grads_a = [p.grad for p in model.parameters()]
    grads_b = [p.grad for p in fused.parameters()]
    assert all(torch.allclose(g, h, atol=1e-5) for g, h in zip(grads_a, grads_b))


def test_only_conv_relu_pairs_are_fused() -> None:
    seq = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 4, 1), nn.ReLU())
    assert fuse_conv_relu(seq) == 1
    assert type(seq[0]) is nn.Conv2d and isinstance(seq[3], ConvReLU2d) and isinstance(seq[4], nn.Identity)
