"""3D clip backbones for YOWO: the table of builders.

Every backbone maps a clip ``Tensor[B, 3, T, H, W]`` to ``Tensor[B, C3, ceil(H/32), ceil(W/32)]``
(time reduced by 16 with strides, then averaged), exposes ``out_channels`` and ``tail_names()``
(the submodules YOWO keeps trainable when the backbone is "partially" frozen).

| name | builder | C3 | weights that map by name |
|---|---|---|---|
| ``resnext101`` | ``resnext101_3d()`` | 2048 | kenshohara ``resnext-101-kinetics.pth``, YOWO ``backbone_3d.*`` |
| ``resnet18`` | ``resnet18_3d(width=1.0)`` | 512 | kenshohara ``resnet-18-kinetics.pth`` (shortcut A) |
| ``shufflenetv2`` | ``shufflenetv2_3d(width_mult=2.0)`` | 2048 | okankop Efficient-3DCNNs ShuffleNetV2 |
| ``tiny3d`` | ``tiny3d(width=16)`` | 128 | none (CPU demos) |
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from singleshot.errors import ConfigError
from singleshot.models.backbones3d_resnet import ResNet3D, resnet18_3d, resnext3d, resnext101_3d, tiny3d
from singleshot.models.backbones3d_shufflenet import ShuffleNetV2_3D, shufflenetv2_3d

__all__ = [
    "BACKBONES_3D",
    "ResNet3D",
    "ShuffleNetV2_3D",
    "build_backbone3d",
    "resnet18_3d",
    "resnext3d",
    "resnext101_3d",
    "shufflenetv2_3d",
    "tiny3d",
]

BACKBONES_3D: dict[str, Callable[..., nn.Module]] = {
    "resnext101": resnext101_3d,
    "resnext": resnext3d,
    "resnet18": resnet18_3d,
    "shufflenetv2": shufflenetv2_3d,
    "tiny3d": tiny3d,
}


def build_backbone3d(name: str, **kwargs: object) -> nn.Module:
    """Build the 3D backbone registered as ``name`` (see the module table).

    Raises:
        ConfigError: unknown name or arguments the builder does not take.
    """
    try:
        builder = BACKBONES_3D[name]
    except KeyError:
        raise ConfigError(f"unknown 3D backbone {name!r}; valid names: {', '.join(sorted(BACKBONES_3D))}") from None
    try:
        return builder(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"3D backbone {name!r}: bad arguments {sorted(kwargs)}: {exc}") from exc
