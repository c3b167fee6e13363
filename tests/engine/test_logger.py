"""Progress lines of a training run: the first micro-batch, every ``log_every`` and every 30 s."""

from __future__ import annotations

import logging

import pytest

from singleshot.engine import logger as logger_module
from singleshot.engine.logger import Progress


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> FakeClock:
    """A clock the test advances by hand, read by the progress lines (and their log captured)."""
    fake = FakeClock()
    monkeypatch.setattr(logger_module.time, "perf_counter", fake)
    caplog.set_level(logging.INFO, logger=logger_module.__name__)
    return fake


def _lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == logger_module.__name__]


def test_first_iteration_then_every_30_seconds_even_with_a_large_log_every(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    progress = Progress(log_every=1000, use_bar=False)
    progress.start(1, 3, 100)
    for _ in range(10):  # 10 micro-batches of 12 s each: lines at it 1, then once 30 s have passed
        clock.now += 12.0
        progress.update({"loss": 1.0}, 0.01, images=2)
    lines = _lines(caplog)
    assert [line.split(" it ")[1].split("/")[0] for line in lines] == ["1", "4", "7", "10"]
    assert lines[0].startswith("epoch 1/3 it 1/100 loss=1")


def test_log_every_still_counts_and_a_quiet_fast_epoch_logs_only_its_first_batch(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    progress = Progress(log_every=5, use_bar=False)
    progress.start(2, 2, 12, initial=3)  # resumed after 3 batches: the first new one is it 4
    for _ in range(9):
        clock.now += 0.1
        progress.update({"loss": 0.5}, 0.01)
    assert [line.split(" it ")[1].split("/")[0] for line in _lines(caplog)] == ["4", "5", "10"]


def test_a_disabled_progress_says_nothing(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=logger_module.__name__)
    progress = Progress(log_every=1, use_bar=False, enabled=False)
    progress.start(1, 1, 3)
    progress.update({"loss": 1.0}, 0.1)
    assert _lines(caplog) == []
