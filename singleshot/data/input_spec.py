"""A network's input convention, and the one resize every path uses.

Every weights file says how its network wants its pixels, in five metadata keys that
:class:`InputSpec` reads and writes:

- ``input_size`` ``[height, width]``: the side(s) the image is resized to (aspect ratio not kept);
- ``channel_order`` ``"RGB"`` or ``"BGR"``: the order of the channels the network receives;
- ``mean``, ``std``: per channel *in that order*, in 0..1 pixel units: the network receives
  ``(x - mean) / std`` with ``x`` in [0, 1]. A convention on 0..255 pixels with no std (Caffe's
  ``x - (104, 117, 123)``) is written ``mean = m / 255``, ``std = 1 / 255``;
- ``resize`` ``{"interpolation": "bilinear", "antialias": bool}``: the resize policy.

Named conventions (:data:`CONVENTIONS`, the ``input_norm=`` values of ``detect train``):

- ``imagenet``: RGB, mean (0.485, 0.456, 0.406), std (0.229, 0.224, 0.225) -- torchvision's
  ImageNet classifiers (its ``vgg16``) and the models trained here from scratch;
- ``caffe``: BGR 0..255 minus (104, 117, 123), no std -- the Caffe VGG16 trunks (the reduced
  ``VGG_ILSVRC_16_layers_fc_reduced`` that ssd.pytorch ships as ``vgg16_reducedfc.pth``, the
  original SSD and ACT models);
- ``ssd_pytorch``: RGB 0..255 minus (123, 117, 104), no std -- what ssd.pytorch actually feeds its
  network: it subtracts its BGR mean from OpenCV's BGR image, then turns the image to RGB
  (``VOCDetection.pull_item``), so the Caffe trunk sees its channels swapped.

The resize (:func:`resize_image`): bilinear with half-pixel centres (``align_corners=False``), to
exactly ``input_size``; with ``antialias`` the filter widens when the image shrinks (torchvision's
and Pillow's antialiased resize), otherwise it is the plain 2x2 interpolation of ``cv2.resize``
``INTER_LINEAR`` and ``torch.nn.functional.interpolate``, which the references use (torchvision's
SSD transform, ssd.pytorch, Caffe's and ACT's warps). Weights without a ``resize`` key (older
files, converted foreign weights) read with the caller's default: ``antialias=False`` for the
detect family (what its predictor always did), ``True`` for the action family (its predictors
antialiased when shrinking). A family resizes at one dtype in training and at test time: detect in
float32 [0, 1], action on uint8 frames (rounded; stored compactly for whole videos).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from singleshot.errors import WeightsError

logger = logging.getLogger(__name__)

__all__ = [
    "CAFFE_MEAN_BGR",
    "CHANNEL_ORDERS",
    "CONVENTIONS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "InputSpec",
    "resize_image",
    "resize_meta",
    "resize_unit_float",
    "size_hw",
    "to_unit_float",
]

#: ImageNet RGB mean and std in [0, 1] units.
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
#: The Caffe VGG16 mean in BGR order on 0..255 pixels (SSD, ACT, ssd.pytorch's ``MEANS``).
CAFFE_MEAN_BGR: tuple[float, float, float] = (104.0, 117.0, 123.0)
CHANNEL_ORDERS = ("RGB", "BGR")
_PER_255 = (1.0 / 255.0,) * 3

#: name -> (channel order, mean, std), mean and std in 0..1 units in the network's channel order.
CONVENTIONS: dict[str, tuple[str, tuple[float, float, float], tuple[float, float, float]]] = {
    "imagenet": ("RGB", IMAGENET_MEAN, IMAGENET_STD),
    "caffe": ("BGR", (104.0 / 255.0, 117.0 / 255.0, 123.0 / 255.0), _PER_255),
    "ssd_pytorch": ("RGB", (123.0 / 255.0, 117.0 / 255.0, 104.0 / 255.0), _PER_255),
}


def size_hw(size: Any) -> tuple[int, int]:
    """(height, width) from a (height, width) list or tuple, or from one number (a square side), as
    ``input_size`` is written in weights metadata and ``size``/``imgsz`` in configs."""
    if isinstance(size, (list, tuple)):
        h, w = (int(v) for v in size)
        return h, w
    return int(size), int(size)


def to_unit_float(x: Tensor) -> Tensor:
    """uint8 0..255 -> float32 ``x · (1/255)``; a float tensor (already in [0, 1]) -> float32 as it is.

    Multiplied by the reciprocal, as torchvision's ``ToDtype(float32, scale=True)`` does, so the
    training transforms built on it give the very floats they gave before this function existed."""
    return x.to(torch.float32).mul_(1.0 / 255.0) if x.dtype == torch.uint8 else x.to(torch.float32)


def resize_image(x: Tensor, size: int | Sequence[int], antialias: bool) -> Tensor:
    """Resize images ``[..., C, H, W]`` to ``size`` (``int``: square, or ``(height, width)``).

    Bilinear, half-pixel centres (``align_corners=False``), aspect ratio not kept. ``antialias``
    widens the filter along the axes that shrink (it changes nothing when every axis grows, so it
    is applied only when some axis shrinks). The dtype is kept: uint8 in, uint8 out (rounded, by
    torchvision's native kernel on CPU); float in, float out. An image already at ``size`` is
    returned as it is.
    """
    oh, ow = size_hw(size)
    h, w = int(x.shape[-2]), int(x.shape[-1])
    if (oh, ow) == (h, w):
        return x
    return TF.resize(x, [oh, ow], interpolation=InterpolationMode.BILINEAR, antialias=antialias and (oh < h or ow < w))


def resize_unit_float(x: Tensor, size: int | Sequence[int], antialias: bool) -> Tensor:
    """uint8 (or [0, 1] float) images -> float32 in [0, 1] at ``size``: :func:`to_unit_float`, then
    :func:`resize_image` in float32, clamped to [0, 1] (rounding can push an antialiased value an ulp
    past 1). The detect family's resize, in training and at test time."""
    return resize_image(to_unit_float(x), size, antialias).clamp(0.0, 1.0)


def resize_meta(antialias: bool) -> dict[str, Any]:
    """The ``resize`` metadata value of a policy: ``{"interpolation": "bilinear", "antialias": antialias}``."""
    return {"interpolation": "bilinear", "antialias": bool(antialias)}


def _three(name: str, values: Any, source: str) -> tuple[float, float, float]:
    try:
        out = tuple(float(v) for v in values)
    except (TypeError, ValueError) as err:
        raise WeightsError(f"{source}: {name} must be 3 numbers, got {values!r}") from err
    if len(out) != 3:
        raise WeightsError(f"{source}: {name} must be 3 numbers (one per channel), got {values!r}")
    return out  # type: ignore[return-value]


@dataclass(frozen=True)
class InputSpec:
    """How a network wants its input (see the module docstring).

    Attributes:
        size: ``(height, width)`` of the network input.
        channel_order: ``"RGB"`` or ``"BGR"``.
        mean, std: per channel in ``channel_order``, 0..1 pixel units.
        antialias: the resize policy (bilinear, antialiased when shrinking or not).
    """

    size: tuple[int, int]
    channel_order: str = "RGB"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    antialias: bool = True

    def __post_init__(self) -> None:
        order = str(self.channel_order).upper()
        if order not in CHANNEL_ORDERS:
            raise WeightsError(f"channel_order {self.channel_order!r}: expected RGB or BGR")
        mean, std = _three("mean", self.mean, "input spec"), _three("std", self.std, "input spec")
        if min(std) <= 0:
            raise WeightsError(f"std must be > 0 for every channel, got {std}")
        size = size_hw(self.size)
        if min(size) < 1:
            raise WeightsError(f"input size must be positive, got {size}")
        object.__setattr__(self, "channel_order", order)
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)
        object.__setattr__(self, "size", size)
        object.__setattr__(self, "antialias", bool(self.antialias))

    @classmethod
    def named(cls, name: str, size: int | Sequence[int], antialias: bool = True) -> InputSpec:
        """The convention ``name`` of :data:`CONVENTIONS` at ``size`` with the resize policy ``antialias``."""
        if name not in CONVENTIONS:
            raise WeightsError(f"input convention {name!r}: expected one of {', '.join(CONVENTIONS)}")
        order, mean, std = CONVENTIONS[name]
        return cls(size_hw(size), order, mean, std, antialias)

    @classmethod
    def from_meta(
        cls,
        meta: Mapping[str, Any],
        size: int | Sequence[int] | None = None,
        antialias: bool = False,
        source: str = "weights metadata",
    ) -> InputSpec:
        """The convention written in weights metadata.

        Args:
            meta: the metadata (``input_size``, ``channel_order``, ``mean``, ``std``, ``resize``).
            size: the input size when the metadata has none (else a WeightsError).
            antialias: the policy when the metadata has no ``resize`` dict (older files, foreign
                weights; see the module docstring for each family's default).
            source: names the file in errors.

        Missing ``channel_order`` / ``mean`` / ``std`` read as ImageNet RGB (what every model
        trained here used before these keys existed).

        Raises:
            WeightsError: a malformed value, a resize other than bilinear, or no size anywhere.
        """
        raw_size = meta.get("input_size", size)
        if raw_size is None:
            raise WeightsError(f"{source}: no input_size")
        hw = size_hw(raw_size)
        resize = meta.get("resize")
        if isinstance(resize, Mapping):
            mode = str(resize.get("interpolation", "bilinear"))
            if mode != "bilinear":
                raise WeightsError(f"{source}: resize interpolation {mode!r} is not supported (bilinear only)")
            antialias = bool(resize.get("antialias", antialias))
        return cls(
            hw,
            str(meta.get("channel_order", "RGB")),
            _three("mean", meta.get("mean", IMAGENET_MEAN), source),
            _three("std", meta.get("std", IMAGENET_STD), source),
            antialias,
        )

    def to_meta(self) -> dict[str, Any]:
        """The metadata keys of this convention (``input_size``, ``channel_order``, ``mean``, ``std``, ``resize``)."""
        return {
            "input_size": list(self.size),
            "channel_order": self.channel_order,
            "mean": list(self.mean),
            "std": list(self.std),
            "resize": resize_meta(self.antialias),
        }

    @property
    def bgr(self) -> bool:
        """Whether the network takes its channels in BGR order."""
        return self.channel_order == "BGR"

    def rgb_mean(self) -> tuple[float, float, float]:
        """The mean in RGB order (0..1 units), e.g. the zoom-out fill of an RGB image."""
        m = self.mean
        return (m[2], m[1], m[0]) if self.bgr else m

    def same_normalisation(self, other: InputSpec) -> bool:
        """Whether ``other`` turns the same [0, 1] RGB pixels into the same values (order, mean, std)."""
        return (self.channel_order, self.mean, self.std) == (other.channel_order, other.mean, other.std)

    def _stats(self, x: Tensor) -> tuple[Tensor, Tensor]:
        m = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(3, 1, 1)
        s = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(3, 1, 1)
        return m, s

    def normalize(self, x: Tensor) -> Tensor:
        """Float RGB images ``[..., 3, H, W]`` in [0, 1] -> the network's values: channels flipped to
        BGR when the convention asks, then ``(x - mean) / std``."""
        if x.shape[-3] != 3:
            raise ValueError(f"normalize expects 3 channels at dim -3, got shape {tuple(x.shape)}")
        if self.bgr:
            x = x.flip(-3)
        m, s = self._stats(x)
        return (x - m) / s

    def denormalize(self, x: Tensor) -> Tensor:
        """Inverse of :meth:`normalize`: the network's values -> float RGB ``[..., 3, H, W]`` in [0, 1]."""
        m, s = self._stats(x)
        x = x * s + m
        return x.flip(-3) if self.bgr else x

    def prepare(self, image: Tensor) -> Tensor:
        """One image (or a batch) ``[..., 3, H, W]`` uint8 RGB (or float in [0, 1]) -> the network
        input ``[..., 3, *size]`` float32: scaled to [0, 1] and resized (:func:`resize_unit_float`),
        then :meth:`normalize`. The detect family's pre-processing, in training and at test time
        alike."""
        return self.normalize(resize_unit_float(image, self.size, self.antialias))

    def describe(self) -> str:
        """One line for logs and docs, e.g. ``300x300 BGR, (x - [0.408, ...]) / [0.00392, ...], bilinear antialiased``."""
        mean = ", ".join(f"{v:.4g}" for v in self.mean)
        std = ", ".join(f"{v:.4g}" for v in self.std)
        aa = "antialiased when shrinking" if self.antialias else "no antialias"
        return (
            f"{self.size[0]}x{self.size[1]} {self.channel_order}, (x - [{mean}]) / [{std}] on [0, 1] pixels, "
            f"bilinear resize ({aa})"
        )
