"""GG-CNN and GG-CNN2: fully convolutional generative grasping networks (Morrison et al.).

Both map an image ``x`` (Tensor[B, C, H, W]; C = 1 depth, 3 RGB or 4 RGB-D) to four per-pixel maps
of the same size, returned as a dict of Tensor[B, 1, H, W]:

* ``"pos"``: grasp quality (trained towards 1 on the centre third of each ground-truth rectangle),
* ``"cos"`` / ``"sin"``: cos 2θ and sin 2θ of the grasp angle,
* ``"width"``: gripper opening / 150 px.

The outputs are raw (no activation) and never depend on ``self.training``. The layer layout and the
parameter names follow dougsm/ggcnn (``models/ggcnn.py``, ``models/ggcnn2.py``), so that a state
dict of the reference loads with ``load_state_dict``: GG-CNN has 62,420 and GG-CNN2 66,676
parameters for one input channel. GG-CNN is exact in size for inputs whose sides are multiples of
12 (300 included); other sizes are resized bilinearly to the input size at the end. GG-CNN2 needs
sides divisible by 4 for the same reason.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from singleshot.errors import ConfigError
from singleshot.models.registry import register_model
from singleshot.structures import GRASP_INPUT_CHANNELS

logger = logging.getLogger(__name__)

__all__ = ["GGCNN", "GGCNN2", "MAP_KEYS", "ggcnn", "ggcnn2", "maps_dict"]

MAP_KEYS: tuple[str, str, str, str] = ("pos", "cos", "sin", "width")
"""Names of the four output maps, in head order."""


def maps_dict(maps: tuple[Tensor, ...] | list[Tensor], size: tuple[int, int]) -> dict[str, Tensor]:
    """Name the four maps (each Tensor[B, 1, h, w]) and resize them to ``size`` (H, W) if needed."""
    out: dict[str, Tensor] = {}
    for key, m in zip(MAP_KEYS, maps):
        if tuple(m.shape[-2:]) != tuple(size):
            m = F.interpolate(m, size=size, mode="bilinear", align_corners=False)
        out[key] = m
    return out


def _fused_heads(net: nn.Module, x: Tensor) -> tuple[Tensor, ...]:
    """Apply the four single-channel heads (``pos_output`` … ``width_output``, same kernel) as one
    convolution with their weights stacked: the same result, one pass over ``x``."""
    heads = (net.pos_output, net.cos_output, net.sin_output, net.width_output)
    weight = torch.cat([h.weight for h in heads])
    bias = torch.cat([h.bias for h in heads])
    return F.conv2d(x, weight, bias).split(1, dim=1)


def _xavier_init(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.xavier_uniform_(m.weight, gain=1.0)


class GGCNN(nn.Module):
    """GG-CNN (RSS 2018): three strided convolutions, three transposed convolutions, 2×2 heads.

    Layers (input 300 × 300): conv 9×9/3 → 32 (100²), 5×5/2 → 16 (50²), 3×3/2 → 8 (25²); transposed
    3×3/2 → 8 (50²), 5×5/2 → 16 (100²), 9×9/3 → 32 (301²); four 2×2 convs → 1 (300²). ReLU after
    every layer but the heads; Xavier-uniform weights.

    Args:
        in_channels: input channels (1 depth, 3 RGB, 4 RGB-D).
    """

    def __init__(self, in_channels: int = 1) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.conv1 = nn.Conv2d(in_channels, 32, 9, stride=3, padding=3)
        self.conv2 = nn.Conv2d(32, 16, 5, stride=2, padding=2)
        self.conv3 = nn.Conv2d(16, 8, 3, stride=2, padding=1)
        self.convt1 = nn.ConvTranspose2d(8, 8, 3, stride=2, padding=1, output_padding=1)
        self.convt2 = nn.ConvTranspose2d(8, 16, 5, stride=2, padding=2, output_padding=1)
        self.convt3 = nn.ConvTranspose2d(16, 32, 9, stride=3, padding=3, output_padding=1)
        self.pos_output = nn.Conv2d(32, 1, 2)
        self.cos_output = nn.Conv2d(32, 1, 2)
        self.sin_output = nn.Conv2d(32, 1, 2)
        self.width_output = nn.Conv2d(32, 1, 2)
        _xavier_init(self)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """x: Tensor[B, C, H, W] → ``{"pos", "cos", "sin", "width"}`` each Tensor[B, 1, H, W]."""
        size = (x.shape[-2], x.shape[-1])
        for layer in (self.conv1, self.conv2, self.conv3, self.convt1, self.convt2, self.convt3):
            x = F.relu(layer(x))
        return maps_dict(_fused_heads(self, x), size)


class GGCNN2(nn.Module):
    """GG-CNN2 (IJRR 2019): two conv blocks with max-pooling, dilated convs, two ×2 up-sampling stages.

    ``features`` (indices as in the reference ``nn.Sequential``): conv 11×11 → 16, conv 5×5 → 16,
    max-pool 2; conv 5×5 → 16, conv 5×5 → 16, max-pool 2; conv 5×5 dilation 2 → 32, conv 5×5
    dilation 4 → 32; transposed conv 3×3/2 → 16 twice (the reference code up-samples with transposed
    convolutions; a bilinear up-sample followed by a 3×3 conv has the same parameter count). ReLU
    after each conv; four 1×1 heads.

    Args:
        in_channels: input channels.
        filters: channel widths (first block, second block, dilated convs, up-sampling).
        dilations: dilations of the two dilated convs.
    """

    def __init__(
        self,
        in_channels: int = 1,
        filters: tuple[int, int, int, int] = (16, 16, 32, 16),
        dilations: tuple[int, int] = (2, 4),
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        f0, f1, f2, f3 = filters
        d0, d1 = dilations
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, f0, 11, padding=5),
            nn.ReLU(inplace=True),
            nn.Conv2d(f0, f0, 5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2, 2),
            nn.Conv2d(f0, f1, 5, padding=2),
            nn.ReLU(inplace=True),
            nn.Conv2d(f1, f1, 5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2, 2),
            nn.Conv2d(f1, f2, 5, dilation=d0, padding=2 * d0),
            nn.ReLU(inplace=True),
            nn.Conv2d(f2, f2, 5, dilation=d1, padding=2 * d1),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(f2, f3, 3, stride=2, padding=1, output_padding=1),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(f3, f3, 3, stride=2, padding=1, output_padding=1),
            nn.ReLU(inplace=True),
        )
        self.pos_output = nn.Conv2d(f3, 1, 1)
        self.cos_output = nn.Conv2d(f3, 1, 1)
        self.sin_output = nn.Conv2d(f3, 1, 1)
        self.width_output = nn.Conv2d(f3, 1, 1)
        _xavier_init(self)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """x: Tensor[B, C, H, W] → ``{"pos", "cos", "sin", "width"}`` each Tensor[B, 1, H, W]."""
        size = (x.shape[-2], x.shape[-1])
        x = self.features(x)
        return maps_dict(_fused_heads(self, x), size)


def grasp_kwargs_from_meta(meta: Mapping[str, Any]) -> dict[str, Any]:
    """Builder arguments of grasp weights metadata: the input channels of its ``input`` kind (no
    auxiliary head: deployed weights never hold one)."""
    kind = str(meta.get("input", "depth"))
    if kind not in GRASP_INPUT_CHANNELS:
        raise ConfigError(f"input: expected one of {', '.join(GRASP_INPUT_CHANNELS)}, got {kind!r}")
    return {"in_channels": GRASP_INPUT_CHANNELS[kind]}


@register_model("ggcnn", task="grasp", family="ggcnn", from_meta=grasp_kwargs_from_meta)
def ggcnn(in_channels: int = 1, aux: bool = False) -> GGCNN:
    """GG-CNN for ``in_channels`` input channels (62,420 parameters for depth); ``aux`` is accepted
    for the grasp builders' common signature (GG-CNN has no auxiliary head)."""
    return GGCNN(in_channels)


@register_model("ggcnn2", task="grasp", family="ggcnn", from_meta=grasp_kwargs_from_meta)
def ggcnn2(in_channels: int = 1, aux: bool = False) -> GGCNN2:
    """GG-CNN2 for ``in_channels`` input channels (66,676 parameters for depth); ``aux`` as in :func:`ggcnn`."""
    return GGCNN2(in_channels)
