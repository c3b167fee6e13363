"""Atomic checkpoint writes and weights-only loading."""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import stat
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from singleshot import atomic
from singleshot.atomic import atomic_write, current_umask
from singleshot.engine.checkpoint import load_checkpoint, save_checkpoint
from singleshot.engine.seed import get_rng_state, set_rng_state
from singleshot.engine.weights import save_weights
from singleshot.errors import WeightsError


def _state(value: float) -> dict:
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    model(torch.ones(1, 3)).sum().backward()
    opt.step()
    with torch.no_grad():
        model.weight.fill_(value)
    return {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "epoch": 3,
        "iteration": 12,
        "rng": get_rng_state(),
        "config": {"lr": 0.1, "milestones": [1, 2], "out_dir": "x"},
        "best_metric": None,
    }


def test_failed_write_leaves_old_file_intact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "last.pt"
    save_checkpoint(path, _state(1.0))
    before = path.read_bytes()

    real_save = torch.save

    def broken_save(obj: object, f: object, *args: object, **kwargs: object) -> None:
        f.write(b"PK\x03\x04 half a checkpoint")  # type: ignore[attr-defined]
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, _state(2.0))
    monkeypatch.setattr(torch, "save", real_save)

    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]  # temporary file removed
    loaded = load_checkpoint(path)
    assert torch.all(loaded["model"]["weight"] == 1.0)


def test_atomic_write_replaces_and_fsyncs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[1])
    path = tmp_path / "sub" / "f.bin"
    atomic_write(path, lambda f: f.write(b"one"))
    atomic_write(path, lambda f: f.write(b"two"))
    assert path.read_bytes() == b"two"
    assert len(synced) >= 4  # file and directory, twice


def test_checkpoint_round_trip_is_weights_only(tmp_path: Path) -> None:
    path = tmp_path / "c.pt"
    state = _state(0.5)
    save_checkpoint(path, state)
    # our own checkpoints must load with the strict unpickler
    raw = torch.load(path, weights_only=True)
    assert raw["epoch"] == 3 and raw["iteration"] == 12 and raw["config"]["milestones"] == [1, 2]
    assert raw["format_version"] == 1
    for k, v in state["model"].items():
        assert torch.equal(raw["model"][k], v)
    assert torch.equal(raw["optimizer"]["state"][0]["exp_avg"], state["optimizer"]["state"][0]["exp_avg"])


def test_rng_state_survives_checkpoint(tmp_path: Path) -> None:
    torch.manual_seed(1), np.random.seed(2), random.seed(3)
    np.random.randn()  # leave a cached gaussian in numpy's state
    random.gauss(0, 1)
    save_checkpoint(tmp_path / "r.pt", {"model": {}, "rng": get_rng_state()})
    expected = (torch.rand(5), np.random.randn(5), [random.gauss(0, 1) for _ in range(5)])
    torch.manual_seed(99), np.random.seed(99), random.seed(99)
    set_rng_state(load_checkpoint(tmp_path / "r.pt")["rng"])
    got = (torch.rand(5), np.random.randn(5), [random.gauss(0, 1) for _ in range(5)])
    assert torch.equal(expected[0], got[0])
    assert np.array_equal(expected[1], got[1])
    assert expected[2] == got[2]


def test_load_checkpoint_refuses_pickled_objects(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"model": {}, "args": argparse.Namespace(lr=0.1)}, path)
    with pytest.raises(WeightsError, match="evil.pt.*arbitrary code execution"):
        load_checkpoint(path)
    with pytest.raises(WeightsError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "trunc.pt").write_bytes(path.read_bytes()[:40])
    with pytest.raises(WeightsError, match="trunc.pt"):
        load_checkpoint(tmp_path / "trunc.pt")


@contextlib.contextmanager
def umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test_written_files_follow_the_umask(tmp_path: Path, mask: int) -> None:
    """Checkpoints, weights and any atomic write get ``0o666 & ~umask``, as ``open(path, "w")``
    gives, not mkstemp's 0o600."""
    with umask(mask):
        assert current_umask() == mask
        save_checkpoint(tmp_path / "last.pt", _state(1.0))
        save_weights(tmp_path / "best.safetensors", torch.nn.Linear(2, 1), {"architecture": "x"})
        atomic_write(tmp_path / "results.csv", lambda f: f.write(b"epoch\n"))
        (tmp_path / "plain.txt").write_text("reference")
    expected = 0o666 & ~mask
    assert _mode(tmp_path / "plain.txt") == expected
    for name in ("last.pt", "best.safetensors", "results.csv"):
        assert _mode(tmp_path / name) == expected, name
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 3


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_rewriting_keeps_the_files_own_mode_as_open_does(tmp_path: Path) -> None:
    path = tmp_path / "last.pt"
    with umask(0o022):
        save_checkpoint(path, _state(1.0))
        path.chmod(0o640)  # the user's choice for this file
        save_checkpoint(path, _state(2.0))
    assert _mode(path) == 0o640 and torch.all(load_checkpoint(path)["model"]["weight"] == 2.0)


def test_umask_without_proc_is_read_and_put_back(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_proc(*args: object, **kwargs: object) -> None:
        raise OSError("no /proc here")

    monkeypatch.setattr(atomic, "open", no_proc, raising=False)
    with umask(0o027):
        assert current_umask() == 0o027
        assert current_umask() == 0o027  # the fallback restored the mask it read
