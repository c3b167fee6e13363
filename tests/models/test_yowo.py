"""YOWO model: output layout, key frame and fusion order, published sizes, freezing."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from singleshot.errors import ConfigError
from singleshot.models.yowo import YOWO, yowo, yowo_tiny

# YOWO's UCF101-24 anchors (REFERENCES.md section 2, YOWO cfg/ucf24.yaml), grid-cell units.
UCF24 = [(0.70458, 1.18803), (1.26654, 2.55121), (1.59382, 4.08321), (2.30548, 4.94180), (3.52332, 5.91979)]


def _bn_state(module: nn.Module) -> list[torch.Tensor]:
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    return [t.clone() for m in norms for t in (m.running_mean, m.running_var)]


def test_tiny_output_layout_and_attributes() -> None:
    torch.manual_seed(0)
    model = yowo_tiny(24)
    out = model(torch.randn(2, 3, 8, 64, 96))
    assert set(out) == {"out"}
    assert out["out"].shape == (2, 5 * (5 + 24), 2, 3)
    assert model.num_classes == 24 and model.num_anchors == 5
    torch.testing.assert_close(model.anchors, torch.tensor(UCF24))
    assert "anchors" not in model.state_dict()  # a non-persistent buffer: YOWO checkpoints have no anchors
    custom = yowo_tiny(3, anchors=[(1.0, 2.0), (3.0, 3.0)])
    assert custom.eval()(torch.randn(1, 3, 4, 32, 32))["out"].shape == (1, 2 * 8, 1, 1)


def test_key_frame_is_last_and_3d_features_come_first() -> None:
    model = yowo_tiny(4).eval()
    seen: dict[str, torch.Tensor] = {}
    model.backbone_2d.register_forward_hook(lambda m, i, o: seen.update(key=i[0], f2=o))
    model.backbone_3d.register_forward_hook(lambda m, i, o: seen.update(f3=o))
    model.cfam.register_forward_hook(lambda m, i, o: seen.update(fused=i[0]))
    clip = torch.randn(1, 3, 8, 64, 64)
    with torch.no_grad():
        model(clip)
    torch.testing.assert_close(seen["key"], clip[:, :, -1])
    torch.testing.assert_close(seen["fused"], torch.cat([seen["f3"], seen["f2"]], dim=1))


def test_input_checks() -> None:
    model = yowo_tiny(2)
    with pytest.raises(ValueError, match="divisible by 32"):
        model(torch.randn(1, 3, 4, 48, 64))
    with pytest.raises(ValueError, match="clip"):
        model(torch.randn(1, 3, 64, 64))
    with pytest.raises(ConfigError, match="anchors"):
        yowo_tiny(2, anchors=[(1.0, -1.0)])
    with pytest.raises(ConfigError, match="freeze_2d"):
        yowo_tiny(2, freeze_2d="some")
    with pytest.raises(ConfigError, match="unknown 2D backbone"):
        yowo(2, "tiny3d", "vgg")


@pytest.mark.parametrize(("b3", "c3"), [("resnext101", 2048), ("resnet18", 512), ("shufflenetv2", 2048)])
def test_published_configurations(b3: str, c3: int) -> None:
    with torch.device("meta"):
        model = yowo(24, backbone3d=b3)
    # YOWO concatenates C3 + 425 channels into CFAM (2473 for ResNeXt-101, as in YOWO's cfam.py demo)
    assert model.cfam.conv_bn_relu1[0].in_channels == c3 + 425
    assert model.conv_final.weight.shape == (145, 1024, 1, 1) and model.conv_final.bias is None
    parts = sum(
        sum(p.numel() for p in m.parameters())
        for m in (model.backbone_3d, model.backbone_2d, model.cfam, model.conv_final)
    )
    assert sum(p.numel() for p in model.parameters()) == parts


def test_freeze_all_2d_keeps_bn_statistics_and_gets_no_gradients() -> None:
    torch.manual_seed(1)
    model = yowo_tiny(3, freeze_2d=True)
    model.train()
    assert all(not p.requires_grad for p in model.backbone_2d.parameters())
    assert all(p.requires_grad for p in model.backbone_3d.parameters())
    assert not any(m.training for m in model.backbone_2d.modules())
    assert model.backbone_3d.training and model.cfam.training
    before_2d, before_3d = _bn_state(model.backbone_2d), _bn_state(model.backbone_3d)
    model(torch.randn(2, 3, 4, 64, 64))["out"].square().mean().backward()
    for a, b in zip(before_2d, _bn_state(model.backbone_2d)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert any(not torch.equal(a, b) for a, b in zip(before_3d, _bn_state(model.backbone_3d)))
    assert all(p.grad is None for p in model.backbone_2d.parameters())
    assert all(p.grad is not None for p in model.backbone_3d.parameters())
    model.eval().train()  # a second train() call keeps the frozen part in eval mode
    assert not any(m.training for m in model.backbone_2d.modules())


def test_partial_freeze_keeps_yowo_tails_trainable() -> None:
    model = yowo_tiny(3, freeze_2d="partial", freeze_3d="partial").train()
    b3, b2 = model.backbone_3d, model.backbone_2d
    trainable_3d = {n.split(".")[0] for n, p in b3.named_parameters() if p.requires_grad}
    assert trainable_3d == {"layer4"}
    assert b3.layer4.training and not b3.layer3.training and not b3.bn1.training
    tail = set(b2.tail_names())
    assert tail == {"models.8", "models.10"}  # tiny2d: the last two convolutions
    assert {".".join(n.split(".")[:2]) for n, p in b2.named_parameters() if p.requires_grad} == tail
    model.set_freeze(False, False)
    assert all(p.requires_grad for p in model.parameters())
    assert all(m.training for m in model.modules())


def test_yowo_class_accepts_any_backbones_with_out_channels() -> None:
    class Flat3D(nn.Module):
        out_channels = 6

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return nn.functional.avg_pool3d(x, (x.shape[2], 32, 32)).squeeze(2).repeat(1, 2, 1, 1)

    class Flat2D(nn.Module):
        out_channels = 3

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return nn.functional.avg_pool2d(x, 32)

    model = YOWO(Flat3D(), Flat2D(), num_classes=2, cfam_channels=16, clip_len=4)
    assert model(torch.randn(1, 3, 4, 64, 32))["out"].shape == (1, 35, 2, 1)
    with pytest.raises(ConfigError, match="tail_names"):
        YOWO(Flat3D(), Flat2D(), num_classes=2, cfam_channels=16, freeze_3d="partial")


def test_tiny_stride_16_halves_the_cell() -> None:
    torch.manual_seed(0)
    coarse, fine = yowo_tiny(4, width=8), yowo_tiny(4, width=8, stride=16)
    assert (coarse.stride, fine.stride) == (32, 16)
    assert fine(torch.randn(1, 3, 4, 96, 64))["out"].shape == (1, 5 * 9, 6, 4)
    # Dropping a pool and a stride adds no parameter.
    assert sum(p.numel() for p in coarse.parameters()) == sum(p.numel() for p in fine.parameters())
    with pytest.raises(ConfigError, match="stride"):
        yowo_tiny(2, stride=4)


def test_tiny_stride_8_upsamples_the_3d_map_to_the_2d_map() -> None:
    torch.manual_seed(0)
    model = yowo_tiny(4, width=8, stride=8).eval()
    assert model.stride == 8 and model.backbone_3d.stride == 16 and model.backbone_2d.stride == 8
    seen: dict[str, torch.Tensor] = {}
    model.backbone_3d.register_forward_hook(lambda m, i, o: seen.update(f3=o))
    model.cfam.register_forward_hook(lambda m, i, o: seen.update(fused=i[0]))
    with torch.no_grad():
        out = model(torch.randn(1, 3, 4, 96, 64))["out"]
    assert out.shape == (1, 5 * 9, 12, 8) and seen["f3"].shape[-2:] == (6, 4)
    c3 = seen["f3"].shape[1]
    # nearest upsampling: every 2x2 block of the fused 3D channels repeats one 3D cell
    torch.testing.assert_close(seen["fused"][:, :c3], seen["f3"].repeat_interleave(2, -2).repeat_interleave(2, -1))


def test_backbones_of_incompatible_strides_are_refused() -> None:
    from singleshot.models.backbones3d_resnet import tiny3d
    from singleshot.models.darknet import tiny2d

    with pytest.raises(ConfigError, match="output stride"):  # a 2D map coarser than the 3D map
        YOWO(tiny3d(8, stride=16), tiny2d(8, 64), num_classes=2, cfam_channels=16)
    assert YOWO(tiny3d(8, stride=32), tiny2d(8, 64, stride=16), num_classes=2, cfam_channels=16).stride == 16


def test_input_3d_diff_feeds_frame_differences_to_the_3d_branch() -> None:
    torch.manual_seed(0)
    model = yowo_tiny(4, input_3d="diff").eval()
    seen: dict[str, torch.Tensor] = {}
    model.backbone_3d.register_forward_hook(lambda m, i, o: seen.update(clip3d=i[0]))
    model.backbone_2d.register_forward_hook(lambda m, i, o: seen.update(key=i[0]))
    clip = torch.randn(2, 3, 8, 64, 64)
    with torch.no_grad():
        out = model(clip)["out"]
    assert seen["clip3d"].shape == (2, 3, 7, 64, 64)
    torch.testing.assert_close(seen["clip3d"][:, :, 3], clip[:, :, 4] - clip[:, :, 3])
    torch.testing.assert_close(seen["key"], clip[:, :, -1])
    # a still clip: the 3D branch sees only zeros, so the clip's earlier frames no longer matter
    still = clip[:, :, -1:].expand(-1, -1, 8, -1, -1)
    with torch.no_grad():
        model(still)
        assert torch.count_nonzero(seen["clip3d"]) == 0
        assert not torch.allclose(model(clip)["out"], model(still)["out"])
    assert out.shape == (2, 5 * 9, 2, 2)
    with pytest.raises(ConfigError, match="input_3d"):
        yowo_tiny(4, input_3d="flow")
    with pytest.raises(ValueError, match="at least 2 frames"):
        model(torch.randn(1, 3, 1, 64, 64))


def test_parallel_branches_give_the_same_outputs_and_gradients() -> None:
    import copy

    torch.manual_seed(0)
    seq = yowo_tiny(3, clip_len=4, width=8, stride=8, input_3d="diff")
    par = copy.deepcopy(seq)
    par.parallel = True
    clip = torch.randn(2, 3, 4, 64, 64)
    outs = []
    for m in (seq, par):
        torch.manual_seed(1)  # CFAM's dropout draws the same mask
        outs.append(m(clip)["out"])
    assert torch.equal(outs[0], outs[1])
    for out in outs:
        (out.square().mean()).backward()
    for (name, p), q in zip(seq.named_parameters(), par.parameters()):
        assert torch.equal(p.grad, q.grad), name


def test_channels_last_3d_is_a_layout_only() -> None:
    import copy

    torch.manual_seed(0)
    ref = yowo_tiny(3, clip_len=4, width=8, stride=8, input_3d="diff").eval()
    fast = copy.deepcopy(ref).set_channels_last_3d(True)
    conv = next(m for m in fast.backbone_3d.modules() if isinstance(m, nn.Conv3d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last_3d)
    clip = torch.randn(2, 3, 4, 64, 64)
    torch.testing.assert_close(fast(clip)["out"], ref(clip)["out"], rtol=1e-4, atol=1e-5)
    state, ref_state = fast.state_dict(), ref.state_dict()
    assert list(state) == list(ref_state) and all(torch.equal(state[k], ref_state[k]) for k in state)
    fast.set_channels_last_3d(False)
    assert conv.weight.is_contiguous() and not fast.channels_last_3d
