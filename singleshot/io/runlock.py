"""One writer per run folder: ``<folder>/.lock`` holds the pid of the process writing the folder.

:func:`acquire_run_lock` takes the lock or fails naming the holder's pid. The file is held with an
exclusive ``flock`` for as long as the lock is held (POSIX), so a process that dies, even by
``SIGKILL``, never blocks the folder: its file is left behind and the next process takes it over
with a warning naming the dead pid. Where ``flock`` is missing (Windows) the file is created with
``O_EXCL`` and a stale one (its pid not running) is taken over the same way. A lock file naming a
running process other than this one is always refused.

:meth:`RunLock.release` removes the file; callers release in a ``finally`` block, which runs on
``SIGINT`` (``KeyboardInterrupt``) and, once the CLI's handler turns ``SIGTERM`` into
``SystemExit``, on ``SIGTERM`` too.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

from singleshot.errors import ConfigError

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)

__all__ = ["LOCK_NAME", "RunLock", "acquire_run_lock", "pid_alive"]

#: The lock file's name inside a run folder.
LOCK_NAME = ".lock"


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists (one of another user counts as running)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def _read_pid(fd: int) -> int | None:
    """The pid written in the open lock file ``fd`` (None: empty or not a number)."""
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 64).decode("ascii", "replace").strip()
    return int(text) if text.isdigit() else None


def _in_use(folder: Path, pid: int | None) -> ConfigError:
    who = f"process {pid}" if pid is not None else "another process"
    return ConfigError(
        f"run folder {folder} is in use by {who} (lock file {folder / LOCK_NAME}); "
        "wait for it to finish, or choose another name= (a lock left by a crashed run is taken over by itself)"
    )


class RunLock:
    """The held lock of one run folder (see the module doc); :meth:`release` ends it, once."""

    def __init__(self, folder: Path, fd: int) -> None:
        self.folder = folder
        self.path = folder / LOCK_NAME
        self._fd: int | None = fd

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Remove the lock file (while still holding it, so no one takes a file being removed)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        with contextlib.suppress(OSError):
            self.path.unlink()
        os.close(fd)  # closing drops the flock

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def acquire_run_lock(folder: str | Path) -> RunLock:
    """Lock the existing folder ``folder`` for this process.

    Raises:
        ConfigError: another running process holds it (the message names its pid).
    """
    folder = Path(folder)
    path = folder / LOCK_NAME
    if fcntl is None:  # pragma: no cover - Windows
        return _acquire_excl(folder, path)
    for _ in range(10):  # retried only when the file was replaced between open and flock
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            pid = _read_pid(fd)
            os.close(fd)
            raise _in_use(folder, pid) from None
        try:
            same = os.path.exists(path) and os.stat(path).st_ino == os.fstat(fd).st_ino
        except OSError:
            same = False
        if not same:  # the holder removed it after our open: take the new file instead
            os.close(fd)
            continue
        old = _read_pid(fd)
        if old is not None and old != os.getpid() and pid_alive(old):
            os.close(fd)  # written by a running process that does not flock: respect it
            raise _in_use(folder, old)
        if old is not None and old != os.getpid():
            logger.warning("%s: taking over the lock of process %d, which is no longer running", path, old)
        _write_pid(fd)
        return RunLock(folder, fd)
    raise _in_use(folder, None)


def _write_pid(fd: int) -> None:
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, f"{os.getpid()}\n".encode("ascii"))


def _acquire_excl(folder: Path, path: Path) -> RunLock:  # pragma: no cover - Windows
    """The ``O_EXCL`` lock of systems without ``flock``."""
    for _ in range(10):
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            try:
                with open(path, "rb") as f:
                    text = f.read(64).decode("ascii", "replace").strip()
            except OSError:
                continue
            pid = int(text) if text.isdigit() else None
            if pid is not None and pid_alive(pid):
                raise _in_use(folder, pid) from None
            logger.warning("%s: taking over the lock of process %s, which is no longer running", path, pid)
            with contextlib.suppress(OSError):
                path.unlink()
            continue
        _write_pid(fd)
        return RunLock(folder, fd)
    raise _in_use(folder, None)
