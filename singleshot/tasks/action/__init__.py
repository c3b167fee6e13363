"""The ``action`` task (YOWO and ACT on UCF101-24, J-HMDB-21 and the synthetic action videos): its
table of modes.

``singleshot action MODE key=value ...`` runs ``MODES[MODE](args)``; the keys are those of
:class:`singleshot.tasks.action.config.ActionConfig`. The two members are records in
:mod:`singleshot.tasks.action.members`.
"""

from __future__ import annotations

from singleshot.tasks.action import convert, demo, evaluate, export, flow, predict, train

MODES = {
    "score": evaluate.score,
    "convert": convert.convert,
    "predict": predict.predict,
    "val": evaluate.val,
    "train": train.train,
    "demo": demo.demo,
    "export": export.export_mode,
    "flow": flow.flow_mode,
}
