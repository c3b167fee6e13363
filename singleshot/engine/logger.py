"""What a person sees during training: the per-epoch CSV log and the progress display.

:class:`CSVLog` keeps ``results.csv`` with one row per epoch. Columns appear as they are first
seen (metrics exist only on evaluation epochs), so the whole file is rewritten atomically on each
append; it stays small (one row per epoch). Column names used by the trainer: ``epoch`` (1-based,
the number of completed epochs), ``lr``, ``time_s`` (epoch wall time), ``train/<term>`` (mean of
each loss term over the epoch's finite steps, plus ``train/total``) and ``metrics/<name>``.

:class:`Progress` shows a tqdm bar per epoch (losses, lr, images/s, it/s, ETA) when stderr is a
terminal, and otherwise logs a plain line every ``log_every`` iterations and at the end of each
epoch, so CI logs stay readable.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from singleshot.atomic import atomic_write

logger = logging.getLogger(__name__)

__all__ = ["CSVLog", "Progress", "format_value", "num_images", "write_yaml_files"]


def format_value(value: Any) -> str:
    """CSV text for a value: floats with 6 significant digits, the rest with ``str``."""
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.6g}"
    return str(value)


def write_yaml_files(folder: str | Path, files: Mapping[str, Any]) -> None:
    """Write each ``{file name: plain data}`` as YAML into ``folder`` (atomically, keys in order)."""
    for name, content in files.items():
        text = yaml.safe_dump(content, sort_keys=False).encode("utf-8")
        atomic_write(Path(folder) / name, lambda f, t=text: f.write(t))


def num_images(inputs: Any) -> int:
    """Batch size of a model input, for throughput: a tensor's first dimension, a list's length,
    the first tensor of a dict (0 when unknown)."""
    if hasattr(inputs, "shape") and hasattr(inputs, "dim"):
        return int(inputs.shape[0]) if inputs.dim() else 1
    if isinstance(inputs, Mapping):
        return next((num_images(v) for v in inputs.values() if hasattr(v, "shape")), 0)
    return len(inputs) if isinstance(inputs, (list, tuple)) else 0


class CSVLog:
    """An append-only table of per-epoch rows backed by a CSV file.

    Existing rows are read on construction so a resumed run keeps its history;
    :meth:`truncate` drops rows of epochs the resumed checkpoint does not include.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.columns: list[str] = []
        self.rows: list[dict[str, str]] = []
        if self.path.is_file():
            with self.path.open(newline="") as f:
                reader = csv.DictReader(f)
                self.columns = list(reader.fieldnames or [])
                self.rows = [{k: v for k, v in r.items() if k is not None and v not in (None, "")} for r in reader]

    def truncate(self, last_epoch: int) -> None:
        """Keep only rows whose ``epoch`` is ``<= last_epoch`` and rewrite the file."""
        kept = [r for r in self.rows if _as_int(r.get("epoch")) <= last_epoch]
        if len(kept) != len(self.rows):
            logger.info("%s: dropping %d row(s) after epoch %d", self.path, len(self.rows) - len(kept), last_epoch)
            self.rows = kept
            self._write()

    def append(self, row: Mapping[str, Any]) -> None:
        """Add a row (values formatted by :func:`format_value`) and rewrite the file atomically."""
        text_row = {str(k): format_value(v) for k, v in row.items()}
        for key in text_row:
            if key not in self.columns:
                self.columns.append(key)
        self.rows.append(text_row)
        self._write()

    def column(self, name: str) -> list[float]:
        """Values of one column as floats (``nan`` where a row lacks it)."""
        return [_as_float(r.get(name)) for r in self.rows]

    def _write(self) -> None:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=self.columns, restval="", lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        data = buf.getvalue().encode("utf-8")
        atomic_write(self.path, lambda f: f.write(data))


def _as_float(text: str | None) -> float:
    try:
        return float(text) if text not in (None, "") else math.nan
    except ValueError:
        return math.nan


def _as_int(text: str | None) -> int:
    value = _as_float(text)
    return int(value) if math.isfinite(value) else 0


class Progress:
    """Per-epoch progress: tqdm bar on a terminal, plain log lines otherwise, nothing when disabled.

    Plain lines are written for the first micro-batch of each epoch, every ``log_every`` of them and,
    whatever ``log_every`` is, whenever ``heartbeat_s`` seconds (30) have passed since the last line,
    so a slow run (a full-size model on a CPU) is never silent for long.

    The bar's postfix holds the loss terms, the learning rate and the throughput in images per
    second (over all processes when the caller counts them so); tqdm adds it/s and the ETA. Call
    :meth:`start` at the beginning of an epoch, :meth:`update` after each micro-batch and
    :meth:`close` at its end. ``enabled=False`` (processes other than rank 0) shows nothing.
    """

    def __init__(
        self, log_every: int = 50, use_bar: bool | None = None, enabled: bool = True, heartbeat_s: float = 30.0
    ) -> None:
        self.log_every = max(1, int(log_every))
        self.heartbeat_s = float(heartbeat_s)
        self._last_line = 0.0
        self.use_bar = sys.stderr.isatty() if use_bar is None else use_bar
        self.enabled = enabled
        self._bar: Any = None
        self._epoch = 0
        self._epochs = 0
        self._total = 0
        self._count = 0
        self._initial = 0
        self._images = 0
        self._t0 = 0.0

    def start(self, epoch: int, epochs: int, total: int | None, initial: int = 0) -> None:
        """Begin epoch ``epoch`` (1-based) of ``epochs`` with ``total`` batches (None if unknown),
        ``initial`` of them already done (a run resumed mid-epoch)."""
        self._epoch, self._epochs, self._total = epoch, epochs, total or 0
        self._count, self._initial, self._images = initial, initial, 0
        self._t0 = self._last_line = time.perf_counter()
        if self.use_bar and self.enabled:
            from tqdm import tqdm

            self._bar = tqdm(
                total=total, initial=initial, desc=f"epoch {epoch}/{epochs}", unit="it", dynamic_ncols=True, leave=True
            )

    def images_per_second(self) -> float:
        """Images counted by :meth:`update` since :meth:`start`, per second of wall time."""
        return self._images / max(time.perf_counter() - self._t0, 1e-9)

    def update(self, losses: Mapping[str, float], lr: float, images: int = 0) -> None:
        """Record one finished micro-batch: its loss terms, the current learning rate and its
        number of images."""
        self._count += 1
        self._images += int(images)
        if not self.enabled:
            return
        if self._bar is not None:
            post = {**{k: f"{v:.4g}" for k, v in losses.items()}, "lr": f"{lr:.3g}"}
            if self._images:
                post["img/s"] = f"{self.images_per_second():.1f}"
            self._bar.set_postfix(post, refresh=False)
            self._bar.update(1)
        else:
            now = time.perf_counter()
            first = self._count == self._initial + 1
            if first or self._count % self.log_every == 0 or now - self._last_line >= self.heartbeat_s:
                self._last_line = now
                logger.info("%s", self._line(losses, lr))

    def close(self, losses: Mapping[str, float], lr: float) -> None:
        """End the epoch; ``losses`` are the epoch means shown in the final line."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self.enabled:
            logger.info("%s (epoch done)", self._line(losses, lr))

    def _line(self, losses: Mapping[str, float], lr: float) -> str:
        elapsed = max(time.perf_counter() - self._t0, 1e-9)
        done = self._count - self._initial
        rate = done / elapsed
        total = f"/{self._total}" if self._total else ""
        eta = ""
        if self._total and done:
            eta = f" eta {max(self._total - self._count, 0) / rate:.0f}s"
        terms = " ".join(f"{k}={v:.4g}" for k, v in losses.items())
        imgs = f" {self._images / elapsed:.1f} img/s" if self._images else ""
        return (
            f"epoch {self._epoch}/{self._epochs} it {self._count}{total} {terms} lr={lr:.3g} {rate:.2f} it/s{imgs}{eta}"
        )
