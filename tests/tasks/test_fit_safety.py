"""fit: resume keeps the run's model and data, and non-finite runs end non-zero without weights."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from singleshot.engine.checkpoint import load_checkpoint
from singleshot.engine.train_config import EngineOptions
from singleshot.errors import ConfigError, TrainingError
from singleshot.tasks.common import TrainingPlan, fit


@dataclass
class Options(EngineOptions):
    epochs: int = 1
    batch: int = 4
    lr: float = 0.05
    workers: int = 0
    checkpoint_every: int = 0
    plot_every: int = 0
    width: int = 8  # a model key


class Pairs(Dataset):
    def __init__(self) -> None:
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(16, 3, generator=g)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        return self.x[i], self.x[i].sum(0, keepdim=True)


def collate(batch: list[tuple[Tensor, Tensor]]) -> tuple[Tensor, Tensor]:
    return torch.stack([b[0] for b in batch]), torch.stack([b[1] for b in batch])


class Net(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(3, width), nn.ReLU(), nn.Linear(width, 1))

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        return {"y": self.body(x)}


def mse(out: dict[str, Tensor], y: Tensor) -> dict[str, Tensor]:
    return {"mse": nn.functional.mse_loss(out["y"], y)}


def plan(cfg: Options, model: nn.Module | None = None, **changes: Any) -> TrainingPlan:
    fields: dict[str, Any] = dict(
        model=model if model is not None else Net(cfg.width),
        loss_fn=mse,
        train_set=Pairs(),
        collate_fn=collate,
        evaluate=lambda m: {"score": 1.0},
        metric_key="score",
        meta={"architecture": "net"},
        prepare_batch=lambda batch, device: (batch[0].to(device), batch[1].to(device)),
    )
    fields.update(changes)
    return TrainingPlan(**fields)


def test_resume_with_a_changed_model_or_data_is_refused_and_leaves_the_run_alone(tmp_path: Path) -> None:
    first = Options(project=str(tmp_path), name="run", data="a")
    assert fit(first, lambda device, world: plan(first)) is not None
    before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "run").iterdir()}
    changed = Options(project=str(tmp_path), name="run", data="b", width=5, epochs=2, resume=True)
    with pytest.raises(ConfigError, match=r"data: 'a' -> 'b', .*width: 8 -> 5"):
        fit(changed, lambda device, world: plan(changed))
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "run").iterdir()} == before
    longer = Options(project=str(tmp_path), name="run", data="a", epochs=2, resume=True)
    result = fit(longer, lambda device, world: plan(longer))
    assert result is not None and load_checkpoint(tmp_path / "run" / "last.pt")["epoch"] == 2


def test_a_run_whose_loss_stays_non_finite_fails_without_best_weights(tmp_path: Path) -> None:
    cfg = Options(project=str(tmp_path), name="nan", epochs=1)  # 4 batches: fewer than max_nonfinite

    def nan_loss(out: dict[str, Tensor], y: Tensor) -> dict[str, Tensor]:
        return {"mse": mse(out, y)["mse"] * float("nan")}

    with pytest.raises(TrainingError, match="non-finite"):
        fit(cfg, lambda device, world: plan(cfg, loss_fn=nan_loss))
    assert not (tmp_path / "nan" / "best.safetensors").exists()


def test_non_finite_trained_weights_are_not_saved(tmp_path: Path) -> None:
    class Poisoned(Net):
        def __init__(self) -> None:
            super().__init__(8)
            self.register_buffer("stat", torch.ones(1))

        def forward(self, x: Tensor) -> dict[str, Tensor]:
            if self.training:
                self.stat.fill_(float("inf"))
            return super().forward(x)

    cfg = Options(project=str(tmp_path), name="inf")
    with pytest.raises(TrainingError, match=r"non-finite values in 1 tensors \(stat\); best\.safetensors is not"):
        fit(cfg, lambda device, world: plan(cfg, model=Poisoned()))
    assert not (tmp_path / "inf" / "best.safetensors").exists()


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"batch": 0}, "batch: must be >= 1, got 0"),
        ({"workers": -1}, "workers: must be >= 0"),
        ({"warmup_factor": 2.0}, r"warmup_factor: must lie in \[0, 1\]"),
        ({"ema": 1.5}, r"ema: must lie in \(0, 1\)"),
    ],
)
def test_values_out_of_range_are_refused_before_the_data_is_read(
    tmp_path: Path, changes: dict[str, Any], match: str
) -> None:
    cfg = Options(project=str(tmp_path), **changes)

    def build(device: str, world: int) -> TrainingPlan:
        raise AssertionError("the data was read")

    with pytest.raises(ConfigError, match=match):
        fit(cfg, build)
    assert not any(tmp_path.iterdir())
