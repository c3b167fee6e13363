"""``detect convert``: SSD weights of other projects -> ``.safetensors`` with singleshot metadata.

``from=torchvision src=ssd300_vgg16_coco.pth``, ``from=ssd.pytorch src=ssd300_mAP_77.43_v2.pth`` or
``from=caffe prototxt=deploy.prototxt caffemodel=VGG_SSD_300x300.caffemodel``; ``dst=`` the output.
The converted tensors are loaded into the architecture their metadata names before anything is
written (:mod:`singleshot.convert` holds the mappings).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from singleshot.convert import ConvertedWeights
from singleshot.convert.caffe_ssd import convert_caffe_ssd
from singleshot.convert.ssd_pytorch import convert_ssd_pytorch
from singleshot.convert.torchvision_ssd import convert_torchvision_ssd300
from singleshot.engine.weights import save_weights
from singleshot.errors import ConfigError
from singleshot.models import model_from_meta
from singleshot.tasks.common import make_config, require
from singleshot.tasks.detect.config import DetectConfig

__all__ = ["CONVERTERS", "convert"]


def from_caffe(cfg: DetectConfig) -> ConvertedWeights:
    """``prototxt=`` + ``caffemodel=``: the original Caffe SSD300/SSD512."""
    require(cfg, "prototxt", "caffemodel")
    return convert_caffe_ssd(Path(cfg.prototxt), Path(cfg.caffemodel))


def from_torchvision(cfg: DetectConfig) -> ConvertedWeights:
    """``src=``: torchvision's ``ssd300_vgg16`` state dict."""
    require(cfg, "src")
    return convert_torchvision_ssd300(Path(cfg.src))


def from_ssd_pytorch(cfg: DetectConfig) -> ConvertedWeights:
    """``src=``: an ssd.pytorch checkpoint."""
    require(cfg, "src")
    return convert_ssd_pytorch(Path(cfg.src))


#: ``from=`` value -> the converter of its files.
CONVERTERS: dict[str, Callable[[DetectConfig], ConvertedWeights]] = {
    "torchvision": from_torchvision,
    "ssd.pytorch": from_ssd_pytorch,
    "caffe": from_caffe,
}


def convert(args: dict[str, str]) -> dict:
    """Weights of another project -> ``.safetensors`` with metadata."""
    cfg = make_config(DetectConfig, args)
    require(cfg, "from_", "dst")
    if cfg.from_ not in CONVERTERS:
        raise ConfigError(f"from={cfg.from_!r} is unknown; expected torchvision, ssd.pytorch or caffe")
    converted = CONVERTERS[cfg.from_](cfg)
    model = model_from_meta(converted.metadata, task="detect")
    model.load_state_dict(converted.state_dict)  # proves the mapping before anything is written
    meta = dict(converted.metadata, task="detect")
    save_weights(Path(cfg.dst), model, meta)
    return {
        "dst": cfg.dst,
        "architecture": meta["architecture"],
        "num_classes": meta["num_classes"],
        "tensors": len(converted.state_dict),
    }
