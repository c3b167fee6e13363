"""What may change when a run is resumed: the saved run configuration against the new one.

A run's configuration (the task's whole config, as written to ``config.yaml`` and into
``last.pt`` under ``run_config``) is compared key by key with the configuration of ``resume=true``:

- keys that only extend or watch a run (:data:`RESUME_EXTENDS`: ``epochs``, ``patience``,
  ``eval_every``, logging, output and loader keys, ``device``) may change; each change is logged;
- keys of the optimisation recipe (:data:`RESUME_RECIPE`: ``lr``, the schedule, ``batch``,
  ``clip_grad``, evaluation thresholds, ...) may change with a warning that the run is no longer
  the one an uninterrupted training would give;
- every other key (the model, its input such as ``imgsz`` or ``input_norm``, the classes, the
  data and its splits, the optimizer, a teacher, ...) must stay as it was: a change is refused
  with a :class:`~singleshot.errors.ConfigError` listing every difference.

Keys missing on either side (a checkpoint of an older version) are not compared.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from singleshot.errors import ConfigError

logger = logging.getLogger(__name__)

__all__ = ["RESUME_EXTENDS", "RESUME_RECIPE", "check_resume_config", "config_differences"]

#: Keys that only extend, watch or place a run: they may change on resume (logged).
RESUME_EXTENDS: frozenset[str] = frozenset(
    {
        "epochs",
        "patience",
        "eval_every",
        "plot_every",
        "checkpoint_every",
        "log_every",
        "progress_bar",
        "tensorboard",
        "plots",
        "verbose",
        "workers",
        "threads",
        "timeout",
        "max_steps",
        "device",
        "resume",
        "exist_ok",
        "dry_run",
        "project",
        "name",
        "check",
        "cache",
        "feature_cache",
        "show_conf",
        "cudnn_benchmark",
        "channels_last",
        "out_dir",
    }
)

#: Keys of the optimisation recipe or of the evaluation that picks the best epoch: they may change
#: on resume with a warning (the run then differs from an uninterrupted one).
RESUME_RECIPE: frozenset[str] = frozenset(
    {
        "lr",
        "momentum",
        "weight_decay",
        "schedule",
        "milestones",
        "gamma",
        "warmup",
        "warmup_iters",
        "warmup_factor",
        "power",
        "min_lr_factor",
        "clip_grad",
        "amp",
        "amp_dtype",
        "ema",
        "ema_decay",
        "accumulate",
        "accumulate_mode",
        "batch",
        "seed",
        "max_nonfinite",
        "kd_weight",
        "kd_temperature",
        "feat_weight",
        "aux_weight",
        "motion_weight",
        "conf",
        "iou",
        "max_det",
        "topk",
        "metric",
    }
)


def _same(a: Any, b: Any) -> bool:
    """Equal as configuration values: numbers by value (``1`` == ``1.0``, a bool only equals a bool),
    tuples as lists, paths as text."""
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return float(a) == float(b)
    if isinstance(a, Path) or isinstance(b, Path):
        return str(a) == str(b)
    return bool(a == b)


def config_differences(saved: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """``key -> (saved value, new value)`` of every key present in both and not equal."""
    return {k: (saved[k], new[k]) for k in new if k in saved and not _same(saved[k], new[k])}


def _listed(changes: Mapping[str, tuple[Any, Any]]) -> str:
    return ", ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in changes.items())


def check_resume_config(saved: Mapping[str, Any], new: Mapping[str, Any], checkpoint: str | Path) -> None:
    """Compare the run configuration ``saved`` with ``checkpoint`` against ``new`` (see the module doc).

    Raises:
        ConfigError: naming ``checkpoint`` and every key that may not change, with both values.
    """
    diff = config_differences(saved, new)
    refused = {k: v for k, v in diff.items() if k not in RESUME_EXTENDS and k not in RESUME_RECIPE}
    if refused:
        raise ConfigError(
            f"resume: {checkpoint} was trained with other settings, which resume=true cannot change "
            f"(the model, its input, the classes and the data must stay as they were): {_listed(refused)}. "
            "Set them back, or start a new run (resume=false)."
        )
    recipe = {k: v for k, v in diff.items() if k in RESUME_RECIPE}
    if recipe:
        logger.warning(
            "resuming %s with a changed training recipe (the run no longer equals an uninterrupted one): %s",
            checkpoint,
            _listed(recipe),
        )
    extends = {k: v for k, v in diff.items() if k in RESUME_EXTENDS and k not in ("resume", "name", "out_dir")}
    if extends:
        logger.info("resuming %s with: %s", checkpoint, _listed(extends))
