"""The training engine shared by every family: trainer, checkpoints, weights, schedules, logs."""

from __future__ import annotations

from singleshot.engine.checkpoint import atomic_write, load_checkpoint, save_checkpoint
from singleshot.engine.schedules import build_scheduler
from singleshot.engine.seed import seed_everything, worker_init_fn
from singleshot.engine.trainer import Hook, TrainConfig, Trainer, build_optimizer
from singleshot.engine.weights import load_foreign_pth, load_weights, save_weights, unwrap_state_dict

__all__ = [
    "Hook",
    "TrainConfig",
    "Trainer",
    "atomic_write",
    "build_optimizer",
    "build_scheduler",
    "load_checkpoint",
    "load_foreign_pth",
    "load_weights",
    "save_checkpoint",
    "save_weights",
    "seed_everything",
    "unwrap_state_dict",
    "worker_init_fn",
]
