"""The skeleton every family's modes share: configs from arguments, run folders, one training
loop around the engine (:func:`fit`), one demo runner (:func:`run_demo`) and the "write this
dataset once" helper (:func:`ensure_dataset`).

A family supplies what differs (its model, datasets, loss, evaluation and metadata) as a
:class:`TrainingPlan`; everything around it (processes, seeding, loader, engine settings, trainer,
restoring the best weights, saving them, the result dict) is written once, here, and so is the
``dry_run=true`` report of what a run would do (:func:`dry_run_summary`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
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

from singleshot.atomic import write_text
from singleshot.config import ModeSpec, build_config, config_to_dict, fixed_keys, load_yaml_mapping
from singleshot.data.check import CheckReport, Fault, format_faults
from singleshot.engine.checkpoint import atomic_write
from singleshot.engine.distributed import broadcast_object, cleanup, get_rank, get_world_size, init_distributed
from singleshot.engine.run import remove_unstarted_run, train_and_restore_best
from singleshot.engine.sampler import build_train_loader
from singleshot.engine.seed import seed_everything
from singleshot.engine.train_config import EngineOptions, TrainConfig, check_engine_values, train_config_for
from singleshot.engine.trainer import Evaluate, LossFn, PrepareBatch, Trainer
from singleshot.engine.weights import finetune_from, nonfinite_tensors, read_model_weights, save_weights
from singleshot.errors import ConfigError, DataError, TrainingError
from singleshot.io.folders import require_folder_path
from singleshot.io.runlock import LOCK_NAME, RunLock, acquire_run_lock
from singleshot.models.act import ACT_PRIORS_2X2, ACT_PRIORS_3X3
from singleshot.models.registry import check_weights_task
from singleshot.ops.priors import PriorSpec, prior_spec
from singleshot.tasks.generated_data import ensure_dataset

logger = logging.getLogger(__name__)

__all__ = [
    "anchors_summary",
    "start_from_weights",
    "BestEvaluation",
    "chunks",
    "demo_threads",
    "dry_run_summary",
    "ensure_dataset",
    "explicit_keys",
    "fit",
    "input_convention",
    "make_config",
    "mode_specs",
    "with_mode_help",
    "metric_floats",
    "module_prefixes",
    "param_group_summary",
    "parameter_status",
    "priors_summary",
    "refuse_dst_over_inputs",
    "refuse_overwrite",
    "INPUT_KEYS",
    "require",
    "run_demo",
    "run_dir",
    "run_folder",
    "screen_dataset",
    "settings_from_training",
    "write_skipped",
    "BAD_POLICIES",
    "schedule_summary",
    "ToDevice",
    "TrainingPlan",
]

C = TypeVar("C")
T = TypeVar("T")
E = TypeVar("E", bound=EngineOptions)

#: ``bad=``: what a dataset fault found by the check before ``train``/``val`` does.
BAD_POLICIES = ("stop", "skip")


# ---------------------------------------------------------------- mode helpers
def mode_specs(
    modes: Mapping[str, Callable[[dict[str, str]], Any]],
    keys: Mapping[str, Sequence[str] | Callable[[Mapping[str, str]], Sequence[str]]],
    help: Mapping[str, tuple[str, str]],
    configs: Mapping[str, type],
    resolve: Mapping[str, Callable[[dict[str, str]], Any]] | None = None,
) -> dict[str, ModeSpec]:
    """A family's ``{mode: ModeSpec}`` (what the CLI runs, checks and explains) from its table of
    mode functions, the keys each mode reads (a tuple, or a function of the arguments), the help
    lines of its keys, each mode's config class (``"*"``: the default) and the modes whose config is
    resolved otherwise (a demo's recipe, a member's defaults)."""
    specs = {}
    for name, run in modes.items():
        mode_keys = keys.get(name, ())
        key_fn = mode_keys if callable(mode_keys) else fixed_keys(mode_keys)
        summary = _first_sentence(run.__doc__ or name)
        config = configs.get(name, configs["*"])
        specs[name] = ModeSpec(run, summary, config, key_fn, help, (resolve or {}).get(name))
    return specs


def with_mode_help(
    specs: Mapping[str, ModeSpec], overrides: Mapping[str, Mapping[str, tuple[str, str]]]
) -> dict[str, ModeSpec]:
    """``specs`` with the help lines of ``overrides[mode]`` over the family's, for the keys that mean
    something else in that mode (``src=`` of ``action flow`` is a video, of ``convert`` a weights file)."""
    return {
        name: dataclasses.replace(spec, help={**spec.help, **overrides[name]}) if name in overrides else spec
        for name, spec in specs.items()
    }


def _first_sentence(doc: str) -> str:
    """The first sentence of a docstring's first paragraph, on one line, without RST markup."""
    paragraph = " ".join(line.strip() for line in doc.strip().split("\n\n")[0].splitlines())
    end = paragraph.find(". ")
    return (paragraph if end < 0 else paragraph[: end + 1]).replace("``", "")


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


def settings_from_training(cfg: Any, meta: Mapping[str, Any], keys: Sequence[str], given: set[str]) -> dict[str, Any]:
    """Set on ``cfg`` the evaluation settings its weights were trained with: each of ``keys`` not in
    ``given`` (the keys the user typed) takes its value from ``meta["train_config"]`` (the training
    run's configuration, saved in its weights), so ``val`` of a run's ``best.safetensors`` scores as
    the run did. Returns the values taken (logged)."""
    trained = meta.get("train_config") or {}
    taken: dict[str, Any] = {}
    for key in keys:
        if key in given or key not in trained or not hasattr(cfg, key):
            continue
        current = getattr(cfg, key)
        value = trained[key]
        if isinstance(current, tuple) and isinstance(value, list):
            value = tuple(value)
        if value != current:
            setattr(cfg, key, value)
            taken[key] = value
    if taken:
        logger.info(
            "evaluation settings of the training run (from the weights; pass a key to change it): %s",
            ", ".join(f"{k}={v}" for k, v in taken.items()),
        )
    return taken


def start_from_weights(model: nn.Module, weights: str | Path, task: str, architecture: str = "") -> dict[str, Any]:
    """``train weights=``: start ``model`` (the ``architecture`` being trained) from a whole trained
    model of ``task`` (fine-tuning).

    ``weights`` is a ``.safetensors`` file or a checkpoint (``last.pt``, ``best.pt``); tensors of
    matching name and shape are loaded, the others of ``model`` keep their fresh initialisation
    (the class-dependent heads, when the classes differ) and the file's unmatched ones are dropped;
    the log says how many of each (see :func:`~singleshot.engine.weights.finetune_from`). Returns
    the weights' metadata.

    Raises:
        WeightsError: a missing or unreadable file, weights of another task, or no tensor that fits.
    """
    state, meta = read_model_weights(weights)
    check_weights_task(meta, task, weights)
    arch = str(meta.get("architecture", ""))
    if architecture and arch and arch != architecture:
        logger.warning(
            "weights=%s holds %s weights, not %s: only the tensors that fit are loaded", weights, arch, architecture
        )
    finetune_from(model, state, weights)
    return meta


def require(cfg: Any, *keys: str) -> None:
    """Fail naming every key of ``keys`` that ``cfg`` leaves empty (``from_`` is shown as ``from=``)."""
    missing = [k for k in keys if not getattr(cfg, k)]
    if missing:
        raise ConfigError(f"missing required key(s): {', '.join(k.rstrip('_') + '=...' for k in missing)}")


def refuse_overwrite(
    writes: Mapping[str, str | Path | None], reads: Mapping[str, str | Path | None], *, folder: bool = False
) -> None:
    """Refuse to write over an input: each path of ``writes`` (label -> path, e.g. ``{"dst": ...}``)
    is compared with each existing path of ``reads`` (``{"weights": ...}``) after resolving links
    (``..``, symbolic links, hard links); empty values and inputs that do not exist (a URL, a camera
    index) are skipped. With ``folder``, the written paths are folders a mode writes into, and an
    input inside one of them (or the folder itself) is refused as well.

    Raises:
        ConfigError: naming both paths, before anything is written.
    """
    for out_key, out_value in writes.items():
        if not out_value:
            continue
        require_folder_path(out_value if folder else Path(out_value).parent, f"{out_key}={out_value}")
        out = Path(os.path.realpath(out_value))
        for in_key, in_value in reads.items():
            if not in_value or not os.path.exists(in_value):
                continue
            src = Path(os.path.realpath(in_value))
            same = src == out or (out.exists() and os.path.samefile(src, out))
            if folder and (same or out in src.parents):
                raise ConfigError(
                    f"{in_key}={in_value} lies in (or is) the output folder {out_value}, whose files would "
                    f"replace or mix with the inputs; choose another project=/name= or move the input"
                )
            if same:
                raise ConfigError(
                    f"{out_key}={out_value} is the same path as {in_key}={in_value}: writing it would destroy "
                    f"the input; choose another {out_key}="
                )


#: The keys of a configuration that name files or folders a mode reads (``dst=`` must be none of them).
INPUT_KEYS = ("src", "weights", "prototxt", "caffemodel", "kinetics", "darknet", "calib", "data", "gt", "pred")


def refuse_dst_over_inputs(cfg: Any) -> None:
    """:func:`refuse_overwrite` of ``cfg.dst`` against every input key of ``cfg`` (:data:`INPUT_KEYS`)."""
    reads = {k: getattr(cfg, k) for k in INPUT_KEYS if isinstance(getattr(cfg, k, None), (str, Path))}
    refuse_overwrite({"dst": getattr(cfg, "dst", None)}, reads)


def run_dir(cfg: EngineOptions, mode: str, *, resume: bool = False, create: bool = True) -> Path:
    """The run folder of ``mode`` (``train``, ``val``, ``predict``): ``project/name``, ``name``
    defaulting to ``mode``; created and logged.

    An existing ``project/name`` is never reused silently: the first of ``name2``, ``name3``, ...
    that does not exist is taken (each try is one ``mkdir``, so two runs started together never
    share a folder). ``exist_ok`` reuses ``project/name``; ``resume`` returns it as it is and fails
    unless it holds ``last.pt``. ``create=False`` (a dry run) names the folder without creating it.
    """
    base = Path(cfg.project) / (cfg.name or mode)
    require_folder_path(cfg.project, f"project={cfg.project}")
    if resume:
        if not (base / "last.pt").is_file():
            raise ConfigError(f"resume: {base / 'last.pt'} not found; nothing to resume (set resume=false to start)")
        out = base
    elif cfg.exist_ok:
        if base.exists() and not base.is_dir():
            raise ConfigError(f"project/name: {base} exists and is not a folder")
        out = base
        if create:
            base.mkdir(parents=True, exist_ok=True)
    else:
        out = _free_run_dir(base, create)
    if create:
        logger.info("%s: writing to %s", mode, out)
    return out


@contextlib.contextmanager
def run_folder(cfg: EngineOptions, mode: str, reads: Mapping[str, str | Path | None] | None = None) -> Iterator[Path]:
    """:func:`run_dir` of ``mode`` for the body of a ``with``: when the body fails and leaves the
    folder it was given empty, the folder is removed, so that a failed call (a missing ``source=``)
    neither leaves an empty folder nor uses up a number (with ``exist_ok`` the folder is kept).

    The folder is locked for the body (:func:`~singleshot.io.runlock.acquire_run_lock`: a second
    process on it fails naming this one's pid), and ``reads`` (label -> input path, e.g. the
    ``source=`` of ``predict``) must not lie in it (:func:`refuse_overwrite`)."""
    out = run_dir(cfg, mode)
    lock: RunLock | None = None
    try:
        refuse_overwrite({"run folder": out}, reads or {}, folder=True)
        lock = acquire_run_lock(out)
        yield out
    except BaseException:
        if lock is not None:
            lock.release()
        if not cfg.exist_ok:
            with contextlib.suppress(OSError):
                out.rmdir()  # only an empty folder goes
        raise
    finally:
        if lock is not None:
            lock.release()


def _free_run_dir(base: Path, create: bool) -> Path:
    """The first of ``base``, ``base2``, ``base3``, ... that does not exist (made when ``create``)."""
    if create:
        base.parent.mkdir(parents=True, exist_ok=True)
    n = 1
    while True:
        out = base if n == 1 else base.with_name(f"{base.name}{n}")
        if not create and not out.exists():
            return out
        if create:
            try:
                out.mkdir()
                return out
            except FileExistsError:  # taken (a folder or a file): try the next number
                pass
        n += 1


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
def screen_dataset(report: CheckReport, bad: str) -> set[str]:
    """The items to leave out of a dataset after its check ``report`` (see
    :mod:`singleshot.data.check`), by the ``bad=`` policy.

    No fault: nothing. ``bad=stop``, or a fault that makes the whole dataset unusable: a
    :class:`~singleshot.errors.DataError` whose message is the table of every fault. ``bad=skip``:
    the table is logged and the faulty items are returned.
    """
    if bad not in BAD_POLICIES:
        raise ConfigError(f"bad={bad!r}: expected one of {', '.join(BAD_POLICIES)}")
    if report.ok:
        logger.info("dataset check: %s", report.summary())
        return set()
    if bad == "stop" or report.fatal:
        advice = (
            "these faults leave nothing to train on"
            if report.fatal
            else "fix them, or pass bad=skip to use the other items"
        )
        raise DataError(f"dataset check found faults ({advice}):\n{report.table()}")
    logger.warning("dataset check (bad=skip leaves these items out):\n%s", report.table())
    return report.bad_items


def write_skipped(folder: Path, faults: Sequence[Fault]) -> Path:
    """``folder/skipped.txt``: the table of the faults whose items a ``bad=skip`` run left out."""
    path = Path(folder) / "skipped.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, format_faults(list(faults)) + "\n")
    logger.info("the %d skipped item(s) are listed in %s", len({f.item for f in faults}), path)
    return path


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
    atomic_write(path, lambda f: f.write(json.dumps(result, indent=2).encode("utf-8")))
    return path


# ---------------------------------------------------------------- dry run
def parameter_status(module: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, str]:
    """Each named parameter of ``module`` -> ``"trainable"`` (in a group of lr > 0), ``"frozen"``
    (``requires_grad`` False), ``"lr_zero"`` (requires gradients but sits only in groups of base lr 0,
    YOWO's way of freezing) or ``"unused"`` (requires gradients, in no group). The base lr of a group
    is its ``initial_lr`` (a warm-up may have scaled ``lr`` already)."""
    rates: dict[int, list[float]] = {}
    for group in optimizer.param_groups:
        lr = float(group.get("initial_lr", group["lr"]))
        for p in group["params"]:
            rates.setdefault(id(p), []).append(lr)
    status: dict[str, str] = {}
    for name, p in module.named_parameters():
        if not p.requires_grad:
            status[name] = "frozen"
        elif id(p) not in rates:
            status[name] = "unused"
        else:
            status[name] = "trainable" if max(rates[id(p)]) > 0 else "lr_zero"
    return status


def module_prefixes(status: Mapping[str, str], wanted: str) -> list[str]:
    """The shortest dotted name prefixes under which every parameter has status ``wanted``.

    ``status`` maps parameter names (``"backbone.layer1.0.conv1.weight"``) to a status (see
    :func:`parameter_status`). A module whose parameters all have ``wanted`` is named once and
    nothing under it; a module with mixed statuses is split into its children, down to single
    parameters. ``""`` stands for the whole module when every parameter has ``wanted``. In the
    order the parameters come in ``status``.
    """
    below: dict[str, set[str]] = {"": set()}  # prefix -> statuses of the parameters under it
    children: dict[str, list[str]] = {"": []}  # prefix -> its direct children, in parameter order
    for name, st in status.items():
        parts = name.split(".")
        below[""].add(st)
        for k in range(1, len(parts) + 1):
            prefix, parent = ".".join(parts[:k]), ".".join(parts[: k - 1])
            if prefix not in below:
                below[prefix], children[prefix] = set(), []
                children[parent].append(prefix)
            below[prefix].add(st)
    out: list[str] = []

    def visit(prefix: str) -> None:
        if wanted not in below[prefix]:
            return
        if below[prefix] == {wanted}:
            out.append(prefix)
            return
        for child in children[prefix]:
            visit(child)

    if status:
        visit("")
    return out


def param_group_summary(optimizer: torch.optim.Optimizer) -> list[dict[str, Any]]:
    """Per optimizer group: base ``lr`` (``initial_lr`` when a schedule set one), ``weight_decay``,
    the number of ``tensors`` and of scalar ``parameters``."""
    return [
        {
            "lr": float(g.get("initial_lr", g["lr"])),
            "weight_decay": float(g.get("weight_decay", 0.0)),
            "tensors": len(g["params"]),
            "parameters": int(sum(p.numel() for p in g["params"])),
        }
        for g in optimizer.param_groups
    ]


def input_convention(meta: Mapping[str, Any]) -> dict[str, Any]:
    """What a network expects as input, read from its weights metadata ``meta``.

    Images: ``size`` ``[h, w]``, ``channel_order``, ``value_range`` and ``mean``/``std`` in that
    range's units: ``"0-1"`` (the metadata's own units), or ``"0-255"`` when every std is 1/255 (a
    Caffe-style convention: pixels 0..255 minus a mean, no std), and ``resize`` (None when the
    metadata does not record it). Depth or RGB-D grasp inputs: ``size``, ``input``, ``channels`` and
    the metadata's ``normalise`` text.
    """
    size = [int(v) for v in meta.get("input_size", [])]
    if "mean" not in meta:
        return {
            "size": size,
            "input": meta.get("input"),
            "channels": meta.get("in_channels"),
            "normalise": meta.get("normalise"),
        }
    mean = [float(v) for v in meta["mean"]]
    std = [float(v) for v in meta.get("std", [1.0, 1.0, 1.0])]
    per_255 = all(abs(v * 255.0 - 1.0) < 1e-6 for v in std)
    scale = 255.0 if per_255 else 1.0
    return {
        "size": size,
        "channel_order": str(meta.get("channel_order", "RGB")).upper(),
        "value_range": "0-255" if per_255 else "0-1",
        "mean": [round(v * scale, 6) for v in mean],
        "std": [round(v * scale, 6) for v in std],
        "resize": meta.get("resize"),
    }


def _known_priors() -> dict[str, PriorSpec]:
    """The prior configurations the dry run names: the published SSD ones and ACT's."""
    known = {name: prior_spec(name) for name in ("voc300", "coco300", "voc512", "coco512")}
    known.update({"act300_pool5_2x2": ACT_PRIORS_2X2, "act300_pool5_3x3": ACT_PRIORS_3X3})
    return known


def priors_summary(model: nn.Module) -> dict[str, Any] | None:
    """The default boxes of the first submodule of ``model`` with ``prior_spec`` and ``priors``
    (SSD, ACT's anchor cuboids); None when there is none.

    ``name``: the prior sizes' origin (``voc``: ssd.pytorch / paper sizes, ``coco``: torchvision's
    scales, ``custom``), ``spec``: the published configuration they equal (clipping aside), ``count``,
    ``clip``, ``first_map`` (its grid ``size`` and ``min_size``/``max_size`` in input pixels) and per
    map its grid ``size``, ``step`` (pixels) and ``boxes_wh``: the (w, h) in input pixels of one
    cell's priors as the model holds them (after clipping), in the model's order.
    """
    host = next((m for m in model.modules() if hasattr(m, "prior_spec") and hasattr(m, "priors")), None)
    if host is None:
        return None
    spec: PriorSpec = host.prior_spec
    priors: Tensor = host.priors.detach().cpu()
    spec_name = next(
        (n for n, k in _known_priors().items() if dataclasses.replace(spec, clip=k.clip) == k),
        "custom",
    )
    name = "voc" if spec_name.startswith(("voc", "act")) else "coco" if spec_name.startswith("coco") else "custom"
    maps, start = [], 0
    for f, step, ars in zip(spec.feature_maps, spec.steps, spec.aspect_ratios):
        per_cell = 2 + 2 * len(ars)
        cell = priors[start : start + per_cell, 2:] * spec.image_size
        maps.append({"size": f, "step": float(step), "boxes_wh": [[round(float(v), 4) for v in wh] for wh in cell]})
        start += f * f * per_cell
    return {
        "name": name,
        "spec": spec_name,
        "count": int(priors.shape[0]),
        "image_size": int(spec.image_size),
        "clip": spec.clip,
        "first_map": {
            "size": int(spec.feature_maps[0]),
            "min_size": round(float(spec.min_sizes[0]), 4),
            "max_size": round(float(spec.max_sizes[0]), 4),
        },
        "maps": maps,
    }


def anchors_summary(model: nn.Module) -> dict[str, Any] | None:
    """YOWO-style region anchors: ``count``, ``wh`` (grid cells) and the output ``stride``; None
    when ``model`` has no ``anchors`` buffer of [A, 2]."""
    anchors = getattr(model, "anchors", None)
    if not isinstance(anchors, Tensor) or anchors.dim() != 2 or anchors.shape[1] != 2:
        return None
    return {
        "count": int(anchors.shape[0]),
        "wh": [[round(float(v), 5) for v in wh] for wh in anchors.cpu()],
        "units": "grid cells",
        "stride": int(getattr(model, "stride", 0)) or None,
    }


def schedule_summary(tcfg: TrainConfig, trainer: Trainer) -> dict[str, Any]:
    """The learning-rate schedule in optimizer steps, as the trainer planned it."""
    steps = trainer.steps_per_epoch
    return {
        "name": tcfg.schedule,
        "epochs": tcfg.epochs,
        "batches_per_epoch": trainer.batches_per_epoch,
        "steps_per_epoch": steps,
        "total_steps": trainer.total_iters,
        "warmup_steps": tcfg.warmup_iters,
        "warmup_factor": tcfg.warmup_factor,
        "milestones_steps": list(tcfg.milestones),
        "gamma": tcfg.gamma,
        "max_steps": tcfg.max_steps,
    }


def dry_run_summary(cfg: EngineOptions, plan: TrainingPlan, trainer: Trainer) -> dict[str, Any]:
    """What training ``plan`` with ``trainer`` would do, as plain JSON-ready data.

    Keys: ``dry_run`` (True), ``model`` (the architecture in the plan's metadata), ``num_parameters``
    (the saved model), ``trainable_parameters`` (in groups of lr > 0), ``trainable`` / ``frozen`` /
    ``lr_zero`` (and ``unused`` when any): the shortest module-name prefixes of the trained module
    in each state (:func:`parameter_status`, :func:`module_prefixes`), ``optimizer`` (name, momentum
    for SGD), ``param_groups`` (:func:`param_group_summary`), ``schedule`` (in optimizer steps),
    ``accumulation`` (micro-batches per step, ``mean``/``sum``, images per step), ``input``
    (:func:`input_convention` of the metadata), ``priors`` (:func:`priors_summary`) or ``anchors``
    (:func:`anchors_summary`) when the model has them, ``train_samples``, ``device``,
    ``world_size`` and ``out`` (the run folder training would write; not created).
    """
    tcfg, module = trainer.cfg, trainer.model
    status = parameter_status(module, trainer.optimizer)
    sizes = dict(module.named_parameters())
    states = {key: module_prefixes(status, key) for key in ("trainable", "frozen", "lr_zero")}
    if "unused" in status.values():
        states["unused"] = module_prefixes(status, "unused")
    optimizer: dict[str, Any] = {"name": tcfg.optimizer}
    if tcfg.optimizer == "sgd":
        optimizer["momentum"] = tcfg.momentum
    summary: dict[str, Any] = {
        "dry_run": True,
        "model": plan.meta.get("architecture", type(plan.model).__name__),
        "num_parameters": int(sum(p.numel() for p in plan.model.parameters())),
        "trainable_parameters": int(sum(sizes[n].numel() for n, st in status.items() if st == "trainable")),
        **states,
        "optimizer": optimizer,
        "param_groups": param_group_summary(trainer.optimizer),
        "schedule": dict(schedule_summary(tcfg, trainer), warmup_asked=cfg.warmup),  # warmup= before fit_warmup
        "accumulation": {
            "accumulate": tcfg.accumulate,
            "mode": tcfg.accumulate_mode,
            "batch": cfg.batch,
            "images_per_step": cfg.batch * tcfg.accumulate,
        },
        "input": input_convention(plan.meta),
    }
    priors = priors_summary(plan.model)
    if priors is not None:
        summary["priors"] = priors
    anchors = anchors_summary(plan.model)
    if anchors is not None:
        summary["anchors"] = anchors
    summary.update(
        train_samples=len(plan.train_set),  # type: ignore[arg-type]
        device=str(trainer.device),
        world_size=trainer.world_size,
        out=str(tcfg.out_dir),
    )
    logger.info("dry run: nothing trained, no run folder written")
    return summary


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

    The result is also written to ``metrics.json`` in the run folder. With ``dry_run=true`` the
    generated data are written (the dry run reads them) and the dry-run summary is returned as it is.
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
        if cfg.dry_run:  # the demo recipe's dry run: nothing trained, nothing to show
            return result
        result.update(show(cfg, result))
        if seconds_key:
            result[seconds_key] = round(time.perf_counter() - t0, 1)
        write_metrics_json(Path(result["out"]), result)
        return result
    finally:
        torch.set_num_threads(previous)
