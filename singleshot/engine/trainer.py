"""The training engine: a plain optimisation step and four hook points.

One :class:`Trainer` serves every family. The task supplies the model (returning a dict of raw
outputs), a loss (``loss_fn(outputs, targets) -> dict of named scalar tensors``; the total is
their sum), a ``prepare_batch(batch, device) -> (inputs, targets)`` that moves a collated batch
to the device, and optionally ``evaluate(model) -> dict of floats``.

One micro-batch: forward and loss terms (under autocast when ``amp``), total, and the loss values
averaged over processes. A non-finite total discards the micro-batch and the gradients
accumulated so far in its group (a warning names the epoch, batch, iteration and loss terms);
``max_nonfinite`` in a row saves ``last.pt`` and raises :class:`TrainingError`, and so does an epoch
without a single finite loss (without saving); weights holding NaN or inf never become ``best.pt``. Otherwise
``(total / accumulate).backward()`` with ``accumulate_mode="mean"``, or ``total.backward()`` with
``accumulate_mode="sum"`` (YOWO's accumulation), scaled by the float16 gradient scaler if any; after
``accumulate`` micro-batches (or at the end of the epoch: in mean mode with the gradient rescaled to
the mean over the micro-batches present, in sum mode as it is, the sum over those present)
gradients are unscaled, optionally clipped, the optimizer and the scheduler step and the EMA
follows. ``iteration`` counts optimizer steps.
``singleshot/engine/reference_loop.py`` spells out the same computation without the trainer.

Every ``checkpoint_every`` steps and at each epoch end ``last.pt`` is written atomically. Each
epoch ends with: evaluation (every ``eval_every`` epochs and after the last one, of the EMA when
on), a row in ``results.csv`` (and TensorBoard), a redrawn ``results.png`` (every ``plot_every``
epochs), ``last.pt``, ``best.pt`` when ``metric_key`` improved, and early stopping after
``patience`` epochs without improvement. ``max_steps`` > 0 ends the epoch in which that many optimizer
steps have been taken right after the step, then evaluates once and stops (a recipe's smoke test).
``config.yaml`` and ``engine.yaml`` record the run. All
files live in ``out_dir``. ``resume=True`` first compares the run configuration saved in ``last.pt`` (or ``config.yaml``) with
``run_config`` (:func:`~singleshot.engine.resume_check.check_resume_config`: a changed model, input,
classes or data is refused), then restores ``last.pt`` (weights, optimizer, schedule,
scaler, EMA, RNG states, counters, the sampler position) and continues where it was written; with
a loader from :func:`singleshot.engine.sampler.build_train_loader` and the same seed, data and
config, the final weights equal those of an uninterrupted run bit for bit on CPU, even after a
kill in the middle of an epoch.

Under ``torchrun`` (see :mod:`singleshot.engine.distributed`) the model is wrapped in
``DistributedDataParallel``, loss logs and metrics are averaged over processes, evaluation runs
on rank 0 while the others wait, and only rank 0 writes files or shows progress.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from singleshot.engine.amp import autocast, make_scaler, resolve_amp_dtype
from singleshot.engine.checkpoint import load_checkpoint, save_checkpoint
from singleshot.engine.distributed import (
    all_gather_objects,
    all_reduce_mean,
    broadcast_object,
    get_rank,
    get_world_size,
    is_distributed,
    no_sync_unless,
)
from singleshot.engine.ema import ModelEMA
from singleshot.engine.hooks import EarlyStopping, Hook
from singleshot.engine.logger import CSVLog, Progress, num_images, write_yaml_files
from singleshot.engine.plots import plot_results
from singleshot.engine.resume_check import check_resume_config
from singleshot.engine.sampler import resumable_sampler
from singleshot.engine.schedules import build_scheduler
from singleshot.engine.seed import get_rng_state, seed_everything, set_rng_state
from singleshot.engine.tensorboard import TensorBoardLog
from singleshot.engine.train_config import OPTIMIZERS, TrainConfig, build_optimizer
from singleshot.engine.weights import nonfinite_tensors
from singleshot.errors import ConfigError, TrainingError, WeightsError

logger = logging.getLogger(__name__)

__all__ = ["TrainConfig", "Hook", "EarlyStopping", "Trainer", "build_optimizer", "OPTIMIZERS"]

LossFn = Callable[[dict[str, Tensor], Any], dict[str, Tensor]]
PrepareBatch = Callable[[Any, torch.device], tuple[Any, Any]]
Evaluate = Callable[[nn.Module], Mapping[str, float]]


class Trainer:
    """Runs training epochs over ``train_loader`` (see the module doc for the exact step).

    Args:
        model: returns a dict of raw output tensors for ``inputs``.
        loss_fn: ``(outputs, targets) -> {name: scalar tensor}``.
        train_loader: re-iterable with ``len()`` (a ``DataLoader``; one built by
            :func:`~singleshot.engine.sampler.build_train_loader` makes mid-epoch resume exact).
        cfg: the run's settings.
        prepare_batch: ``(batch, device) -> (inputs, targets)`` on ``device``.
        evaluate: ``model -> {metric: float}``, called in eval mode under ``torch.no_grad()``.
        metric_key: the metric whose maximum selects ``best.pt`` (bigger is better).
        hooks: :class:`Hook` instances called in order.
        run_config: the task's whole configuration, written to ``config.yaml``.
        param_groups: optimizer parameter groups (``{"params": [...], "lr": ..., "weight_decay": ...}``
            each; the first group's lr is the one logged), e.g. per-layer learning rates; None: one
            group of every trainable parameter at ``cfg.lr`` and ``cfg.weight_decay``. The schedule
            scales every group's lr by the same factor.
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
        run_config: Mapping[str, Any] | None = None,
        param_groups: Sequence[dict[str, Any]] | None = None,
    ) -> None:
        self.cfg = cfg
        self.device = torch.device(cfg.device)
        self.rank, self.world_size = get_rank(), get_world_size()
        self.is_main = self.rank == 0
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = cfg.cudnn_benchmark
        self.model = model.to(self.device)  # the plain module: weights, evaluation, checkpoints
        if cfg.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.train_model: nn.Module = self.model  # what the forward pass calls (DDP wrapper or the module)
        if is_distributed():
            ids = None
            if self.device.type == "cuda":
                ids = [self.device.index if self.device.index is not None else torch.cuda.current_device()]
            self.train_model = DistributedDataParallel(self.model, device_ids=ids)
        self.loss_fn = loss_fn
        self.train_loader = train_loader
        self.prepare_batch = prepare_batch
        self.evaluate = evaluate
        self.metric_key = metric_key
        self.hooks = list(hooks) + ([EarlyStopping(cfg.patience)] if cfg.patience is not None else [])
        self.run_config = dict(run_config) if run_config is not None else None
        # {"meta": weights metadata, "prefix": the deployable model's name inside the trained module}:
        # saved in checkpoints so that last.pt / best.pt serve as weights (set by tasks.common.fit)
        self.weights_meta: dict[str, Any] | None = None
        self.out_dir = Path(cfg.out_dir)
        if cfg.patience is not None and (evaluate is None or metric_key is None):
            raise ConfigError("patience: early stopping needs an evaluation and a metric to watch")
        try:
            batches = len(train_loader)  # type: ignore[arg-type]
        except TypeError as exc:
            raise ConfigError("train_loader: must have a length (schedules are planned in iterations)") from exc
        if batches < 1:
            raise ConfigError("train_loader: yields no batches (empty dataset or batch larger than it with drop_last)")
        self.sampler, self.loader_batch_size = resumable_sampler(train_loader, cfg.checkpoint_every > 0)
        self.batches_per_epoch = batches
        self.steps_per_epoch = math.ceil(batches / cfg.accumulate)
        self.total_iters = cfg.epochs * self.steps_per_epoch
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = build_optimizer(self.params if param_groups is None else param_groups, cfg)
        self.scheduler = build_scheduler(
            self.optimizer,
            cfg.schedule,
            self.total_iters,
            cfg.warmup_iters,
            cfg.warmup_factor,
            cfg.milestones,
            cfg.gamma,
            cfg.power,
            cfg.min_lr_factor,
        )
        self.amp_dtype = resolve_amp_dtype(cfg.amp, cfg.amp_dtype, self.device)
        self.scaler = make_scaler(self.device, self.amp_dtype)
        self.ema = ModelEMA(self.model, cfg.ema_decay) if cfg.ema_decay is not None else None
        self.epoch = 0  # completed epochs
        self.iteration = 0  # optimizer steps taken
        self.batch_in_epoch = 0  # micro-batches of epoch ``epoch`` consumed (the sampler position)
        self.best_metric: float | None = None
        self.best_epoch = 0
        self.metrics: dict[str, float] = {}
        self.step_losses: dict[str, float] = {}
        self.should_stop = False
        self._sums: dict[str, float] = {}  # running sums of the loss terms over the epoch's finite batches
        self._finite = 0
        self._nonfinite_run = 0
        self.evaluated_now = False
        self._improved = False
        self._last_lr = float(self.optimizer.param_groups[0]["lr"])

    # ----------------------------------------------------------------- state
    @property
    def last_path(self) -> Path:
        return self.out_dir / "last.pt"

    @property
    def best_path(self) -> Path:
        return self.out_dir / "best.pt"

    @property
    def eval_model(self) -> nn.Module:
        """The module evaluated and deployed: the EMA when on, else the trained module."""
        return self.ema.module if self.ema is not None else self.model

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue the run (see :mod:`singleshot.engine.checkpoint`).

        Under DDP every process must call it (the RNG states of all ranks are gathered)."""
        rng = get_rng_state()
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "epoch": self.epoch,
            "iteration": self.iteration,
            "sampler": {
                "epoch": self.epoch,
                "batches": self.batch_in_epoch,
                "batch_size": self.loader_batch_size,
                "world_size": self.world_size,
            },
            "epoch_sums": {"sums": dict(self._sums), "finite": self._finite},
            "rng": rng,
            "rng_ranks": all_gather_objects(rng) if is_distributed() else None,
            "config": self.cfg.to_dict(),
            "run_config": self.run_config,
            "weights_meta": self.weights_meta,
            "best_metric": self.best_metric,
            "best_epoch": self.best_epoch,
            "metric_key": self.metric_key,
            "metrics": dict(self.metrics),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a :meth:`state_dict` (weights, optimizer, schedule, scaler, EMA, counters,
        sampler position, RNG states)."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        if self.ema is not None:
            if state.get("ema"):
                self.ema.load_state_dict(state["ema"])
            else:
                logger.warning("checkpoint has no EMA: the average restarts from the resumed weights")
                self.ema = ModelEMA(self.model, self.ema.decay)
        self.epoch = int(state["epoch"])
        self.iteration = int(state["iteration"])
        self.best_metric = state.get("best_metric")
        self.best_epoch = int(state.get("best_epoch") or 0)
        self.metrics = dict(state.get("metrics") or {})
        pos = state.get("sampler") or {}
        batches = int(pos.get("batches", 0))
        if batches and (
            self.sampler is None
            or pos.get("batch_size") != self.loader_batch_size
            or pos.get("world_size") != self.world_size
        ):
            logger.warning(
                "checkpoint was written after %d batches of epoch %d with batch %s x %s processes; this "
                "loader cannot continue there, so the epoch restarts from its first batch",
                batches,
                self.epoch + 1,
                pos.get("batch_size"),
                pos.get("world_size"),
            )
            batches = 0
        self.batch_in_epoch = batches
        sums = (state.get("epoch_sums") or {}) if batches else {}
        self._sums, self._finite = dict(sums.get("sums") or {}), int(sums.get("finite") or 0)
        ranks = state.get("rng_ranks")
        if ranks and len(ranks) == self.world_size:
            set_rng_state(ranks[self.rank])
        else:
            if self.world_size > 1:
                logger.warning("checkpoint holds no per-process RNG states for %d processes", self.world_size)
            set_rng_state(state["rng"])

    def _resume(self) -> None:
        """Rank 0 reads ``last.pt`` and sends it to the others (no shared file system needed)."""
        state: dict[str, Any] | None = None
        error: Exception | None = None
        if self.is_main:
            try:
                if not self.last_path.is_file():
                    raise ConfigError(
                        f"resume: {self.last_path} not found; nothing to resume (set resume=false to start)"
                    )
                state = load_checkpoint(self.last_path)
                saved_run = state.get("run_config") or self._saved_run_config()
                if self.run_config is not None and saved_run:
                    check_resume_config(saved_run, self.run_config, self.last_path)
            except (ConfigError, WeightsError) as exc:
                error = exc
        state, error = broadcast_object((state, error))
        if error is not None:
            raise error
        assert state is not None
        saved = state.get("config") or {}
        changed = sorted(k for k, v in self.cfg.to_dict().items() if k != "resume" and k in saved and saved[k] != v)
        if changed and self.is_main and self.run_config is None:  # else check_resume_config said it
            logger.warning(
                "resuming %s with changed settings: %s",
                self.last_path,
                ", ".join(f"{k}: {saved[k]!r} -> {getattr(self.cfg, k)!r}" for k in changed),
            )
        try:
            self.load_state_dict(state)
        except (RuntimeError, ValueError, KeyError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise WeightsError(
                f"resume: {self.last_path} does not fit this run's model or optimizer (a checkpoint of "
                f"another model or configuration?): {first[:300]}"
            ) from None
        logger.info(
            "resumed %s at epoch %d, batch %d, iteration %d",
            self.last_path,
            self.epoch,
            self.batch_in_epoch,
            self.iteration,
        )

    def _saved_run_config(self) -> dict[str, Any] | None:
        """The run configuration of ``config.yaml`` beside ``last.pt`` (checkpoints written before
        ``run_config`` was stored in them); None when absent or unreadable."""
        path = self.out_dir / "config.yaml"
        try:
            loaded = yaml.safe_load(path.read_text()) if path.is_file() else None
        except (OSError, yaml.YAMLError) as exc:
            logger.warning("%s: cannot read it to compare the resumed settings (%s)", path, exc)
            return None
        return loaded if isinstance(loaded, dict) else None

    def _save_last(self) -> dict[str, Any]:
        state = self.state_dict()  # every process: gathers the RNG states
        if self.is_main:
            save_checkpoint(self.last_path, state)
        return state

    # ----------------------------------------------------------------- loop
    def train(self) -> dict[str, float]:
        """Train until ``cfg.epochs`` (or early stopping, or a hook's ``should_stop``); returns the
        last metrics."""
        cfg = self.cfg
        log: CSVLog | None = None
        if self.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            log = CSVLog(self.out_dir / "results.csv")
        if cfg.resume:
            self._resume()
        else:
            if log is not None and (log.rows or self.last_path.exists()):
                logger.warning("%s already holds a run; starting over (resume=true continues it)", self.out_dir)
            seed_everything(cfg.seed + self.rank)
        if log is not None:
            log.truncate(self.epoch)
            engine = {
                "train": cfg.to_dict(),
                "world_size": self.world_size,
                "torch": str(torch.__version__),
                "amp_dtype": str(self.amp_dtype).replace("torch.", "") if self.amp_dtype else None,
            }
            write_yaml_files(self.out_dir, {"config.yaml": self.run_config or cfg.to_dict(), "engine.yaml": engine})
        board = TensorBoardLog(self.out_dir, cfg.tensorboard and self.is_main)
        progress = Progress(cfg.log_every, cfg.progress_bar, enabled=self.is_main)
        for hook in self.hooks:
            hook.before_train(self)
        self.model.train()
        try:
            while self.epoch < cfg.epochs and not self.should_stop:
                t0 = time.perf_counter()
                means = self._train_one_epoch(progress)
                self.epoch += 1
                self.batch_in_epoch = 0
                self._sums, self._finite = {}, 0
                steps_done = self._max_steps_reached()
                if self.evaluate is not None and (
                    self.epoch % cfg.eval_every == 0 or self.epoch == cfg.epochs or steps_done
                ):
                    self._run_evaluation()
                row: dict[str, Any] = {
                    "epoch": self.epoch,
                    "lr": self._last_lr,
                    "time_s": time.perf_counter() - t0,
                    "images_per_s": progress.images_per_second(),
                }
                row.update({f"train/{k}": v for k, v in means.items()})
                row.update({f"metrics/{k}": v for k, v in self.metrics.items()} if self.evaluated_now else {})
                if log is not None:
                    log.append(row)
                    if cfg.plot_every and (self.epoch % cfg.plot_every == 0 or self.epoch == cfg.epochs):
                        plot_results(log, self.out_dir / "results.png")
                    board.log(row, self.epoch)
                state = self._save_last()
                if self._improved and self.is_main:
                    save_checkpoint(self.best_path, state)
                    logger.info("new best %s = %.6g at epoch %d", self.metric_key, self.best_metric, self.epoch)
                for hook in self.hooks:
                    hook.after_epoch(self)
                if steps_done:
                    logger.info("max_steps=%d reached: training stops after this evaluation", cfg.max_steps)
                    self.should_stop = True
            if log is not None and cfg.plot_every and self.epoch % cfg.plot_every and self.epoch < cfg.epochs:
                plot_results(log, self.out_dir / "results.png")  # stopped early: draw the last epochs too
        finally:
            board.close()
        for hook in self.hooks:
            hook.after_train(self)
        return dict(self.metrics)

    def _run_evaluation(self) -> None:
        assert self.evaluate is not None
        raw: dict[str, float] | None = None
        if self.is_main:  # the other processes wait in broadcast_object
            target = self.eval_model
            target.eval()
            with torch.no_grad():
                raw = {str(k): float(v) for k, v in self.evaluate(target).items()}
            self.model.train()
        self.metrics = broadcast_object(raw)
        self.evaluated_now = True
        if self.is_main:
            logger.info("epoch %d metrics: %s", self.epoch, " ".join(f"{k}={v:.6g}" for k, v in self.metrics.items()))
        if self.metric_key is None:
            return
        if self.metric_key not in self.metrics:
            raise ConfigError(
                f"metric_key: {self.metric_key!r} is not among the evaluation metrics {sorted(self.metrics)}"
            )
        value = self.metrics[self.metric_key]
        if math.isfinite(value) and (self.best_metric is None or value > self.best_metric):
            bad = nonfinite_tensors(self.eval_model.state_dict())
            if bad:
                if self.is_main:
                    logger.warning(
                        "epoch %d: %s = %.6g is not kept as the best: %d tensors of the weights are non-finite (%s)",
                        self.epoch,
                        self.metric_key,
                        value,
                        len(bad),
                        ", ".join(bad[:3]),
                    )
                return
            self.best_metric = value
            self.best_epoch = self.epoch
            self._improved = True

    def _train_one_epoch(self, progress: Progress) -> dict[str, float]:
        """One pass over the loader from ``batch_in_epoch`` on; returns the mean of each loss term
        (and ``total``) over the epoch's finite micro-batches."""
        cfg = self.cfg
        self.evaluated_now = False
        self._improved = False
        start = self.batch_in_epoch
        if self.sampler is not None:
            self.sampler.set_epoch(self.epoch, start * self.loader_batch_size)
        elif start:  # cannot happen with checkpoints written by this trainer
            start = 0
        last = self.batches_per_epoch - 1
        micro = 0  # micro-batches whose gradients are accumulated and not yet applied
        nonfinite = 0  # micro-batches of this pass with a non-finite loss
        self.optimizer.zero_grad(set_to_none=True)
        progress.start(self.epoch + 1, cfg.epochs, self.batches_per_epoch, initial=start)
        for batch_idx, batch in enumerate(self.train_loader, start=start):
            inputs, targets = self.prepare_batch(batch, self.device)
            if cfg.channels_last and isinstance(inputs, Tensor) and inputs.dim() == 4:
                inputs = inputs.contiguous(memory_format=torch.channels_last)
            sync = micro + 1 == cfg.accumulate or batch_idx >= last  # DDP all-reduces on this backward
            with no_sync_unless(self.train_model, sync):
                with autocast(self.device, self.amp_dtype):
                    losses = self.loss_fn(self.train_model(inputs), targets)
                total = sum(losses.values())
                assert isinstance(total, Tensor), "loss_fn must return a non-empty dict of tensors"
                values = torch.stack([v.detach().float() for v in (*losses.values(), total)])
                named = dict(zip([*losses.keys(), "total"], all_reduce_mean(values).cpu().tolist()))
                if math.isfinite(named["total"]):  # the same decision on every process
                    loss = total / cfg.accumulate if cfg.accumulate_mode == "mean" else total
                    (self.scaler.scale(loss) if self.scaler is not None else loss).backward()
            self.batch_in_epoch = batch_idx + 1
            if not math.isfinite(named["total"]):
                nonfinite += 1
                self._on_nonfinite(batch_idx, named)
                self.optimizer.zero_grad(set_to_none=True)
                micro = 0
                continue
            self._nonfinite_run = 0
            micro += 1
            self._finite += 1
            for k, v in named.items():
                self._sums[k] = self._sums.get(k, 0.0) + v
            self.step_losses = named
            if micro == cfg.accumulate:
                self._optimizer_step()
                micro = 0
                self._after_step(mid_epoch=batch_idx < last)
            progress.update(named, self._last_lr, num_images(inputs) * self.world_size)
            if micro == 0 and self._max_steps_reached():
                break
        if micro > 0:  # a last, smaller group: mean mode rescales to the mean over the micro-batches present
            if micro != cfg.accumulate and cfg.accumulate_mode == "mean":
                for p in self.params:
                    if p.grad is not None:
                        p.grad.mul_(cfg.accumulate / micro)
            self._optimizer_step()
            self._after_step(mid_epoch=False)
        if nonfinite and not self._finite:
            raise TrainingError(
                f"training stopped: every loss of epoch {self.epoch + 1} was non-finite ({nonfinite} micro-batches); "
                f"no weights of this epoch are kept. Try a lower lr, a warm-up (warmup) or clip_grad."
            )
        means = {k: v / self._finite for k, v in self._sums.items()} if self._finite else {}
        progress.close(means, self._last_lr)
        return means

    def _max_steps_reached(self) -> bool:
        """True once ``cfg.max_steps`` (> 0) optimizer steps have been taken."""
        return self.cfg.max_steps > 0 and self.iteration >= self.cfg.max_steps

    def _optimizer_step(self) -> None:
        if self.scaler is not None and self.cfg.clip_grad is not None:
            self.scaler.unscale_(self.optimizer)
        if self.cfg.clip_grad is not None:
            torch.nn.utils.clip_grad_norm_(self.params, self.cfg.clip_grad)
        self._last_lr = float(self.optimizer.param_groups[0]["lr"])
        if self.scaler is not None:
            self.scaler.step(self.optimizer)  # skipped when the scaled gradients overflowed
            self.scaler.update()
        else:
            self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.iteration += 1
        if self.ema is not None:
            self.ema.update(self.model)

    def _after_step(self, mid_epoch: bool) -> None:
        every = self.cfg.checkpoint_every
        if mid_epoch and every and self.iteration % every == 0 and self.sampler is not None:
            self._save_last()
        for hook in self.hooks:
            hook.after_step(self)

    def _on_nonfinite(self, batch_idx: int, named: Mapping[str, float]) -> None:
        self._nonfinite_run += 1
        where = f"epoch {self.epoch + 1}, batch {batch_idx}, iteration {self.iteration}"
        terms = ", ".join(f"{k}={v:.6g}" for k, v in named.items())
        if self.is_main:
            logger.warning(
                "non-finite loss at %s (%s); skipping this step (%d/%d in a row)",
                where,
                terms,
                self._nonfinite_run,
                self.cfg.max_nonfinite,
            )
        if self._nonfinite_run >= self.cfg.max_nonfinite:
            resumable = self.sampler is not None
            if not resumable:
                self.batch_in_epoch, self._sums, self._finite = 0, {}, 0  # resume restarts the epoch
            self._save_last()
            at = (
                f"after batch {batch_idx} of epoch {self.epoch + 1}"
                if resumable
                else f"at the start of epoch {self.epoch + 1}"
            )
            raise TrainingError(
                f"training stopped: {self._nonfinite_run} consecutive non-finite losses, the last at {where} "
                f"({terms}). The weights before them are saved in {self.last_path} (resume=true continues {at}). "
                f"Try a lower lr, a warm-up (warmup_iters) or clip_grad."
            )
