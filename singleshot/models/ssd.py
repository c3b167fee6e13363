"""The SSD detector: a backbone that yields source maps, the loc/conf heads and the matching priors.

``SSD.forward`` returns raw head outputs only, in training and in evaluation alike; matching, loss
and decoding + NMS live in ``singleshot.losses`` and ``singleshot.postprocess``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from torch import Tensor, nn

from singleshot.errors import ConfigError
from singleshot.models.heads import SSDHead
from singleshot.models.registry import class_kwargs, register_model
from singleshot.models.vgg import EXTRAS_300, EXTRAS_512, VGGBackbone
from singleshot.ops.priors import PriorSpec, generate_priors, prior_spec, priors_per_cell

logger = logging.getLogger(__name__)

PRIOR_SETS = ("voc", "coco")


class SSD(nn.Module):
    """Single-shot multibox detector.

    Args:
        backbone: module mapping Tensor[B, 3, S, S] to a list of source maps
            Tensor[B, backbone.out_channels[k], F_k, F_k] with ``F_k = prior_spec.feature_maps[k]``;
            it must have an ``out_channels: list[int]`` attribute.
        num_classes: number of object classes C, background not counted.
        prior_spec: prior geometry; ``S = prior_spec.image_size``.

    Attributes:
        num_classes: C.
        prior_spec: the ``PriorSpec``.
        priors: non-persistent buffer Tensor[P, 4], cxcywh normalised to [0, 1], in the order of the
            head outputs.
    """

    def __init__(self, backbone: nn.Module, num_classes: int, prior_spec: PriorSpec) -> None:
        super().__init__()
        if int(num_classes) < 1:
            raise ConfigError(f"num_classes must be >= 1 (background excluded), got {num_classes}")
        out_channels = list(backbone.out_channels)
        if len(out_channels) != len(prior_spec.feature_maps):
            raise ConfigError(
                f"backbone has {len(out_channels)} source maps but the prior spec lists "
                f"{len(prior_spec.feature_maps)} feature maps {prior_spec.feature_maps}"
            )
        self.num_classes = int(num_classes)
        self.prior_spec = prior_spec
        self.backbone = backbone
        self.head = SSDHead(out_channels, priors_per_cell(prior_spec.aspect_ratios), self.num_classes + 1)
        self.register_buffer("priors", generate_priors(prior_spec), persistent=False)

    @property
    def image_size(self) -> int:
        """Side S of the square input the priors were laid out for."""
        return self.prior_spec.image_size

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """Raw predictions for every prior.

        Args:
            x: Tensor[B, 3, S, S], the normalised image batch.

        Returns:
            ``cls_logits`` Tensor[B, P, C + 1] (index 0 = background) and ``bbox_regression``
            Tensor[B, P, 4] (offsets from ``priors`` with variances 0.1 / 0.2).
        """
        size = self.prior_spec.image_size
        if x.dim() != 4 or x.shape[-2] != size or x.shape[-1] != size:
            raise ConfigError(
                f"input of shape {tuple(x.shape)} does not fit this SSD: expected [B, 3, {size}, {size}] "
                "(the priors are laid out for that size; resize the images)"
            )
        features = self.backbone(x)
        for k, (f, n) in enumerate(zip(features, self.prior_spec.feature_maps)):
            if f.shape[-2] != n or f.shape[-1] != n:
                raise ConfigError(
                    f"input of size {tuple(x.shape[-2:])} gives source map {k} of size {tuple(f.shape[-2:])}, "
                    f"but the priors expect {n}x{n} (image_size={self.prior_spec.image_size})"
                )
        loc, conf = self.head(features)
        return {"cls_logits": conf, "bbox_regression": loc}


def _spec_name(priors: str, size: int) -> str:
    if priors not in PRIOR_SETS:
        raise ConfigError(f"unknown priors {priors!r} for ssd{size}; choose one of {list(PRIOR_SETS)}")
    return f"{priors}{size}"


def ssd_kwargs_from_meta(meta: Mapping[str, Any]) -> dict[str, Any]:
    """Builder arguments of SSD300/SSD512 weights metadata: ``num_classes``, ``arch_kwargs`` and the
    prior set of converted weights (metadata ``priors`` such as ``"coco300"`` -> ``priors="coco"``)."""
    kwargs = class_kwargs(meta)
    if "priors" in meta and "priors" not in kwargs:
        kwargs["priors"] = str(meta["priors"]).rstrip("0123456789")
    return kwargs


def _spec(priors: str, size: int, prior_clip: str | None) -> PriorSpec:
    spec = prior_spec(_spec_name(priors, size))
    return spec if prior_clip is None else replace(spec, clip=prior_clip)


@register_model("ssd300", task="detect", family="ssd", from_meta=ssd_kwargs_from_meta)
def ssd300(num_classes: int, priors: str = "voc", prior_clip: str | None = None) -> SSD:
    """SSD300 with the VGG16-reduced trunk (8732 priors).

    Args:
        num_classes: object classes C, background excluded.
        priors: ``"voc"`` (ssd.pytorch / paper sizes 30..315) or ``"coco"`` (torchvision scales 0.07..1.05).
        prior_clip: override the configuration's clipping of priors (``"wh"``, ``"all"``, ``"none"``),
            e.g. ``"none"`` for the original Caffe models.
    """
    return SSD(VGGBackbone(EXTRAS_300), num_classes, _spec(priors, 300, prior_clip))


@register_model("ssd512", task="detect", family="ssd", from_meta=ssd_kwargs_from_meta)
def ssd512(num_classes: int, priors: str = "voc", prior_clip: str | None = None) -> SSD:
    """SSD512 with the VGG16-reduced trunk and conv12_2 (24564 priors).

    Args:
        num_classes: object classes C, background excluded.
        priors: ``"voc"`` or ``"coco"`` (the original Caffe SSD512 sizes for each).
        prior_clip: override the configuration's clipping of priors (see :func:`ssd300`).
    """
    return SSD(VGGBackbone(EXTRAS_512), num_classes, _spec(priors, 512, prior_clip))
