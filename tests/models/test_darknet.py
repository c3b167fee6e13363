"""Darknet 2D backbones: YOLOv2's layout and size, reorg order, forwards against a cfg-driven reference."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
import torch

from singleshot.errors import ConfigError
from singleshot.models.darknet import (
    ConvSpec,
    Darknet2D,
    PoolSpec,
    ReorgSpec,
    RouteSpec,
    darknet19_yolov2,
    reorg,
    tiny2d,
)


def _load_reference() -> ModuleType:
    spec = importlib.util.spec_from_file_location("yowo_reference", Path(__file__).with_name("yowo_reference.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


R = _load_reference()  # independent key layouts and functional forwards (tests/models/yowo_reference.py)

#: Darknet's yolov2.weights (COCO, from pjreddie.com) is 203,934,260 bytes: a 16-byte header + float32s.
YOLOV2_WEIGHTS_BYTES = 203_934_260


def test_yolov2_keys_are_yowo_darknet_names() -> None:
    with torch.device("meta"):
        model = darknet19_yolov2()
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert shapes == R.darknet_keys("", R.parse_cfg(R.YOLO_CFG))
    assert model.out_channels == 425
    assert model.tail_names() == ("models.29", "models.30")  # the layers YOWO fine-tunes when freezing


def test_yolov2_size_matches_darknet_yolov2_weights_file() -> None:
    with torch.device("meta"):
        model = darknet19_yolov2()
    params = sum(p.numel() for p in model.parameters())
    bn_channels = sum(m.num_features for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    # the file stores every parameter plus each BatchNorm's running mean and variance
    assert 16 + 4 * (params + 2 * bn_channels) == YOLOV2_WEIGHTS_BYTES
    assert params == 50_962_889


def test_reorg_matches_its_definition() -> None:
    x = torch.randn(2, 3, 4, 6)
    torch.testing.assert_close(reorg(x, 2), R.reorg_reference(x, 2), rtol=0, atol=0)
    with pytest.raises(ValueError, match="divisible"):
        reorg(torch.randn(1, 2, 3, 4))


def test_small_darknet_with_route_and_reorg_matches_reference() -> None:
    cfg = "\n".join(
        [
            "[convolutional]\nbatch_normalize=1\nfilters=8\nsize=3\nstride=1\npad=1\nactivation=leaky",
            "[maxpool]\nsize=2\nstride=2",
            "[convolutional]\nbatch_normalize=1\nfilters=16\nsize=3\nstride=1\npad=1\nactivation=leaky",
            "[maxpool]\nsize=2\nstride=2",
            "[convolutional]\nbatch_normalize=1\nfilters=12\nsize=1\nstride=1\npad=1\nactivation=leaky",
            "[route]\nlayers=-3",
            "[convolutional]\nbatch_normalize=1\nfilters=4\nsize=1\nstride=1\npad=1\nactivation=leaky",
            "[reorg]\nstride=2",
            "[route]\nlayers=-1,-4",
            "[convolutional]\nfilters=10\nsize=1\nstride=1\npad=1\nactivation=linear",
        ]
    )
    spec = [
        ConvSpec(8),
        PoolSpec(),
        ConvSpec(16),
        PoolSpec(),
        ConvSpec(12, 1),
        RouteSpec((-3,)),
        ConvSpec(4, 1),
        ReorgSpec(2),
        RouteSpec((-1, -4)),
        ConvSpec(10, 1, bn=False, act="linear"),
    ]
    blocks = R.parse_cfg(cfg)
    sd = R.random_state(R.darknet_keys("", blocks), seed=0)
    model = Darknet2D(spec)
    model.load_state_dict(sd, strict=True)
    x = torch.randn(2, 3, 32, 48)
    with torch.no_grad():
        out = model.eval()(x)
    assert out.shape == (2, 10, 8, 12)
    torch.testing.assert_close(out, R.darknet_forward(sd, "", blocks, x), rtol=1e-5, atol=1e-5)


def test_yolov2_forward_matches_cfg_reference_at_64px() -> None:
    blocks = R.parse_cfg(R.YOLO_CFG)
    sd = R.random_state(R.darknet_keys("", blocks), seed=1)
    with torch.device("meta"):  # skip the random init of 51M parameters; the weights come from sd
        model = darknet19_yolov2()
    model.load_state_dict(sd, strict=True, assign=True)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        out = model.eval()(x)
    assert out.shape == (1, 425, 2, 2) and model.stride == 32  # through the route and the reorg
    expected = R.darknet_forward(sd, "", blocks, x)
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-4 * float(expected.abs().max()))


def test_tiny2d_shape_and_errors() -> None:
    model = tiny2d(8, 32)
    assert model.eval()(torch.randn(2, 3, 64, 96)).shape == (2, 32, 2, 3) and model.stride == 32
    fine = tiny2d(8, 32, stride=16)
    assert fine.eval()(torch.randn(2, 3, 64, 96)).shape == (2, 32, 4, 6) and fine.stride == 16
    finer = tiny2d(8, 32, stride=8)
    assert finer.eval()(torch.randn(2, 3, 64, 96)).shape == (2, 32, 8, 12) and finer.stride == 8
    with pytest.raises(ConfigError, match="stride"):
        tiny2d(8, 32, stride=4)
    with pytest.raises(ConfigError, match="route"):
        Darknet2D([ConvSpec(4), RouteSpec((-5,))])
    with pytest.raises(ConfigError, match="activation"):
        Darknet2D([ConvSpec(4, act="mish")])
