"""PSPNet grasp network: a dilated torchvision ResNet trunk, a pyramid pooling module, four grasp maps.

Layout (Zhao et al., PSPNet, adapted to the four GG-CNN maps):

* ``adapter``: a learned 1×1 conv from the input channels to the 3 channels the ResNet stem expects
  (present whenever ``in_channels != 3``; a depth image enters as 1 → 3).
* ``trunk``: a torchvision ResNet-18/50/101 (``weights=None``; nothing is downloaded) whose layer3
  and layer4 have their strides replaced by dilations 2 and 4 (every block of the layer, as in the
  original PSPNet), for an output stride of 8.
* ``ppm``: pyramid pooling over bins (1, 2, 3, 6): adaptive average pooling, 1×1 conv to
  C/len(bins) channels, BN, ReLU, bilinear up-sampling, concatenated with the layer4 features.
* ``head``: 3×3 conv → BN → ReLU → dropout → 1×1 conv to the four maps, up-sampled bilinearly to the
  input size.
* ``aux_head`` (only when built with ``aux=True``): the same head on layer3, returned as the extra
  keys ``"aux_pos"``, ``"aux_cos"``, ``"aux_sin"``, ``"aux_width"``. The model returns them in train
  and eval mode alike; :class:`singleshot.losses.grasp.GraspLoss` weighs them in training only and
  :func:`strip_aux` drops their weights for export.

``forward(x)`` with x Tensor[B, C, H, W] returns a dict of Tensor[B, 1, H, W] (raw, no activation).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
import torchvision
from torch import Tensor, nn

from singleshot.errors import ConfigError
from singleshot.models.ggcnn import MAP_KEYS, grasp_kwargs_from_meta
from singleshot.models.registry import register_model

logger = logging.getLogger(__name__)

__all__ = [
    "AUX_PREFIX",
    "PSPGrasp",
    "PyramidPooling",
    "psp_grasp_resnet18",
    "psp_grasp_resnet50",
    "psp_grasp_resnet101",
    "strip_aux",
]

AUX_PREFIX = "aux_head."
"""State-dict prefix of the auxiliary head's parameters."""

_TRUNKS = {
    "resnet18": (torchvision.models.resnet18, 256, 512),
    "resnet50": (torchvision.models.resnet50, 1024, 2048),
    "resnet101": (torchvision.models.resnet101, 1024, 2048),
}


def _dilate(layer: nn.Module, dilation: int) -> None:
    """Turn a strided ResNet layer into a dilated one in place: every conv gets stride 1 and every
    3×3 conv gets ``dilation`` (and the matching padding), which keeps the resolution and the
    receptive field growth. Works for BasicBlock and Bottleneck layers."""
    for m in layer.modules():
        if isinstance(m, nn.Conv2d):
            m.stride = (1, 1)
            if m.kernel_size == (3, 3):
                m.dilation = (dilation, dilation)
                m.padding = (dilation, dilation)


class PyramidPooling(nn.Module):
    """Pyramid pooling module: Tensor[B, C, h, w] → Tensor[B, C + len(bins)·(C // len(bins)), h, w].

    Args:
        channels: input channels C.
        bins: output sizes of the adaptive average pools.
    """

    def __init__(self, channels: int, bins: Sequence[int] = (1, 2, 3, 6)) -> None:
        super().__init__()
        reduced = channels // len(bins)
        self.bins = tuple(int(b) for b in bins)
        self.stages = nn.ModuleList(
            nn.Sequential(
                nn.AdaptiveAvgPool2d(b),
                nn.Conv2d(channels, reduced, 1, bias=False),
                nn.BatchNorm2d(reduced),
                nn.ReLU(inplace=True),
            )
            for b in self.bins
        )
        self.out_channels = channels + reduced * len(self.bins)

    def forward(self, x: Tensor) -> Tensor:
        size = x.shape[-2:]
        pooled = [F.interpolate(s(x), size=size, mode="bilinear", align_corners=False) for s in self.stages]
        return torch.cat([x, *pooled], dim=1)


def _head(in_channels: int, mid_channels: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, mid_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(mid_channels),
        nn.ReLU(inplace=True),
        nn.Dropout2d(dropout),
        nn.Conv2d(mid_channels, len(MAP_KEYS), 1),
    )


class PSPGrasp(nn.Module):
    """PSPNet grasp network (see the module docstring).

    Args:
        backbone: ``"resnet18"``, ``"resnet50"`` or ``"resnet101"``.
        in_channels: input channels (1 depth, 3 RGB, 4 RGB-D).
        aux: build the auxiliary head on layer3.
        bins: pyramid pooling bins.
        head_channels: channels of the 3×3 conv of the heads (default 512, 128 for ResNet-18).
        dropout: dropout rate of the heads.
    """

    def __init__(
        self,
        backbone: str = "resnet50",
        in_channels: int = 1,
        aux: bool = False,
        bins: Sequence[int] = (1, 2, 3, 6),
        head_channels: int | None = None,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if backbone not in _TRUNKS:
            raise ConfigError(f"unknown PSPNet grasp backbone {backbone!r}; valid: {', '.join(_TRUNKS)}")
        if in_channels < 1:
            raise ConfigError(f"in_channels must be >= 1, got {in_channels}")
        builder, c3, c4 = _TRUNKS[backbone]
        self.backbone = backbone
        self.in_channels = in_channels
        self.aux = aux
        mid = head_channels if head_channels is not None else (128 if backbone == "resnet18" else 512)
        self.adapter: nn.Module = nn.Conv2d(in_channels, 3, 1) if in_channels != 3 else nn.Identity()
        trunk = builder(weights=None)
        _dilate(trunk.layer3, 2)
        _dilate(trunk.layer4, 4)
        del trunk.fc  # the classifier is unused; keep it out of the state dict
        self.trunk = trunk
        self.ppm = PyramidPooling(c4, bins)
        self.head = _head(self.ppm.out_channels, mid, dropout)
        self.aux_head: nn.Module | None = _head(c3, mid // 2, dropout) if aux else None

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """x: Tensor[B, C, H, W] → ``{"pos", "cos", "sin", "width"}`` (and ``"aux_*"`` when built
        with ``aux=True``), each Tensor[B, 1, H, W]."""
        size = (x.shape[-2], x.shape[-1])
        t = self.trunk
        x = self.adapter(x)
        x = t.maxpool(t.relu(t.bn1(t.conv1(x))))
        c3 = t.layer3(t.layer2(t.layer1(x)))
        c4 = t.layer4(c3)
        out = self._maps(self.head(self.ppm(c4)), size, "")
        if self.aux_head is not None:
            out.update(self._maps(self.aux_head(c3), size, "aux_"))
        return out

    @staticmethod
    def _maps(y: Tensor, size: tuple[int, int], prefix: str) -> dict[str, Tensor]:
        y = F.interpolate(y, size=size, mode="bilinear", align_corners=False)
        return {prefix + k: y[:, i : i + 1] for i, k in enumerate(MAP_KEYS)}

    def drop_aux(self) -> PSPGrasp:
        """Remove the auxiliary head in place (for export); returns self."""
        self.aux_head = None
        self.aux = False
        return self


def strip_aux(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """A copy of ``state_dict`` without the auxiliary head's entries (keys containing ``aux_head.``
    at the start or after a ``module.``-style prefix), for export of a model built with
    ``aux=True`` into one built with ``aux=False``."""
    return {k: v for k, v in state_dict.items() if not (k.startswith(AUX_PREFIX) or f".{AUX_PREFIX}" in k)}


@register_model("psp_resnet18", task="grasp", family="psp", from_meta=grasp_kwargs_from_meta)
def psp_grasp_resnet18(in_channels: int = 1, aux: bool = False, **kwargs: object) -> PSPGrasp:
    """PSPNet grasp net on a dilated ResNet-18 (small; for CPU runs and tests)."""
    return PSPGrasp("resnet18", in_channels, aux, **kwargs)  # type: ignore[arg-type]


@register_model("psp_resnet50", task="grasp", family="psp", from_meta=grasp_kwargs_from_meta)
def psp_grasp_resnet50(in_channels: int = 1, aux: bool = False, **kwargs: object) -> PSPGrasp:
    """PSPNet grasp net on a dilated ResNet-50 (the distillation student)."""
    return PSPGrasp("resnet50", in_channels, aux, **kwargs)  # type: ignore[arg-type]


@register_model("psp_resnet101", task="grasp", family="psp", from_meta=grasp_kwargs_from_meta)
def psp_grasp_resnet101(in_channels: int = 1, aux: bool = False, **kwargs: object) -> PSPGrasp:
    """PSPNet grasp net on a dilated ResNet-101 (the distillation teacher)."""
    return PSPGrasp("resnet101", in_channels, aux, **kwargs)  # type: ignore[arg-type]
