"""The ``action`` task (YOWO and ACT on UCF101-24, J-HMDB-21 and the synthetic action videos): its
table of modes.

``singleshot action MODE key=value ...`` runs ``MODES[MODE](args)``; ``SPECS[MODE]`` says which keys
of :class:`singleshot.tasks.action.config.ActionConfig` (``flow``: ``FlowOptions``; ``export``:
``ActionExportOptions``) the mode reads (:mod:`.keys`: a member's own keys when it runs that member)
and how to explain them (``singleshot action MODE help``). The two members are records in
:mod:`singleshot.tasks.action.members`.
"""

from __future__ import annotations

from singleshot.tasks.action import check, convert, demo, evaluate, export, flow, keys, predict, train
from singleshot.tasks.action.config import ActionConfig
from singleshot.tasks.action.members import member_config
from singleshot.tasks.common import explicit_keys, make_config, mode_specs, with_mode_help

MODES = {
    "score": evaluate.score,
    "convert": convert.convert,
    "predict": predict.predict,
    "val": evaluate.val,
    "train": train.train,
    "demo": demo.demo,
    "export": export.export_mode,
    "flow": flow.flow_mode,
    "check": check.check,
}


def _val_config(args: dict[str, str]) -> ActionConfig:
    """``action val``'s config: batch 16, and the evaluation settings ``val`` takes from the weights
    (:func:`~singleshot.tasks.action.evaluate.apply_val_settings`) unless given."""
    cfg = make_config(ActionConfig, args, batch=16)
    meta = keys.weights_meta(args)
    if meta is not None:
        evaluate.apply_val_settings(cfg, meta, explicit_keys(args))
    return cfg


SPECS = with_mode_help(
    mode_specs(
        MODES,
        keys.KEYS,
        keys.HELP,
        {"*": ActionConfig, "flow": flow.FlowOptions, "export": export.ActionExportOptions},
        {
            "train": lambda args: member_config(args)[1],
            "demo": lambda args: member_config(args, demo=True)[1],
            "val": _val_config,
            "predict": lambda args: make_config(ActionConfig, args, batch=8),
        },
    ),
    keys.MODE_HELP,
)
