"""The training engine: a plain optimisation step and four hook points.

One :class:`Trainer` serves every family. The task supplies the model (returning a dict of raw
outputs), a loss (``loss_fn(outputs, targets) -> dict of named scalar tensors``; the total is
their sum), a ``prepare_batch(batch, device) -> (inputs, targets)`` that moves a collated batch
to the device, and optionally ``evaluate(model) -> dict of floats``.

One micro-batch: forward, loss terms, total. A non-finite total discards the micro-batch and the
gradients accumulated so far in its group (a warning names the epoch, batch, iteration and loss
terms); ``max_nonfinite`` in a row saves ``last.pt`` and raises :class:`TrainingError`.
Otherwise ``(total / accumulate).backward()``; after ``accumulate`` micro-batches (or at the end
of the epoch, with the gradient rescaled to the mean over the micro-batches present) gradients are
optionally clipped, the optimizer steps and the scheduler steps. ``iteration`` counts optimizer
steps. ``singleshot/engine/reference_loop.py`` spells out the same computation without the
trainer.

Each epoch ends with: evaluation (every ``eval_every`` epochs and after the last one), a row in
``results.csv``, a redrawn ``results.png``, ``last.pt`` and, when ``metric_key`` improved,
``best.pt`` (all in ``out_dir``). ``resume=True`` restores ``last.pt`` (weights, optimizer,
schedule, RNG states, counters) and continues with the next epoch; with the same seed, data and
config the final weights equal those of an uninterrupted run, bit for bit on CPU.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from singleshot.engine.checkpoint import load_checkpoint, save_checkpoint
from singleshot.engine.logger import CSVLog, Progress
from singleshot.engine.plots import plot_results
from singleshot.engine.schedules import SCHEDULES, build_scheduler
from singleshot.engine.seed import get_rng_state, seed_everything, set_rng_state
from singleshot.errors import ConfigError, TrainingError

logger = logging.getLogger(__name__)

__all__ = ["TrainConfig", "Hook", "Trainer", "build_optimizer", "OPTIMIZERS"]

OPTIMIZERS = ("sgd", "adam", "adamw")

LossFn = Callable[[dict[str, Tensor], Any], dict[str, Tensor]]
PrepareBatch = Callable[[Any, torch.device], tuple[Any, Any]]
Evaluate = Callable[[nn.Module], Mapping[str, float]]


@dataclass
class TrainConfig:
    """Settings of one training run. Iteration counts (milestones, warm-up) are optimizer steps.

    ``clip_grad``: max total gradient L2 norm, ``None`` for no clipping. ``progress_bar``: ``None``
    shows a bar only when stderr is a terminal. See :mod:`singleshot.engine.schedules` for the
    schedule fields.
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
    clip_grad: float | None = None
    eval_every: int = 1
    out_dir: str | Path = "runs/train"
    seed: int = 0
    max_nonfinite: int = 5
    device: str = "cpu"
    resume: bool = False
    log_every: int = 50
    progress_bar: bool | None = None

    def __post_init__(self) -> None:
        self.milestones = tuple(int(m) for m in self.milestones)
        positive = {"epochs": self.epochs, "accumulate": self.accumulate, "eval_every": self.eval_every,
                    "max_nonfinite": self.max_nonfinite, "log_every": self.log_every}
        for key, value in positive.items():
            if int(value) < 1:
                raise ConfigError(f"{key}: must be >= 1, got {value}")
        if self.lr <= 0:
            raise ConfigError(f"lr: must be > 0, got {self.lr}")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"optimizer: unknown optimizer {self.optimizer!r}; expected one of {list(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"schedule: unknown schedule {self.schedule!r}; expected one of {list(SCHEDULES)}")
        if self.clip_grad is not None and self.clip_grad <= 0:
            raise ConfigError(f"clip_grad: must be > 0 or None, got {self.clip_grad}")

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (paths as strings, tuples as lists) for checkpoints and logs."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = str(value) if isinstance(value, Path) else list(value) if isinstance(value, tuple) else value
        return out


class Hook:
    """Base class of trainer hooks; override any of the four methods. Each receives the trainer,
    whose attributes (``epoch``, ``iteration``, ``step_losses``, ``metrics``, ``best_metric``,
    ``model``, ``optimizer``, ...) it may read; setting ``trainer.should_stop = True`` ends
    training after the current epoch (the mechanism for early stopping)."""

    def before_train(self, trainer: Trainer) -> None:
        """Called once, after resuming and seeding, before the first epoch."""

    def after_step(self, trainer: Trainer) -> None:
        """Called after every optimizer step (``trainer.iteration`` already incremented)."""

    def after_epoch(self, trainer: Trainer) -> None:
        """Called after each epoch's evaluation, logs and checkpoints are written."""

    def after_train(self, trainer: Trainer) -> None:
        """Called once after the last epoch (not when training raises)."""


def build_optimizer(params: Iterable[nn.Parameter], cfg: TrainConfig) -> torch.optim.Optimizer:
    """The optimizer named by ``cfg.optimizer`` over ``params`` (weight decay on all of them)."""
    params = list(params)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


class Trainer:
    """Runs training epochs over ``train_loader`` (see the module doc for the exact step).

    Args:
        model: returns a dict of raw output tensors for ``inputs``.
        loss_fn: ``(outputs, targets) -> {name: scalar tensor}``.
        train_loader: re-iterable with ``len()`` (a ``DataLoader``).
        cfg: the run's settings.
        prepare_batch: ``(batch, device) -> (inputs, targets)`` on ``device``.
        evaluate: ``model -> {metric: float}``, called in eval mode under ``torch.no_grad()``.
        metric_key: the metric whose maximum selects ``best.pt`` (bigger is better).
        hooks: :class:`Hook` instances called in order.
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: LossFn,
        train_loader: Iterable[Any],
        cfg: TrainConfig,
        prepare_batch: PrepareBatch,
        evaluate: Evaluate | None = None,
        metric_key: str | None = None,
        hooks: Sequence[Hook] = (),
    ) -> None:
        self.cfg = cfg
        self.device = torch.device(cfg.device)
        self.model = model.to(self.device)
        self.loss_fn = loss_fn
        self.train_loader = train_loader
        self.prepare_batch = prepare_batch
        self.evaluate = evaluate
        self.metric_key = metric_key
        self.hooks = list(hooks)
        self.out_dir = Path(cfg.out_dir)
        try:
            batches = len(train_loader)  # type: ignore[arg-type]
        except TypeError as exc:
            raise ConfigError("train_loader: must have a length (schedules are planned in iterations)") from exc
        if batches < 1:
            raise ConfigError("train_loader: yields no batches (empty dataset or batch larger than it with drop_last)")
        self.batches_per_epoch = batches
        self.steps_per_epoch = math.ceil(batches / cfg.accumulate)
        self.total_iters = cfg.epochs * self.steps_per_epoch
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = build_optimizer(self.params, cfg)
        self.scheduler = build_scheduler(
            self.optimizer, cfg.schedule, self.total_iters, cfg.warmup_iters, cfg.warmup_factor,
            cfg.milestones, cfg.gamma, cfg.power, cfg.min_lr_factor,
        )
        self.epoch = 0  # completed epochs
        self.iteration = 0  # optimizer steps taken
        self.best_metric: float | None = None
        self.metrics: dict[str, float] = {}
        self.step_losses: dict[str, float] = {}
        self.should_stop = False
        self._nonfinite_run = 0
        self._evaluated_now = False
        self._improved = False
        self._last_lr = float(self.optimizer.param_groups[0]["lr"])

    # ----------------------------------------------------------------- state
    @property
    def last_path(self) -> Path:
        return self.out_dir / "last.pt"

    @property
    def best_path(self) -> Path:
        return self.out_dir / "best.pt"

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue the run (see :mod:`singleshot.engine.checkpoint`)."""
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "epoch": self.epoch,
            "iteration": self.iteration,
            "rng": get_rng_state(),
            "config": self.cfg.to_dict(),
            "best_metric": self.best_metric,
            "metric_key": self.metric_key,
            "metrics": dict(self.metrics),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a :meth:`state_dict` (weights, optimizer, schedule, counters, RNG states)."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.epoch = int(state["epoch"])
        self.iteration = int(state["iteration"])
        self.best_metric = state.get("best_metric")
        self.metrics = dict(state.get("metrics") or {})
        set_rng_state(state["rng"])

    def _resume(self) -> None:
        if not self.last_path.is_file():
            raise ConfigError(f"resume: {self.last_path} not found; nothing to resume (set resume=false to start)")
        state = load_checkpoint(self.last_path)
        saved = state.get("config") or {}
        changed = sorted(k for k, v in self.cfg.to_dict().items() if k != "resume" and k in saved and saved[k] != v)
        if changed:
            logger.warning("resuming %s with changed settings: %s", self.last_path,
                           ", ".join(f"{k}: {saved[k]!r} -> {getattr(self.cfg, k)!r}" for k in changed))
        self.load_state_dict(state)
        logger.info("resumed %s at epoch %d, iteration %d", self.last_path, self.epoch, self.iteration)

    # ----------------------------------------------------------------- loop
    def train(self) -> dict[str, float]:
        """Train until ``cfg.epochs`` (or a hook sets ``should_stop``); returns the last metrics."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        log = CSVLog(self.out_dir / "results.csv")
        if self.cfg.resume:
            self._resume()
        else:
            if log.rows or self.last_path.exists():
                logger.warning("%s already holds a run; starting over (resume=true continues it)", self.out_dir)
            seed_everything(self.cfg.seed)
        log.truncate(self.epoch)
        progress = Progress(self.cfg.log_every, self.cfg.progress_bar)
        for hook in self.hooks:
            hook.before_train(self)
        self.model.train()
        while self.epoch < self.cfg.epochs and not self.should_stop:
            t0 = time.perf_counter()
            means = self._train_one_epoch(progress)
            self.epoch += 1
            if self.evaluate is not None and (self.epoch % self.cfg.eval_every == 0 or self.epoch == self.cfg.epochs):
                self._run_evaluation()
            row: dict[str, Any] = {"epoch": self.epoch, "lr": self._last_lr, "time_s": time.perf_counter() - t0}
            row.update({f"train/{k}": v for k, v in means.items()})
            row.update({f"metrics/{k}": v for k, v in self.metrics.items()} if self._evaluated_now else {})
            log.append(row)
            plot_results(log, self.out_dir / "results.png")
            state = self.state_dict()
            save_checkpoint(self.last_path, state)
            if self._improved:
                save_checkpoint(self.best_path, state)
                logger.info("new best %s = %.6g at epoch %d", self.metric_key, self.best_metric, self.epoch)
            for hook in self.hooks:
                hook.after_epoch(self)
        for hook in self.hooks:
            hook.after_train(self)
        return dict(self.metrics)

    def _run_evaluation(self) -> None:
        assert self.evaluate is not None
        self.model.eval()
        with torch.no_grad():
            raw = self.evaluate(self.model)
        self.model.train()
        self.metrics = {str(k): float(v) for k, v in raw.items()}
        self._evaluated_now = True
        logger.info("epoch %d metrics: %s", self.epoch, " ".join(f"{k}={v:.6g}" for k, v in self.metrics.items()))
        if self.metric_key is None:
            return
        if self.metric_key not in self.metrics:
            raise ConfigError(
                f"metric_key: {self.metric_key!r} is not among the evaluation metrics {sorted(self.metrics)}"
            )
        value = self.metrics[self.metric_key]
        if math.isfinite(value) and (self.best_metric is None or value > self.best_metric):
            self.best_metric = value
            self._improved = True

    def _train_one_epoch(self, progress: Progress) -> dict[str, float]:
        """One pass over the loader; returns the mean of each loss term (and ``total``)."""
        self._evaluated_now = False
        self._improved = False
        sums: dict[str, float] = {}
        finite = 0
        micro = 0  # micro-batches whose gradients are accumulated and not yet applied
        self.optimizer.zero_grad(set_to_none=True)
        progress.start(self.epoch + 1, self.cfg.epochs, self.batches_per_epoch)
        for batch_idx, batch in enumerate(self.train_loader):
            inputs, targets = self.prepare_batch(batch, self.device)
            losses = self.loss_fn(self.model(inputs), targets)
            total = sum(losses.values())
            assert isinstance(total, Tensor), "loss_fn must return a non-empty dict of tensors"
            values = torch.stack([v.detach().float() for v in (*losses.values(), total)]).cpu().tolist()
            named = dict(zip([*losses.keys(), "total"], values))
            if not math.isfinite(named["total"]):
                self._on_nonfinite(batch_idx, named)
                self.optimizer.zero_grad(set_to_none=True)
                micro = 0
                continue
            self._nonfinite_run = 0
            (total / self.cfg.accumulate).backward()
            micro += 1
            finite += 1
            for k, v in named.items():
                sums[k] = sums.get(k, 0.0) + v
            self.step_losses = named
            if micro == self.cfg.accumulate:
                self._optimizer_step()
                micro = 0
            progress.update(named, self._last_lr)
        if micro > 0:  # a last, smaller group: make its gradient the mean over the micro-batches present
            if micro != self.cfg.accumulate:
                for p in self.params:
                    if p.grad is not None:
                        p.grad.mul_(self.cfg.accumulate / micro)
            self._optimizer_step()
        means = {k: v / finite for k, v in sums.items()} if finite else {}
        progress.close(means, self._last_lr)
        return means

    def _optimizer_step(self) -> None:
        if self.cfg.clip_grad is not None:
            torch.nn.utils.clip_grad_norm_(self.params, self.cfg.clip_grad)
        self._last_lr = float(self.optimizer.param_groups[0]["lr"])
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.iteration += 1
        for hook in self.hooks:
            hook.after_step(self)

    def _on_nonfinite(self, batch_idx: int, named: Mapping[str, float]) -> None:
        self._nonfinite_run += 1
        where = f"epoch {self.epoch + 1}, batch {batch_idx}, iteration {self.iteration}"
        terms = ", ".join(f"{k}={v:.6g}" for k, v in named.items())
        logger.warning("non-finite loss at %s (%s); skipping this step (%d/%d in a row)",
                       where, terms, self._nonfinite_run, self.cfg.max_nonfinite)
        if self._nonfinite_run >= self.cfg.max_nonfinite:
            save_checkpoint(self.last_path, self.state_dict())
            raise TrainingError(
                f"training stopped: {self._nonfinite_run} consecutive non-finite losses, the last at {where} "
                f"({terms}). The weights before them are saved in {self.last_path} (resume=true restarts "
                f"epoch {self.epoch + 1} from them). Try a lower lr, a warm-up (warmup_iters) or clip_grad."
            )
