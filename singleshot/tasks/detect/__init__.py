"""The ``detect`` task (SSD on Pascal VOC, COCO and YOLO-txt data): its table of modes.

``singleshot detect MODE key=value ...`` runs ``MODES[MODE](args)``; ``SPECS[MODE]`` says which keys
of :class:`singleshot.tasks.detect.config.DetectConfig` the mode reads (:mod:`.keys`) and how to
explain them (``singleshot detect MODE help``).
"""

from __future__ import annotations

from dataclasses import dataclass

from singleshot.tasks.common import make_config, mode_specs
from singleshot.tasks.detect import check, convert, demo, evaluate, export, keys, predict, train
from singleshot.tasks.detect.config import DetectConfig

MODES = {
    "score": evaluate.score,
    "export": export.export,
    "convert": convert.convert,
    "predict": predict.predict,
    "val": evaluate.val,
    "train": train.train,
    "demo": demo.demo,
    "check": check.check,
}


@dataclass
class _ExportKeys(DetectConfig, export.ExportOptions):
    """The keys of ``detect export``: the export options and the config keys it reads."""


SPECS = mode_specs(
    MODES,
    keys.KEYS,
    keys.HELP,
    {"*": DetectConfig, "export": _ExportKeys},
    {"demo": lambda args: make_config(DetectConfig, args, **demo.DEMO_DEFAULTS)},
)
