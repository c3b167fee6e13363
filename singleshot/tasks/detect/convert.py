"""``detect convert``: SSD weights of other projects -> ``.safetensors`` with singleshot metadata,
or a dataset from one format to another.

Weights: ``from=torchvision src=ssd300_vgg16_coco.pth``, ``from=ssd.pytorch
src=ssd300_mAP_77.43_v2.pth`` or ``from=caffe prototxt=deploy.prototxt
caffemodel=VGG_SSD_300x300.caffemodel``; ``dst=`` the output. The converted tensors are loaded into
the architecture their metadata names before anything is written (:mod:`singleshot.convert` holds
the mappings).

Datasets: ``from=voc|coco|yolo to=voc|coco|yolo src=... dst=...`` (``classes``, ``years``,
``val_years``, ``train_set``, ``val_set`` and ``images`` choose what is read as for ``detect
train``); what travels and the layouts written are in :mod:`singleshot.data.detect_convert`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from singleshot.convert import ConvertedWeights
from singleshot.convert.caffe_ssd import convert_caffe_ssd
from singleshot.convert.ssd_pytorch import convert_ssd_pytorch
from singleshot.convert.torchvision_ssd import convert_torchvision_ssd300
from singleshot.data.detect_convert import convert_dataset
from singleshot.data.detect_formats import DETECT_FORMATS
from singleshot.engine.weights import save_weights
from singleshot.errors import ConfigError
from singleshot.models import model_from_meta
from singleshot.tasks.common import make_config, refuse_dst_over_inputs, require
from singleshot.tasks.detect.config import DetectConfig

__all__ = ["CONVERTERS", "convert", "convert_data"]


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


def convert_data(cfg: DetectConfig) -> dict:
    """The dataset ``src`` (format ``from``) written as ``to`` under ``dst``."""
    require(cfg, "src", "to")
    if cfg.to not in DETECT_FORMATS:
        raise ConfigError(f"to={cfg.to!r} is unknown; expected one of {', '.join(DETECT_FORMATS)}")
    return convert_dataset(
        cfg.from_,
        cfg.src,
        cfg.to,
        cfg.dst,
        classes=list(cfg.classes),
        years=list(cfg.years),
        val_years=list(cfg.val_years),
        train_set=cfg.train_set,
        val_set=cfg.val_set,
        images=cfg.images,
    )


def convert(args: dict[str, str]) -> dict:
    """Weights of another project -> ``.safetensors`` with metadata, or a dataset -> another format."""
    cfg = make_config(DetectConfig, args)
    require(cfg, "from_", "dst")
    refuse_dst_over_inputs(cfg)
    if cfg.from_ in DETECT_FORMATS:
        return convert_data(cfg)
    if cfg.to:
        raise ConfigError(f"to={cfg.to!r} converts datasets: from= must be one of {', '.join(DETECT_FORMATS)}")
    if cfg.from_ not in CONVERTERS:
        raise ConfigError(
            f"from={cfg.from_!r} is unknown; expected torchvision, ssd.pytorch or caffe (weights) "
            f"or {', '.join(DETECT_FORMATS)} (datasets, with to=)"
        )
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
