"""Optional TensorBoard logging: used when ``torch.utils.tensorboard`` imports, skipped otherwise.

TensorBoard is not a dependency of singleshot. When the ``tensorboard`` package is missing,
:class:`TensorBoardLog` does nothing (one debug line says so); ``results.csv`` and
``results.png`` hold the same numbers. Event files go to the run folder, so
``tensorboard --logdir runs/`` shows every run.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

__all__ = ["TensorBoardLog"]


class TensorBoardLog:
    """Scalars per epoch into ``log_dir``; a no-op when disabled or TensorBoard is not installed."""

    def __init__(self, log_dir: str | Path, enabled: bool = True) -> None:
        self.writer: Any = None
        if not enabled:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:  # the tensorboard package is optional
            logger.debug("TensorBoard logging off: %s", exc)
            return
        self.writer = SummaryWriter(log_dir=str(log_dir))

    @property
    def active(self) -> bool:
        """True when events are being written."""
        return self.writer is not None

    def log(self, values: Mapping[str, Any], step: int) -> None:
        """Write each finite numeric value as a scalar at ``step``."""
        if self.writer is None:
            return
        for key, value in values.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                self.writer.add_scalar(key, value, step)
        self.writer.flush()

    def close(self) -> None:
        """Flush and close the event file."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None
