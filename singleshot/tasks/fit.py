"""One training loop around the engine for every family: a family states what differs (model,
datasets, loss, evaluation, metadata) as a :class:`TrainingPlan`, and :func:`fit` does the rest
(processes, seeding, loader, run folder, engine settings, trainer, the best weights restored and
saved, the result and its ``metrics.json``)."""

from __future__ import annotations

import contextlib
import functools
import json
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from singleshot.atomic import write_text
from singleshot.config import config_to_dict
from singleshot.data.check import Fault
from singleshot.engine.distributed import broadcast_object, cleanup, get_rank, get_world_size, init_distributed
from singleshot.engine.run import remove_unstarted_run, train_and_restore_best
from singleshot.engine.sampler import build_train_loader
from singleshot.engine.seed import seed_everything
from singleshot.engine.train_config import EngineOptions, check_engine_values, train_config_for
from singleshot.engine.trainer import Evaluate, LossFn, PrepareBatch, Trainer
from singleshot.engine.weights import nonfinite_tensors, save_weights
from singleshot.errors import ConfigError, TrainingError
from singleshot.io.runlock import LOCK_NAME, RunLock, acquire_run_lock
from singleshot.tasks.dry_run import dry_run_summary
from singleshot.tasks.run_folders import run_dir, write_skipped

logger = logging.getLogger(__name__)

__all__ = ["BestEvaluation", "ToDevice", "TrainingPlan", "fit", "metric_floats", "write_metrics_json"]

E = TypeVar("E", bound=EngineOptions)


def metric_floats(metrics: Mapping[str, Any], keys: Sequence[str] | None = None) -> dict[str, float]:
    """The numeric entries of ``metrics`` as floats (booleans excluded); only ``keys``, in that
    order, when given."""
    names = list(metrics) if keys is None else [k for k in keys if k in metrics]
    return {
        k: float(metrics[k]) for k in names if isinstance(metrics[k], (int, float)) and not isinstance(metrics[k], bool)
    }


class ToDevice:
    """``prepare_batch`` of a collated ``(inputs Tensor, list of targets with .to())`` batch: both
    moved to the device (the inputs without blocking)."""

    def __call__(self, batch: tuple[Tensor, list[Any]], device: torch.device) -> tuple[Tensor, list[Any]]:
        inputs, targets = batch
        return inputs.to(device, non_blocking=True), [t.to(device) for t in targets]


class BestEvaluation:
    """An evaluation for :class:`TrainingPlan` that also keeps the full result (tables included) of
    its best call, to report beside the best metrics.

    Args:
        run: ``model -> full metrics`` (numbers plus anything else, e.g. a ``per_class`` table).
        metric_key: the number that ranks the calls (bigger is better; None counts as 0).
        keys: the numbers handed to the trainer, in order.
        extras: the entries of the best full result added to the report.
    """

    def __init__(
        self,
        run: Callable[[nn.Module], Mapping[str, Any]],
        metric_key: str,
        keys: Sequence[str],
        extras: Sequence[str] = ("per_class",),
    ) -> None:
        self.run, self.metric_key, self.keys, self.extras = run, metric_key, tuple(keys), tuple(extras)
        self.best: dict[str, Any] = {}

    def __call__(self, model: nn.Module) -> dict[str, float]:
        full = dict(self.run(model))
        if not self.best or (full[self.metric_key] or 0.0) > (self.best[self.metric_key] or 0.0):
            self.best = full
        return metric_floats(full, self.keys)

    def report(self, best: dict[str, float]) -> dict[str, Any]:
        """``best`` plus the extras of the best full result (when there was an evaluation)."""
        result: dict[str, Any] = dict(best)
        for key in self.extras:
            if self.best:
                result[key] = self.best.get(key)
        return result


@dataclass
class TrainingPlan:
    """What one family's training hands to :func:`fit`.

    Attributes:
        model: the model that is saved; after training it holds the best weights.
        loss_fn: ``(outputs, targets) -> {name: scalar tensor}``.
        train_set: the training dataset, read through :func:`~singleshot.engine.sampler.build_train_loader`.
        collate_fn: the loader's collate function.
        evaluate: ``model -> {metric: float}`` (see :class:`~singleshot.engine.trainer.Trainer`).
        metric_key: the metric whose maximum selects the best weights.
        meta: weights metadata of ``best.safetensors`` (fit adds ``metrics`` and ``epoch``).
        prepare_batch: ``(batch, device) -> (inputs, targets)``.
        train_model: what the trainer steps (a training wrapper around ``model``); None: ``model``.
        param_groups: optimizer groups (per-layer rates); None: one group at the configured rate.
        metric_keys: the metrics reported, in order; None: every numeric one.
        files: after training, ``{file name: (module or state dict, metadata)}`` to write in the run
            folder, ``best.safetensors`` first (fit adds ``metrics`` and ``epoch`` to each metadata);
            None: ``{"best.safetensors": (model, meta)}``.
        report: the best metrics -> the family's part of the result (None: the metrics as they are).
        skipped: the dataset faults whose items ``bad=skip`` left out (see :func:`screen_dataset`);
            fit writes them to ``skipped.txt`` in the run folder.
    """

    model: nn.Module
    loss_fn: LossFn
    train_set: Dataset
    collate_fn: Callable[[list[Any]], Any]
    evaluate: Evaluate
    metric_key: str
    meta: dict[str, Any]
    prepare_batch: PrepareBatch = field(default_factory=ToDevice)
    train_model: nn.Module | None = None
    param_groups: list[dict[str, Any]] | None = None
    metric_keys: Sequence[str] | None = None
    files: Callable[[], dict[str, tuple[nn.Module | Mapping[str, Tensor], dict[str, Any]]]] | None = None
    report: Callable[[dict[str, float]], dict[str, Any]] | None = None
    skipped: Sequence[Fault] = ()


#: Run-folder locks taken by the :func:`fit` calls in progress in this process (innermost last).
_FIT_LOCKS: list[RunLock] = []


def _releasing_run_locks(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` (:func:`fit`) releasing, however it ends, the run-folder locks it took."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        depth = len(_FIT_LOCKS)
        try:
            return fn(*args, **kwargs)
        finally:
            while len(_FIT_LOCKS) > depth:
                _FIT_LOCKS.pop().release()

    return wrapper


def _agreed_train_dir(cfg: EngineOptions) -> Path:
    """The training run folder (:func:`run_dir` of ``"train"``; not created for a dry run), chosen
    by the first process alone and sent to the others, so that a ``torchrun`` job never numbers its
    folder once per process; an error choosing it is raised in every process. The first process
    locks the folder (:func:`~singleshot.io.runlock.acquire_run_lock`, released when :func:`fit`
    ends): a second run on the same folder fails naming this one's pid."""
    chosen: str | None = None
    error: Exception | None = None
    if get_rank() == 0:
        try:
            chosen = str(run_dir(cfg, "train", resume=cfg.resume, create=not cfg.dry_run))
            if not cfg.dry_run:
                _FIT_LOCKS.append(acquire_run_lock(chosen))
        except (ConfigError, OSError) as exc:
            error = exc
    chosen, error = broadcast_object((chosen, error))
    if error is not None:
        raise error
    assert chosen is not None
    return Path(chosen)


@_releasing_run_locks
def fit(cfg: E, build: Callable[[str, int], TrainingPlan]) -> dict[str, Any] | None:
    """Train what ``build(device, world_size)`` plans; returns the best metrics plus the output paths.

    In order: start the process group (under ``torchrun``), check that the global ``batch`` splits
    evenly over the processes, seed everything, ``build``, then the loader, the run folder
    (:func:`run_dir`: ``project/name``, or the next free ``name2``, ... unless ``exist_ok`` or
    ``resume``; the first process picks it for all), the engine settings of ``cfg``, the
    :class:`~singleshot.engine.trainer.Trainer`, training, the best weights back into the model, and
    the weights files in the run folder (``config.yaml`` records the folder's name as ``name``, so
    ``cfg=<run>/config.yaml resume=true`` continues that run). Only the first process writes the
    weights and returns the result, the folder as ``out`` and ``save_dir`` (the others: None), with
    ``epochs`` (the epochs trained) and ``best_epoch`` (those of the saved weights); the result is
    also written to ``metrics.json`` in the run folder. A run that fails before its first
    checkpoint (``last.pt``) leaves no run folder behind (one it made itself: not with ``resume`` or
    ``exist_ok``).

    ``cfg.dry_run``: everything up to and including the trainer (so the optimizer's parameter groups
    and the schedule are the ones training would use), then :func:`dry_run_summary` is returned (the
    CLI prints it as the last stdout line) instead of training; no run folder is written.
    """
    check_engine_values(cfg)
    device = init_distributed(cfg.device)
    world = get_world_size()
    if cfg.batch % world:
        raise ConfigError(f"batch={cfg.batch}: the global batch must be divisible by the {world} processes")
    seed_everything(cfg.seed)
    plan = build(device, world)
    loader = build_train_loader(
        plan.train_set,
        cfg.batch // world,
        seed=cfg.seed,
        drop_last=len(plan.train_set) > cfg.batch,  # type: ignore[arg-type]
        workers=cfg.workers,
        collate_fn=plan.collate_fn,
        device=device,
    )
    out = _agreed_train_dir(cfg)
    with _removed_unless_started(cfg, out):
        return _train_in(cfg, plan, loader, out, device)


@contextlib.contextmanager
def _removed_unless_started(cfg: EngineOptions, out: Path) -> Iterator[None]:
    """The body trains into ``out``; when it fails before a ``last.pt`` was written in a folder this
    run made (not ``resume``, not ``exist_ok``), the first process removes the folder, so a failed
    start leaves nothing behind (:func:`~singleshot.engine.run.remove_unstarted_run`)."""
    try:
        yield
    except BaseException:
        if not (cfg.resume or cfg.exist_ok or cfg.dry_run) and get_rank() == 0:
            if remove_unstarted_run(out, keep=LOCK_NAME):
                while _FIT_LOCKS and _FIT_LOCKS[-1].folder == out:
                    _FIT_LOCKS.pop().release()
                with contextlib.suppress(OSError):
                    out.rmdir()
        raise


def _train_in(cfg: E, plan: TrainingPlan, loader: Any, out: Path, device: str) -> dict[str, Any] | None:
    """The part of :func:`fit` after the run folder ``out`` is chosen (see there)."""
    if plan.skipped and not cfg.dry_run and get_rank() == 0:
        write_skipped(out, plan.skipped)
    tcfg = train_config_for(cfg, len(loader), out, device)
    trainer = Trainer(
        plan.train_model if plan.train_model is not None else plan.model,
        plan.loss_fn,
        loader,
        tcfg,
        plan.prepare_batch,
        plan.evaluate,
        plan.metric_key,
        run_config=dict(config_to_dict(cfg), name=str(Path(cfg.name or "train").parent / out.name)),
        param_groups=plan.param_groups,
    )
    trained = plan.train_model if plan.train_model is not None else plan.model
    trainer.weights_meta = {  # lets last.pt / best.pt serve as weights (engine.weights.read_model_weights)
        "meta": plan.meta,
        "prefix": next((n for n, m in trained.named_modules() if m is plan.model), ""),
    }
    if cfg.dry_run:
        summary, first = dry_run_summary(cfg, plan, trainer), get_rank() == 0
        cleanup()
        return summary if first else None
    run = train_and_restore_best(trainer)  # the best weights are back in `plan.model`
    if run is None:  # not the first process of a torchrun job
        return None
    best = metric_floats(run.metrics, plan.metric_keys)
    files = plan.files() if plan.files is not None else {"best.safetensors": (plan.model, plan.meta)}
    for name, (weights, _) in files.items():
        bad = nonfinite_tensors(weights.state_dict() if isinstance(weights, nn.Module) else weights)
        if bad:
            cleanup()
            raise TrainingError(
                f"{out}: the trained weights (epoch {run.epoch}) hold non-finite values in {len(bad)} tensors "
                f"({', '.join(bad[:5])}); {name} is not written. Try a lower lr, a warm-up (warmup) or clip_grad."
            )
    for name, (weights, meta) in files.items():
        save_weights(out / name, weights, dict(meta, metrics=best, epoch=run.epoch))
    cleanup()
    result = plan.report(best) if plan.report is not None else dict(best)
    result.update(
        epochs=run.epochs_trained,
        best_epoch=run.epoch,
        train_seconds=run.seconds,
        weights=str(out / next(iter(files))),
        out=str(out),
        save_dir=str(out),
    )
    write_metrics_json(out, result)
    return result


def write_metrics_json(folder: Path, result: Mapping[str, Any]) -> Path:
    """``result`` as ``folder/metrics.json`` (indented JSON, written atomically)."""
    path = Path(folder) / "metrics.json"
    write_text(path, json.dumps(result, indent=2))
    return path
