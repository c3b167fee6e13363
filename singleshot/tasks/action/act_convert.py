"""The ACT member's converter (``action convert from=caffe prototxt=... caffemodel=... dst=...``): an
ACT Caffe model (:func:`~singleshot.convert.caffe_act.convert_caffe_act`) -> ``dst`` (.safetensors)
with the metadata ``action val/predict`` read (BGR, Caffe's mean).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from singleshot.convert import caffe_act
from singleshot.engine.weights import save_weights
from singleshot.errors import ConfigError
from singleshot.models import create_model
from singleshot.tasks.action.act_tubelets import act_linking
from singleshot.tasks.action.config import ActOptions

logger = logging.getLogger(__name__)

__all__ = ["convert_caffe"]


def convert_caffe(cfg: ActOptions) -> dict[str, Any]:
    """``from=caffe``: ``prototxt`` + ``caffemodel`` -> ``dst``, every tensor loaded (the mapping is
    proven by a strict load before anything is written)."""
    missing = [k for k in ("prototxt", "caffemodel", "dst") if not getattr(cfg, k)]
    if missing:
        raise ConfigError(f"from=caffe needs {', '.join(k + '=...' for k in missing)}")
    converted = caffe_act.convert_caffe_act(cfg.prototxt, cfg.caffemodel)
    meta = dict(converted.metadata)
    if cfg.classes:
        if len(cfg.classes) != meta["num_classes"]:
            raise ConfigError(f"classes: {len(cfg.classes)} names for a model of {meta['num_classes']} classes")
        meta["classes"] = list(cfg.classes)
    model = create_model(meta["architecture"], meta["num_classes"], **meta["arch_kwargs"])
    model.load_state_dict(converted.state_dict)  # proves the mapping before anything is written
    meta["linking"] = act_linking(cfg.linking)
    save_weights(Path(cfg.dst), model, meta)
    return {
        "dst": cfg.dst,
        "architecture": meta["architecture"],
        "num_classes": meta["num_classes"],
        "K": meta["K"],
        "tensors": len(model.state_dict()),
    }
