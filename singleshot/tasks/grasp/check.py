"""``grasp check``: every fault of a Cornell or Jacquard root in one pass, and the same check that
``grasp train`` and ``grasp val`` run first (:func:`screened_split`).

The check (:func:`singleshot.data.grasp.check.check_grasp_dataset`) reads what the readers need for
``input`` (depth: ``d.tiff`` / Jacquard's ``depth`` kind; rgb: the RGB image; rgbd: both), for every
sample of the root, not only one split's. ``bad=stop`` (default) ends ``train`` / ``val`` with the
table of faults; ``bad=skip`` leaves the faulty samples out *after* splitting, so the other samples
keep the sides they have on a clean copy of the dataset (a model trained with ``bad=skip`` is
validated on the same test images by ``val`` with ``bad=skip``).
"""

from __future__ import annotations

import logging
from pathlib import Path

from singleshot.data.check import CheckReport, Fault
from singleshot.data.grasp.check import check_grasp_dataset, grasp_layout
from singleshot.data.grasp.records import GraspSample
from singleshot.errors import DataError
from singleshot.tasks.common import make_config, require, screen_dataset
from singleshot.tasks.grasp.config import GraspConfig
from singleshot.tasks.grasp.data import find_samples, split_of

logger = logging.getLogger(__name__)

__all__ = ["check", "check_report", "screened_split"]


def check_report(cfg: GraspConfig, root: str) -> CheckReport:
    """The check of ``root`` for ``cfg``'s ``layout``, ``input``, ``depth`` and object map (the
    one :func:`~singleshot.tasks.grasp.data.find_samples` would read)."""
    path = Path(root)
    object_map: Path | None = None
    layout = grasp_layout(path) if cfg.layout == "auto" and path.is_dir() else cfg.layout
    if layout == "cornell":
        object_map = Path(cfg.object_map) if cfg.object_map else path / "objects.txt"
        if not cfg.object_map and not object_map.is_file():
            object_map = None
    return check_grasp_dataset(path, cfg.layout, cfg.input, cfg.depth, object_map)


def screened_split(cfg: GraspConfig, root: str) -> tuple[list[GraspSample], list[GraspSample], str, list[Fault]]:
    """(train samples, test samples, the split's description, the faults of the samples left out).

    With ``check`` (default) the dataset is checked first and screened by ``bad``
    (:func:`~singleshot.tasks.common.screen_dataset`); ``check=false`` splits without it.

    Raises:
        DataError: faults with ``bad=stop`` (the message is their table), a fault of the whole
            dataset, or ``bad=skip`` leaving a side of the split empty.
    """
    if not cfg.check:
        train, test, split = split_of(cfg, find_samples(cfg, root))
        return train, test, split, []
    report = check_report(cfg, root)
    bad = screen_dataset(report, cfg.bad)
    train, test, split = split_of(cfg, find_samples(cfg, root, unread=bad))
    if not bad:
        return train, test, split, []
    train = [s for s in train if s.image_id not in bad]
    test = [s for s in test if s.image_id not in bad]
    if not train or not test:
        side = "training" if not train else "test"
        raise DataError(
            f"{root}: bad=skip leaves the {side} side of the split without images "
            f"({len(bad)} of {report.n_items} items have faults):\n{report.table()}"
        )
    split += f"; {len(bad)} faulty images left out (bad=skip): {len(train)} train / {len(test)} test images"
    return train, test, split, [f for f in report.faults if f.item in bad]


# ---------------------------------------------------------------- mode
def check(args: dict[str, str]) -> dict:
    """Check a Cornell or Jacquard root (``data=``) for ``input`` (and ``depth``, ``layout``,
    ``object_map``): prints every fault as a table, then the summary.

    Returns:
        ``n_items``, ``n_faults``, ``faults_by_kind``, ``items_with_faults``, ``from_cache`` (no fault).

    Raises:
        DataError: any fault (after printing the table).
    """
    cfg = make_config(GraspConfig, args)
    require(cfg, "data")
    report = check_report(cfg, cfg.data)
    print(report.table() if report.faults else report.summary(), flush=True)
    if report.faults:
        n = len(report.faults)
        raise DataError(f"{n} fault{'s' if n > 1 else ''} listed above ({report.summary()})")
    return {
        "n_items": report.n_items,
        "n_faults": 0,
        "faults_by_kind": {},
        "items_with_faults": 0,
        "from_cache": report.from_cache,
    }
