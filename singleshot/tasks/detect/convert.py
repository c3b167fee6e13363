"""``detect convert``: SSD weights of other projects -> ``.safetensors`` with singleshot metadata.

``from=torchvision src=ssd300_vgg16_coco.pth``, ``from=ssd.pytorch src=ssd300_mAP_77.43_v2.pth`` or
``from=caffe prototxt=deploy.prototxt caffemodel=VGG_SSD_300x300.caffemodel``; ``dst=`` the output.
The converted tensors are loaded into the architecture their metadata names before anything is
written (:mod:`singleshot.convert` holds the mappings).
"""

from __future__ import annotations

from pathlib import Path

from singleshot.engine.weights import save_weights
from singleshot.errors import ConfigError
from singleshot.models import model_from_meta
from singleshot.tasks.common import make_config, require
from singleshot.tasks.detect.config import DetectConfig

__all__ = ["convert"]


def convert(args: dict[str, str]) -> dict:
    """Weights of another project -> ``.safetensors`` with metadata."""
    from singleshot.convert import ssd_pytorch, torchvision_ssd

    cfg = make_config(DetectConfig, args)
    require(cfg, "from_", "dst")
    if cfg.from_ == "caffe":
        from singleshot.convert.caffe_ssd import convert_caffe_ssd

        require(cfg, "prototxt", "caffemodel")
        converted = convert_caffe_ssd(Path(cfg.prototxt), Path(cfg.caffemodel))
    elif cfg.from_ == "torchvision":
        require(cfg, "src")
        converted = torchvision_ssd.convert_torchvision_ssd300(Path(cfg.src))
    elif cfg.from_ == "ssd.pytorch":
        require(cfg, "src")
        converted = ssd_pytorch.convert_ssd_pytorch(Path(cfg.src))
    else:
        raise ConfigError(f"from={cfg.from_!r} is unknown; expected torchvision, ssd.pytorch or caffe")
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
