"""Darknet-style 2D backbones for YOWO's key frame: YOLOv2 (Darknet-19 + passthrough) and a tiny one.

A network is a list of layer specs in Darknet cfg order (``ConvSpec``, ``PoolSpec``, ``RouteSpec``,
``ReorgSpec``), built into ``Darknet2D.models`` with one entry per spec. The names follow YOWO's
``backbones_2d/darknet.py`` so its checkpoints map key for key: spec ``i`` is ``models.{i}``; the
``n``-th convolution (1-based) is an ``nn.Sequential`` with children ``conv{n}``, ``bn{n}`` (when
batch-normalised; then the conv has no bias) and ``leaky{n}`` (LeakyReLU 0.1) or ``relu{n}``.

``darknet19_yolov2()`` is YOLOv2's ``yolo.cfg`` (COCO, 80 classes, 5 anchors) up to the region layer,
as YOWO uses it: 23 convolutions, the stride-16 conv13 output goes through a 1x1 conv to 64 channels
and a stride-2 reorg (space-to-depth) and is concatenated *before* the 1024-channel conv20 output
(route ``-1, -4``), then conv 3x3 1024 and a linear 1x1 conv with bias to 425 = 5 * (5 + 80) channels.
Its 50,962,889 parameters plus 2 x 10,336 BatchNorm running statistics are the 50,983,561 floats of
Darknet's ``yolov2.weights`` (203,934,260 bytes with a 16-byte header).

Reorg channel order: YOWO (like marvis/pytorch-yolo2) places input channel ``c`` at offset
``(i, j)`` of each 2x2 cell in output channel ``(i * 2 + j) * C + c``. Darknet's own C ``reorg`` layer
orders the channels differently, so Darknet's COCO weights fed through this layer are what YOWO
fine-tunes from, not a bit-exact copy of the Darknet detector. BatchNorm uses PyTorch's ``eps=1e-5``
on the variance (Darknet adds 1e-6 to the standard deviation), as YOWO does.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from singleshot.errors import ConfigError

logger = logging.getLogger(__name__)

__all__ = [
    "ConvSpec",
    "Darknet2D",
    "LayerSpec",
    "PoolSpec",
    "Reorg",
    "ReorgSpec",
    "RouteSpec",
    "darknet19_yolov2",
    "reorg",
    "tiny2d",
    "yolov2_spec",
]


@dataclass(frozen=True)
class ConvSpec:
    """``[convolutional]``: ``size`` x ``size`` conv, padding ``size // 2``; BN without conv bias, or a conv bias."""

    filters: int
    size: int = 3
    stride: int = 1
    bn: bool = True
    act: str = "leaky"  # "leaky" (slope 0.1), "relu" or "linear"


@dataclass(frozen=True)
class PoolSpec:
    """``[maxpool]``: ``size`` x ``size`` max pooling; stride 1 pads the right and bottom by replication."""

    size: int = 2
    stride: int = 2


@dataclass(frozen=True)
class RouteSpec:
    """``[route]``: the outputs of ``layers`` concatenated on channels (negative = relative to this layer)."""

    layers: tuple[int, ...]


@dataclass(frozen=True)
class ReorgSpec:
    """``[reorg]``: space-to-depth by ``stride`` (see ``reorg``)."""

    stride: int = 2


LayerSpec = ConvSpec | PoolSpec | RouteSpec | ReorgSpec


def reorg(x: Tensor, stride: int = 2) -> Tensor:
    """Space-to-depth in YOWO's channel order.

    ``out[b, (i * s + j) * C + c, y, x] = x[b, c, y * s + i, x * s + j]`` for offsets ``0 <= i, j < s``.

    Shapes: Tensor[B, C, H, W] -> Tensor[B, s * s * C, H / s, W / s] (H and W divisible by s).
    """
    b, c, h, w = x.shape
    if h % stride or w % stride:
        raise ValueError(f"reorg: feature map {h}x{w} is not divisible by stride {stride} (use inputs divisible by 32)")
    x = x.reshape(b, c, h // stride, stride, w // stride, stride).permute(0, 3, 5, 1, 2, 4)
    return x.reshape(b, stride * stride * c, h // stride, w // stride)


class Reorg(nn.Module):
    """Module form of ``reorg`` (no weights)."""

    def __init__(self, stride: int = 2) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        return reorg(x, self.stride)


class _MaxPool(nn.Module):
    """Darknet maxpool; stride 1 replicates the last row and column so that the size is kept."""

    def __init__(self, size: int, stride: int) -> None:
        super().__init__()
        self.size, self.stride = size, stride

    def forward(self, x: Tensor) -> Tensor:
        if self.stride == 1:
            x = F.pad(x, (0, self.size - 1, 0, self.size - 1), mode="replicate")
        return F.max_pool2d(x, self.size, self.stride)


class Darknet2D(nn.Module):
    """A Darknet network from layer specs; returns the last layer's output.

    Args:
        spec: the layers in cfg order.
        in_channels: image channels.

    Shapes:
        x: Tensor[B, in_channels, H, W] -> Tensor[B, out_channels, H / 2^p, W / 2^p] for p stride-2
        pools (H and W divisible by 2^p, and by the reorg strides that follow).
    """

    def __init__(self, spec: Sequence[LayerSpec], in_channels: int = 3) -> None:
        super().__init__()
        self.spec: tuple[LayerSpec, ...] = tuple(spec)
        self.models = nn.ModuleList()
        channels: list[int] = []
        strides: list[int] = []  # each layer's output stride in input pixels
        self._sources: list[tuple[int, ...]] = []
        c, n_conv, stride = in_channels, 0, 1
        for i, layer in enumerate(self.spec):
            sources: tuple[int, ...] = ()
            if isinstance(layer, ConvSpec):
                n_conv += 1
                self.models.append(_conv_block(c, layer, n_conv))
                c, stride = layer.filters, stride * layer.stride
            elif isinstance(layer, PoolSpec):
                self.models.append(_MaxPool(layer.size, layer.stride))
                stride *= layer.stride
            elif isinstance(layer, ReorgSpec):
                self.models.append(Reorg(layer.stride))
                c, stride = c * layer.stride * layer.stride, stride * layer.stride
            elif isinstance(layer, RouteSpec):
                sources = tuple(j + i if j < 0 else j for j in layer.layers)
                if not sources or any(j < 0 or j >= i for j in sources):
                    raise ConfigError(f"darknet layer {i}: route {layer.layers} must name earlier layers")
                self.models.append(nn.Identity())
                c, stride = sum(channels[j] for j in sources), strides[sources[0]]
            else:
                raise ConfigError(f"darknet layer {i}: unknown spec {layer!r}")
            channels.append(c)
            strides.append(stride)
            self._sources.append(sources)
        if not self.spec:
            raise ConfigError("darknet: empty layer spec")
        self._keep = {j for s in self._sources for j in s}
        self.out_channels = c
        self.stride = stride  # output stride (input pixels per output cell)
        self.num_convs = n_conv

    def conv_layers(self) -> Iterator[tuple[int, nn.Conv2d, nn.BatchNorm2d | None]]:
        """``(spec index, conv, batch norm or None)`` in cfg order (the order of a ``.weights`` file)."""
        for i, layer in enumerate(self.spec):
            if isinstance(layer, ConvSpec):
                block = self.models[i]
                assert isinstance(block, nn.Sequential)
                bn = block[1] if layer.bn else None
                assert isinstance(block[0], nn.Conv2d) and (bn is None or isinstance(bn, nn.BatchNorm2d))
                yield i, block[0], bn

    def tail_names(self) -> tuple[str, ...]:
        """The last two convolutions (YOWO's ``models.29`` / ``models.30``), trainable under "partial" freezing."""
        return tuple(f"models.{i}" for i, _, _ in list(self.conv_layers())[-2:])

    def forward(self, x: Tensor) -> Tensor:
        outputs: dict[int, Tensor] = {}
        for i, module in enumerate(self.models):
            sources = self._sources[i]
            if sources:
                x = outputs[sources[0]] if len(sources) == 1 else torch.cat([outputs[j] for j in sources], dim=1)
            else:
                x = module(x)
            if i in self._keep:
                outputs[i] = x
        return x


def _conv_block(cin: int, spec: ConvSpec, n: int) -> nn.Sequential:
    layers: list[tuple[str, nn.Module]] = [
        (f"conv{n}", nn.Conv2d(cin, spec.filters, spec.size, spec.stride, spec.size // 2, bias=not spec.bn))
    ]
    if spec.bn:
        layers.append((f"bn{n}", nn.BatchNorm2d(spec.filters)))
    if spec.act == "leaky":
        layers.append((f"leaky{n}", nn.LeakyReLU(0.1, inplace=True)))
    elif spec.act == "relu":
        layers.append((f"relu{n}", nn.ReLU(inplace=True)))
    elif spec.act != "linear":
        raise ConfigError(f"darknet conv {n}: unknown activation {spec.act!r} (leaky, relu or linear)")
    return nn.Sequential(OrderedDict(layers))


def yolov2_spec(num_outputs: int = 425) -> list[LayerSpec]:
    """YOLOv2 ``yolo.cfg`` layers up to the region layer (31 specs, 23 convolutions); the last
    conv is linear with bias and ``num_outputs`` = anchors * (5 + classes) filters."""
    pool = PoolSpec()
    spec: list[LayerSpec] = [ConvSpec(32), pool, ConvSpec(64), pool]
    for wide, narrow, repeats in ((128, 64, 1), (256, 128, 1), (512, 256, 2), (1024, 512, 2)):
        spec.append(ConvSpec(wide))
        for _ in range(repeats):
            spec += [ConvSpec(narrow, 1), ConvSpec(wide)]
        if wide < 1024:
            spec.append(pool)
    # index 24 is conv20; the passthrough starts from conv13's output (index 16)
    spec += [ConvSpec(1024), ConvSpec(1024), RouteSpec((-9,)), ConvSpec(64, 1), ReorgSpec(2), RouteSpec((-1, -4))]
    spec += [ConvSpec(1024), ConvSpec(num_outputs, 1, bn=False, act="linear")]
    return spec


def darknet19_yolov2(num_outputs: int = 425) -> Darknet2D:
    """YOLOv2 (Darknet-19 + passthrough) as YOWO's 2D backbone: Tensor[B, 3, H, W] -> [B, 425, H/32, W/32].

    H and W must be divisible by 32 (the reorg needs an even stride-16 map).
    """
    return Darknet2D(yolov2_spec(num_outputs))


def tiny2d(width: int = 16, out_channels: int = 128, stride: int = 32) -> Darknet2D:
    """A small Darknet for CPU demos: five 3x3 conv-BN-leaky layers (``width * 1, 2, 4, 8, 16``), each
    of the first log2(``stride``) followed by a 2x2 max pool (stride 32: all five; 16: the first four;
    8: the first three), then a 1x1 conv-BN-leaky to ``out_channels``.

    Shapes: Tensor[B, 3, H, W] -> Tensor[B, out_channels, H/stride, W/stride] (floor).
    """
    if width < 1 or out_channels < 1:
        raise ConfigError(f"tiny2d needs width >= 1 and out_channels >= 1, got {width}, {out_channels}")
    if stride not in (8, 16, 32):
        raise ConfigError(f"tiny2d: stride must be 8, 16 or 32, got {stride}")
    pools = stride.bit_length() - 1
    spec: list[LayerSpec] = []
    for k in range(5):
        spec.append(ConvSpec(width * 2**k))
        if k < pools:
            spec.append(PoolSpec())
    spec.append(ConvSpec(out_channels, 1))
    return Darknet2D(spec)
