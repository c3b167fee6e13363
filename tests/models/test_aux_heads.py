from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from torch import nn

from singleshot.errors import ConfigError
from singleshot.losses.multibox import AuxMultiBoxLoss
from singleshot.models.aux_heads import WithAuxHead, capture_outputs, deployable, ssd_aux_taps
from singleshot.models.small import ssd_slim
from singleshot.models.ssd import ssd300
from singleshot.models.tiny import ssd_tiny
from singleshot.ops.priors import generate_priors
from singleshot.structures import BoxTarget

pytestmark = pytest.mark.usefixtures("one_thread")


def _target(boxes: list[list[float]], labels: list[int], size: int) -> BoxTarget:
    return BoxTarget(
        boxes=torch.tensor(boxes),
        labels=torch.tensor(labels),
        difficult=torch.zeros(len(labels), dtype=torch.bool),
        size=(size, size),
        orig_size=(size, size),
    )


def test_tiny_taps_are_the_inputs_of_the_last_conv_of_each_source() -> None:
    torch.manual_seed(0)
    det = ssd_tiny(5, image_size=96, width=0.5).eval()
    wrapped = WithAuxHead(det)
    assert wrapped.taps == ["backbone.stage8.11", "backbone.stage16.2"]
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad(), capture_outputs(det, wrapped.taps) as maps:
        sources = det.backbone(x)
    bb = det.backbone
    with torch.no_grad():
        torch.testing.assert_close(maps["backbone.stage8.11"], bb.stage8[:12](x))
        torch.testing.assert_close(maps["backbone.stage16.2"], bb.stage16[:3](sources[0]))
        # one block shallower, same resolution: the remaining layers turn the tap into the source
        torch.testing.assert_close(bb.stage8[12:](maps["backbone.stage8.11"]), sources[0])
    assert all(not m._forward_hooks for m in det.modules())  # capture left no hooks behind


def test_vgg_taps_are_conv4_2_and_fc6() -> None:
    wrapped = WithAuxHead(ssd300(3))
    assert wrapped.taps == ["backbone.vgg.20", "backbone.vgg.32"]
    vgg = wrapped.student.backbone.vgg
    conv4_3, fc7 = vgg[21], vgg[33]
    assert isinstance(conv4_3, nn.Conv2d) and isinstance(fc7, nn.Conv2d) and fc7.kernel_size == (1, 1)
    assert [c.in_channels for c in wrapped.aux_head.conf] == [conv4_3.in_channels, fc7.in_channels]
    assert [c.out_channels for c in wrapped.aux_head.conf] == [4 * 4, 6 * 4]  # 4 and 6 priors per cell, C + 1 = 4


def test_aux_outputs_cover_exactly_the_priors_of_the_tapped_levels() -> None:
    det = ssd_slim(5, image_size=160)
    wrapped = WithAuxHead(det, levels=(0, 1))
    spec = det.prior_spec
    two = replace(
        spec,
        feature_maps=spec.feature_maps[:2],
        steps=spec.steps[:2],
        min_sizes=spec.min_sizes[:2],
        max_sizes=spec.max_sizes[:2],
        aspect_ratios=spec.aspect_ratios[:2],
    )
    torch.testing.assert_close(det.priors[wrapped.prior_index], generate_priors(two))
    out = wrapped(torch.randn(1, 3, 160, 160))
    assert out["aux_cls_logits"].shape == (1, two.num_priors, 6) and out["aux_bbox_regression"].shape == (
        1,
        two.num_priors,
        4,
    )
    assert {"cls_logits", "bbox_regression"} <= set(out)
    # the deployable model is the detector itself and its state has no auxiliary keys
    assert deployable(wrapped) is det
    extra = set(wrapped.state_dict()) - {f"student.{k}" for k in det.state_dict()}
    assert extra and all(k.startswith("aux_head.") for k in extra)
    assert not any("aux" in k for k in det.state_dict())


def test_aux_gradient_reaches_the_early_layers_by_the_short_path() -> None:
    torch.manual_seed(0)
    det = ssd_tiny(3, image_size=96, width=0.5)
    wrapped = WithAuxHead(det).train()
    out = wrapped(torch.randn(2, 3, 96, 96))
    loss = AuxMultiBoxLoss(det.priors, wrapped.prior_index)(out, [_target([[20, 20, 32, 33]], [1], 96)] * 2)
    sum(loss.values()).backward()
    assert float(det.backbone.stage8[0].weight.grad.abs().sum()) > 0
    assert det.backbone.stage16[3].weight.grad is None  # the source's last conv is not on the auxiliary path
    assert all(c.weight.grad is None for c in det.head.conf)
    assert all(c.weight.grad is not None for c in wrapped.aux_head.conf)


def test_unsupported_backbone_or_level_is_a_config_error() -> None:
    class Other(nn.Module):
        backbone = nn.Identity()

    with pytest.raises(ConfigError, match="no auxiliary taps"):
        ssd_aux_taps(Other())
    with pytest.raises(ConfigError, match="levels"):
        ssd_aux_taps(ssd_tiny(3, image_size=64), levels=(2,))
