"""``results.png``: losses, learning rate and scores are drawn; counts logged beside the metrics
(``n_images``, grasp's ``n`` and ``n_success``) are kept in the CSV but not drawn."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from singleshot.engine.logger import CSVLog
from singleshot.engine.plots import is_count, plot_panels, plot_results


def test_counts_are_not_metrics() -> None:
    for name in ("metrics/n_images", "metrics/n", "metrics/n_success", "metrics/n_videos", "n_gt"):
        assert is_count(name), name
    for name in ("metrics/map50", "metrics/ci95_lo", "metrics/video_map@0.5", "metrics/nms_recall", "lr"):
        assert not is_count(name), name


def test_panels_leave_counts_out() -> None:
    columns = ["epoch", "lr", "time_s", "train/loc", "train/conf", "metrics/map50", "metrics/n_images"]
    assert plot_panels(columns) == [
        ("loss", ["train/loc", "train/conf"]),
        ("learning rate", ["lr"]),
        ("map50", ["metrics/map50"]),
    ]
    grasp = ["epoch", "metrics/success_rate", "metrics/n", "metrics/n_success", "metrics/ci95_lo"]
    assert [title for title, _ in plot_panels(grasp)] == ["success_rate", "ci95_lo"]
    assert plot_panels(["epoch", "metrics/n"]) == [("(no data)", [])]


def test_plot_results_draws_one_panel_per_score(tmp_path: Path) -> None:
    log = CSVLog(tmp_path / "results.csv")
    for epoch in (1, 2):
        log.append(
            {"epoch": epoch, "lr": 0.1, "train/total": 1.0 / epoch, "metrics/map50": 0.2 * epoch, "metrics/n_images": 6}
        )
    small = plot_results(log, tmp_path / "results.png")
    log.append({"epoch": 3, "lr": 0.1, "train/total": 0.3, "metrics/map50": 0.7, "metrics/map": 0.4})
    wide = plot_results(log, tmp_path / "wide.png")
    # three panels in one row, then four panels in two rows: the count added nothing
    assert Image.open(small).size == (1260, 320) and Image.open(wide).size == (1260, 640)
