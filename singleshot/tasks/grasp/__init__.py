"""The ``grasp`` task (GG-CNN, GG-CNN2, PSPNet grasp nets on Cornell and Jacquard): its modes.

``singleshot grasp MODE key=value ...`` runs ``MODES[MODE](args)``; ``SPECS[MODE]`` says which keys
of :class:`singleshot.tasks.grasp.config.GraspConfig` (``export``: ``GraspExportOptions``) the mode
reads (:mod:`.keys`) and how to explain them (``singleshot grasp MODE help``).
"""

from __future__ import annotations

from singleshot.tasks.common import demo_threads, make_config, mode_specs, with_mode_help
from singleshot.tasks.grasp import check, convert, demo, evaluate, export, keys, predict, train
from singleshot.tasks.grasp.config import GraspConfig

MODES = {
    "check": check.check,
    "score": evaluate.score,
    "val": evaluate.val,
    "predict": predict.predict,
    "train": train.train,
    "demo": demo.demo,
    "convert": convert.convert,
    "export": export.export_mode,
}


def _demo_config(args: dict[str, str]) -> GraspConfig:
    """``grasp demo``'s config: the demo recipe under the arguments, and its threads."""
    cfg = make_config(GraspConfig, args, **demo.DEMO_DEFAULTS)
    if cfg.threads <= 0:
        cfg.threads = demo_threads(cfg.workers)
    return cfg


SPECS = with_mode_help(
    mode_specs(
        MODES,
        keys.KEYS,
        keys.HELP,
        {"*": GraspConfig, "export": export.GraspExportOptions},
        {"demo": _demo_config},
    ),
    keys.MODE_HELP,
)
