"""3D ResNet / ResNeXt clip backbones in the module layout of kenshohara's 3D-ResNets-PyTorch.

Attribute names follow that project (and YOWO's ``backbones_3d/resnet.py`` / ``resnext.py``, which
reuse it), so their Kinetics-pretrained files and YOWO's checkpoints map key for key:
``conv1`` (7x7x7, stride (1, 2, 2)), ``bn1``, ``maxpool`` (3x3x3, stride 2 in time *and* space),
``layer1`` .. ``layer4`` of blocks with ``conv1``/``bn1``/``conv2``/``bn2`` (``conv3``/``bn3`` in a
bottleneck) and ``downsample.0`` (1x1x1 conv) / ``downsample.1`` (BatchNorm) for shortcut type B.
Shortcut type A (the Kinetics ResNet-18) subsamples and zero-pads the channels: no weights.

Strides: the clip shrinks by 32 in space and by 16 in time (stem 1, pool 2, layers 2-4 each 2,
rounding up). The remaining time steps are averaged, as YOWO does (it squeezes T = 1 and averages
T = 2), so every backbone returns ``Tensor[B, C, ceil(H / 32), ceil(W / 32)]``.

Classifier layers (``avgpool``/``fc``) of the Kinetics models are not part of the backbone.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from singleshot.errors import ConfigError

logger = logging.getLogger(__name__)

__all__ = [
    "BasicBlock3D",
    "ResNeXtBottleneck3D",
    "ResNet3D",
    "ZeroPadShortcut",
    "kaiming_init_3d",
    "resnet18_3d",
    "resnext101_3d",
    "resnext3d",
    "tiny3d",
]


class ZeroPadShortcut(nn.Module):
    """Shortcut type A: keep every ``stride``-th voxel and append zero channels up to ``out_channels``.

    Shapes: Tensor[B, C, T, H, W] -> Tensor[B, out_channels, ceil(T/s), ceil(H/s), ceil(W/s)].
    """

    def __init__(self, out_channels: int, stride: int) -> None:
        super().__init__()
        self.out_channels = out_channels
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        s = self.stride
        if s > 1:
            x = x[:, :, ::s, ::s, ::s]
        return F.pad(x, (0, 0, 0, 0, 0, 0, 0, self.out_channels - x.shape[1]))


def kaiming_init_3d(module: nn.Module) -> None:
    """He-normal (fan-out) init of every ``nn.Conv3d`` weight, as kenshohara's models. Tensors on the
    ``meta`` device (shape-only builds) are skipped: they hold no values, and ``normal_`` on meta
    takes a slow first-call path."""
    for m in module.modules():
        if isinstance(m, nn.Conv3d) and not m.weight.is_meta:
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")


def _shortcut(kind: str, cin: int, cout: int, stride: int) -> nn.Module | None:
    """The projection of a block whose input and output differ (None when they do not)."""
    if stride == 1 and cin == cout:
        return None
    if kind == "A":
        return ZeroPadShortcut(cout, stride)
    return nn.Sequential(nn.Conv3d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm3d(cout))


class BasicBlock3D(nn.Module):
    """Two 3x3x3 conv-BN layers with an identity (or projected) shortcut; ``planes`` output channels."""

    expansion = 1

    def __init__(
        self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None, cardinality: int = 1
    ) -> None:
        super().__init__()
        del cardinality  # plain convolutions
        self.conv1 = nn.Conv3d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm3d(planes)
        self.conv2 = nn.Conv3d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm3d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNeXtBottleneck3D(nn.Module):
    """1x1x1 reduce, grouped 3x3x3 (``cardinality`` groups, carries the stride), 1x1x1 expand.

    The middle width is ``cardinality * (planes // 32)`` and the output ``2 * planes`` channels, as in
    the 3D ResNeXt of Hara et al. (ResNeXt-101 32x4d: widths 128/256, 256/512, 512/1024, 1024/2048).
    """

    expansion = 2

    def __init__(
        self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None, cardinality: int = 32
    ) -> None:
        super().__init__()
        mid = cardinality * (planes // 32)
        if mid == 0:
            raise ConfigError(f"ResNeXt bottleneck: planes={planes} gives no channels per group (need planes >= 32)")
        self.conv1 = nn.Conv3d(inplanes, mid, 1, bias=False)
        self.bn1 = nn.BatchNorm3d(mid)
        self.conv2 = nn.Conv3d(mid, mid, 3, stride=stride, padding=1, groups=cardinality, bias=False)
        self.bn2 = nn.BatchNorm3d(mid)
        self.conv3 = nn.Conv3d(mid, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm3d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet3D(nn.Module):
    """A 3D residual network trunk (no classifier) with kenshohara's attribute names.

    Args:
        block: ``BasicBlock3D`` or ``ResNeXtBottleneck3D``.
        layers: blocks per stage (4 stages).
        planes: the ``planes`` argument of each stage (output channels = planes * block.expansion).
        shortcut: ``"A"`` (zero-pad, no weights) or ``"B"`` (1x1x1 conv + BN) projections.
        stem_channels: output channels of ``conv1``.
        stem_kernel: (kt, kh, kw) of ``conv1``; padding is half the kernel, stride (1, 2, 2).
        cardinality: groups of the ResNeXt middle convolution (ignored by ``BasicBlock3D``).
        last_stride: stride of ``layer4`` (2 as published; 1 keeps the map of ``layer3``, output
            stride 16 instead of 32).

    Shapes:
        x: Tensor[B, 3, T, H, W] -> Tensor[B, out_channels, ceil(H/s), ceil(W/s)] (time averaged),
        s = ``self.stride`` (32, or 16 with ``last_stride=1``).
    """

    def __init__(
        self,
        block: type[BasicBlock3D] | type[ResNeXtBottleneck3D],
        layers: Sequence[int],
        planes: Sequence[int] = (64, 128, 256, 512),
        shortcut: str = "B",
        stem_channels: int = 64,
        stem_kernel: tuple[int, int, int] = (7, 7, 7),
        cardinality: int = 32,
        last_stride: int = 2,
    ) -> None:
        super().__init__()
        if last_stride not in (1, 2):
            raise ConfigError(f"last_stride must be 1 or 2, got {last_stride}")
        if shortcut not in ("A", "B"):
            raise ConfigError(f"shortcut must be 'A' or 'B', got {shortcut!r}")
        if len(layers) != 4 or len(planes) != 4 or min(layers) < 1:
            raise ConfigError(f"need 4 stages of at least one block, got layers={list(layers)} planes={list(planes)}")
        stem_pad = tuple(k // 2 for k in stem_kernel)
        self.conv1 = nn.Conv3d(3, stem_channels, stem_kernel, stride=(1, 2, 2), padding=stem_pad, bias=False)
        self.bn1 = nn.BatchNorm3d(stem_channels)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool3d(kernel_size=3, stride=2, padding=1)
        cin = stem_channels
        stages = []
        for i, (n, p) in enumerate(zip(layers, planes)):
            stride = 1 if i == 0 else (last_stride if i == 3 else 2)
            cout = p * block.expansion
            blocks = [block(cin, p, stride, _shortcut(shortcut, cin, cout, stride), cardinality)]
            blocks += [block(cout, p, 1, None, cardinality) for _ in range(n - 1)]
            stages.append(nn.Sequential(*blocks))
            cin = cout
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.out_channels = cin
        self.stride = 16 * last_stride
        kaiming_init_3d(self)

    def tail_names(self) -> tuple[str, ...]:
        """Submodules that YOWO keeps trainable when it freezes this backbone ("partial" freezing)."""
        return ("layer4",)

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return x.mean(dim=2)


def resnext3d(
    layers: Sequence[int] = (3, 4, 23, 3), cardinality: int = 32, planes: Sequence[int] = (128, 256, 512, 1024)
) -> ResNet3D:
    """3D ResNeXt with shortcut B (Hara et al.): ``layers=(3, 4, 23, 3)`` is ResNeXt-101 with
    ``2 * planes[-1]`` = 2048 output channels; smaller ``layers``/``planes`` give narrow variants."""
    return ResNet3D(ResNeXtBottleneck3D, layers, planes=planes, shortcut="B", cardinality=cardinality)


def resnext101_3d(cardinality: int = 32) -> ResNet3D:
    """3D ResNeXt-101 (32 groups), YOWO's default clip backbone: Tensor[B, 3, T, H, W] -> [B, 2048, H/32, W/32]."""
    return resnext3d((3, 4, 23, 3), cardinality)


def resnet18_3d(width: float = 1.0, shortcut: str = "A") -> ResNet3D:
    """3D ResNet-18 (basic blocks 2, 2, 2, 2): Tensor[B, 3, T, H, W] -> [B, 512 * width, H/32, W/32].

    Args:
        width: channel multiplier of every layer (1.0 matches the Kinetics / YOWO weights).
        shortcut: ``"A"`` as the Kinetics ResNet-18 and YOWO's ``resnet18``; ``"B"`` adds 1x1x1 projections.
    """
    if width <= 0:
        raise ConfigError(f"width must be positive, got {width}")
    planes = [max(4, int(round(c * width))) for c in (64, 128, 256, 512)]
    return ResNet3D(BasicBlock3D, (2, 2, 2, 2), planes, shortcut, stem_channels=planes[0])


def tiny3d(
    width: int = 16, blocks: int = 1, stem_kernel: tuple[int, int, int] = (3, 7, 7), stride: int = 32
) -> ResNet3D:
    """A small 3D ResNet for CPU demos: stages of ``blocks`` basic blocks with ``width * (1, 2, 4, 8)``
    channels, 1x1x1 projections (shortcut B) and a cheaper (3, 7, 7) stem.

    ``stride=16`` leaves ``layer4`` at the resolution of ``layer3`` (a finer output map for small
    inputs and small actors).

    Shapes: Tensor[B, 3, T, H, W] -> Tensor[B, 8 * width, ceil(H/stride), ceil(W/stride)].
    """
    if width < 1 or blocks < 1:
        raise ConfigError(f"tiny3d needs width >= 1 and blocks >= 1, got width={width} blocks={blocks}")
    if stride not in (16, 32):
        raise ConfigError(f"tiny3d: stride must be 16 or 32, got {stride}")
    planes = [width, 2 * width, 4 * width, 8 * width]
    return ResNet3D(
        BasicBlock3D, (blocks,) * 4, planes, "B", stem_channels=width, stem_kernel=stem_kernel, last_stride=stride // 16
    )
