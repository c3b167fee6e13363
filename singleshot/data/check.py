"""One pass over a dataset that finds every fault at once: :class:`Fault`, :class:`CheckReport`,
:func:`run_checks` (parallel, with a progress bar) and :func:`cached_check` (a result reused while
the files are unchanged).

A format's checker (``voc``, ``coco``, ``yolo``, the action and grasp layouts) splits its dataset
into *units* (one annotation file, one image, one video), checks each with a function that returns
the faults it found, and builds a :class:`CheckReport`. Each fault names the file and its kind, and
the dataset *item* it makes unusable (an image id, a video, a grasp sample): training with
``bad=skip`` drops exactly those items. A fault with an empty ``item`` makes the whole dataset
unusable (an unreadable annotation file shared by every item, a missing folder).

A checker never raises for a fault in the data: an unexpected exception while checking one unit is
itself reported as a fault of that unit (kind ``unreadable``), so a check always ends with the
full table, never with a traceback.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TypeVar

from singleshot.atomic import atomic_write

logger = logging.getLogger(__name__)

__all__ = [
    "CHECK_CACHE_ENV",
    "CheckReport",
    "Fault",
    "cache_dir",
    "cached_check",
    "files_fingerprint",
    "format_faults",
    "run_checks",
]

U = TypeVar("U")

#: Environment variable naming the folder of cached check results (default: ``$XDG_CACHE_HOME``
#: or ``~/.cache``, then ``singleshot/checks``).
CHECK_CACHE_ENV = "SINGLESHOT_CACHE"


@dataclass(frozen=True)
class Fault:
    """One thing wrong in a dataset.

    Attributes:
        file: the file at fault (or the folder, for a missing file).
        kind: a short name of the fault, the table's grouping (``unreadable image``, ``box outside
            image``, ``malformed annotation``, ``missing frame``, ...).
        message: what is wrong, in one line.
        item: the dataset item the fault makes unusable (image id, video, sample); ``""``: the whole
            dataset.
    """

    file: str
    kind: str
    message: str
    item: str = ""


@dataclass
class CheckReport:
    """The outcome of checking one dataset.

    Attributes:
        dataset: what was checked (the ``data=`` path, with the split).
        n_items: the items (images, videos, samples) the dataset holds.
        faults: every fault found, in a stable order (by file, then kind).
        from_cache: True when the result was reused from an earlier check of unchanged files.
    """

    dataset: str
    n_items: int
    faults: list[Fault] = field(default_factory=list)
    from_cache: bool = False

    @property
    def ok(self) -> bool:
        return not self.faults

    @property
    def fatal(self) -> list[Fault]:
        """Faults that make the whole dataset unusable (no item to skip)."""
        return [f for f in self.faults if not f.item]

    @property
    def bad_items(self) -> set[str]:
        """The items with at least one fault."""
        return {f.item for f in self.faults if f.item}

    def summary(self) -> str:
        """One line: items, faults by kind, items affected."""
        if not self.faults:
            return f"{self.dataset}: {self.n_items} items, no faults"
        kinds = Counter(f.kind for f in self.faults)
        by_kind = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0])))
        whole = f"; {len(self.fatal)} make the whole dataset unusable" if self.fatal else ""
        return (
            f"{self.dataset}: {len(self.faults)} fault(s) in {len(self.bad_items)} of {self.n_items} items"
            f" ({by_kind}){whole}"
        )

    def table(self) -> str:
        """Every fault as an aligned table (file, kind, message), then the summary line."""
        return format_faults(self.faults) + "\n" + self.summary()

    def to_json(self) -> dict:
        return {"dataset": self.dataset, "n_items": self.n_items, "faults": [asdict(f) for f in self.faults]}

    @classmethod
    def from_json(cls, data: dict, from_cache: bool = False) -> CheckReport:
        faults = [Fault(**f) for f in data.get("faults", [])]
        return cls(str(data["dataset"]), int(data["n_items"]), faults, from_cache)


def format_faults(faults: Sequence[Fault]) -> str:
    """``faults`` as a table with a header: file | kind | item | message (widths fit the content,
    the file column at most 80 characters, cut from the left)."""
    if not faults:
        return "no faults"
    rows = [("file", "kind", "item", "message")]
    for f in faults:
        name = f.file if len(f.file) <= 80 else "..." + f.file[-77:]
        rows.append((name, f.kind, f.item or "(all)", f.message))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = [f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]}" for r in rows]
    lines.insert(1, "-" * min(160, sum(widths) + 6 + max(len(r[3]) for r in rows)))
    return "\n".join(lines)


def _safe(check: Callable[[U], list[Fault]], describe: Callable[[U], tuple[str, str]]) -> Callable[[U], list[Fault]]:
    def run(unit: U) -> list[Fault]:
        try:
            return list(check(unit))
        except Exception as e:  # a checker's own bug or an unforeseen fault: reported, never raised
            file, item = describe(unit)
            return [Fault(file, "unreadable", f"{type(e).__name__}: {e}", item)]

    return run


def run_checks(
    units: Sequence[U],
    check: Callable[[U], list[Fault]],
    describe: Callable[[U], tuple[str, str]],
    workers: int = 0,
    desc: str = "checking",
) -> list[Fault]:
    """``check`` applied to every unit in threads, with a progress bar; the faults of all units,
    sorted by file then kind.

    Args:
        units: what to check (annotation files, images, videos ...).
        check: ``unit -> faults``; an exception it raises becomes a fault of the unit.
        describe: ``unit -> (file, item)`` naming the unit in such a fault.
        workers: threads (0: ``min(8, cpu count)``); reading headers and parsing small files is
            I/O bound enough that threads give most of the speed without pickling anything.
        desc: the progress bar's label.
    """
    from tqdm import tqdm

    safe = _safe(check, describe)
    n = max(1, int(workers) or min(8, os.cpu_count() or 1))
    faults: list[Fault] = []
    with tqdm(total=len(units), desc=desc, unit="file", disable=None, leave=False) as bar:
        if n == 1 or len(units) < 2:
            for unit in units:
                faults += safe(unit)
                bar.update()
        else:
            with ThreadPoolExecutor(max_workers=n) as pool:
                for found in pool.map(safe, units):
                    faults += found
                    bar.update()
    return sorted(faults, key=lambda f: (f.file, f.kind, f.message))


def files_fingerprint(files: Iterable[str | Path], extra: str = "") -> str:
    """A hash of the files' paths, sizes and modification times (a missing file counts as such),
    plus ``extra`` (the checker's version and settings): equal exactly when nothing checked changed."""
    h = hashlib.sha256(extra.encode())
    for path in sorted(str(p) for p in files):
        try:
            st = os.stat(path)
            stamp = f"{st.st_size}:{st.st_mtime_ns}"
        except OSError:
            stamp = "missing"
        h.update(f"\0{path}\0{stamp}".encode())
    return h.hexdigest()


def cache_dir() -> Path:
    """Where check results are kept: ``$SINGLESHOT_CACHE/checks``, else
    ``$XDG_CACHE_HOME/singleshot/checks``, else ``~/.cache/singleshot/checks``. Never inside the data."""
    if os.environ.get(CHECK_CACHE_ENV):
        return Path(os.environ[CHECK_CACHE_ENV]) / "checks"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "singleshot" / "checks"


def cached_check(fingerprint: str, compute: Callable[[], CheckReport], use_cache: bool = True) -> CheckReport:
    """The report of ``compute()``, or the one stored under ``fingerprint`` by an earlier call
    (see :func:`files_fingerprint`); the reuse is logged. A cache that cannot be read or written
    is ignored (the check is run)."""
    path = cache_dir() / f"{fingerprint}.json"
    if use_cache and path.is_file():
        try:
            report = CheckReport.from_json(json.loads(path.read_text()), from_cache=True)
        except (OSError, ValueError, KeyError, TypeError):
            report = None
        if report is not None:
            logger.info("dataset check of %s: files unchanged since the check cached at %s", report.dataset, path)
            return report
    report = compute()
    if use_cache:
        try:
            text = json.dumps(report.to_json()).encode()
            atomic_write(path, lambda f: f.write(text))
        except OSError as e:
            logger.warning("dataset check: could not cache the result at %s (%s)", path, e)
    return report
