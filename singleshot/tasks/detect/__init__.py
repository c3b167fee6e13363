"""The ``detect`` task (SSD on Pascal VOC and COCO): its table of modes.

``singleshot detect MODE key=value ...`` runs ``MODES[MODE](args)``; the keys are those of
:class:`singleshot.tasks.detect.config.DetectConfig`.
"""

from __future__ import annotations

from singleshot.tasks.detect import convert, demo, evaluate, export, predict, train

MODES = {
    "score": evaluate.score,
    "export": export.export,
    "convert": convert.convert,
    "predict": predict.predict,
    "val": evaluate.val,
    "train": train.train,
    "demo": demo.demo,
}
