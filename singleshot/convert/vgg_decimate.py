"""ImageNet VGG16 weights -> the SSD VGG16-reduced trunk (conv1_1 .. conv5_3, decimated fc6/fc7).

SSD replaces VGG16's fully connected fc6/fc7 by convolutions and subsamples their weights
("decimation", SSD paper sec. 3 and REFERENCES.md section 1):

* fc6: torchvision's ``classifier.0.weight`` Tensor[4096, 25088] is a 7x7 convolution over the 512
  pool5 channels (flattened as ``c * 49 + y * 7 + x``). Keeping every 4th output channel and kernel
  rows/columns 0, 3, 6 gives Tensor[1024, 512, 3, 3]; with dilation 6 these three taps sit 6 pixels
  apart, spanning the same 13-pixel window the 7x7 kernel covered at pool5's (now halved) stride.
* fc7: ``classifier.3.weight`` Tensor[4096, 4096] -> every 4th row and column -> Tensor[1024, 1024, 1, 1].
* biases: every 4th entry. fc8 (``classifier.6``) is dropped.

Each file brings its input convention (:data:`singleshot.data.input_spec.CONVENTIONS`), which
:func:`load_vgg16_base` returns so that training normalises as the trunk was trained:
torchvision's ``vgg16`` is ImageNet RGB (mean 0.485, 0.456, 0.406, std 0.229, 0.224, 0.225);
ssd.pytorch's ``vgg16_reducedfc.pth`` is the Caffe-converted ``VGG_ILSVRC_16_layers_fc_reduced``,
trained on BGR 0..255 pixels minus (104, 117, 123) with no std (``caffe``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import torch
from torch import Tensor, nn

from singleshot.convert._common import StateSource, as_state_dict, load_strict, require
from singleshot.errors import WeightsError
from singleshot.models.vgg import FC6_INDEX, FC7_INDEX, VGG16_CONV_INDICES

logger = logging.getLogger(__name__)

CHANNEL_STEP = 4
KERNEL_STEP = 3


def decimate_fc6(weight: Tensor, bias: Tensor, source: str = "<state dict>") -> tuple[Tensor, Tensor]:
    """fc6 Tensor[4096, 512*7*7] and bias Tensor[4096] -> conv Tensor[1024, 512, 3, 3] and bias Tensor[1024]."""
    if tuple(weight.shape) != (4096, 512 * 7 * 7) or tuple(bias.shape) != (4096,):
        raise WeightsError(
            f"{source}: 'classifier.0' (fc6) has weight {tuple(weight.shape)} and bias {tuple(bias.shape)}, "
            "expected (4096, 25088) and (4096,)"
        )
    w = weight.reshape(4096, 512, 7, 7)[::CHANNEL_STEP, :, ::KERNEL_STEP, ::KERNEL_STEP]
    return w.contiguous().clone(), bias[::CHANNEL_STEP].clone()


def decimate_fc7(weight: Tensor, bias: Tensor, source: str = "<state dict>") -> tuple[Tensor, Tensor]:
    """fc7 Tensor[4096, 4096] and bias Tensor[4096] -> conv Tensor[1024, 1024, 1, 1] and bias Tensor[1024]."""
    if tuple(weight.shape) != (4096, 4096) or tuple(bias.shape) != (4096,):
        raise WeightsError(
            f"{source}: 'classifier.3' (fc7) has weight {tuple(weight.shape)} and bias {tuple(bias.shape)}, "
            "expected (4096, 4096) and (4096,)"
        )
    w = weight[::CHANNEL_STEP, ::CHANNEL_STEP]
    return w.reshape(1024, 1024, 1, 1).clone(), bias[::CHANNEL_STEP].clone()


def vgg16_to_ssd_base(sd: Mapping[str, Tensor], source: str = "<state dict>") -> dict[str, Tensor]:
    """Map a torchvision ``vgg16`` state dict onto ``VGGBackbone.vgg`` (keys ``"{idx}.weight"``/``"{idx}.bias"``).

    Conv layers keep their index (torchvision's ``features.{idx}``); fc6 goes to index 31 and fc7 to 33.
    """
    out: dict[str, Tensor] = {}
    for idx in VGG16_CONV_INDICES:
        for kind in ("weight", "bias"):
            out[f"{idx}.{kind}"] = require(sd, f"features.{idx}.{kind}", source).clone()
    fc6 = decimate_fc6(require(sd, "classifier.0.weight", source), require(sd, "classifier.0.bias", source), source)
    fc7 = decimate_fc7(require(sd, "classifier.3.weight", source), require(sd, "classifier.3.bias", source), source)
    out[f"{FC6_INDEX}.weight"], out[f"{FC6_INDEX}.bias"] = fc6
    out[f"{FC7_INDEX}.weight"], out[f"{FC7_INDEX}.bias"] = fc7
    return out


#: The input convention of each accepted trunk layout (names of :data:`singleshot.data.input_spec.CONVENTIONS`).
TORCHVISION_VGG16_CONVENTION = "imagenet"
REDUCED_TRUNK_CONVENTION = "caffe"


def load_vgg16_base(model: nn.Module, source: StateSource) -> str:
    """Load ImageNet VGG16 weights into an SSD's ``backbone.vgg`` (in place); returns their input convention.

    Args:
        model: an ``SSD`` whose backbone is a ``VGGBackbone``.
        source: path to (or state dict of) either torchvision's ``vgg16`` (``features.*``,
            ``classifier.*``; decimated here) or an already reduced trunk in ssd.pytorch's
            ``vgg16_reducedfc.pth`` layout (keys ``0.weight`` .. ``33.bias``).

    Returns:
        the name of the file's input convention: ``"imagenet"`` (torchvision) or ``"caffe"``
        (reduced trunk; see the module docstring).

    Raises:
        WeightsError: the file is unreadable or its keys/shapes do not fit, naming the key.
    """
    sd, name = as_state_dict(source)
    vgg = getattr(getattr(model, "backbone", None), "vgg", None)
    if not isinstance(vgg, nn.Sequential):
        raise WeightsError(f"{name}: the model has no VGG trunk (model.backbone.vgg) to load VGG16 weights into")
    origin: dict[str, str] = {}
    if "features.0.weight" in sd:
        base = vgg16_to_ssd_base(sd, name)
        origin = {f"{i}.{kind}": f"features.{i}.{kind}" for i in VGG16_CONV_INDICES for kind in ("weight", "bias")}
        for i, fc in ((FC6_INDEX, 0), (FC7_INDEX, 3)):
            origin.update({f"{i}.{kind}": f"classifier.{fc}.{kind}" for kind in ("weight", "bias")})
        convention = TORCHVISION_VGG16_CONVENTION
        logger.info("%s: torchvision vgg16 weights, fc6/fc7 decimated (input: ImageNet RGB)", name)
    elif f"{FC6_INDEX}.weight" in sd:
        base = dict(sd)
        convention = REDUCED_TRUNK_CONVENTION
        logger.info("%s: reduced VGG16 trunk in ssd.pytorch layout (input: Caffe BGR 0..255 minus 104, 117, 123)", name)
    else:
        raise WeightsError(
            f"{name}: neither a torchvision vgg16 state dict ('features.0.weight') nor a reduced trunk "
            f"('{FC6_INDEX}.weight'); first keys: {list(sd)[:5]}"
        )
    load_strict(vgg, {k: v.to(torch.float32) for k, v in base.items()}, name, origin)
    return convention
