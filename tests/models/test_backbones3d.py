"""3D backbones: layouts against torchvision's 2D models (inflated), forwards against functional references."""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
import torch
from torch import nn
from torchvision.models import resnet as tv_resnet
from torchvision.models import shufflenetv2 as tv_shufflenet

from singleshot.errors import ConfigError
from singleshot.models.backbones3d import (
    build_backbone3d,
    resnet18_3d,
    resnext3d,
    resnext101_3d,
    shufflenetv2_3d,
    tiny3d,
)


def _load_reference() -> ModuleType:
    spec = importlib.util.spec_from_file_location("yowo_reference", Path(__file__).with_name("yowo_reference.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


R = _load_reference()  # independent key layouts and functional forwards (tests/models/yowo_reference.py)


def _shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _inflated(tv_state: dict[str, torch.Tensor], rename: Callable[[str], str] = str) -> dict[str, tuple[int, ...]]:
    """torchvision 2D shapes with every k x k kernel inflated to k x k x k; classifier dropped."""
    out = {}
    for k, v in tv_state.items():
        if k.startswith(("fc.", "classifier.")):
            continue
        s = tuple(v.shape)
        out[rename(k)] = (s[0], s[1], s[2], s[2], s[3]) if v.dim() == 4 else s
    return out


def _params(shapes: dict[str, tuple[int, ...]]) -> int:
    return sum(
        math.prod(s)
        for k, s in shapes.items()
        if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))
    )


def test_resnext101_is_torchvision_resnext101_32x4d_inflated_to_3d() -> None:
    with torch.device("meta"):
        ours = resnext101_3d()
        tv = tv_resnet.ResNet(tv_resnet.Bottleneck, [3, 4, 23, 3], groups=32, width_per_group=4)
    expected = _inflated(tv.state_dict())
    expected["conv1.weight"] = (64, 3, 7, 7, 7)  # torchvision's 7x7 stem -> 7x7x7
    assert _shapes(ours) == expected
    n = sum(p.numel() for p in ours.parameters())
    assert n == _params(expected)  # 47,521,216 for ResNeXt-101 32x4d 3D without classifier
    assert ours.out_channels == 2048


@pytest.mark.parametrize("shortcut", ["A", "B"])
def test_resnet18_is_torchvision_resnet18_inflated(shortcut: str) -> None:
    with torch.device("meta"):
        ours = resnet18_3d(shortcut=shortcut)
        tv = tv_resnet.resnet18()
    expected = _inflated(tv.state_dict())
    if shortcut == "A":  # zero-padding shortcuts carry no weights
        expected = {k: v for k, v in expected.items() if ".downsample." not in k}
    assert _shapes(ours) == expected
    assert ours.out_channels == 512


@pytest.mark.parametrize(
    ("mult", "tv_builder"), [(0.5, "shufflenet_v2_x0_5"), (1.0, "shufflenet_v2_x1_0"), (1.5, "shufflenet_v2_x1_5")]
)
def test_shufflenetv2_is_torchvision_shufflenet_inflated(mult: float, tv_builder: str) -> None:
    with torch.device("meta"):
        ours = shufflenetv2_3d(mult)
        tv = getattr(tv_shufflenet, tv_builder)()
    starts = {"stage2": 0, "stage3": 4, "stage4": 12}

    def rename(k: str) -> str:
        head, rest = k.split(".", 1)
        if head in starts:
            unit, rest = rest.split(".", 1)
            return f"features.{starts[head] + int(unit)}.{rest.replace('branch', 'banch')}"
        return {"conv5": "conv_last"}.get(head, head) + "." + rest

    assert _shapes(ours) == _inflated(tv.state_dict(), rename)


def test_outputs_are_stride_32_with_time_averaged() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 3, 8, 40, 72)
    for model in (
        tiny3d(8),
        resnet18_3d(width=0.125),
        shufflenetv2_3d(0.25),
        resnext3d((1, 1, 1, 1), 4, (32, 32, 64, 64)),
    ):
        y = model.eval()(x)
        assert y.shape == (2, model.out_channels, 2, 3), type(model).__name__


def _check_against(
    model: nn.Module, sd: dict[str, torch.Tensor], x: torch.Tensor, reference: Callable[[torch.Tensor], torch.Tensor]
) -> None:
    model.load_state_dict(sd, strict=True)
    model.eval()
    with torch.no_grad():
        ours = model(x)
    expected = reference(x)
    assert ours.shape == expected.shape
    torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-4)


def test_narrow_resnext_matches_functional_reference() -> None:
    planes, layers = (32, 64, 64, 128), (1, 2, 1, 1)
    sd = R.random_state(R.resnet_keys("", layers, planes, "resnext", card=8), seed=1)
    x = torch.randn(2, 3, 16, 32, 32, generator=torch.Generator().manual_seed(2))
    _check_against(resnext3d(layers, 8, planes), sd, x, lambda v: R.resnet3d_forward(sd, "", v, "resnext"))


def test_quarter_resnet18_shortcut_a_matches_reference_with_two_time_steps_averaged() -> None:
    sd = R.random_state(R.resnet_keys("", (2, 2, 2, 2), (16, 32, 64, 128), shortcut="A", stem=16), seed=3)
    x = torch.randn(1, 3, 32, 32, 32, generator=torch.Generator().manual_seed(4))  # layer4 keeps T = 2
    _check_against(resnet18_3d(width=0.25), sd, x, lambda v: R.resnet3d_forward(sd, "", v, "basic"))


def test_tiny3d_matches_reference() -> None:
    sd = R.random_state(R.resnet_keys("", (1, 1, 1, 1), (16, 32, 64, 128), stem=16, stem_kernel=(3, 7, 7)), seed=5)
    x = torch.randn(2, 3, 8, 64, 64, generator=torch.Generator().manual_seed(6))
    _check_against(tiny3d(16), sd, x, lambda v: R.resnet3d_forward(sd, "", v, "basic", (3, 7, 7)))


def test_tiny3d_stride_16_keeps_layer4_at_the_layer3_map() -> None:
    model = tiny3d(8, stride=16).eval()
    x = torch.randn(1, 3, 4, 64, 96)
    with torch.no_grad():
        out = model(x)
        inner = model.layer3(model.layer2(model.layer1(model.maxpool(model.relu(model.bn1(model.conv1(x)))))))
    assert out.shape == (1, 64, 4, 6) and inner.shape[-2:] == out.shape[-2:] and model.stride == 16
    assert tiny3d(8).stride == 32
    with pytest.raises(ConfigError, match="stride"):
        tiny3d(8, stride=64)


def test_shufflenetv2_matches_reference() -> None:
    sd = R.random_state(R.shufflenet_keys("", (24, 32, 64, 128, 1024)), seed=7)
    x = torch.randn(1, 3, 16, 32, 32, generator=torch.Generator().manual_seed(8))
    _check_against(shufflenetv2_3d(0.25), sd, x, lambda v: R.shufflenet3d_forward(sd, "", v))


def test_shufflenet_2x_uses_yowo_stage_widths() -> None:
    with torch.device("meta"):
        model = shufflenetv2_3d(2.0)
    assert _shapes(model) == R.shufflenet_keys("", (24, 224, 488, 976, 2048))
    assert model.out_channels == 2048


def test_builder_table_and_errors() -> None:
    assert build_backbone3d("tiny3d", width=8).out_channels == 64
    with pytest.raises(ConfigError, match="unknown 3D backbone"):
        build_backbone3d("i3d")
    with pytest.raises(ConfigError, match="bad arguments"):
        build_backbone3d("tiny3d", depth=3)
    with pytest.raises(ConfigError, match="width_mult"):
        shufflenetv2_3d(0.75)
