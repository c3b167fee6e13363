"""Trainer hook points, and early stopping written as one."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from singleshot.engine.trainer import Trainer

logger = logging.getLogger(__name__)

__all__ = ["Hook", "EarlyStopping"]


class Hook:
    """Base class of trainer hooks; override any of the four methods. Each receives the trainer,
    whose attributes (``epoch``, ``iteration``, ``batch_in_epoch``, ``step_losses``, ``metrics``,
    ``evaluated_now``, ``best_metric``, ``best_epoch``, ``model``, ``optimizer``, ...) it may read;
    setting ``trainer.should_stop = True`` ends training after the current epoch (under DDP every
    process must decide alike)."""

    def before_train(self, trainer: Trainer) -> None:
        """Called once, after resuming and seeding, before the first epoch."""

    def after_step(self, trainer: Trainer) -> None:
        """Called after every optimizer step (``trainer.iteration`` already incremented) and after
        the mid-epoch checkpoint of that step, if any."""

    def after_epoch(self, trainer: Trainer) -> None:
        """Called after each epoch's evaluation, logs and checkpoints are written."""

    def after_train(self, trainer: Trainer) -> None:
        """Called once after the last epoch (not when training raises)."""


class EarlyStopping(Hook):
    """Stop when the watched metric has not improved for ``patience`` epochs.

    Checked after evaluation epochs: training stops once ``epoch - best_epoch >= patience``
    (``best_epoch`` 0 while no finite value was seen). The trainer's ``best_epoch`` is part of its
    checkpoints, so the count survives a resume. Metrics are broadcast from rank 0, so every
    process stops at the same epoch.
    """

    def __init__(self, patience: int) -> None:
        self.patience = int(patience)

    def after_epoch(self, trainer: Trainer) -> None:
        if not trainer.evaluated_now:
            return
        waited = trainer.epoch - trainer.best_epoch
        if waited >= self.patience:
            trainer.should_stop = True
            logger.info(
                "early stopping at epoch %d: %s has not improved for %d epochs (best %s at epoch %d)",
                trainer.epoch,
                trainer.metric_key,
                waited,
                trainer.best_metric,
                trainer.best_epoch,
            )
