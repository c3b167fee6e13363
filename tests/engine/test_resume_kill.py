"""Exact resume: a real training process killed with SIGKILL mid-epoch ends with the same weights.

The interrupted run is ``tiny_run.py`` in a subprocess that writes ``last.pt`` after every
optimizer step and sleeps a little after each, so the test can kill it right after a mid-epoch
checkpoint; the resumed run and the uninterrupted reference run in this process (``tiny_run.run``).
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch

from singleshot.engine.checkpoint import load_checkpoint
from singleshot.engine.hooks import Hook
from singleshot.engine.trainer import Trainer
from singleshot.errors import WeightsError

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "tiny_run.py"
REPO = HERE.parents[1]


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def epoch_means(path: Path) -> list[tuple[str, str]]:
    return [(r["epoch"], r["train/total"]) for r in csv.DictReader(open(path))]


def _mid_epoch_state(path: Path) -> dict[str, Any] | None:
    try:
        state = load_checkpoint(path)
    except WeightsError:  # not written yet
        return None
    return state if state["epoch"] >= 1 and state["sampler"]["batches"] > 0 else None


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="SIGKILL needs a POSIX system")
def test_sigkill_mid_epoch_then_resume_is_bit_exact(tiny_run_module: ModuleType, tmp_path: Path) -> None:
    tiny = tiny_run_module
    cut = tmp_path / "cut"
    args = [sys.executable, str(SCRIPT), "--out", str(cut), "--checkpoint-every", "1", "--ema", "0.9"]
    proc = subprocess.Popen([*args, "--sleep", "0.15"], env=env(), stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while _mid_epoch_state(cut / "last.pt") is None:
            assert proc.poll() is None, f"training ended before it could be killed:\n{proc.stderr.read()}"
            assert time.monotonic() < deadline, "no mid-epoch checkpoint appeared"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill() if proc.poll() is None else None
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    killed = load_checkpoint(cut / "last.pt")
    assert killed["epoch"] in (1, 2) and 0 < killed["sampler"]["batches"] < 9  # inside an epoch
    # the uninterrupted reference, in this process (same seed and settings)
    ref, ref_steps = tiny.run(tmp_path / "full", checkpoint_every=1, ema=0.9)
    assert 5 < killed["iteration"] < ref.iteration and killed["ema"]["updates"] == killed["iteration"]

    torch.manual_seed(99)  # resume restores every generator from the checkpoint
    resumed, steps = tiny.run(cut, checkpoint_every=1, ema=0.9, resume=True)
    assert resumed.iteration == ref.iteration == 15
    assert_same(resumed.model.state_dict(), ref.model.state_dict())
    assert_same(resumed.ema.module.state_dict(), ref.ema.module.state_dict())
    # the resumed run saw exactly the losses of the reference's remaining steps
    assert steps.losses == ref_steps.losses[killed["iteration"] :]
    assert epoch_means(cut / "results.csv") == epoch_means(tmp_path / "full" / "results.csv")


class Crash(Exception):
    pass


class CrashAt(Hook):
    """Raise after the optimizer step ``iteration`` (after its mid-epoch checkpoint)."""

    def __init__(self, iteration: int) -> None:
        self.iteration = iteration

    def after_step(self, trainer: Trainer) -> None:
        if trainer.iteration == self.iteration:
            raise Crash


@pytest.mark.parametrize(
    ("workers", "amp_dtype"), [(1, "auto"), (0, "float16")], ids=["worker-process", "float16-scaler"]
)
def test_mid_epoch_resume_with_workers_and_scaler(
    tiny_run_module: ModuleType, tmp_path: Path, workers: int, amp_dtype: str
) -> None:
    """In-process variant: a worker process reads the data, or float16 autocast with a gradient
    scaler (the CUDA recipe, here on CPU) whose state must survive the checkpoint."""
    tiny = tiny_run_module
    opts: dict[str, Any] = {"checkpoint_every": 2, "ema": 0.95, "amp": amp_dtype != "auto", "amp_dtype": amp_dtype}
    ref, _ = tiny.run(tmp_path / "full", workers=0, **opts)
    with pytest.raises(Crash):
        tiny.run(tmp_path / "cut", workers=workers, hooks=(CrashAt(8),), **opts)
    state = load_checkpoint(tmp_path / "cut" / "last.pt")
    assert state["iteration"] == 8 and state["sampler"]["batches"] == 6  # epoch 2: steps 6, 7, 8 of 2 batches
    if amp_dtype == "float16":
        assert state["scaler"]["scale"] > 0 and "_growth_tracker" in state["scaler"]
    torch.manual_seed(5)
    resumed, _ = tiny.run(tmp_path / "cut", workers=workers, resume=True, **opts)
    assert resumed.iteration == ref.iteration
    assert_same(resumed.model.state_dict(), ref.model.state_dict())
    assert_same(resumed.ema.module.state_dict(), ref.ema.module.state_dict())
    if amp_dtype == "float16":
        assert resumed.scaler is not None and resumed.scaler.state_dict() == ref.scaler.state_dict()
