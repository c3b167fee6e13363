"""The end of every task's training: run the trainer, then put the best weights back in the model."""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from singleshot.engine.checkpoint import load_checkpoint
from singleshot.engine.distributed import cleanup, is_main_process
from singleshot.engine.ema import inference_state_dict
from singleshot.engine.trainer import Trainer

__all__ = ["FinishedRun", "remove_unstarted_run", "train_and_restore_best"]

logger = logging.getLogger(__name__)


@dataclass
class FinishedRun:
    """What a finished training run leaves for its task to save and report.

    Attributes:
        metrics: the metrics of the best checkpoint (the last evaluation's when it holds none).
        epoch: the epoch of that checkpoint (the best epoch).
        seconds: wall time of ``trainer.train()``, rounded to 0.1 s.
        epochs_trained: the epochs completed when training ended (early stopping and ``max_steps``
            end it before ``epochs``).
    """

    metrics: dict[str, Any]
    epoch: int
    seconds: float
    epochs_trained: int = 0


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
    return FinishedRun(dict(state.get("metrics") or metrics), int(state["epoch"]), seconds, int(trainer.epoch))


def remove_unstarted_run(folder: str | Path, keep: str = "") -> bool:
    """Empty the run folder ``folder`` of a training that failed before it saved anything to
    continue from: when it holds no ``last.pt``, everything in it but the entry named ``keep`` (the
    run's lock, which its owner removes) is deleted and True is returned; a folder that holds a
    ``last.pt`` is left as it is (False), since ``resume=true`` continues it.
    """
    folder = Path(folder)
    if not folder.is_dir() or (folder / "last.pt").exists():
        return False
    for entry in folder.iterdir():
        if entry.name == keep:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
    logger.info("%s: training failed before its first checkpoint; the run folder is removed", folder)
    return True
