"""Files written whole or not at all: every file a mode writes goes through :func:`atomic_write`.

The content goes to a hidden temporary file in the destination's folder (``.<name>.<random>.tmp``),
which then replaces the destination with ``os.replace`` (atomic on POSIX and Windows). A process
that fails, is interrupted (``SIGINT``, or ``SIGTERM``, which the command line turns into
``SystemExit``) or is killed while writing therefore leaves the previous file or none, never a
truncated one; the temporary file is removed on every error the process survives.

``durable=True`` (checkpoints, weights) also ``fsync``-s the file and its folder, so the rename
survives a power cut; pictures and tables skip that cost. A written file gets the permission bits a
plain ``open(path, "w")`` would give it: those of the file it replaces, or ``0o666`` less the
process's umask for a new one (not the ``0o600`` of :func:`tempfile.mkstemp`).

Streams written as they are produced (an annotated MP4, JSON Lines of an online run) are the
exception: they are valid up to their last complete record or frame at every moment.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

__all__ = ["atomic_write", "current_umask", "save_image", "write_bytes", "write_text"]


def fsync_dir(folder: Path) -> None:
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


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], Any], durable: bool = True) -> None:
    """Write a file atomically: ``write(f)`` fills a temporary file that then replaces ``path``.

    If ``write`` raises (or the process dies), ``path`` keeps its previous content and the
    temporary file is removed (after a ``kill -9``, a hidden ``.<name>.*.tmp`` may remain beside
    it). ``durable``: ``fsync`` the file and the folder (see the module doc).
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
            if durable:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        fsync_dir(path.parent)


def write_bytes(path: str | Path, data: bytes, durable: bool = False) -> Path:
    """``data`` as the file ``path``, atomically (:func:`atomic_write`); returns ``path``."""
    atomic_write(path, lambda f: f.write(data), durable=durable)
    return Path(path)


def write_text(path: str | Path, text: str, encoding: str = "utf-8", durable: bool = False) -> Path:
    """``text`` as the file ``path`` in ``encoding``, atomically (:func:`atomic_write`); returns ``path``."""
    return write_bytes(path, text.encode(encoding), durable=durable)


def save_image(image: Any, path: str | Path, **params: Any) -> Path:
    """A PIL image (anything with ``save(file, format=..., **params)``) as the file ``path``,
    atomically, in the format of its suffix (``.jpg`` JPEG, ``.png`` PNG, ``.tiff`` TIFF ...)."""
    from PIL import Image

    path = Path(path)
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"{path}: no image format for the suffix {path.suffix!r}")
    atomic_write(path, lambda f: image.save(f, format=fmt, **params), durable=False)
    return path
