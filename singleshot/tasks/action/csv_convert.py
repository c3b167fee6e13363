"""``action convert from=csv``: a CSV of per-frame boxes plus the videos' frames -> a YOWO root and
an ACT ``*-GT.pkl`` (:func:`~singleshot.data.action.csv_convert.convert_box_csv`).

``src=`` the CSV (``video, frame, x1, y1, x2, y2, label[, actor]``, see
:mod:`singleshot.data.action.csv_table`), ``frames=`` a folder of video files, a YOWO root or a
folder of frame folders, ``dst=`` the new root; ``classes=`` the class list (default: the CSV's
labels, sorted); ``split_list=`` the test videos, else ``test_fraction=`` of each class's videos
(0: every video in both lists).
"""

from __future__ import annotations

import logging
from typing import Any

from singleshot.data.action.csv_convert import convert_box_csv
from singleshot.tasks.action.config import ActionOptions
from singleshot.tasks.common import require

logger = logging.getLogger(__name__)

__all__ = ["convert_csv"]


def convert_csv(cfg: ActionOptions) -> dict[str, Any]:
    """``from=csv``: ``src`` (box table) + ``frames`` -> ``dst`` (YOWO root + ACT pickle); the
    result counts videos, tubes, label files and frames, and lists the gaps that split tracks."""
    require(cfg, "src", "frames", "dst")
    return convert_box_csv(
        cfg.src,
        cfg.frames,
        cfg.dst,
        classes=list(cfg.classes) or None,
        split_list=cfg.split_list or None,
        test_fraction=cfg.test_fraction,
    )
