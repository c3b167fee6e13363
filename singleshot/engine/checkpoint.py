"""Training checkpoints, written atomically and read without unpickling arbitrary objects.

A checkpoint is a plain dict saved with ``torch.save`` whose contents are limited to tensors,
dicts, lists, tuples, numbers, strings, booleans and ``None``, so that
``torch.load(weights_only=True)`` reads it back. The trainer stores these keys:

``model`` (state dict), ``optimizer`` (state dict), ``scheduler`` (state dict), ``scaler`` (the
float16 gradient scaler's state dict, or ``None``), ``ema`` (``{"model", "updates", "decay"}`` or
``None``), ``epoch`` (number of *completed* epochs), ``iteration`` (optimizer steps taken so far),
``sampler`` (the data position: ``{"epoch", "batches"`` consumed in that epoch, ``"batch_size"``
per process, ``"world_size"}``; ``batches`` is 0 at epoch ends), ``epoch_sums`` (running sums of
the loss terms over the unfinished epoch, for its log row), ``rng`` (see
:func:`singleshot.engine.seed.get_rng_state`; ``rng_ranks`` holds one per process under DDP),
``config`` (the :class:`~singleshot.engine.train_config.TrainConfig` as a dict), ``run_config`` (the
task's whole configuration, compared on resume; ``None`` when the trainer was given none), ``best_metric``
(float or ``None``), ``best_epoch``, ``metric_key`` (str or ``None``), ``metrics`` (last
evaluation, dict of floats) and ``format_version`` (int).

Writes go through :func:`singleshot.atomic.atomic_write` (``durable``): a temporary file in the
destination folder, flushed and ``fsync``-ed, renamed over the destination with ``os.replace`` and
the folder ``fsync``-ed, so a process killed at any moment (or a power cut) leaves either the
previous file or the new one, never a truncated file; a full disk is reported in one line
(:func:`~singleshot.engine.write_errors.write_explained`).
"""

from __future__ import annotations

import logging
import pickle
import re
from pathlib import Path
from typing import Any

import torch

from singleshot.engine.damaged_files import unreadable_file
from singleshot.engine.write_errors import write_explained
from singleshot.errors import WeightsError

logger = logging.getLogger(__name__)

__all__ = [
    "save_checkpoint",
    "load_checkpoint",
    "unpickling_reason",
    "CHECKPOINT_FORMAT_VERSION",
]

CHECKPOINT_FORMAT_VERSION = 1


def unpickling_reason(exc: BaseException) -> str:
    """A one-line reason from the error of ``torch.load(weights_only=True)``.

    Names the refused Python global (for example ``it needs the Python object argparse.Namespace``)
    when torch reports one, otherwise the unpickler's own error line.
    """
    text = str(exc)
    found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
    if found:
        return f"it needs the Python object {found.group(1)}"
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    detail = next((ln for ln in lines if "WeightsUnpickler error" in ln), lines[0] if lines else type(exc).__name__)
    return detail.replace("WeightsUnpickler error: ", "")


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Save a checkpoint dict atomically with ``torch.save`` (see the module doc for contents).

    Raises:
        TrainingError: the file could not be written (a full disk: ``disk full (No space left on
            device)``), naming it; the file that was there before is unchanged.
    """
    state = dict(state)
    state.setdefault("format_version", CHECKPOINT_FORMAT_VERSION)
    write_explained(path, lambda f: torch.save(state, f))  # a full disk: one line naming the file
    logger.debug("saved checkpoint %s", path)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` with ``weights_only=True``.

    Raises :class:`WeightsError` naming the file when it is missing, empty, truncated, unreadable or
    holds objects other than tensors and plain containers.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: checkpoint file not found")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise WeightsError(
            f"{path}: checkpoint holds Python objects other than tensors and plain containers; "
            f"loading it would need arbitrary code execution and is refused ({unpickling_reason(exc)})"
        ) from exc
    except (RuntimeError, EOFError, OSError) as exc:  # empty, truncated or damaged: said so (engine.damaged_files)
        raise unreadable_file(path, "checkpoint", exc) from exc
    if not isinstance(state, dict) or "model" not in state:
        raise WeightsError(f"{path}: not a singleshot checkpoint (expected a dict with a 'model' key)")
    return state
