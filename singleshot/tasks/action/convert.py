"""``action convert``: weights of other projects -> ``.safetensors`` with metadata, by the converter
of the member that handles ``from=`` (YOWO: ``yowo``, ``kinetics``, ``darknet``; ACT: ``caffe``;
see :mod:`~singleshot.tasks.action.yowo_convert` and :mod:`~singleshot.tasks.action.act_convert`).
"""

from __future__ import annotations

import logging

from singleshot.errors import ConfigError
from singleshot.tasks.action.config import ActionConfig
from singleshot.tasks.action.members import converter_names, converter_of
from singleshot.tasks.common import make_config, require

logger = logging.getLogger(__name__)

__all__ = ["convert"]


def convert(args: dict[str, str]) -> dict:
    """Weights of another project -> ``dst`` (.safetensors) with metadata (``from=yowo|kinetics|darknet|caffe``)."""
    cfg = make_config(ActionConfig, args)
    converter = converter_of(cfg.from_)
    if converter is None:
        require(cfg, "from_", "src", "dst")
        names = converter_names()
        raise ConfigError(f"from={cfg.from_!r} is unknown; expected {', '.join(names[:-1])} or {names[-1]}")
    return converter(cfg)
