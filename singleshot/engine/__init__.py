"""The training engine shared by every family: trainer, checkpoints, weights, schedules, sampling,
mixed precision, EMA, distributed helpers, logs."""

from __future__ import annotations

from singleshot.atomic import atomic_write
from singleshot.engine.checkpoint import load_checkpoint, save_checkpoint
from singleshot.engine.distributed import init_distributed, is_distributed, is_main_process
from singleshot.engine.ema import ModelEMA, inference_state_dict
from singleshot.engine.sampler import ResumableSampler, SeededDataset, build_train_loader
from singleshot.engine.schedules import build_scheduler
from singleshot.engine.seed import seed_everything, worker_init_fn
from singleshot.engine.train_config import TrainConfig, build_optimizer
from singleshot.engine.trainer import Hook, Trainer
from singleshot.engine.weights import load_foreign_pth, load_weights, save_weights, unwrap_state_dict

__all__ = [
    "Hook",
    "ModelEMA",
    "ResumableSampler",
    "SeededDataset",
    "TrainConfig",
    "Trainer",
    "atomic_write",
    "build_optimizer",
    "build_scheduler",
    "build_train_loader",
    "inference_state_dict",
    "init_distributed",
    "is_distributed",
    "is_main_process",
    "load_checkpoint",
    "load_foreign_pth",
    "load_weights",
    "save_checkpoint",
    "save_weights",
    "seed_everything",
    "unwrap_state_dict",
    "worker_init_fn",
]
