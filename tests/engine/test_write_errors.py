"""A full disk while writing ``last.pt`` or weights: a TrainingError naming the file and "disk full
(No space left on device)", the previous file kept whole, no temporary left; the errors are the
ones torch really raises (its zip writer's ``[enforce fail at inline_container.cc]`` over the
``OSError``), made by a file object whose ``write`` fails as a full disk's does."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch

from singleshot.engine.checkpoint import load_checkpoint, save_checkpoint
from singleshot.engine.weights import load_weights, save_weights
from singleshot.engine.write_errors import write_error
from singleshot.errors import TrainingError


class _FullDisk:
    """A written file on a disk that fills after ``room`` bytes: ``write`` then fails with ENOSPC."""

    def __init__(self, f: Any, room: int) -> None:
        self._f, self._room = f, room

    def write(self, data: bytes) -> int:
        if len(data) > self._room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self._room -= len(data)
        return self._f.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._f, name)

    def __enter__(self) -> _FullDisk:
        return self

    def __exit__(self, *exc: object) -> None:
        self._f.close()


@pytest.fixture()
def full_disk(monkeypatch: pytest.MonkeyPatch):
    """``full_disk(room)``: from now on, files opened for an atomic write take ``room`` bytes."""
    real = os.fdopen

    def fill(room: int) -> None:
        monkeypatch.setattr(os, "fdopen", lambda fd, *a, **k: _FullDisk(real(fd, *a, **k), room))

    return fill


def _state(value: float) -> dict:
    return {"model": {"w": torch.full((64, 64), value)}, "epoch": 1}


@pytest.mark.parametrize("room", [10, 2000], ids=["OSError", "torch zip writer RuntimeError"])
def test_a_full_disk_while_saving_last_pt(tmp_path: Path, full_disk, room: int) -> None:
    path = tmp_path / "last.pt"
    save_checkpoint(path, _state(1.0))
    before = path.read_bytes()
    full_disk(room)
    with pytest.raises(TrainingError) as info:
        save_checkpoint(path, _state(2.0))
    message = str(info.value)
    assert message.startswith(f"{path}: not written: disk full (No space left on device)")
    assert "the previous last.pt is kept unchanged" in message and "resume=true" in message
    assert "\n" not in message and "inline_container" not in message
    if room > 10:  # torch's own error, kept as the cause
        assert "inline_container.cc" in str(info.value.__cause__)
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]
    assert float(load_checkpoint(path)["model"]["w"][0, 0]) == 1.0


def test_a_full_disk_while_saving_weights(tmp_path: Path, full_disk) -> None:
    path = tmp_path / "best.safetensors"
    full_disk(100)
    with pytest.raises(TrainingError, match=r"best\.safetensors: not written: disk full .*no partial file was left"):
        save_weights(path, {"w": torch.ones(64, 64)}, {"task": "detect"})
    assert list(tmp_path.iterdir()) == []
    full_disk(10**9)
    save_weights(path, {"w": torch.ones(64, 64)}, {"task": "detect"})
    full_disk(100)
    with pytest.raises(TrainingError, match="the previous best.safetensors is kept unchanged"):
        save_weights(path, {"w": torch.zeros(64, 64)}, {"task": "detect"})
    assert float(load_weights(path)[0]["w"][0, 0]) == 1.0


def test_the_trainer_stops_in_one_line_and_the_run_resumes(
    tmp_path: Path, full_disk, tiny_run_module: ModuleType
) -> None:
    run = tiny_run_module.run
    run(tmp_path, epochs=1, n=8, accumulate=1)
    before = (tmp_path / "last.pt").read_bytes()
    full_disk(1000)
    with pytest.raises(TrainingError, match=rf"{tmp_path / 'last.pt'}: not written: disk full \(No space left"):
        run(tmp_path, epochs=2, n=8, accumulate=1, resume=True)
    assert (tmp_path / "last.pt").read_bytes() == before
    full_disk(10**9)  # space freed: the run goes on from the checkpoint that was kept
    trainer, _ = run(tmp_path, epochs=2, n=8, accumulate=1, resume=True)
    assert trainer.epoch == 2


def test_other_errors_are_left_alone(tmp_path: Path) -> None:
    assert write_error(tmp_path / "x.pt", RuntimeError("a bug"), existed=False) is None
    assert write_error(tmp_path / "x.pt", OSError("no errno"), existed=False) is None
    quota = write_error(tmp_path / "x.pt", OSError(errno.EDQUOT, "Disk quota exceeded"), existed=False)
    assert quota is not None and "disk quota exceeded" in str(quota)
