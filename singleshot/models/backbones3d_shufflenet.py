"""3D ShuffleNetV2 clip backbone in the module layout of okankop's Efficient-3DCNNs (used by YOWO).

Attribute names follow that project so its Kinetics-pretrained files and YOWO's ``shufflenetv2``
checkpoints map key for key: ``conv1`` (Sequential conv 3x3x3 stride (1, 2, 2), BN, ReLU),
``maxpool`` (3x3x3 stride 2), ``features.{i}`` (16 inverted residual units, stage repeats 4, 8, 4,
each stage starting with a stride-2 unit) whose branches are spelled ``banch1`` / ``banch2`` as in
the source, and ``conv_last`` (Sequential 1x1x1 conv, BN, ReLU).

Stage output channels per width multiplier are the source's table; note that its 2.0x table uses
224 channels in the first stage (the 2D ShuffleNetV2 paper has 244), which YOWO's weights need.

Strides: 32 in space, 16 in time (rounding up); remaining time steps are averaged, so the output is
``Tensor[B, C, ceil(H / 32), ceil(W / 32)]``.
"""

from __future__ import annotations

import logging

import torch
from torch import Tensor, nn

from singleshot.errors import ConfigError
from singleshot.models.backbones3d_resnet import kaiming_init_3d

logger = logging.getLogger(__name__)

__all__ = ["SHUFFLENETV2_CHANNELS", "InvertedResidual3D", "ShuffleNetV2_3D", "channel_shuffle", "shufflenetv2_3d"]

#: width multiplier -> (stem, stage 2, stage 3, stage 4, conv_last) output channels.
SHUFFLENETV2_CHANNELS: dict[float, tuple[int, int, int, int, int]] = {
    0.25: (24, 32, 64, 128, 1024),
    0.5: (24, 48, 96, 192, 1024),
    1.0: (24, 116, 232, 464, 1024),
    1.5: (24, 176, 352, 704, 1024),
    2.0: (24, 224, 488, 976, 2048),
}
STAGE_REPEATS = (4, 8, 4)


def channel_shuffle(x: Tensor, groups: int) -> Tensor:
    """Interleave ``groups`` channel groups: channel ``g * (C / groups) + i`` moves to ``i * groups + g``.

    Shapes: Tensor[B, C, T, H, W] -> same shape.
    """
    b, c = x.shape[:2]
    return x.reshape(b, groups, c // groups, *x.shape[2:]).transpose(1, 2).reshape(x.shape)


def _pw(cin: int, cout: int, relu: bool = True) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv3d(cin, cout, 1, bias=False), nn.BatchNorm3d(cout)]
    return layers + [nn.ReLU(inplace=True)] if relu else layers


def _dw(c: int, stride: int) -> list[nn.Module]:
    return [nn.Conv3d(c, c, 3, stride=stride, padding=1, groups=c, bias=False), nn.BatchNorm3d(c)]


class InvertedResidual3D(nn.Module):
    """One ShuffleNetV2 unit. Stride 1: the second half of the channels goes through ``banch2``
    (1x1x1, depthwise 3x3x3, 1x1x1) and the first half passes unchanged. Stride 2: both ``banch1``
    (depthwise, 1x1x1) and ``banch2`` see the whole input. The halves are concatenated, then shuffled.
    """

    def __init__(self, inp: int, oup: int, stride: int) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ConfigError(f"InvertedResidual3D stride must be 1 or 2, got {stride}")
        self.stride = stride
        half = oup // 2
        if stride == 2:
            self.banch1 = nn.Sequential(*_dw(inp, 2), *_pw(inp, half))
            cin2 = inp
        else:
            cin2 = half
        self.banch2 = nn.Sequential(*_pw(cin2, half), *_dw(half, stride), *_pw(half, half))

    def forward(self, x: Tensor) -> Tensor:
        if self.stride == 1:
            keep, rest = x.chunk(2, dim=1)
            out = torch.cat((keep, self.banch2(rest)), dim=1)
        else:
            out = torch.cat((self.banch1(x), self.banch2(x)), dim=1)
        return channel_shuffle(out, 2)


class ShuffleNetV2_3D(nn.Module):
    """3D ShuffleNetV2 trunk (no classifier).

    Args:
        width_mult: one of ``SHUFFLENETV2_CHANNELS`` (0.25, 0.5, 1.0, 1.5, 2.0; YOWO uses 2.0).

    Shapes:
        x: Tensor[B, 3, T, H, W] -> Tensor[B, out_channels, ceil(H/32), ceil(W/32)] (time averaged).
    """

    def __init__(self, width_mult: float = 2.0) -> None:
        super().__init__()
        if width_mult not in SHUFFLENETV2_CHANNELS:
            raise ConfigError(
                f"shufflenetv2 width_mult must be one of {sorted(SHUFFLENETV2_CHANNELS)}, got {width_mult}"
            )
        ch = SHUFFLENETV2_CHANNELS[width_mult]
        self.width_mult = width_mult
        self.conv1 = nn.Sequential(
            nn.Conv3d(3, ch[0], 3, stride=(1, 2, 2), padding=1, bias=False),
            nn.BatchNorm3d(ch[0]),
            nn.ReLU(inplace=True),
        )
        self.maxpool = nn.MaxPool3d(kernel_size=3, stride=2, padding=1)
        units: list[nn.Module] = []
        cin = ch[0]
        for repeats, cout in zip(STAGE_REPEATS, ch[1:4]):
            units += [InvertedResidual3D(cin if i == 0 else cout, cout, 2 if i == 0 else 1) for i in range(repeats)]
            cin = cout
        self.features = nn.Sequential(*units)
        self.conv_last = nn.Sequential(*_pw(cin, ch[4]))
        self.out_channels = ch[4]
        kaiming_init_3d(self)

    def tail_names(self) -> tuple[str, ...]:
        """Submodules kept trainable by "partial" freezing: the last stage and ``conv_last``."""
        first_last_stage = sum(STAGE_REPEATS[:-1])
        return tuple(f"features.{i}" for i in range(first_last_stage, len(self.features))) + ("conv_last",)

    def forward(self, x: Tensor) -> Tensor:
        x = self.features(self.maxpool(self.conv1(x)))
        return self.conv_last(x).mean(dim=2)


def shufflenetv2_3d(width_mult: float = 2.0) -> ShuffleNetV2_3D:
    """3D ShuffleNetV2 with ``width_mult`` (2.0 -> 2048 output channels, YOWO's ``shufflenetv2_2x``)."""
    return ShuffleNetV2_3D(width_mult)
