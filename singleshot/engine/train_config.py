"""The settings of one training run (:class:`TrainConfig`) and the optimizer they name."""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from singleshot.engine.schedules import SCHEDULES
from singleshot.errors import ConfigError

logger = logging.getLogger(__name__)

__all__ = [
    "EngineOptions",
    "TrainConfig",
    "build_optimizer",
    "train_config_for",
    "default_milestones",
    "fit_warmup",
    "check_engine_values",
    "OPTIMIZERS",
    "AMP_DTYPES",
    "ACCUMULATE_MODES",
    "check_accumulate_mode",
]

OPTIMIZERS = ("sgd", "adam", "adamw")
AMP_DTYPES = ("auto", "bfloat16", "float16")
ACCUMULATE_MODES = ("mean", "sum")


def check_accumulate_mode(mode: str) -> str:
    """``mode`` when it is one of :data:`ACCUMULATE_MODES` (``mean``, ``sum``; see :class:`TrainConfig`).

    Raises:
        ConfigError: naming the key ``accumulate_mode`` and the valid modes.
    """
    if mode not in ACCUMULATE_MODES:
        raise ConfigError(f"accumulate_mode: unknown mode {mode!r}; expected one of {list(ACCUMULATE_MODES)}")
    return mode


@dataclass
class TrainConfig:
    """Settings of one training run. Iteration counts (milestones, warm-up, ``checkpoint_every``)
    are optimizer steps.

    Optimisation: ``clip_grad`` is the max total gradient L2 norm (``None``: no clipping);
    ``accumulate`` micro-batches make one step, whose gradient is, by ``accumulate_mode``, the mean
    (``"mean"``: each micro-batch's loss divided by ``accumulate``; a smaller last group of an epoch
    is rescaled to the mean over the micro-batches present) or the sum (``"sum"``: as YOWO, loss not
    divided, a smaller last group is the sum of those present) of the micro-batch gradients. See
    :mod:`singleshot.engine.schedules` for the schedule fields.

    Precision and averaging: ``amp`` turns on autocast with ``amp_dtype`` (``"auto"``: bfloat16 on
    CPU, float16 on CUDA); float16 also uses a gradient scaler. ``ema_decay`` (e.g. 0.9998) keeps
    an exponential moving average of the weights, used for evaluation and saved in checkpoints.

    Checkpoints and stopping: ``checkpoint_every`` > 0 also writes ``last.pt`` every that many
    optimizer steps inside an epoch (exact mid-epoch resume needs a loader from
    :func:`singleshot.engine.sampler.build_train_loader`). ``patience`` stops training after that
    many epochs without an improvement of ``metric_key`` (checked on evaluation epochs).

    Output: ``plot_every`` redraws ``results.png`` every that many epochs and after the last one
    (0: never); ``progress_bar`` ``None`` shows a bar only when stderr is a terminal;
    ``tensorboard`` logs there too when ``torch.utils.tensorboard`` imports.

    Speed (CUDA only, ignored on CPU): ``cudnn_benchmark`` autotunes convolutions;
    ``channels_last`` converts the model and 4-D inputs to channels-last memory format (also
    allowed on CPU).

    Short runs: ``max_steps`` > 0 stops training after that many optimizer steps (mid-epoch if
    need be), evaluates once and ends, whatever ``epochs`` and ``eval_every`` say; the schedule is
    still planned over ``epochs`` (0: off). Smoke tests of a recipe use it.
    """

    epochs: int = 10
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 0.0
    optimizer: str = "sgd"
    schedule: str = "constant"
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1
    warmup_iters: int = 0
    warmup_factor: float = 0.001
    power: float = 0.9
    min_lr_factor: float = 0.0
    accumulate: int = 1
    accumulate_mode: str = "mean"
    clip_grad: float | None = None
    amp: bool = False
    amp_dtype: str = "auto"
    ema_decay: float | None = None
    eval_every: int = 1
    patience: int | None = None
    out_dir: str | Path = "runs/train"
    seed: int = 0
    max_nonfinite: int = 5
    device: str = "cpu"
    resume: bool = False
    checkpoint_every: int = 0
    log_every: int = 50
    progress_bar: bool | None = None
    plot_every: int = 1
    tensorboard: bool = True
    cudnn_benchmark: bool = True
    channels_last: bool = False
    max_steps: int = 0

    def __post_init__(self) -> None:
        self.milestones = tuple(int(m) for m in self.milestones)
        positive = {
            "epochs": self.epochs,
            "accumulate": self.accumulate,
            "eval_every": self.eval_every,
            "max_nonfinite": self.max_nonfinite,
            "log_every": self.log_every,
        }
        for key, value in positive.items():
            if int(value) < 1:
                raise ConfigError(f"{key}: must be >= 1, got {value}")
        zero_off = {
            "checkpoint_every": self.checkpoint_every,
            "plot_every": self.plot_every,
            "max_steps": self.max_steps,
        }
        for key, value in zero_off.items():
            if int(value) < 0:
                raise ConfigError(f"{key}: must be >= 0 (0 turns it off), got {value}")
        if self.patience is not None and self.patience < 1:
            raise ConfigError(f"patience: must be >= 1 epoch or None, got {self.patience}")
        finite = {
            "lr": self.lr,
            "momentum": self.momentum,
            "weight_decay": self.weight_decay,
            "gamma": self.gamma,
            "warmup_factor": self.warmup_factor,
            "power": self.power,
            "min_lr_factor": self.min_lr_factor,
            "clip_grad": self.clip_grad,
            "ema_decay": self.ema_decay,
        }
        for key, number in finite.items():
            if number is not None and not math.isfinite(float(number)):
                raise ConfigError(f"{key}: must be a finite number, got {number}")
        if self.lr <= 0:
            raise ConfigError(f"lr: must be > 0, got {self.lr}")
        if self.warmup_iters < 0:
            raise ConfigError(f"warmup: must be >= 0 optimizer steps, got {self.warmup_iters}")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"optimizer: unknown optimizer {self.optimizer!r}; expected one of {list(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"schedule: unknown schedule {self.schedule!r}; expected one of {list(SCHEDULES)}")
        check_accumulate_mode(self.accumulate_mode)
        if self.clip_grad is not None and self.clip_grad <= 0:
            raise ConfigError(f"clip_grad: must be > 0 or None, got {self.clip_grad}")
        if self.amp_dtype not in AMP_DTYPES:
            raise ConfigError(f"amp_dtype: unknown {self.amp_dtype!r}; expected one of {list(AMP_DTYPES)}")
        if self.ema_decay is not None and not 0.0 < self.ema_decay < 1.0:
            raise ConfigError(f"ema_decay: must lie in (0, 1) or be None, got {self.ema_decay}")

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (paths as strings, tuples as lists) for checkpoints and logs."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = str(value) if isinstance(value, Path) else list(value) if isinstance(value, tuple) else value
        return out


@dataclass
class EngineOptions:
    """The training and run keys every task's command-line config shares (``DetectConfig``,
    ``ActionConfig`` and ``GraspConfig`` derive from it and set their own defaults).

    ``milestones`` are in epochs and ``warmup`` in optimizer steps (see :func:`train_config_for`);
    the warm-up starts at ``warmup_factor`` x ``lr``; ``ema`` is the decay of an EMA of the weights;
    ``patience`` stops after that many evaluated epochs without a better metric; ``checkpoint_every``
    also writes ``last.pt`` every N steps (0: at epoch ends only); ``plot_every`` redraws
    ``results.png`` every N epochs (0: never). Every mode that writes a run folder (``train``,
    ``val``, ``predict``, ``demo``) writes ``project/name``, ``name`` defaulting to the mode's name;
    an existing folder is never reused silently: the first free ``name2``, ``name3``, ... is taken
    instead, unless ``exist_ok=true`` (reuse it) or ``resume=true`` (continue the run in it). See
    :func:`singleshot.tasks.common.run_dir`.

    ``dry_run=true`` (training modes) builds the model, data, loader, optimizer and schedule, then
    returns what the run would do (see :func:`singleshot.tasks.common.dry_run_summary`) without
    training or writing a run folder. ``max_steps=N`` trains N optimizer steps, evaluates once and
    stops (0: off).
    """

    data: str = ""  # the dataset (each task documents the layouts it reads)
    epochs: int = 10
    batch: int = 8
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    optimizer: str = "sgd"
    schedule: str = "constant"
    milestones: tuple[int, ...] = ()  # completed epochs after which lr *= gamma (multistep)
    gamma: float = 0.1  # multistep: lr factor at each milestone
    warmup: int = 0  # optimizer steps of linear warm-up
    warmup_factor: float = 0.001  # lr multiplier at the warm-up's first step (torchvision: 0.001; lufficc/SSD: 1/3)
    accumulate: int = 1  # micro-batches per optimizer step
    # mean: each step's gradient is the mean over its `accumulate` micro-batches; sum: their sum, as YOWO
    accumulate_mode: str = "mean"
    clip_grad: float | None = None  # max total gradient L2 norm
    workers: int = 2  # data loader worker processes
    device: str = "cpu"
    seed: int = 0
    resume: bool = False  # continue from project/name/last.pt
    eval_every: int = 1  # evaluate every N epochs (and after the last)
    amp: bool = False  # mixed precision: bfloat16 autocast on CPU, float16 + gradient scaler on CUDA
    ema: float | None = None  # decay of an EMA of the weights (e.g. 0.9998), used for evaluation and saved
    patience: int | None = None  # early stopping: evaluated epochs without a better metric
    checkpoint_every: int = 1000  # also write last.pt every N optimizer steps (0: at epoch ends only)
    plot_every: int = 1  # redraw results.png every N epochs (0: never)
    project: str = "runs"  # parent folder of the run folders
    name: str = ""  # run folder under project (empty: the mode's name, e.g. train, val, predict)
    exist_ok: bool = False  # reuse an existing project/name instead of taking the next free name2, name3, ...
    dry_run: bool = False  # train: print what the run would do (model, parameters, optimizer, schedule) and stop
    max_steps: int = 0  # train: stop after N optimizer steps and evaluate once (0: off; for smoke tests)
    check: bool = (
        True  # train/val: check every annotation and image header first (cached while the files are unchanged)
    )
    bad: str = (
        "stop"  # train/val: what a dataset fault does: stop (list every fault, exit non-zero) | skip (use the rest)
    )


def default_milestones(total_steps: int) -> tuple[int, ...]:
    """The milestones (optimizer steps) of a ``multistep`` run given none: 2/3 and 5/6 of its
    ``total_steps`` (SSD's 80k and 100k of 120k iterations), so a default config trains for any
    ``epochs``; one step at least."""
    total = max(1, int(total_steps))
    return tuple(sorted({max(1, round(total * 2 / 3)), max(1, round(total * 5 / 6))}))


def check_engine_values(cfg: EngineOptions) -> None:
    """Check the ranges of the training keys of ``cfg`` before any data is read (the types were
    checked when the config was built; :class:`TrainConfig` checks again what it holds).

    Raises:
        ConfigError: naming the first key out of range, its value and the range.
    """
    at_least_one = ("epochs", "batch", "accumulate", "eval_every")
    for key in at_least_one:
        if getattr(cfg, key) < 1:
            raise ConfigError(f"{key}: must be >= 1, got {getattr(cfg, key)}")
    for key in ("workers", "warmup", "checkpoint_every", "plot_every", "max_steps"):
        if getattr(cfg, key) < 0:
            raise ConfigError(f"{key}: must be >= 0, got {getattr(cfg, key)}")
    for key in ("lr", "momentum", "weight_decay", "gamma", "warmup_factor"):
        if not math.isfinite(getattr(cfg, key)):
            raise ConfigError(f"{key}: must be a finite number, got {getattr(cfg, key)}")
    if cfg.lr <= 0:
        raise ConfigError(f"lr: must be > 0, got {cfg.lr}")
    if cfg.momentum < 0 or cfg.weight_decay < 0:
        raise ConfigError(f"momentum and weight_decay: must be >= 0, got {cfg.momentum} and {cfg.weight_decay}")
    if cfg.gamma <= 0:
        raise ConfigError(f"gamma: must be > 0, got {cfg.gamma}")
    if not 0.0 <= cfg.warmup_factor <= 1.0:
        raise ConfigError(f"warmup_factor: must lie in [0, 1], got {cfg.warmup_factor}")
    if any(m < 0 for m in cfg.milestones):
        raise ConfigError(f"milestones: must be >= 0 epochs, got {list(cfg.milestones)}")
    if cfg.patience is not None and cfg.patience < 1:
        raise ConfigError(f"patience: must be >= 1 evaluated epoch or none, got {cfg.patience}")
    if cfg.clip_grad is not None and not (math.isfinite(cfg.clip_grad) and cfg.clip_grad > 0):
        raise ConfigError(f"clip_grad: must be > 0 or none, got {cfg.clip_grad}")
    if cfg.ema is not None and not 0.0 < cfg.ema < 1.0:
        raise ConfigError(f"ema: must lie in (0, 1) or be none, got {cfg.ema}")


def fit_warmup(warmup: int, total_steps: int) -> int:
    """The warm-up (optimizer steps) a run of ``total_steps`` steps uses for ``warmup=``: as given
    when shorter than the run, else a quarter of the run, with a warning naming both numbers (a
    warm-up as long as the run would keep the learning rate near ``warmup_factor`` x ``lr``)."""
    if warmup <= 0 or warmup < total_steps:
        return max(0, warmup)
    scaled = max(0, total_steps // 4)
    logger.warning(
        "warmup=%d optimizer steps is not shorter than the run's %d steps (epochs x steps per epoch): "
        "the warm-up is scaled down to %d steps (a quarter of the run)",
        warmup,
        total_steps,
        scaled,
    )
    return scaled


def train_config_for(task_cfg: EngineOptions, batches_per_epoch: int, out_dir: str | Path, device: str) -> TrainConfig:
    """The :class:`TrainConfig` of a task's command-line config (an :class:`EngineOptions`;
    ``channels_last`` is read when the task's config has it).

    ``milestones`` are given in epochs and become optimizer steps (``batches_per_epoch`` micro-batches
    of ``accumulate`` per step); ``warmup`` is in steps; the log line comes four times per epoch;
    ``channels_last`` None (or absent) means on for CUDA only.
    """
    c = task_cfg
    steps_per_epoch = -(-int(batches_per_epoch) // int(c.accumulate))
    milestones = tuple(m * steps_per_epoch for m in c.milestones)
    if c.schedule == "multistep" and not milestones:
        milestones = default_milestones(c.epochs * steps_per_epoch)
        logger.info(
            "multistep schedule without milestones=: lr x %g after optimizer steps %s (2/3 and 5/6 of the run, as SSD's 80k and 100k of 120k)",
            c.gamma,
            list(milestones),
        )
    warmup = fit_warmup(int(c.warmup), int(c.epochs) * steps_per_epoch)
    channels_last = getattr(c, "channels_last", False)
    return TrainConfig(
        epochs=c.epochs,
        lr=c.lr,
        momentum=c.momentum,
        weight_decay=c.weight_decay,
        optimizer=c.optimizer,
        schedule=c.schedule,
        milestones=milestones,
        gamma=c.gamma,
        warmup_iters=warmup,
        warmup_factor=c.warmup_factor,
        accumulate=c.accumulate,
        accumulate_mode=c.accumulate_mode,
        clip_grad=c.clip_grad,
        eval_every=c.eval_every,
        out_dir=out_dir,
        seed=c.seed,
        device=device,
        resume=c.resume,
        log_every=max(1, int(batches_per_epoch) // 4),
        amp=c.amp,
        ema_decay=c.ema,
        patience=c.patience,
        checkpoint_every=c.checkpoint_every,
        plot_every=c.plot_every,
        channels_last=device.startswith("cuda") if channels_last is None else bool(channels_last),
        max_steps=c.max_steps,
    )


def build_optimizer(
    params: Iterable[nn.Parameter] | Iterable[dict[str, Any]], cfg: TrainConfig
) -> torch.optim.Optimizer:
    """The optimizer named by ``cfg.optimizer`` over ``params``: parameters (weight decay on all of
    them) or parameter groups (their own ``lr``/``weight_decay`` override the config's).

    ``foreach=True`` everywhere: torch picks the per-tensor loop on CPU by default, which costs a
    few ms of Python per step for a small model; the multi-tensor kernels give the same numbers.
    """
    params = list(params)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, foreach=True)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay, foreach=True)
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, foreach=True)


#: ``key -> (help group, one line of meaning)`` of every :class:`EngineOptions` key (the help of
#: ``singleshot TASK MODE help``; each task adds its own keys' lines).
ENGINE_HELP: dict[str, tuple[str, str]] = {
    "data": ("data", "the dataset (each task's layouts: see its help and README)"),
    "check": ("data", "check every annotation and image header first (cached while the files are unchanged)"),
    "bad": ("data", "a dataset fault: stop (list every fault, exit non-zero) | skip (leave those items out)"),
    "workers": ("data", "data loader worker processes"),
    "epochs": ("training", "passes over the training set"),
    "batch": ("training", "images (clips) per optimizer step, over all processes"),
    "lr": ("training", "base learning rate"),
    "momentum": ("training", "SGD momentum"),
    "weight_decay": ("training", "L2 weight decay"),
    "optimizer": ("training", "sgd | adam | adamw"),
    "schedule": ("training", "learning-rate schedule: constant | multistep | cosine | poly"),
    "milestones": ("training", "multistep: completed epochs after which lr *= gamma (empty: 2/3 and 5/6 of the run)"),
    "gamma": ("training", "multistep: lr factor at each milestone"),
    "warmup": ("training", "optimizer steps of linear warm-up"),
    "warmup_factor": ("training", "lr multiplier at the warm-up's first step (torchvision 0.001; lufficc/SSD 1/3)"),
    "accumulate": ("training", "micro-batches per optimizer step (gradient accumulation)"),
    "accumulate_mode": ("training", "mean | sum (YOWO) of the accumulated micro-batch gradients"),
    "clip_grad": ("training", "max total gradient L2 norm (none: no clipping)"),
    "device": ("training", "cpu | cuda | cuda:N"),
    "seed": ("training", "seed of every random draw of the run"),
    "resume": ("training", "continue from project/name/last.pt"),
    "amp": ("training", "mixed precision: bfloat16 autocast on CPU, float16 + gradient scaler on CUDA"),
    "ema": ("training", "decay of an EMA of the weights (e.g. 0.9998), used for evaluation and saved"),
    "patience": ("training", "early stopping: evaluated epochs without a better metric (none: off)"),
    "max_steps": ("training", "stop after N optimizer steps and evaluate once (0: off; smoke tests)"),
    "dry_run": ("training", "print what the run would do (model, parameters, optimizer, schedule) and stop"),
    "eval_every": ("evaluation", "evaluate every N epochs (and after the last)"),
    "project": ("output", "parent folder of the run folders"),
    "name": ("output", "run folder under project (empty: the mode's name); taken -> name2, name3, ..."),
    "exist_ok": ("output", "write into an existing project/name instead of numbering a new one"),
    "checkpoint_every": ("output", "also write last.pt every N optimizer steps (0: at epoch ends only)"),
    "plot_every": ("output", "redraw results.png every N epochs (0: never)"),
}

#: The :class:`EngineOptions` keys every ``train`` (and ``demo``) reads.
ENGINE_TRAIN_KEYS: tuple[str, ...] = tuple(ENGINE_HELP)
