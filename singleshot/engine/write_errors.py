"""A weights or checkpoint file that cannot be written (a full disk, above all) as one line naming
the file and the cause, instead of ``OSError`` or torch's ``[enforce fail at inline_container.cc]``.

``torch.save`` into a file whose ``write`` fails with ``ENOSPC`` raises either that ``OSError`` or
a ``RuntimeError`` of its zip writer (``unexpected pos N vs M``) whose ``__context__`` is the
``OSError``; :func:`write_error` looks through that chain. The writes themselves are atomic
(:func:`~singleshot.atomic.atomic_write`), so the file that was there before (the
previous ``last.pt``) is still whole; the message says so.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from singleshot.atomic import atomic_write
from singleshot.errors import TrainingError

__all__ = ["write_error", "write_explained"]

_REASONS = {
    errno.ENOSPC: "disk full (No space left on device)",
    errno.EDQUOT: "disk quota exceeded (Disk quota exceeded)",
}
#: Marks of torch's zip writer failing to write (``torch.save``).
_WRITER_MARKS = ("inline_container.cc", "PytorchStreamWriter", "file write failed")


def _os_error_in(exc: BaseException) -> OSError | None:
    """The first ``OSError`` among ``exc`` and the errors it was raised from or while handling."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, OSError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def write_error(path: str | Path, exc: BaseException, existed: bool) -> TrainingError | None:
    """The error to raise when writing ``path`` failed with ``exc``; None when ``exc`` is no write
    failure (a bug to be raised as it is).

    Args:
        path: the file being written.
        exc: what the write raised (an ``OSError``, or torch's zip-writer ``RuntimeError``).
        existed: whether ``path`` existed before the write (then it is kept unchanged).
    """
    path = Path(path)
    os_error = _os_error_in(exc)
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    if os_error is not None and os_error.errno in _REASONS:
        reason = _REASONS[os_error.errno]
    elif os_error is not None and os_error.errno is not None:
        reason = f"{os_error.strerror or os_error} (errno {os_error.errno})"
    elif isinstance(exc, RuntimeError) and any(mark in str(exc) for mark in _WRITER_MARKS):
        reason = f"torch's writer stopped short ({first[:200]}), as it does when the disk is full: disk full?"
    else:
        return None
    kept = f"the previous {path.name} is kept unchanged" if existed else "no partial file was left"
    advice = "; free some space, then resume=true continues the run" if path.suffix == ".pt" else ""
    return TrainingError(f"{path}: not written: {reason}; {kept}{advice}")


def write_explained(path: str | Path, write: Callable[[IO[bytes]], Any]) -> None:
    """:func:`~singleshot.atomic.atomic_write` (durable) of ``path``; a write that fails for a
    reason :func:`write_error` knows (a full disk) is raised as its one-line :class:`TrainingError`,
    any other error as it is."""
    existed = Path(path).is_file()
    try:
        atomic_write(path, write)
    except (OSError, RuntimeError) as exc:
        error = write_error(path, exc, existed)
        if error is None:
            raise
        raise error from exc
