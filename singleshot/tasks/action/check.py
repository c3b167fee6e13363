"""``action check``: every fault of an action dataset at once, and the same check before ``train``
and ``val``.

:func:`check_data` runs :func:`~singleshot.data.action.check.check_action_data` on ``data=`` (a
YOWO root, an ACT ``*-GT.pkl``, ``finalAnnots.mat`` / ``pyannot.pkl``, a box table ``.csv`` with its
videos as ``frames=``), cached while the files are unchanged. :func:`checked_data` is what ``train``
(both members) and ``val`` read their data through: with ``check=true`` (the default) the check
runs first and :func:`~singleshot.tasks.common.screen_dataset` applies ``bad=`` (``stop``: a
DataError listing every fault; ``skip``: the faulty videos are left out of the dataset and
returned, for ``skipped.txt``).
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Any

from singleshot.data.action.check import check_action_data
from singleshot.data.check import CheckReport, Fault
from singleshot.errors import DataError
from singleshot.structures import ActionAnnotations
from singleshot.tasks.action.config import ActionConfig, ActionOptions
from singleshot.tasks.action.data import load_data
from singleshot.tasks.common import make_config, require, screen_dataset

logger = logging.getLogger(__name__)

__all__ = ["check", "check_data", "checked_data"]


def check_data(cfg: ActionOptions, use_cache: bool = True) -> CheckReport:
    """The check report of ``cfg.data`` (with ``frames``, ``split``, ``split_list``, ``classes``;
    ``workers`` threads, 0: automatic)."""
    require(cfg, "data")
    return check_action_data(
        cfg.data,
        frames=cfg.frames or None,
        split_list=cfg.split_list or None,
        split=cfg.split,
        classes=list(cfg.classes) or None,
        use_cache=use_cache,
        workers=cfg.workers,
    )


def checked_data(cfg: ActionOptions) -> tuple[ActionAnnotations, Path, list[Fault]]:
    """``(ground truth, folder holding rgb-images/, faults of the videos left out)`` of ``cfg.data``:
    :func:`~singleshot.tasks.action.data.load_data` after the dataset check when ``cfg.check``
    (``bad=stop``: a DataError listing every fault; ``bad=skip``: the faulty videos left out)."""
    if not cfg.check:
        ann, root = load_data(cfg)
        return ann, root, []
    report = check_data(cfg)
    skip = screen_dataset(report, cfg.bad)
    ann, root = load_data(cfg, skip=skip) if skip else load_data(cfg)
    return ann, root, [f for f in report.faults if f.item in skip]


def check(args: dict[str, str]) -> dict[str, Any]:
    """Check every annotation and frame header of ``data`` and list every fault."""
    cfg = make_config(ActionConfig, args)
    report = check_data(cfg)
    print(report.table(), flush=True)
    if report.faults:
        raise DataError(f"{len(report.faults)} fault(s) in {report.dataset}, listed above")
    return {
        "n_items": report.n_items,
        "n_faults": 0,
        "faults_by_kind": dict(Counter(f.kind for f in report.faults)),
        "items_with_faults": len(report.bad_items),
        "from_cache": report.from_cache,
    }
