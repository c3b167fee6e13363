"""A tiny SSD for few-minute CPU training on small images (the shapes demo).

Trunk: plain 3x3 conv + BatchNorm + ReLU layers, channels 16, 32, 64, 128 times ``width``, strides 2,
2, 1, 2, 1 to the stride-8 source and 2, 1 to the stride-16 source; then three SSD extra blocks
(1x1 squeeze, 3x3 stride-2 padded conv, bias and ReLU, no BatchNorm so that a 1x1 map trains with
any batch size). At 128x128 the source maps are 16, 8, 4, 2, 1; at 160x160 they are 20, 10, 5, 3, 2.

Priors: one square at ``s_k`` and one at ``sqrt(s_k s_{k+1})`` plus a 2:1 and a 1:2 box per cell,
with ``s = TINY_SCALES`` (fractions of the image side). The scales span 0.1 to 0.78 of the image,
which covers objects of 12% to 60% of the side with a 0.8-1.25 aspect (the shapes generator) and
their border-cut versions.
"""

from __future__ import annotations

import logging

from singleshot.errors import ConfigError
from singleshot.models.registry import register_model
from singleshot.models.small import TwoStageTrunk, probe_feature_maps, vgg_like_stages
from singleshot.models.ssd import SSD
from singleshot.models.vgg import ExtraBlock
from singleshot.ops.priors import spec_from_scales

logger = logging.getLogger(__name__)

__all__ = ["TINY_SCALES", "TINY_ASPECT_RATIOS", "TinyBackbone", "ssd_tiny"]

#: Relative prior scales s_1..s_6 of the five source maps (the last one only sets the second square).
TINY_SCALES: tuple[float, ...] = (0.1, 0.2, 0.35, 0.5, 0.68, 0.9)
#: Extra aspect ratios per source map (each ``r`` adds an r:1 and a 1:r box).
TINY_ASPECT_RATIOS: list[list[int]] = [[2], [2], [2], [2], [2]]


class TinyBackbone(TwoStageTrunk):
    """Tiny SSD trunk with five source maps (strides 8, 16, 32, 64, 128 for a 128x128 input).

    Args:
        width: channel multiplier (1.0 gives source channels 64, 128, 128, 128, 128).

    Shapes:
        x: Tensor[B, 3, S, S] -> list of 5 Tensor[B, out_channels[k], F_k, F_k] with
        ``F_1 = ceil(S / 8)`` and each next map ``ceil(F / 2)``.
    """

    def __init__(self, width: float = 1.0) -> None:
        c = [max(8, int(round(w * width))) for w in (16, 32, 64, 128)]
        stage8, stage16 = vgg_like_stages(c)
        half = max(8, c[3] // 2)
        super().__init__(stage8, stage16, tuple(ExtraBlock(half, c[3], 3, 2, 1) for _ in range(3)), (c[2], c[3]))


@register_model("ssd_tiny", task="detect", family="ssd")
def ssd_tiny(num_classes: int, image_size: int = 128, width: float = 1.0) -> SSD:
    """Tiny SSD for CPU demos: ``TinyBackbone`` trunk, SSD heads, priors from ``TINY_SCALES``.

    Args:
        num_classes: object classes C, background excluded.
        image_size: square input side S (at least 64).
        width: channel multiplier of the trunk.
    """
    if image_size < 64:
        raise ConfigError(f"image_size must be at least 64 for ssd_tiny, got {image_size}")
    if width <= 0:
        raise ConfigError(f"width must be > 0 for ssd_tiny, got {width}")
    backbone = TinyBackbone(width)
    maps = probe_feature_maps(backbone, image_size)
    steps = [image_size / f for f in maps]
    spec = spec_from_scales(image_size, maps, steps, list(TINY_SCALES), TINY_ASPECT_RATIOS)
    logger.debug("ssd_tiny(%d): source maps %s, %d priors", image_size, maps, spec.num_priors)
    return SSD(backbone, num_classes, spec)
