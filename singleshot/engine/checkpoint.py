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

Writes go to a temporary file in the destination folder, are flushed and ``fsync``-ed, then
renamed over the destination with ``os.replace`` (atomic on POSIX and Windows) and the folder is
``fsync``-ed so the rename itself survives a power cut. A process killed at any moment therefore
leaves either the previous file or the new one, never a truncated file. The file gets the permission
bits a plain ``open(path, "w")`` would give it: those of the file it replaces, or ``0o666`` less the
process's umask for a new one (not the ``0o600`` of :func:`tempfile.mkstemp`).
"""

from __future__ import annotations

import logging
import os
import pickle
import re
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import torch

from singleshot.errors import WeightsError

logger = logging.getLogger(__name__)

__all__ = [
    "atomic_write",
    "current_umask",
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


def _fsync_dir(folder: Path) -> None:
    """fsync a directory so a rename inside it is durable (no-op where unsupported)."""
    if os.name == "nt":  # Windows cannot open directories
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:  # some file systems refuse fsync on directories
        pass
    finally:
        os.close(fd)


def current_umask() -> int:
    """The process's umask (e.g. ``0o022``).

    Read from the ``Umask:`` line of ``/proc/self/status`` (Linux >= 4.7), which changes nothing;
    elsewhere the only way is to set a mask and put the old one back, so for that instant the mask
    is the strict ``0o077`` (a file another thread creates meanwhile is private, never more open).
    """
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def _plain_write_mode(path: Path) -> int:
    """The permission bits ``open(path, "w")`` would leave on ``path``: an existing file keeps its
    own, a new one gets ``0o666`` less the umask."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return 0o666 & ~current_umask()


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None]) -> None:
    """Write a file atomically: ``write(f)`` fills a temporary file that then replaces ``path``.

    If ``write`` raises (or the process dies), ``path`` keeps its previous content and the
    temporary file is removed (after a crash, a hidden ``.<name>.*.tmp`` may remain beside it).
    The file's permission bits are those a plain ``open(path, "w")`` would give (see the module doc).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as f:
            if hasattr(os, "fchmod"):  # POSIX (Windows has only a read-only flag, left as it is)
                os.fchmod(f.fileno(), _plain_write_mode(path))
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Save a checkpoint dict atomically with ``torch.save`` (see the module doc for contents)."""
    state = dict(state)
    state.setdefault("format_version", CHECKPOINT_FORMAT_VERSION)
    atomic_write(path, lambda f: torch.save(state, f))
    logger.debug("saved checkpoint %s", path)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` with ``weights_only=True``.

    Raises :class:`WeightsError` naming the file when it is missing, unreadable or holds objects
    other than tensors and plain containers.
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
    except (RuntimeError, EOFError, OSError) as exc:
        raise WeightsError(f"{path}: not a readable checkpoint ({exc})") from exc
    if not isinstance(state, dict) or "model" not in state:
        raise WeightsError(f"{path}: not a singleshot checkpoint (expected a dict with a 'model' key)")
    return state
