"""``action convert``: weights of other projects -> ``.safetensors`` with metadata, by the converter
of the member that handles ``from=`` (YOWO: ``yowo``, ``kinetics``, ``darknet``; ACT: ``caffe``;
see :mod:`~singleshot.tasks.action.yowo_convert` and :mod:`~singleshot.tasks.action.act_convert`);
and ``from=csv``: a CSV of per-frame boxes -> a YOWO root plus an ACT pickle
(:mod:`~singleshot.tasks.action.csv_convert`).
"""

from __future__ import annotations

import logging

from singleshot.errors import ConfigError
from singleshot.tasks.action.config import ActionConfig
from singleshot.tasks.action.csv_convert import convert_csv
from singleshot.tasks.action.members import converter_names, converter_of
from singleshot.tasks.common import make_config, refuse_dst_over_inputs, require

logger = logging.getLogger(__name__)

__all__ = ["convert"]


def convert(args: dict[str, str]) -> dict:
    """Weights of another project -> ``dst`` (.safetensors) with metadata (``from=yowo|kinetics|darknet|caffe``),
    or a CSV of boxes -> a YOWO root + ACT pickle (``from=csv``)."""
    cfg = make_config(ActionConfig, args)
    refuse_dst_over_inputs(cfg)
    if cfg.from_ == "csv":  # annotations, not weights: a CSV of boxes -> YOWO root + ACT pickle
        return convert_csv(cfg)
    converter = converter_of(cfg.from_)
    if converter is None:
        require(cfg, "from_", "src", "dst")
        names = converter_names()
        raise ConfigError(f"from={cfg.from_!r} is unknown; expected {', '.join(names)} or csv")
    return converter(cfg)
