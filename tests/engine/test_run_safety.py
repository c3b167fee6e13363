"""Runs that cannot go silently wrong: resume refuses changed models and data, warm-ups fit the run,
non-finite weights are never saved and an all-non-finite epoch stops the run."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from singleshot.engine.resume_check import check_resume_config, config_differences
from singleshot.engine.train_config import EngineOptions, TrainConfig, fit_warmup, train_config_for
from singleshot.engine.trainer import Trainer
from singleshot.engine.weights import load_weights, nonfinite_tensors, save_weights
from singleshot.errors import ConfigError, TrainingError, WeightsError


class Net(nn.Module):
    def __init__(self, width: int = 8) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(3, width), nn.ReLU(), nn.Linear(width, 1))

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        return {"y": self.body(x)}


def mse(out: dict[str, Tensor], y: Tensor) -> dict[str, Tensor]:
    return {"mse": nn.functional.mse_loss(out["y"], y)}


def nan_loss(out: dict[str, Tensor], y: Tensor) -> dict[str, Tensor]:
    return {"mse": nn.functional.mse_loss(out["y"], y) * float("nan")}


def prepare(batch: Any, device: torch.device) -> tuple[Tensor, Tensor]:
    return batch[0].to(device), batch[1].to(device)


def loader() -> DataLoader:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(16, 3, generator=g)
    return DataLoader(TensorDataset(x, x.sum(1, keepdim=True)), batch_size=4)


def trainer(out: Path, width: int = 8, run_config: dict[str, Any] | None = None, **cfg: Any) -> Trainer:
    torch.manual_seed(0)
    settings: dict[str, Any] = dict(epochs=1, lr=0.05, out_dir=out, plot_every=0, tensorboard=False)
    settings.update(cfg)
    return Trainer(Net(width), mse, loader(), TrainConfig(**settings), prepare, run_config=run_config)


# ---------------------------------------------------------------- resume
RUN = {"model": "net", "data": "a", "imgsz": 160, "epochs": 1, "lr": 0.05, "name": "r", "resume": False}


def test_resume_refuses_a_changed_model_input_or_data_and_lists_every_difference(tmp_path: Path) -> None:
    trainer(tmp_path, run_config=RUN).train()
    changed = dict(RUN, model="other", imgsz=192, data="b", epochs=2, resume=True)
    with pytest.raises(ConfigError, match=r"model: 'net' -> 'other'.*imgsz: 160 -> 192") as info:
        trainer(tmp_path, run_config=changed, epochs=2, resume=True).train()
    assert "data: 'a' -> 'b'" in str(info.value) and "epochs" not in str(info.value)
    assert "last.pt" in str(info.value)


def test_resume_extends_a_run_with_a_notice_and_warns_on_a_changed_recipe(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    trainer(tmp_path, run_config=RUN).train()
    more = dict(RUN, epochs=2, lr=0.01, resume=True)
    with caplog.at_level(logging.INFO):
        resumed = trainer(tmp_path, run_config=more, epochs=2, lr=0.01, resume=True)
        resumed.train()
    assert resumed.epoch == 2
    text = caplog.text
    assert "epochs: 1 -> 2" in text and "changed training recipe" in text and "lr: 0.05 -> 0.01" in text


def test_resume_reads_config_yaml_when_the_checkpoint_holds_no_run_config(tmp_path: Path) -> None:
    run = trainer(tmp_path, run_config=RUN)
    run.train()
    state = torch.load(tmp_path / "last.pt", weights_only=True)
    state.pop("run_config")
    torch.save(state, tmp_path / "last.pt")
    with pytest.raises(ConfigError, match="imgsz: 160 -> 192"):
        trainer(tmp_path, run_config=dict(RUN, imgsz=192, resume=True), resume=True).train()


def test_resume_of_another_model_is_a_weights_error_not_a_size_mismatch_traceback(tmp_path: Path) -> None:
    trainer(tmp_path).train()
    with pytest.raises(WeightsError, match=r"last\.pt does not fit this run's model"):
        trainer(tmp_path, width=5, resume=True).train()


def test_config_differences_compare_values_not_spellings() -> None:
    assert config_differences({"a": 1, "b": [1, 2], "c": "x"}, {"a": 1.0, "b": (1, 2), "c": "x", "d": 3}) == {}
    assert config_differences({"a": True}, {"a": 1}) == {"a": (True, 1)}
    check_resume_config({"epochs": 1, "workers": 2}, {"epochs": 3, "workers": 0}, "x/last.pt")  # no error


# ---------------------------------------------------------------- values and warm-up
def test_non_finite_learning_rates_are_refused() -> None:
    for bad in (float("nan"), float("inf")):
        with pytest.raises(ConfigError, match="lr: must be a finite number"):
            TrainConfig(lr=bad)
    with pytest.raises(ConfigError, match="clip_grad"):
        TrainConfig(clip_grad=float("nan"))


def test_a_warmup_longer_than_the_run_is_scaled_down_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        tcfg = train_config_for(EngineOptions(epochs=2, warmup=500), 8, tmp_path, "cpu")
    assert tcfg.warmup_iters == 4  # a quarter of the 16 steps
    assert "warmup=500" in caplog.text and "16 steps" in caplog.text and "4 steps" in caplog.text
    assert fit_warmup(10, 16) == 10 and fit_warmup(0, 16) == 0 and fit_warmup(16, 16) == 4


# ---------------------------------------------------------------- non-finite weights and losses
def test_save_weights_refuses_non_finite_tensors_and_names_them(tmp_path: Path) -> None:
    net = Net()
    with torch.no_grad():
        net.body[2].bias.fill_(float("nan"))
        net.body[0].weight[0, 0] = float("inf")
    assert nonfinite_tensors(net.state_dict()) == ["body.0.weight", "body.2.bias"]
    with pytest.raises(WeightsError, match=r"2 of 4 tensors: body\.0\.weight, body\.2\.bias"):
        save_weights(tmp_path / "w.safetensors", net, {})
    assert not (tmp_path / "w.safetensors").exists()
    save_weights(tmp_path / "ok.safetensors", Net(), {"a": 1})
    assert load_weights(tmp_path / "ok.safetensors")[1] == {"a": 1}


def test_an_epoch_without_a_finite_loss_stops_the_run(tmp_path: Path) -> None:
    torch.manual_seed(0)
    cfg = TrainConfig(epochs=3, lr=0.05, out_dir=tmp_path, plot_every=0, tensorboard=False, max_nonfinite=50)
    run = Trainer(Net(), nan_loss, loader(), cfg, prepare, evaluate=lambda m: {"score": 1.0}, metric_key="score")
    with pytest.raises(TrainingError, match="every loss of epoch 1 was non-finite"):
        run.train()
    assert not (tmp_path / "best.pt").exists()


def test_the_max_nonfinite_path_ends_in_a_training_error_without_best(tmp_path: Path) -> None:
    torch.manual_seed(0)
    cfg = TrainConfig(epochs=3, lr=0.05, out_dir=tmp_path, plot_every=0, tensorboard=False, max_nonfinite=2)
    run = Trainer(Net(), nan_loss, loader(), cfg, prepare, evaluate=lambda m: {"score": 1.0}, metric_key="score")
    with pytest.raises(TrainingError, match="2 consecutive non-finite losses"):
        run.train()
    assert (tmp_path / "last.pt").exists() and not (tmp_path / "best.pt").exists()


def test_non_finite_weights_are_never_kept_as_the_best(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    class Poisoned(Net):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("stat", torch.ones(1))

        def forward(self, x: Tensor) -> dict[str, Tensor]:
            if self.training:
                self.stat.fill_(float("nan"))  # a running statistic gone bad; the loss stays finite
            return super().forward(x)

    torch.manual_seed(0)
    cfg = TrainConfig(epochs=1, lr=0.05, out_dir=tmp_path, plot_every=0, tensorboard=False)
    run = Trainer(Poisoned(), mse, loader(), cfg, prepare, evaluate=lambda m: {"score": 1.0}, metric_key="score")
    with caplog.at_level(logging.WARNING):
        run.train()
    assert not (tmp_path / "best.pt").exists() and run.best_metric is None
    assert "is not kept as the best" in caplog.text and "stat" in caplog.text
