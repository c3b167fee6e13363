"""The end of every task's training: run the trainer, then put the best weights back in the model."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from singleshot.engine.checkpoint import load_checkpoint
from singleshot.engine.distributed import cleanup, is_main_process
from singleshot.engine.ema import inference_state_dict
from singleshot.engine.trainer import Trainer

__all__ = ["FinishedRun", "train_and_restore_best"]


@dataclass
class FinishedRun:
    """What a finished training run leaves for its task to save and report.

    Attributes:
        metrics: the metrics of the best checkpoint (the last evaluation's when it holds none).
        epoch: the epoch of that checkpoint.
        seconds: wall time of ``trainer.train()``, rounded to 0.1 s.
    """

    metrics: dict[str, Any]
    epoch: int
    seconds: float


def train_and_restore_best(trainer: Trainer) -> FinishedRun | None:
    """Train, then load the best checkpoint (``last.pt`` when no evaluation made a ``best.pt``) into
    ``trainer.model`` — the EMA weights when EMA is on; a training wrapper (teacher, auxiliary head)
    fills the wrapped model too. Processes other than the first of a ``torchrun`` job leave the
    process group and get None; the first one calls :func:`cleanup` itself once it has saved."""
    t0 = time.perf_counter()
    metrics = trainer.train()
    seconds = round(time.perf_counter() - t0, 1)
    if not is_main_process():
        cleanup()
        return None
    best = trainer.best_path if trainer.best_path.exists() else trainer.last_path
    state = load_checkpoint(best)
    trainer.model.load_state_dict(inference_state_dict(state))
    return FinishedRun(dict(state.get("metrics") or metrics), int(state["epoch"]), seconds)
