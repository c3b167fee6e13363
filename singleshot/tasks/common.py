"""The skeleton every family's modes share: configs from arguments, run folders, one training
loop around the engine (:func:`fit`), one demo runner (:func:`run_demo`) and the "write this
dataset once" helper (:func:`ensure_dataset`).

A family supplies what differs (its model, datasets, loss, evaluation and metadata) as a
:class:`TrainingPlan`; everything around it (processes, seeding, loader, engine settings, trainer,
restoring the best weights, saving them, the result dict) is written once, here.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from singleshot.config import build_config, config_to_dict, load_yaml_mapping
from singleshot.engine.distributed import cleanup, get_world_size, init_distributed
from singleshot.engine.run import train_and_restore_best
from singleshot.engine.sampler import build_train_loader
from singleshot.engine.seed import seed_everything
from singleshot.engine.train_config import EngineOptions, train_config_for
from singleshot.engine.trainer import Evaluate, LossFn, PrepareBatch, Trainer
from singleshot.engine.weights import save_weights
from singleshot.errors import ConfigError

logger = logging.getLogger(__name__)

__all__ = [
    "BestEvaluation",
    "chunks",
    "ToDevice",
    "TrainingPlan",
    "demo_threads",
    "ensure_dataset",
    "explicit_keys",
    "fit",
    "make_config",
    "metric_floats",
    "require",
    "run_demo",
    "run_dir",
]

C = TypeVar("C")
T = TypeVar("T")
E = TypeVar("E", bound=EngineOptions)


# ---------------------------------------------------------------- mode helpers
def make_config(cls: type[C], args: Mapping[str, str], **defaults: Any) -> C:
    """The config ``cls`` of a mode's arguments: ``defaults``, then the ``cfg=`` YAML file, then the
    other arguments (``args`` is not modified)."""
    args = dict(args)
    yaml_path = args.pop("cfg", None)
    values = {**defaults, **(load_yaml_mapping(yaml_path) if yaml_path else {}), **args}
    return build_config(cls, None, values)


def explicit_keys(args: Mapping[str, str]) -> set[str]:
    """The keys given on the command line or in its ``cfg=`` YAML file (``-`` read as ``_``)."""
    from_yaml = load_yaml_mapping(args["cfg"]) if args.get("cfg") else {}
    return {str(k).replace("-", "_") for k in set(args) | set(from_yaml)}


def require(cfg: Any, *keys: str) -> None:
    """Fail naming every key of ``keys`` that ``cfg`` leaves empty (``from_`` is shown as ``from=``)."""
    missing = [k for k in keys if not getattr(cfg, k)]
    if missing:
        raise ConfigError(f"missing required key(s): {', '.join(k.rstrip('_') + '=...' for k in missing)}")


def run_dir(cfg: EngineOptions, mode: str) -> Path:
    """``project/name`` for training, ``project/<mode>`` otherwise; an existing folder is reused."""
    out = Path(cfg.project) / (cfg.name if mode == "train" else mode)
    out.mkdir(parents=True, exist_ok=True)
    return out


def metric_floats(metrics: Mapping[str, Any], keys: Sequence[str] | None = None) -> dict[str, float]:
    """The numeric entries of ``metrics`` as floats (booleans excluded); only ``keys``, in that
    order, when given."""
    names = list(metrics) if keys is None else [k for k in keys if k in metrics]
    return {
        k: float(metrics[k]) for k in names if isinstance(metrics[k], (int, float)) and not isinstance(metrics[k], bool)
    }


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """``items`` in consecutive slices of ``size`` (the last one shorter), e.g. the files of a
    ``predict`` source, ``batch`` at a time."""
    for start in range(0, len(items), max(1, size)):
        yield items[start : start + size]


def demo_threads(workers: int) -> int:
    """Intra-op threads for a demo: the cores ``torch`` would use minus one per loader worker.

    On a small machine shared with other jobs, OpenMP threads that busy-wait at every parallel
    region make a 2-thread run up to ~8x slower whenever another process holds a core; one compute
    thread plus one loader worker is ~20% slower on an idle 2-core machine and steady on a busy one.
    """
    return max(1, torch.get_num_threads() - max(0, int(workers)))


# ---------------------------------------------------------------- data
def ensure_dataset(root: str | Path, key: str, write: Callable[[Path], object]) -> Path:
    """The generated dataset described by ``key`` under ``root``, written by ``write(root)`` only
    when it is not already there.

    A completed write leaves one marker file, ``.complete-<key>``; a folder with a different (or
    no) marker is written again and its old markers removed first, so a folder never holds a
    marker that no longer describes its contents. An interrupted write leaves no marker.
    """
    root = Path(root)
    marker = root / f".complete-{key}"
    if marker.exists():
        return root
    for old in root.glob(".complete-*"):
        old.unlink()
    logger.info("writing the generated dataset to %s", root)
    write(root)
    marker.touch()
    return root


# ---------------------------------------------------------------- training
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


def fit(cfg: E, build: Callable[[str, int], TrainingPlan]) -> dict[str, Any] | None:
    """Train what ``build(device, world_size)`` plans; returns the best metrics plus the output paths.

    In order: start the process group (under ``torchrun``), check that the global ``batch`` splits
    evenly over the processes, seed everything, ``build``, then the loader, the engine settings of
    ``cfg``, the :class:`~singleshot.engine.trainer.Trainer`, training, the best weights back into
    the model, and the weights files under ``project/name``. Only the first process writes the
    weights and returns the result (the others: None).
    """
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
    out = run_dir(cfg, "train")
    tcfg = train_config_for(cfg, len(loader), out, device)
    trainer = Trainer(
        plan.train_model if plan.train_model is not None else plan.model,
        plan.loss_fn,
        loader,
        tcfg,
        plan.prepare_batch,
        plan.evaluate,
        plan.metric_key,
        run_config=config_to_dict(cfg),
        param_groups=plan.param_groups,
    )
    run = train_and_restore_best(trainer)  # the best weights are back in `plan.model`
    if run is None:  # not the first process of a torchrun job
        return None
    best = metric_floats(run.metrics, plan.metric_keys)
    files = plan.files() if plan.files is not None else {"best.safetensors": (plan.model, plan.meta)}
    for name, (weights, meta) in files.items():
        save_weights(out / name, weights, dict(meta, metrics=best, epoch=run.epoch))
    cleanup()
    result = plan.report(best) if plan.report is not None else dict(best)
    result.update(epochs=run.epoch, train_seconds=run.seconds, weights=str(out / next(iter(files))), out=str(out))
    return result


# ---------------------------------------------------------------- demo
def run_demo(
    cfg: E,
    train_command: str,
    write_data: Callable[[E], None],
    train: Callable[[E], dict[str, Any] | None],
    show: Callable[[E, dict[str, Any]], dict[str, Any]],
    threads: int = 0,
    seconds_key: str | None = None,
) -> dict[str, Any]:
    """A family's demo: generated data -> training -> pictures of predictions; returns the metrics.

    Args:
        cfg: the demo's configuration (the family's demo defaults under the user's keys).
        train_command: what to run instead under ``torchrun`` (the demo runs in one process).
        write_data: called when ``cfg.data`` is empty: writes the generated dataset once and
            points ``cfg.data`` (and anything else that depends on it) at it.
        train: the family's training (:func:`fit` underneath).
        show: ``(cfg, result) -> extra result entries``, after training (pictures, annotated video).
        threads: torch intra-op threads during the demo (0: :func:`demo_threads` of ``cfg.workers``),
            restored after.
        seconds_key: when given, the demo's wall time (s) is added to the result under this key.

    The result is also written to ``metrics.json`` in the run folder.
    """
    if get_world_size() > 1 or int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ConfigError(f"the demo runs in one process; under torchrun use `{train_command}`")
    previous = torch.get_num_threads()
    torch.set_num_threads(threads or demo_threads(cfg.workers))
    try:
        t0 = time.perf_counter()
        if not cfg.data:
            write_data(cfg)
        result = train(cfg)
        assert result is not None  # one process: rank 0
        result.update(show(cfg, result))
        if seconds_key:
            result[seconds_key] = round(time.perf_counter() - t0, 1)
        (Path(result["out"]) / "metrics.json").write_text(json.dumps(result, indent=2))
        return result
    finally:
        torch.set_num_threads(previous)
