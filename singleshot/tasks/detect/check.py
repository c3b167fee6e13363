"""``detect check``: every fault of a detection dataset in one pass, before any training.

``singleshot detect check data=...`` checks the training and the evaluation split that ``detect
train`` would read (``train_set``/``val_set``, the format's defaults when empty) against the class
list it would use (``classes=``, else the data's own), through the checkers of
:mod:`singleshot.data.detect_check`. It prints the table of every fault (stdout), then a summary
line per split. Clean data: the result dict; faults: a DataError (exit 2) after the table. Results
are cached while the files are unchanged (``from_cache``).
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

from singleshot.data.check import CheckReport, format_faults
from singleshot.errors import DataError
from singleshot.tasks.common import make_config, require
from singleshot.tasks.detect.config import DetectConfig
from singleshot.tasks.detect.data import check_split, class_names_for, split_for

logger = logging.getLogger(__name__)

__all__ = ["check", "check_reports"]


def check_reports(cfg: DetectConfig) -> list[CheckReport]:
    """The check of the training split and, when it differs, the evaluation split of ``cfg.data``."""
    require(cfg, "data")
    classes = class_names_for(cfg)
    reports: list[CheckReport] = []
    for role in ("train", "val"):
        report = check_split(cfg, split_for(cfg, role), classes)
        if all(r.dataset != report.dataset for r in reports):  # one COCO file serves both
            reports.append(report)
    return reports


def check(args: dict[str, str]) -> dict[str, Any]:
    """Check the dataset ``data=``; print every fault, then raise DataError when there are any."""
    cfg = make_config(DetectConfig, args)
    reports = check_reports(cfg)
    faults = [f for r in reports for f in r.faults]
    if faults:
        print(format_faults(faults))
    for r in reports:
        print(r.summary() + (" (cached)" if r.from_cache else ""))
    items = {(r.dataset, f.item) for r in reports for f in r.faults if f.item}
    if faults:
        raise DataError(
            f"{len(faults)} fault(s) in {len(items)} image(s) of {cfg.data} (listed above); fix them, "
            "or train with bad=skip to leave those images out"
        )
    return {
        "n_items": sum(r.n_items for r in reports),
        "n_faults": 0,
        "faults_by_kind": dict(Counter(f.kind for f in faults)),
        "items_with_faults": 0,
        "from_cache": all(r.from_cache for r in reports),
    }
