"""``results.png``: loss curves, learning rate and metrics per epoch, redrawn after each epoch.

Drawing uses matplotlib's object-oriented API with an Agg canvas created inside
:func:`plot_results`; pyplot and the global backend are never touched, so importing this module
has no side effects and it works without a display and from any thread.
"""

from __future__ import annotations

import io
import logging
import math
from pathlib import Path

from singleshot.atomic import atomic_write
from singleshot.engine.logger import CSVLog

logger = logging.getLogger(__name__)

__all__ = ["is_count", "plot_panels", "plot_results"]


def is_count(column: str) -> bool:
    """Whether a results column holds a count rather than a score: its last ``/`` part is ``n`` or
    starts with ``n_`` (``metrics/n_images``, ``metrics/n``, ``metrics/n_success``). The CSV keeps
    counts; :func:`plot_results` does not draw them."""
    name = column.rsplit("/", 1)[-1]
    return name == "n" or name.startswith("n_")


def plot_panels(columns: list[str]) -> list[tuple[str, list[str]]]:
    """The panels drawn for a results table with ``columns``: ``(title, columns)`` for all
    ``train/*`` loss columns together, ``lr``, then one per ``metrics/*`` column that is not a
    count (:func:`is_count`)."""
    loss_cols = [c for c in columns if c.startswith("train/")]
    metric_cols = [c for c in columns if c.startswith("metrics/") and not is_count(c)]
    panels: list[tuple[str, list[str]]] = [("loss", loss_cols)] if loss_cols else []
    if "lr" in columns:
        panels.append(("learning rate", ["lr"]))
    panels += [(c.split("/", 1)[1], [c]) for c in metric_cols]
    return panels or [("(no data)", [])]


def plot_results(log: CSVLog | str | Path, out_path: str | Path) -> Path:
    """Draw the columns of a results CSV into a PNG at ``out_path`` (written atomically).

    Panels (:func:`plot_panels`): all ``train/*`` loss columns together, ``lr``, then one panel per
    ``metrics/*`` column that holds a score (counts such as ``n_images`` are not drawn). The x axis
    is the ``epoch`` column. Returns ``out_path``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    table = log if isinstance(log, CSVLog) else CSVLog(log)
    out_path = Path(out_path)
    epochs = table.column("epoch")
    panels = plot_panels(table.columns)

    ncols = min(3, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig = Figure(figsize=(4.2 * ncols, 3.2 * nrows), dpi=100)
    FigureCanvasAgg(fig)
    for idx, (title, cols) in enumerate(panels):
        ax = fig.add_subplot(nrows, ncols, idx + 1)
        for col in cols:
            pairs = [(x, y) for x, y in zip(epochs, table.column(col)) if math.isfinite(x) and math.isfinite(y)]
            if pairs:
                xs, ys = zip(*pairs)
                label = col.split("/", 1)[-1]
                ax.plot(xs, ys, marker="o", markersize=3, label=label)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(True, alpha=0.3)
        if len(cols) > 1:
            ax.legend(fontsize="small")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    data = buf.getvalue()
    atomic_write(out_path, lambda f: f.write(data))
    return out_path
