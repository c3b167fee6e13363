"""fit's outputs: epochs trained and best epoch apart, metrics.json from every run, and no folder
left by a run that fails before its first checkpoint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from torch import Tensor, nn

from singleshot.errors import DataError
from singleshot.tasks.common import fit

from .test_common import Options, mse, plan_for


def _falling_evaluation() -> Any:
    calls = {"n": 0}

    def evaluate(model: nn.Module) -> dict[str, float]:
        calls["n"] += 1
        return {"neg_mse": -float(calls["n"]), "count": 16.0}  # best at the first evaluation

    return evaluate


def test_result_and_metrics_json_give_epochs_trained_and_the_best_epoch(tmp_path: Path) -> None:
    cfg = Options(project=str(tmp_path), epochs=3)
    result = fit(cfg, lambda device, world: plan_for(cfg, evaluate=_falling_evaluation()))
    assert result is not None
    assert result["epochs"] == 3 and result["best_epoch"] == 1 and result["neg_mse"] == -1.0
    written = json.loads((tmp_path / "train" / "metrics.json").read_text())
    assert written == result


def test_a_run_failing_on_its_first_batch_leaves_no_folder(tmp_path: Path) -> None:
    def broken(outputs: dict[str, Tensor], targets: list[Any]) -> dict[str, Tensor]:
        raise DataError("bad batch")

    cfg = Options(project=str(tmp_path / "runs"), name="exp")
    with pytest.raises(DataError, match="bad batch"):
        fit(cfg, lambda device, world: plan_for(cfg, loss_fn=broken))
    assert list((tmp_path / "runs").iterdir()) == []
    # the number is not used up either: the next run takes `exp`, not `exp2`
    result = fit(cfg, lambda device, world: plan_for(cfg))
    assert result is not None and result["save_dir"] == str(tmp_path / "runs" / "exp")


def test_a_failure_after_a_checkpoint_or_in_a_folder_the_run_did_not_make_keeps_it(tmp_path: Path) -> None:
    calls = {"n": 0}

    def fails_in_epoch_two(outputs: dict[str, Tensor], targets: list[Any]) -> dict[str, Tensor]:
        calls["n"] += 1
        if calls["n"] > 4:  # 16 samples / batch 4: epoch 1 is 4 batches
            raise DataError("bad batch in epoch 2")
        return mse(outputs, targets)

    cfg = Options(project=str(tmp_path), name="kept")
    with pytest.raises(DataError):
        fit(cfg, lambda device, world: plan_for(cfg, loss_fn=fails_in_epoch_two))
    assert (tmp_path / "kept" / "last.pt").is_file()  # resume=true continues it
    assert not (tmp_path / "kept" / ".lock").exists()

    def broken(outputs: dict[str, Tensor], targets: list[Any]) -> dict[str, Tensor]:
        raise DataError("bad batch")

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("the user's own file")
    reuse = Options(project=str(tmp_path), name="mine", exist_ok=True)
    with pytest.raises(DataError):
        fit(reuse, lambda device, world: plan_for(reuse, loss_fn=broken))
    assert (mine / "notes.txt").read_text() == "the user's own file"
