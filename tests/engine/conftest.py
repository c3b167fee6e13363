"""Fixtures of the engine tests."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

TINY_RUN = Path(__file__).resolve().parent / "tiny_run.py"


@pytest.fixture()
def tiny_run_module() -> ModuleType:
    """``tiny_run.py`` (the tiny training script the kill/resume and torchrun tests launch) as a module."""
    spec = importlib.util.spec_from_file_location("tiny_run", TINY_RUN)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
