"""Shared test helpers: where the real sample data lives."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


@pytest.fixture()
def shared_data() -> Callable[..., Path]:
    """``shared_data("voc", "VOCdevkit")``: a path under ../shared/data, or skip the test (saying
    why) when that folder is absent, as on a user's machine."""

    def find(*parts: str) -> Path:
        path = SHARED_DATA.joinpath(*parts)
        if not path.exists():
            pytest.skip(f"real sample data not found: {path} (the ../shared/data folder is absent)")
        return path

    return find


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist every worker is a process of its own: one intra-op thread each, so that
    N workers on N cores do not oversubscribe them (OpenMP threads that busy-wait on a shared core
    made the small convolutions of these tests 10x slower or worse)."""
    import os

    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        torch.set_num_threads(1)
