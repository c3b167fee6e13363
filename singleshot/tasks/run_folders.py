"""Where a mode writes: run folders (``project/name``, numbered, locked, removed when a failed call
left them empty), the refusal to write over an input, and the ``skipped.txt`` table."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from singleshot.atomic import write_text
from singleshot.data.check import Fault, format_faults
from singleshot.engine.train_config import EngineOptions
from singleshot.errors import ConfigError
from singleshot.io.folders import require_folder_path
from singleshot.io.runlock import RunLock, acquire_run_lock

logger = logging.getLogger(__name__)

__all__ = ["INPUT_KEYS", "refuse_dst_over_inputs", "refuse_overwrite", "run_dir", "run_folder", "write_skipped"]


def refuse_overwrite(
    writes: Mapping[str, str | Path | None], reads: Mapping[str, str | Path | None], *, folder: bool = False
) -> None:
    """Refuse to write over an input: each path of ``writes`` (label -> path, e.g. ``{"dst": ...}``)
    is compared with each existing path of ``reads`` (``{"weights": ...}``) after resolving links
    (``..``, symbolic links, hard links); empty values and inputs that do not exist (a URL, a camera
    index) are skipped. With ``folder``, the written paths are folders a mode writes into, and an
    input inside one of them (or the folder itself) is refused as well.

    Raises:
        ConfigError: naming both paths, before anything is written.
    """
    for out_key, out_value in writes.items():
        if not out_value:
            continue
        require_folder_path(out_value if folder else Path(out_value).parent, f"{out_key}={out_value}")
        out = Path(os.path.realpath(out_value))
        for in_key, in_value in reads.items():
            if not in_value or not os.path.exists(in_value):
                continue
            src = Path(os.path.realpath(in_value))
            same = src == out or (out.exists() and os.path.samefile(src, out))
            if folder and (same or out in src.parents):
                raise ConfigError(
                    f"{in_key}={in_value} lies in (or is) the output folder {out_value}, whose files would "
                    f"replace or mix with the inputs; choose another project=/name= or move the input"
                )
            if same:
                raise ConfigError(
                    f"{out_key}={out_value} is the same path as {in_key}={in_value}: writing it would destroy "
                    f"the input; choose another {out_key}="
                )


#: The keys of a configuration that name files or folders a mode reads (``dst=`` must be none of them).
INPUT_KEYS = ("src", "weights", "prototxt", "caffemodel", "kinetics", "darknet", "calib", "data", "gt", "pred")


def refuse_dst_over_inputs(cfg: Any) -> None:
    """:func:`refuse_overwrite` of ``cfg.dst`` against every input key of ``cfg`` (:data:`INPUT_KEYS`)."""
    reads = {k: getattr(cfg, k) for k in INPUT_KEYS if isinstance(getattr(cfg, k, None), (str, Path))}
    refuse_overwrite({"dst": getattr(cfg, "dst", None)}, reads)


def run_dir(cfg: EngineOptions, mode: str, *, resume: bool = False, create: bool = True) -> Path:
    """The run folder of ``mode`` (``train``, ``val``, ``predict``): ``project/name``, ``name``
    defaulting to ``mode``; created and logged.

    An existing ``project/name`` is never reused silently: the first of ``name2``, ``name3``, ...
    that does not exist is taken (each try is one ``mkdir``, so two runs started together never
    share a folder). ``exist_ok`` reuses ``project/name``; ``resume`` returns it as it is and fails
    unless it holds ``last.pt``. ``create=False`` (a dry run) names the folder without creating it.
    """
    base = Path(cfg.project) / (cfg.name or mode)
    require_folder_path(cfg.project, f"project={cfg.project}")
    if resume:
        if not (base / "last.pt").is_file():
            raise ConfigError(f"resume: {base / 'last.pt'} not found; nothing to resume (set resume=false to start)")
        out = base
    elif cfg.exist_ok:
        if base.exists() and not base.is_dir():
            raise ConfigError(f"project/name: {base} exists and is not a folder")
        out = base
        if create:
            base.mkdir(parents=True, exist_ok=True)
    else:
        out = _free_run_dir(base, create)
    if create:
        logger.info("%s: writing to %s", mode, out)
    return out


@contextlib.contextmanager
def run_folder(cfg: EngineOptions, mode: str, reads: Mapping[str, str | Path | None] | None = None) -> Iterator[Path]:
    """:func:`run_dir` of ``mode`` for the body of a ``with``: when the body fails and leaves the
    folder it was given empty, the folder is removed, so that a failed call (a missing ``source=``)
    neither leaves an empty folder nor uses up a number (with ``exist_ok`` the folder is kept).

    The folder is locked for the body (:func:`~singleshot.io.runlock.acquire_run_lock`: a second
    process on it fails naming this one's pid), and ``reads`` (label -> input path, e.g. the
    ``source=`` of ``predict``) must not lie in it (:func:`refuse_overwrite`)."""
    out = run_dir(cfg, mode)
    lock: RunLock | None = None
    try:
        refuse_overwrite({"run folder": out}, reads or {}, folder=True)
        lock = acquire_run_lock(out)
        yield out
    except BaseException:
        if lock is not None:
            lock.release()
        if not cfg.exist_ok:
            with contextlib.suppress(OSError):
                out.rmdir()  # only an empty folder goes
        raise
    finally:
        if lock is not None:
            lock.release()


def _free_run_dir(base: Path, create: bool) -> Path:
    """The first of ``base``, ``base2``, ``base3``, ... that does not exist (made when ``create``)."""
    if create:
        base.parent.mkdir(parents=True, exist_ok=True)
    n = 1
    while True:
        out = base if n == 1 else base.with_name(f"{base.name}{n}")
        if not create and not out.exists():
            return out
        if create:
            try:
                out.mkdir()
                return out
            except FileExistsError:  # taken (a folder or a file): try the next number
                pass
        n += 1


def write_skipped(folder: Path, faults: Sequence[Fault]) -> Path:
    """``folder/skipped.txt``: the table of the faults whose items a ``bad=skip`` run left out."""
    path = Path(folder) / "skipped.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, format_faults(list(faults)) + "\n")
    logger.info("the %d skipped item(s) are listed in %s", len({f.item for f in faults}), path)
    return path
