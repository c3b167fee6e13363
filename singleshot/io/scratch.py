"""Temporary files beside the file they lead to, never in the system temp folder.

:func:`scratch_dir` makes a hidden folder ``.<name>.<random>.tmp`` in the destination's folder (the
same file system, so a finished file can be renamed into place, and a user sees where the space
went) and removes it with everything in it when the block ends: normally, on an error, on
``SIGINT`` and, with the CLI's handler that turns ``SIGTERM`` into ``SystemExit``, on ``SIGTERM``.
While the block runs, :mod:`tempfile`'s default folder is that folder as well, so temporaries that
libraries make on their own (onnxruntime's calibration models) are removed with it.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["scratch_dir"]


@contextlib.contextmanager
def scratch_dir(beside: str | Path, *, redirect_tempfile: bool = True) -> Iterator[Path]:
    """A hidden temporary folder in the folder of ``beside`` (created if missing), removed at the end.

    Args:
        beside: the file the work leads to (need not exist yet).
        redirect_tempfile: point :func:`tempfile.gettempdir` at the folder while the block runs
            (restored afterwards).
    """
    target = Path(beside)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    previous = tempfile.tempdir
    try:
        if redirect_tempfile:
            tempfile.tempdir = str(tmp)
        yield tmp
    finally:
        if redirect_tempfile:
            tempfile.tempdir = previous
        shutil.rmtree(tmp, ignore_errors=True)
