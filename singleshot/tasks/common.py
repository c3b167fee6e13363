"""The skeleton every family's modes share: mode tables and help, configs from arguments (typed
keys, the training run's settings), starting from weights, dataset screening and the demo runner
(:func:`run_demo`).

It also re-exports, as the one import of the families, the pieces that live in their own modules:
:mod:`~singleshot.tasks.fit` (:class:`TrainingPlan`, :func:`fit`: one training loop around the
engine), :mod:`~singleshot.tasks.dry_run` (what ``dry_run=true`` reports),
:mod:`~singleshot.tasks.run_folders` (run folders, no writing over inputs, ``skipped.txt``) and
:mod:`~singleshot.tasks.generated_data` (:func:`ensure_dataset`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn

from singleshot.config import ModeSpec, build_config, fixed_keys, load_yaml_mapping
from singleshot.data.check import CheckReport
from singleshot.engine.distributed import get_world_size
from singleshot.engine.train_config import EngineOptions
from singleshot.engine.weights import finetune_from, read_model_weights
from singleshot.errors import ConfigError, DataError
from singleshot.models.registry import check_weights_task
from singleshot.tasks.dry_run import (
    anchors_summary,
    dry_run_summary,
    input_convention,
    module_prefixes,
    param_group_summary,
    parameter_status,
    priors_summary,
    schedule_summary,
)
from singleshot.tasks.fit import BestEvaluation, ToDevice, TrainingPlan, fit, metric_floats, write_metrics_json
from singleshot.tasks.generated_data import ensure_dataset
from singleshot.tasks.run_folders import (
    INPUT_KEYS,
    refuse_dst_over_inputs,
    refuse_overwrite,
    run_dir,
    run_folder,
    write_skipped,
)

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
    "write_metrics_json",
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
