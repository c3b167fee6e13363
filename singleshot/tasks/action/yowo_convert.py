"""The YOWO member's converters (``action convert from=yowo|kinetics|darknet``): weights of other
projects -> ``dst`` (.safetensors) with the metadata ``action val/predict`` (YOWO checkpoints) or
``action train pretrained=`` (backbone files) read.

- ``from=yowo``: a wei-tim/YOWO checkpoint (:func:`~singleshot.convert.yowo.convert_yowo_checkpoint`);
- ``from=kinetics``: a Kinetics 3D backbone (plus ``darknet=`` optionally), ``from=darknet``: a
  Darknet ``.weights`` 2D backbone (plus ``kinetics=`` optionally); the rest of the YOWO keeps its
  initial values.

Pixels: YOWO's convention, 0..1 with no mean/std.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from torch import nn

from singleshot.convert.darknet_weights import read_darknet_weights
from singleshot.convert.yowo import convert_kinetics_3d, convert_yowo_checkpoint
from singleshot.data.action.readers import JHMDB_CLASSES, UCF24_CLASSES
from singleshot.engine.weights import load_state_into, save_weights
from singleshot.errors import ConfigError
from singleshot.models import create_model
from singleshot.models.yowo import JHMDB21_ANCHORS, UCF24_ANCHORS, YOWO
from singleshot.tasks.action.config import YowoOptions
from singleshot.tasks.action.predictor import action_meta, anchor_pairs
from singleshot.tasks.common import require

logger = logging.getLogger(__name__)

__all__ = ["backbone_init", "convert_backbones", "convert_yowo", "default_classes"]


def default_classes(cfg: YowoOptions) -> list[str]:
    """``classes``, else the names of ``num_classes`` (24: UCF101-24's, 21: J-HMDB-21's, else ``class_<i>``)."""
    if cfg.classes:
        return list(cfg.classes)
    n = cfg.num_classes or 24
    return list({24: UCF24_CLASSES, 21: JHMDB_CLASSES}.get(n, tuple(f"class_{i}" for i in range(n))))


def backbone_init(cfg: YowoOptions) -> tuple[YOWO, dict[str, Any], list[str], list[str]]:
    """A YOWO whose backbones come from a Kinetics 3D file and/or a Darknet ``.weights`` file (the
    rest keeps its initial values): ``(model, builder kwargs, classes, parts loaded)``."""
    kinetics = cfg.src if cfg.from_ == "kinetics" else cfg.kinetics
    darknet = cfg.src if cfg.from_ == "darknet" else cfg.darknet
    classes = default_classes(cfg)
    kwargs: dict[str, Any] = {"backbone3d": cfg.backbone3d, "backbone2d": cfg.backbone2d, "clip_len": cfg.clip_len}
    if cfg.backbone3d == "tiny3d":
        kwargs["backbone3d_kwargs"] = {"width": cfg.width}
    if cfg.backbone2d == "tiny2d":
        kwargs["backbone2d_kwargs"] = {"width": cfg.width, "out_channels": 8 * cfg.width}
    converted = None
    if kinetics:
        converted = convert_kinetics_3d(Path(kinetics))
        kwargs["backbone3d"] = converted.metadata["backbone3d"]
        kwargs["backbone3d_kwargs"] = dict(converted.metadata["backbone3d_kwargs"])
    anchors = anchor_pairs(cfg.anchors) or [list(a) for a in (JHMDB21_ANCHORS if len(classes) == 21 else UCF24_ANCHORS)]
    kwargs["anchors"] = anchors
    if cfg.cfam_channels:
        kwargs["cfam_channels"] = cfg.cfam_channels
    model = create_model("yowo", len(classes), **kwargs)
    parts = []
    if converted is not None:  # the backbone was built from these keys and shapes: a strict load
        load_state_into(model.backbone_3d, converted.state_dict, converted.source, kwargs["backbone3d"])
        parts.append("backbone_3d")
    if darknet:
        read_darknet_weights(Path(darknet), model.backbone_2d, allow_partial=True)
        parts.append("backbone_2d")
    return model, kwargs, classes, parts


def convert_yowo(cfg: YowoOptions) -> dict[str, Any]:
    """``from=yowo``: a wei-tim/YOWO checkpoint (``src``) -> ``dst``, every tensor loaded."""
    require(cfg, "from_", "src", "dst")
    converted = convert_yowo_checkpoint(Path(cfg.src), clip_len=cfg.clip_len, anchors=anchor_pairs(cfg.anchors))
    meta = dict(converted.metadata)
    if cfg.classes:
        if len(cfg.classes) != meta["num_classes"]:
            raise ConfigError(f"classes: {len(cfg.classes)} names for a checkpoint of {meta['num_classes']} classes")
        meta["classes"] = list(cfg.classes)
    model = create_model("yowo", meta["num_classes"], **meta["arch_kwargs"])
    model.load_state_dict(converted.state_dict)  # proves the mapping before anything is written
    return _write(cfg, model, meta["arch_kwargs"], meta["classes"], ["all"], {"source": meta.get("source", "")})


def convert_backbones(cfg: YowoOptions) -> dict[str, Any]:
    """``from=kinetics`` / ``from=darknet``: a YOWO initialised from backbone files (:func:`backbone_init`)
    -> ``dst``, to train from with ``pretrained=``."""
    require(cfg, "from_", "src", "dst")
    model, kwargs, classes, parts = backbone_init(cfg)
    extra = {"source": cfg.src, "note": f"only {', '.join(parts)} loaded; train with pretrained={cfg.dst}"}
    return _write(cfg, model, kwargs, classes, parts, extra)


def _write(
    cfg: YowoOptions,
    model: nn.Module,
    kwargs: dict[str, Any],
    classes: list[str],
    parts: list[str],
    extra: dict[str, Any],
) -> dict[str, Any]:
    """Save ``model`` to ``cfg.dst`` with YOWO's metadata (pixels 0..1, no mean/std); the command's result."""
    cfg.arch = "yowo"
    meta = action_meta(
        model,
        cfg,
        kwargs,
        classes,
        (0.0, 0.0, 0.0),
        (1.0, 1.0, 1.0),
        pretrained_parts=parts,
        normalisation="frames resized to the input size, pixels in 0..1, no mean/std (YOWO)",
        **extra,
    )
    save_weights(Path(cfg.dst), model, meta)
    return {
        "dst": cfg.dst,
        "architecture": "yowo",
        "num_classes": len(classes),
        "loaded": parts,
        "tensors": len(model.state_dict()),
    }
