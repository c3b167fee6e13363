"""The files of a ``predict`` folder, shared by the three families: an id per file that no other
file of the folder shares (:func:`unique_ids`), and the inputs that cannot be read, skipped with a
warning and listed at the end (:class:`SkippedInputs`).

A run that predicted some files of a folder and skipped others ends normally (its outputs
written, its JSON line printed), lists the skipped files in ``skipped.txt`` of its run folder
(the table training's ``bad=skip`` writes) and puts their number under :data:`SKIPPED_KEY` in its
result; the CLI then exits with :data:`EXIT_SKIPPED` (3), distinct from an error's 2. A folder
whose every file is unreadable ends with a :class:`~singleshot.errors.DataError`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from singleshot.data.check import Fault
from singleshot.errors import DataError
from singleshot.tasks.common import write_skipped

logger = logging.getLogger(__name__)

__all__ = ["EXIT_SKIPPED", "SKIPPED_KEY", "SkippedInputs", "unique_ids"]

#: Exit status of a run that finished but skipped some unreadable inputs (errors exit with 2).
EXIT_SKIPPED = 3
#: Result key: the number of inputs a run skipped (absent when none).
SKIPPED_KEY = "skipped_inputs"


def unique_ids(paths: Sequence[Path], ids: Sequence[str] | None = None, what: str = "image") -> list[str]:
    """An id per file of ``paths`` that no other file shares, letter case ignored (so that the
    pictures ``<id>.jpg`` written for them differ on any file system).

    ``ids[i]`` (default: ``paths[i].stem``) is kept when no other file has it. Of files that share
    one (``x.jpg`` and ``x.png``; ``a/x.tiff`` and ``b/x.tiff``), the first by path keeps it and
    the others, in path order, get the first free ``<id>_1``, ``<id>_2``, ... (each its own
    ``<id>``; free: no file's id, given or made, casefolded); each such resolution is logged as a
    warning. Deterministic: the
    same files give the same ids, whatever order they come in.

    Args:
        paths: the files, len N.
        ids: their natural ids, len N (default: the file stems).
        what: the kind of file, for the log line (``image``, ``video``).

    Returns:
        N ids, in the order of ``paths``.
    """
    natural = [p.stem for p in paths] if ids is None else list(ids)
    if len(natural) != len(paths):
        raise ValueError(f"unique_ids: {len(paths)} paths but {len(natural)} ids")
    groups: dict[str, list[int]] = {}
    for i, name in enumerate(natural):
        groups.setdefault(name.casefold(), []).append(i)
    taken = set(groups)
    out = list(natural)
    for key in sorted(groups):
        members = sorted(groups[key], key=lambda i: str(paths[i]))
        if len(members) < 2:
            continue
        n = 0
        for i in members[1:]:
            n += 1
            while f"{natural[i]}_{n}".casefold() in taken:
                n += 1
            out[i] = f"{natural[i]}_{n}"
            taken.add(out[i].casefold())
        logger.warning(
            "%d %s files share the id %r; they are named %s",
            len(members),
            what,
            natural[members[0]],
            ", ".join(f"{out[i]} ({paths[i]})" for i in members),
        )
    return out


class SkippedInputs:
    """The inputs of a ``predict`` folder that could not be read: each is logged as a warning when
    skipped (:meth:`add`), and at the end listed in the log and in ``skipped.txt`` (:meth:`report`).

    Args:
        source: the folder given as ``source=`` (for the messages).
        what: the kind of input (``image``, ``depth image``, ``video``).
    """

    def __init__(self, source: str | Path, what: str = "image") -> None:
        self.source = str(source)
        self.what = what
        self.faults: list[Fault] = []

    def __len__(self) -> int:
        return len(self.faults)

    def add(self, path: str | Path, error: BaseException, item: str = "") -> None:
        """Skip ``path`` (the input whose id is ``item``) because of ``error``, with a warning."""
        message = str(error)
        self.faults.append(Fault(str(path), f"unreadable {self.what}", message, item))
        logger.warning("skipped %s: %s", path, message)

    def require_some(self, done: int) -> None:
        """Raise when nothing of the folder could be used (``done`` inputs predicted, none read).

        Raises:
            DataError: naming the folder, the number of files and the first files' problems.
        """
        if done or not self.faults:
            return
        shown = "; ".join(f.message for f in self.faults[:3])
        more = f"; and {len(self.faults) - 3} more" if len(self.faults) > 3 else ""
        raise DataError(
            f"{self.source}: none of its {len(self.faults)} {self.what} file(s) could be read: {shown}{more}"
        )

    def report(self, out_dir: Path, result: dict[str, Any]) -> dict[str, Any]:
        """``result``, with ``skipped_inputs`` (their number) and ``skipped_list`` (the path of
        ``out_dir/skipped.txt``, written) added when inputs were skipped; the skipped files are logged."""
        if not self.faults:
            return result
        path = write_skipped(out_dir, self.faults)
        logger.warning(
            "%d of the %s files of %s were skipped (unreadable): %s",
            len(self.faults),
            self.what,
            self.source,
            ", ".join(f.file for f in self.faults),
        )
        return {**result, SKIPPED_KEY: len(self.faults), "skipped_list": str(path)}
