"""Weight converters from other projects' checkpoints to singleshot models.

Every converter reads ``.pth`` files with ``torch.load(weights_only=True)`` only (through the one
loader of foreign weights, :func:`singleshot.engine.weights.load_foreign_pth`), returns the renamed
state dict with the metadata needed to reproduce the source's predictions, and loads strictly
(missing, unexpected or mis-shaped weights raise ``WeightsError`` naming the key).
"""

from __future__ import annotations

from singleshot.convert._common import ConvertedWeights
from singleshot.convert.darknet_weights import read_darknet_weights
from singleshot.convert.ssd_pytorch import convert_ssd_pytorch, load_ssd_pytorch
from singleshot.convert.torchvision_ssd import convert_torchvision_ssd300, load_torchvision_ssd300
from singleshot.convert.vgg_decimate import load_vgg16_base, vgg16_to_ssd_base
from singleshot.convert.yowo import convert_kinetics_3d, convert_yowo_checkpoint, load_kinetics_3d, load_yowo_checkpoint

__all__ = [
    "ConvertedWeights",
    "convert_kinetics_3d",
    "convert_yowo_checkpoint",
    "load_kinetics_3d",
    "load_yowo_checkpoint",
    "read_darknet_weights",
    "convert_ssd_pytorch",
    "convert_torchvision_ssd300",
    "load_ssd_pytorch",
    "load_torchvision_ssd300",
    "load_vgg16_base",
    "vgg16_to_ssd_base",
]
