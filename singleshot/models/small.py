"""A slim VGG-like SSD for CPU training and demos (no pretrained weights needed).

Trunk: four stride-2 stages of 3x3 conv + BatchNorm + ReLU (widths 24, 48, 96, 192 times ``width``);
the stride-8 and stride-16 maps are the first two sources. Extras as in SSD (1x1 squeeze then 3x3,
bias and ReLU, no BatchNorm so that 1x1 maps work with any batch size): two stride-2 blocks and a
final unpadded 3x3. At 160x160 the source maps are 20, 10, 5, 3, 1. The prior spec is derived from
the map sizes of a dummy forward and the SSD size rule (see ``ssd_prior_sizes``).
"""

from __future__ import annotations

import logging
import math

import torch
from torch import Tensor, nn

from singleshot.errors import ConfigError
from singleshot.models.heads import xavier_init_
from singleshot.models.registry import register_model
from singleshot.models.ssd import SSD
from singleshot.models.vgg import ExtraBlock, extra_layers
from singleshot.ops.priors import PriorSpec

logger = logging.getLogger(__name__)

SLIM_ASPECT_RATIOS: list[list[int]] = [[2], [2, 3], [2, 3], [2], [2]]


def _conv_bn(cin: int, cout: int, stride: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


def vgg_like_stages(c: list[int]) -> tuple[nn.Sequential, nn.Sequential]:
    """Conv-BN-ReLU stages with channels ``c[0..3]``: stride 8 (ending in c[2]), then 16 (c[3])."""
    stage8 = nn.Sequential(
        *_conv_bn(3, c[0], 2),
        *_conv_bn(c[0], c[1], 2),
        *_conv_bn(c[1], c[1], 1),
        *_conv_bn(c[1], c[2], 2),
        *_conv_bn(c[2], c[2], 1),
    )
    return stage8, nn.Sequential(*_conv_bn(c[2], c[3], 2), *_conv_bn(c[3], c[3], 1))


class TwoStageTrunk(nn.Module):
    """A conv trunk with a stride-8 and a stride-16 stage followed by SSD extra blocks.

    Sources: the stride-8 map, the stride-16 map, then each extra block's output. Convolutions of
    the stages get Kaiming init, the extras Xavier (as ssd.pytorch initialises its extras).
    """

    def __init__(
        self, stage8: nn.Sequential, stage16: nn.Sequential, blocks: tuple[ExtraBlock, ...], channels: tuple[int, int]
    ) -> None:
        super().__init__()
        self.stage8 = stage8
        self.stage16 = stage16
        self.extras = extra_layers(channels[1], blocks)
        xavier_init_([self.extras])
        for m in [*self.stage8.modules(), *self.stage16.modules()]:
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        self.out_channels: list[int] = [channels[0], channels[1]] + [b.out for b in blocks]

    def forward(self, x: Tensor) -> list[Tensor]:
        s8 = self.stage8(x)
        x = self.stage16(s8)
        sources = [s8, x]
        for block in self.extras:
            x = block(x)
            sources.append(x)
        return sources


class SlimBackbone(TwoStageTrunk):
    """Slim VGG-like SSD trunk with five source maps (strides 8, 16, 32, ~64, whole image).

    Args:
        width: channel multiplier (1.0 gives source channels 96, 192, 192, 128, 128).

    Shapes:
        x: Tensor[B, 3, S, S] -> list of 5 Tensor[B, out_channels[k], F_k, F_k]
        (F = ceil(S/8), ceil(S/16), then /2, /2 rounding up, then minus 2).
    """

    def __init__(self, width: float = 1.0) -> None:
        c = [max(8, int(round(w * width))) for w in (24, 48, 96, 192)]
        stage8, stage16 = vgg_like_stages(c)
        half, mid = c[3] // 2, c[3] // 3
        blocks = (ExtraBlock(half, c[3], 3, 2, 1), ExtraBlock(mid, 2 * mid, 3, 2, 1), ExtraBlock(mid, 2 * mid, 3, 1, 0))
        super().__init__(stage8, stage16, blocks, (c[2], c[3]))


def ssd_prior_sizes(num_maps: int, s_min: float = 0.2, s_max: float = 0.9, first: float = 0.1) -> list[float]:
    """Relative prior scales ``s_1 .. s_{m+1}`` by the SSD rule, as ssd.pytorch's VOC config rounds them.

    The first map gets ``first``; maps 2..m are spaced linearly from ``s_min`` to ``s_max`` in whole
    percent steps ``floor(100 (s_max - s_min) / (m - 2))``; the extra last entry (one step beyond)
    sets the second square prior of the last map. For ``m = 6`` this gives 0.10, 0.20, 0.37, 0.54,
    0.71, 0.88, 1.05 (times 300: ssd.pytorch's VOC min/max sizes).

    Returns:
        ``num_maps + 1`` fractions of the image side.
    """
    if num_maps < 3:
        raise ConfigError(f"the SSD size rule needs at least 3 source maps, got {num_maps}")
    step = math.floor(round(100 * (s_max - s_min), 6) / (num_maps - 2))
    percents = [round(100 * first)] + [round(100 * s_min) + k * step for k in range(num_maps)]
    return [p / 100 for p in percents]


def spec_for_maps(image_size: int, feature_maps: list[int], aspect_ratios: list[list[int]]) -> PriorSpec:
    """A ``PriorSpec`` for arbitrary map sizes: steps ``S / F_k`` and sizes from ``ssd_prior_sizes``."""
    scales = ssd_prior_sizes(len(feature_maps))
    sizes = [s * image_size for s in scales]
    steps = [image_size / f for f in feature_maps]
    return PriorSpec(image_size, list(feature_maps), steps, sizes[:-1], sizes[1:], aspect_ratios)


def probe_feature_maps(backbone: nn.Module, image_size: int) -> list[int]:
    """Side lengths of the backbone's source maps for a square ``image_size`` input (one dummy forward)."""
    was_training = backbone.training
    backbone.eval()
    try:
        with torch.no_grad():
            maps = backbone(torch.zeros(1, 3, image_size, image_size))
    except RuntimeError as exc:
        raise ConfigError(f"image_size={image_size} is too small for this backbone: {exc}") from exc
    finally:
        backbone.train(was_training)
    sizes = []
    for m in maps:
        if m.shape[-1] != m.shape[-2]:
            raise ConfigError(f"image_size={image_size} gives a non-square source map {tuple(m.shape[-2:])}")
        sizes.append(int(m.shape[-1]))
    return sizes


@register_model("ssd_slim", task="detect", family="ssd")
def ssd_slim(num_classes: int, image_size: int = 160, width: float = 1.0) -> SSD:
    """Slim SSD for CPU: ``SlimBackbone`` trunk, SSD heads, priors from the VOC-style size rule.

    Args:
        num_classes: object classes C, background excluded.
        image_size: square input side S (at least 129, so that the last map is at least 1x1).
        width: channel multiplier of the trunk.
    """
    if image_size < 32:
        raise ConfigError(f"image_size must be at least 32 for ssd_slim, got {image_size}")
    backbone = SlimBackbone(width)
    maps = probe_feature_maps(backbone, image_size)
    spec = spec_for_maps(image_size, maps, SLIM_ASPECT_RATIOS)
    logger.debug("ssd_slim(%d): source maps %s, %d priors", image_size, maps, spec.num_priors)
    return SSD(backbone, num_classes, spec)
