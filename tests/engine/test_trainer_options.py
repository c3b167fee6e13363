"""Trainer options: mixed precision, EMA, early stopping, run files, TensorBoard, progress, channels-last."""

from __future__ import annotations

import logging
import sys
import types
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from singleshot.engine.checkpoint import load_checkpoint
from singleshot.engine.ema import ModelEMA, inference_state_dict
from singleshot.engine.reference_loop import reference_train
from singleshot.engine.tensorboard import TensorBoardLog
from singleshot.engine.trainer import TrainConfig, Trainer
from singleshot.errors import ConfigError


def data(n: int = 24) -> TensorDataset:
    g = torch.Generator().manual_seed(2)
    x = torch.randn(n, 5, generator=g)
    return TensorDataset(x, torch.sin(x @ torch.randn(5, 2, generator=g)))


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Linear(5, 12), nn.ReLU(), nn.Dropout(0.1), nn.Linear(12, 2))
        self.seen: list[torch.dtype] = []

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        out = self.body(x)
        self.seen.append(out.dtype)
        return {"pred": out}


def loss_fn(out: dict[str, Tensor], y: Tensor) -> dict[str, Tensor]:
    return {"mse": nn.functional.mse_loss(out["pred"].float(), y)}


def prepare(batch: Any, device: torch.device) -> tuple[Tensor, Tensor]:
    return batch[0].to(device), batch[1].to(device)


def loader() -> DataLoader:
    return DataLoader(data(), batch_size=4, shuffle=True)


def test_bfloat16_ema_and_clipping_match_the_reference_loop(tmp_path: Path) -> None:
    cfg = TrainConfig(
        epochs=3,
        lr=0.1,
        schedule="cosine",
        clip_grad=0.5,
        amp=True,
        ema_decay=0.9,
        seed=4,
        out_dir=tmp_path,
        plot_every=0,
    )
    t = Trainer(Net(), loss_fn, loader(), cfg, prepare)
    t.train()
    assert t.amp_dtype == torch.bfloat16 and t.scaler is None
    assert set(t.model.seen) == {torch.bfloat16}  # the forward really ran under bfloat16 autocast
    ref, ref_ema = reference_train(
        Net(),
        loss_fn,
        loader(),
        prepare,
        epochs=3,
        lr=0.1,
        schedule="cosine",
        seed=4,
        clip_grad=0.5,
        amp_dtype=torch.bfloat16,
        ema_decay=0.9,
    )
    assert ref_ema is not None
    for (k, a), b, e, f in zip(
        t.model.state_dict().items(),
        ref.state_dict().values(),
        t.ema.module.state_dict().values(),
        ref_ema.state_dict().values(),
    ):
        assert torch.equal(a, b) and torch.equal(e, f), k
    fp32, _ = reference_train(
        Net(), loss_fn, loader(), prepare, epochs=3, lr=0.1, schedule="cosine", seed=4, clip_grad=0.5
    )
    assert not torch.equal(fp32.body[0].weight, ref.body[0].weight)  # precision made a difference
    assert not torch.equal(t.ema.module.body[0].weight, t.model.body[0].weight)
    state = load_checkpoint(tmp_path / "last.pt")
    assert state["scaler"] is None and state["ema"]["updates"] == t.iteration == 18
    assert torch.equal(inference_state_dict(state)["body.0.weight"], t.ema.module.body[0].weight)
    assert torch.equal(inference_state_dict({**state, "ema": None})["body.0.weight"], t.model.body[0].weight)


def test_ema_follows_the_documented_rule() -> None:
    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    ema = ModelEMA(model, decay=0.8)
    expected = {k: v.clone().double() for k, v in model.state_dict().items()}
    for n in range(1, 5):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        model.train()(torch.randn(4, 3))  # moves the BatchNorm statistics and num_batches_tracked
        ema.update(model)
        d = min(0.8, (1 + n) / (10 + n))  # 0.18, 0.25, 0.31, 0.36, ... then 0.8
        for k, v in model.state_dict().items():
            expected[k] = d * expected[k] + (1 - d) * v.double() if v.dtype.is_floating_point else v.double()
    for k, v in ema.module.state_dict().items():
        torch.testing.assert_close(v.double(), expected[k], rtol=0, atol=1e-6, msg=k)
    assert int(ema.module[1].num_batches_tracked) == 4
    assert not any(p.requires_grad for p in ema.module.parameters())


class Scores:
    def __init__(self, values: list[float]) -> None:
        self.values = iter(values)

    def __call__(self, model: nn.Module) -> dict[str, float]:
        return {"ap": next(self.values)}


def test_early_stopping_run_files_and_final_plot(tmp_path: Path) -> None:
    cfg = TrainConfig(epochs=10, lr=0.05, patience=2, out_dir=tmp_path, plot_every=4)
    run_config = {"model": "net", "milestones": [1, 2], "lr": 0.05}
    t = Trainer(Net(), loss_fn, loader(), cfg, prepare, Scores([0.5, 0.7, 0.6, 0.7, 0.9]), "ap", run_config=run_config)
    t.train()
    assert t.epoch == 4 and t.should_stop and t.best_epoch == 2  # epochs 3 and 4 did not beat 0.7
    assert load_checkpoint(tmp_path / "best.pt")["epoch"] == 2
    assert load_checkpoint(tmp_path / "last.pt")["best_epoch"] == 2
    assert (tmp_path / "results.png").is_file()  # drawn at epoch 4 = plot_every
    assert yaml.safe_load((tmp_path / "config.yaml").read_text()) == run_config
    engine = yaml.safe_load((tmp_path / "engine.yaml").read_text())
    assert engine["train"]["patience"] == 2 and engine["world_size"] == 1
    with pytest.raises(ConfigError, match="patience"):
        Trainer(Net(), loss_fn, loader(), cfg, prepare)  # nothing to watch


def test_plot_every_zero_draws_nothing_and_stopping_draws_the_end(tmp_path: Path) -> None:
    cfg = TrainConfig(epochs=3, lr=0.05, out_dir=tmp_path / "a", plot_every=0)
    Trainer(Net(), loss_fn, loader(), cfg, prepare).train()
    assert not (tmp_path / "a" / "results.png").exists() and (tmp_path / "a" / "results.csv").is_file()
    cfg = TrainConfig(epochs=9, lr=0.05, out_dir=tmp_path / "b", plot_every=5, patience=1)
    t = Trainer(Net(), loss_fn, loader(), cfg, prepare, Scores([0.5, 0.4]), "ap")
    t.train()
    assert t.epoch == 2 and (tmp_path / "b" / "results.png").is_file()  # stopped before epoch 5: drawn at the end


def test_tensorboard_is_optional(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # as when tensorboard is not installed
    board = TensorBoardLog(tmp_path / "tb")
    assert not board.active
    board.log({"a": 1.0}, 1)
    board.close()
    cfg = TrainConfig(epochs=1, lr=0.05, out_dir=tmp_path / "run", plot_every=0, tensorboard=True)
    Trainer(Net(), loss_fn, loader(), cfg, prepare).train()
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [
        "config.yaml",
        "engine.yaml",
        "last.pt",
        "results.csv",
    ]
    # with a SummaryWriter available, every numeric column of each epoch's row becomes a scalar
    written: list[tuple[str, float, int]] = []

    class FakeWriter:
        def __init__(self, log_dir: str) -> None:
            self.log_dir = log_dir

        def add_scalar(self, key: str, value: float, step: int) -> None:
            written.append((key, value, step))

        def flush(self) -> None: ...

        def close(self) -> None: ...

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", types.SimpleNamespace(SummaryWriter=FakeWriter))
    cfg = TrainConfig(epochs=2, lr=0.05, out_dir=tmp_path / "tb_run", plot_every=0)
    Trainer(Net(), loss_fn, loader(), cfg, prepare, Scores([0.1, 0.2]), "ap").train()
    assert ("metrics/ap", 0.2, 2) in written and {k for k, _, s in written if s == 1} >= {"train/mse", "lr"}


def test_plain_progress_lines_show_throughput_and_eta(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cfg = TrainConfig(epochs=1, lr=0.05, out_dir=tmp_path, plot_every=0, log_every=2, progress_bar=False)
    with caplog.at_level(logging.INFO, logger="singleshot.engine.logger"):
        Trainer(Net(), loss_fn, loader(), cfg, prepare).train()
    lines = [r.getMessage() for r in caplog.records if "it 2/6" in r.getMessage()]
    assert lines and "img/s" in lines[0] and " eta " in lines[0] and "mse=" in lines[0]


class ConvNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.layouts: list[bool] = []

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        self.layouts.append(x.is_contiguous(memory_format=torch.channels_last))
        return {"pred": self.conv(x).mean(dim=(2, 3))}


def test_channels_last_option(tmp_path: Path) -> None:
    images = TensorDataset(torch.randn(8, 3, 6, 6), torch.randn(8, 4))
    cfg = TrainConfig(epochs=1, lr=0.05, out_dir=tmp_path, plot_every=0, channels_last=True)
    t = Trainer(ConvNet(), loss_fn, DataLoader(images, batch_size=4), cfg, prepare)
    t.train()
    assert t.model.layouts == [True, True]
    assert t.model.conv.weight.is_contiguous(memory_format=torch.channels_last)


def test_new_options_are_validated() -> None:
    with pytest.raises(ConfigError, match="amp_dtype.*'float8'"):
        TrainConfig(amp_dtype="float8")
    with pytest.raises(ConfigError, match="ema_decay"):
        TrainConfig(ema_decay=1.0)
    with pytest.raises(ConfigError, match="patience"):
        TrainConfig(patience=0)
    with pytest.raises(ConfigError, match="checkpoint_every"):
        TrainConfig(checkpoint_every=-1)


@pytest.mark.parametrize("accumulate", [1, 2])
def test_max_steps_stops_mid_epoch_and_evaluates_once(tmp_path: Path, accumulate: int) -> None:
    """``max_steps=4``: four optimizer steps (mid-epoch: an epoch has 6 batches, i.e. 6 or 3 steps),
    then one evaluation and the end, although ``epochs`` and ``eval_every`` ask for more; the
    schedule is still planned over all epochs."""
    calls: list[int] = []

    def evaluate(model: nn.Module) -> dict[str, float]:
        calls.append(1)
        return {"score": 1.0}

    cfg = TrainConfig(
        epochs=5, lr=0.1, eval_every=4, max_steps=4, accumulate=accumulate, out_dir=tmp_path, plot_every=0
    )
    t = Trainer(Net(), loss_fn, loader(), cfg, prepare, evaluate, "score")
    t.train()
    assert t.iteration == 4 and t.epoch == accumulate and len(calls) == 1
    assert t.total_iters == 5 * t.steps_per_epoch
    assert load_checkpoint(tmp_path / "last.pt")["iteration"] == 4
