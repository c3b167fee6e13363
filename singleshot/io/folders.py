"""Paths a mode writes under: a file where a folder must be (``project=`` naming a file, ``dst=``
inside one) is a one-line :class:`~singleshot.errors.ConfigError`, not ``NotADirectoryError``."""

from __future__ import annotations

from pathlib import Path

from singleshot.errors import ConfigError

__all__ = ["file_in_the_way", "require_folder_path"]


def file_in_the_way(folder: str | Path) -> Path | None:
    """The nearest of ``folder`` and its ancestors that exists (a dangling link counts) and is not a
    folder; None when the nearest existing one is a folder (so ``folder`` is, or can be made)."""
    folder = Path(folder)
    for path in (folder, *folder.parents):
        if path.is_dir():
            return None
        if path.exists() or path.is_symlink():
            return path
    return None


def require_folder_path(folder: str | Path, label: str) -> None:
    """Fail unless ``folder`` is a folder or can be made (no file in the way).

    Args:
        folder: the folder a mode writes into (or the parent of a file it writes).
        label: how the user named it, e.g. ``project=runs`` or ``dst=out/model.onnx``.

    Raises:
        ConfigError: naming ``label`` and the file in the way.
    """
    blocker = file_in_the_way(folder)
    if blocker is not None:
        raise ConfigError(
            f"{label}: {blocker} is a file, not a folder, so nothing can be written in it; "
            "name a folder (it is created when missing)"
        )
