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
