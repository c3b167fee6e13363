"""The Trainer: exact resume, accumulation, non-finite losses, logs/plots/best, reference loop."""

from __future__ import annotations

import csv
import logging
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from singleshot.engine.checkpoint import load_checkpoint
from singleshot.engine.reference_loop import reference_train
from singleshot.engine.trainer import Hook, TrainConfig, Trainer
from singleshot.errors import ConfigError, TrainingError


class Noisy(Dataset):
    """Fixed regression data with a random 'augmentation' drawn from NumPy and ``random``."""

    def __init__(self, n: int, augment: bool = True) -> None:
        g = torch.Generator().manual_seed(1)
        self.x = torch.randn(n, 4, generator=g)
        self.y = self.x @ torch.randn(4, 2, generator=g) + 0.1
        self.augment = augment

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        x = self.x[i]
        if self.augment:
            x = x + 0.05 * torch.from_numpy(np.random.randn(4)).float() + 0.01 * random.random()
        return x, self.y[i]


class Net(nn.Module):
    """Model contract: returns a dict of raw outputs."""

    def __init__(self, dropout: float = 0.2) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Dropout(dropout), nn.Linear(8, 2))

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        return {"pred": self.body(x)}


def loss_fn(out: dict[str, Tensor], y: Tensor) -> dict[str, Tensor]:
    return {"mse": nn.functional.mse_loss(out["pred"], y), "l1": 0.1 * nn.functional.l1_loss(out["pred"], y)}


def prepare(batch: Any, device: torch.device) -> tuple[Tensor, Tensor]:
    return batch[0].to(device), batch[1].to(device)


def make_net(seed: int = 0, dropout: float = 0.2) -> Net:
    torch.manual_seed(seed)
    return Net(dropout)


def assert_same_weights(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


class Kill(Exception):
    pass


class KillAfter(Hook):
    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def after_epoch(self, trainer: Trainer) -> None:
        if trainer.epoch == self.epoch:
            raise Kill


def test_resume_is_bit_exact(tmp_path: Path) -> None:
    def cfg(out: str, resume: bool = False) -> TrainConfig:
        return TrainConfig(
            epochs=4,
            lr=0.05,
            momentum=0.9,
            weight_decay=1e-4,
            schedule="cosine",
            warmup_iters=3,
            accumulate=2,
            clip_grad=5.0,
            out_dir=tmp_path / out,
            seed=3,
            resume=resume,
            plot_every=0,
        )

    def loader() -> DataLoader:
        return DataLoader(Noisy(22), batch_size=4, shuffle=True)  # 6 batches: 3 steps of 2 per epoch

    full = Trainer(make_net(), loss_fn, loader(), cfg("full"), prepare)
    full.train()

    with pytest.raises(Kill):
        Trainer(make_net(), loss_fn, loader(), cfg("cut"), prepare, hooks=[KillAfter(2)]).train()
    assert load_checkpoint(tmp_path / "cut" / "last.pt")["epoch"] == 2
    torch.manual_seed(999), np.random.seed(999), random.seed(999)  # a different process state
    resumed = Trainer(make_net(seed=7), loss_fn, loader(), cfg("cut", resume=True), prepare)
    resumed.train()

    assert resumed.iteration == full.iteration == 12
    assert_same_weights(full.model, resumed.model)
    assert torch.equal(
        full.optimizer.state_dict()["state"][0]["momentum_buffer"],
        resumed.optimizer.state_dict()["state"][0]["momentum_buffer"],
    )
    rows_full = list(csv.DictReader(open(tmp_path / "full" / "results.csv")))
    rows_cut = list(csv.DictReader(open(tmp_path / "cut" / "results.csv")))
    assert [r["epoch"] for r in rows_cut] == ["1", "2", "3", "4"]
    assert [r["train/total"] for r in rows_cut] == [r["train/total"] for r in rows_full]


def test_resume_needs_a_checkpoint(tmp_path: Path) -> None:
    cfg = TrainConfig(epochs=1, out_dir=tmp_path, resume=True)
    with pytest.raises(ConfigError, match="last.pt not found"):
        Trainer(make_net(), loss_fn, DataLoader(Noisy(8), batch_size=4), cfg, prepare).train()


@pytest.mark.parametrize("n", [32, 36])  # 36: the last group holds 2 micro-batches, not 4
def test_accumulation_matches_large_batch(tmp_path: Path, n: int) -> None:
    def run(batch: int, accumulate: int) -> Trainer:
        data = Noisy(n, augment=False)
        cfg = TrainConfig(
            epochs=2, lr=0.1, momentum=0.9, accumulate=accumulate, out_dir=tmp_path / f"a{accumulate}", plot_every=0
        )
        t = Trainer(make_net(dropout=0.0), loss_fn, DataLoader(data, batch_size=batch), cfg, prepare)
        t.train()
        return t

    small, large = run(2, 4), run(8, 1)
    assert small.iteration == large.iteration
    for (k, a), b in zip(small.model.state_dict().items(), large.model.state_dict().values()):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0, msg=k)
    assert not torch.equal(small.model.body[0].weight, make_net(dropout=0.0).body[0].weight)  # it did train


def nan_at(calls: set[int]) -> Callable[[dict[str, Tensor], Tensor], dict[str, Tensor]]:
    count = [0]

    def fn(out: dict[str, Tensor], y: Tensor) -> dict[str, Tensor]:
        losses = loss_fn(out, y)
        if count[0] in calls:
            losses["mse"] = losses["mse"] * float("nan")
        count[0] += 1
        return losses

    return fn


def test_nonfinite_loss_is_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    loader = DataLoader(Noisy(24), batch_size=4, shuffle=True)
    cfg = TrainConfig(epochs=2, lr=0.05, out_dir=tmp_path, seed=1, plot_every=0)
    with caplog.at_level(logging.WARNING, logger="singleshot.engine.trainer"):
        t = Trainer(make_net(), nan_at({3, 4}), loader, cfg, prepare)
        t.train()
    warnings = [r.getMessage() for r in caplog.records if "non-finite" in r.getMessage()]
    assert len(warnings) == 2
    assert "epoch 1, batch 3, iteration 3" in warnings[0] and "mse=nan" in warnings[0] and "l1=" in warnings[0]
    assert t.iteration == 12 - 2
    assert all(torch.isfinite(p).all() for p in t.model.parameters())
    # the reference loop skips the same steps and lands on the same weights
    ref, _ = reference_train(make_net(), nan_at({3, 4}), loader, prepare, epochs=2, lr=0.05, seed=1)
    assert_same_weights(ref, t.model)


def test_repeated_nonfinite_stops_with_intact_last(tmp_path: Path) -> None:
    loader = DataLoader(Noisy(16), batch_size=4)  # 4 batches per epoch
    cfg = TrainConfig(epochs=3, lr=0.05, out_dir=tmp_path, max_nonfinite=3, plot_every=0)
    t = Trainer(make_net(), nan_at(set(range(6, 100))), loader, cfg, prepare)
    with pytest.raises(TrainingError, match="3 consecutive non-finite losses.*epoch 3, batch 0"):
        t.train()
    state = load_checkpoint(tmp_path / "last.pt")
    assert state["epoch"] == 2 and state["iteration"] == 6
    assert_same_weights(t.model, _loaded(state))
    assert all(torch.isfinite(v).all() for v in state["model"].values())


def _loaded(state: dict[str, Any]) -> nn.Module:
    m = make_net(seed=5)
    m.load_state_dict(state["model"])
    return m


def test_logs_plot_and_best_checkpoint(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    scores = iter([0.5, 0.9, 0.7])

    def evaluate(model: nn.Module) -> dict[str, float]:
        assert not model.training and not torch.is_grad_enabled()
        return {"acc": next(scores), "err": 1.0}

    steps = 3  # 12 samples / batch 4
    cfg = TrainConfig(
        epochs=5,
        lr=0.2,
        optimizer="adamw",
        schedule="multistep",
        milestones=(2 * steps,),
        gamma=0.5,
        eval_every=2,
        out_dir=tmp_path,
        log_every=2,
        plot_every=5,
    )
    with caplog.at_level(logging.INFO, logger="singleshot.engine.logger"):
        t = Trainer(make_net(), loss_fn, DataLoader(Noisy(12), batch_size=4), cfg, prepare, evaluate, "acc")
        final = t.train()
    assert final == {"acc": 0.7, "err": 1.0}  # evaluated at epochs 2, 4 and the last (5)
    assert t.best_metric == 0.9
    assert load_checkpoint(tmp_path / "best.pt")["epoch"] == 4
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 5

    rows = list(csv.DictReader(open(tmp_path / "results.csv")))
    assert [r["epoch"] for r in rows] == ["1", "2", "3", "4", "5"]
    assert [r["metrics/acc"] for r in rows] == ["", "0.5", "", "0.9", "0.7"]
    # lr of each epoch's last step: 0.2 up to iteration 6, then 0.1
    assert [float(r["lr"]) for r in rows] == pytest.approx([0.2, 0.2, 0.1, 0.1, 0.1])
    for r in rows:
        assert float(r["train/total"]) == pytest.approx(float(r["train/mse"]) + float(r["train/l1"]), rel=1e-4)
    with Image.open(tmp_path / "results.png") as img:
        assert img.format == "PNG" and img.width > 200 and img.height > 100
    lines = [r.getMessage() for r in caplog.records]
    assert any("epoch 1/5 it 2/3" in m and "it/s" in m for m in lines)  # plain progress lines, not a bar


def test_reference_loop_and_trainer_agree(tmp_path: Path) -> None:
    def loader() -> DataLoader:
        return DataLoader(Noisy(20), batch_size=4, shuffle=True)

    cfg = TrainConfig(
        epochs=3, lr=0.05, momentum=0.9, weight_decay=1e-3, schedule="cosine", seed=11, out_dir=tmp_path, plot_every=0
    )
    t = Trainer(make_net(), loss_fn, loader(), cfg, prepare)
    t.train()
    ref, _ = reference_train(
        make_net(),
        loss_fn,
        loader(),
        prepare,
        epochs=3,
        lr=0.05,
        momentum=0.9,
        weight_decay=1e-3,
        schedule="cosine",
        seed=11,
    )
    assert_same_weights(ref, t.model)
    other, _ = reference_train(
        make_net(),
        loss_fn,
        loader(),
        prepare,
        epochs=3,
        lr=0.05,
        momentum=0.9,
        weight_decay=1e-3,
        schedule="cosine",
        seed=12,
    )
    assert not torch.equal(other.body[0].weight, ref.body[0].weight)  # the seed matters


def test_config_validation_names_the_key() -> None:
    with pytest.raises(ConfigError, match="accumulate"):
        TrainConfig(accumulate=0)
    with pytest.raises(ConfigError, match="optimizer.*'rmsprop'"):
        TrainConfig(optimizer="rmsprop")
    with pytest.raises(ConfigError, match="schedule"):
        TrainConfig(schedule="linear")


def test_progress_bar_on_request(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = TrainConfig(epochs=1, lr=0.01, out_dir=tmp_path, progress_bar=True, plot_every=0)
    Trainer(make_net(), loss_fn, DataLoader(Noisy(8), batch_size=4), cfg, prepare).train()
    err = capsys.readouterr().err
    assert "epoch 1/1" in err and "2/2" in err and "mse=" in err and "lr=" in err


def test_param_groups_keep_their_rates_under_the_schedule(tmp_path: Path) -> None:
    """Groups given to the Trainer are its optimizer's (the first group's lr is logged); the
    schedule scales each group's rate by the same factor."""
    net = make_net(dropout=0.0)
    first, last = net.body[0], net.body[3]
    groups = [
        {"params": list(last.parameters()), "lr": 0.1, "weight_decay": 0.0},
        {"params": list(first.parameters()), "lr": 0.025, "weight_decay": 1e-4},
    ]
    cfg = TrainConfig(
        epochs=2,
        lr=0.1,
        out_dir=tmp_path,
        schedule="multistep",
        milestones=(3,),
        gamma=0.5,
        plot_every=0,
        tensorboard=False,
    )
    t = Trainer(net, loss_fn, DataLoader(Noisy(12), batch_size=4), cfg, prepare, param_groups=groups)
    assert [g["lr"] for g in t.optimizer.param_groups] == [0.1, 0.025]
    assert [g["weight_decay"] for g in t.optimizer.param_groups] == [0.0, 1e-4]
    t.train()  # 6 steps: the rate halves after step 3
    assert [g["lr"] for g in t.optimizer.param_groups] == pytest.approx([0.05, 0.0125])
    untouched = make_net(dropout=0.0)
    assert not torch.equal(first.weight, untouched.body[0].weight)  # the second group trained too


def _sgd_by_hand(
    net: nn.Module, groups: list[list[tuple[Tensor, Tensor]]], lr: float, scales: list[float] | None = None
) -> dict[str, Tensor]:
    """The weights of ``net`` (left as it is) after plain SGD (no momentum, no weight decay).

    Args:
        net: the model at its starting weights.
        groups: one list of micro-batches ``(x, y)`` per optimizer step.
        lr: the learning rate.
        scales: a factor per step (None: 1): each step moves by ``lr * scale`` times the SUM of its
            group's gradients, computed with autograd at the weights of that step.
    """
    weights = {k: p.detach().clone() for k, p in net.named_parameters()}
    for group, scale in zip(groups, scales or [1.0] * len(groups)):
        total_grad = {k: torch.zeros_like(w) for k, w in weights.items()}
        for x, y in group:
            live = {k: w.clone().requires_grad_(True) for k, w in weights.items()}
            out = torch.func.functional_call(net, live, (x,))
            grads = torch.autograd.grad(sum(loss_fn(out, y).values()), list(live.values()))
            for k, g in zip(live, grads):
                total_grad[k] += g
        weights = {k: w - lr * scale * total_grad[k] for k, w in weights.items()}
    return weights


def _sgd_trainer(tmp_path: Path, n: int, accumulate: int, mode: str, name: str) -> Trainer:
    """One epoch of plain SGD over ``Noisy(n)`` in micro-batches of 2, in order, dropout off."""
    cfg = TrainConfig(
        epochs=1,
        lr=0.1,
        momentum=0.0,
        weight_decay=0.0,
        accumulate=accumulate,
        accumulate_mode=mode,
        out_dir=tmp_path / name,
        plot_every=0,
        tensorboard=False,
    )
    loader = DataLoader(Noisy(n, augment=False), batch_size=2)
    t = Trainer(make_net(dropout=0.0), loss_fn, loader, cfg, prepare)
    t.train()
    return t


def test_sum_mode_steps_by_the_sum_of_the_micro_batch_gradients(tmp_path: Path) -> None:
    """accumulate_mode="sum" (YOWO): one step of plain SGD moves the weights by lr times the SUM of
    the gradients of its micro-batches, k times the step of the default mean mode."""
    k = 3
    batches = list(DataLoader(Noisy(2 * k, augment=False), batch_size=2))  # k micro-batches: one step
    summed = _sgd_trainer(tmp_path, 2 * k, k, "sum", "sum")
    meaned = _sgd_trainer(tmp_path, 2 * k, k, "mean", "mean")
    assert summed.iteration == meaned.iteration == 1
    start = make_net(dropout=0.0)
    expected = _sgd_by_hand(start, [batches], lr=0.1)
    for key, w in summed.model.named_parameters():
        torch.testing.assert_close(w.detach(), expected[key], atol=1e-6, rtol=1e-5, msg=key)
    for (key, s), m, w0 in zip(summed.model.named_parameters(), meaned.model.parameters(), start.parameters()):
        assert not torch.equal(s, w0), key  # it did move
        torch.testing.assert_close((s - w0).detach(), k * (m - w0).detach(), atol=1e-6, rtol=1e-4, msg=key)


def test_sum_mode_does_not_rescale_the_last_smaller_group(tmp_path: Path) -> None:
    """5 micro-batches with accumulate=3: a step of 3 then one of the 2 left, each by the sum of its
    micro-batches' gradients (the mean mode would rescale the last one to the mean over 2)."""
    batches = list(DataLoader(Noisy(10, augment=False), batch_size=2))
    t = _sgd_trainer(tmp_path, 10, 3, "sum", "sum")
    assert t.iteration == 2
    expected = _sgd_by_hand(make_net(dropout=0.0), [batches[:3], batches[3:]], lr=0.1)
    for key, w in t.model.named_parameters():
        torch.testing.assert_close(w.detach(), expected[key], atol=1e-6, rtol=1e-5, msg=key)
    rescaled = _sgd_by_hand(make_net(dropout=0.0), [batches[:3], batches[3:]], lr=0.1, scales=[1.0, 3 / 2])
    assert not torch.allclose(t.model.body[0].weight, rescaled["body.0.weight"], atol=1e-4)  # no x 3/2 for 2 of 3


@pytest.mark.parametrize("mode", ["sum", "mean"])
def test_reference_loop_and_trainer_agree_with_accumulation(tmp_path: Path, mode: str) -> None:
    """6 micro-batches with accumulate=4 (a group of 4, then one of 2), momentum, weight decay,
    dropout and a cosine schedule: the plain loop and the trainer land on the same weights."""

    def loader() -> DataLoader:
        return DataLoader(Noisy(22), batch_size=4, shuffle=True)

    cfg = TrainConfig(
        epochs=3,
        lr=0.05,
        momentum=0.9,
        weight_decay=1e-3,
        schedule="cosine",
        accumulate=4,
        accumulate_mode=mode,
        seed=11,
        out_dir=tmp_path,
        plot_every=0,
    )
    t = Trainer(make_net(), loss_fn, loader(), cfg, prepare)
    t.train()
    assert t.iteration == 6
    kwargs: dict[str, Any] = {"epochs": 3, "lr": 0.05, "momentum": 0.9, "weight_decay": 1e-3, "schedule": "cosine"}
    ref, _ = reference_train(
        make_net(), loss_fn, loader(), prepare, seed=11, accumulate=4, accumulate_mode=mode, **kwargs
    )
    assert_same_weights(ref, t.model)
    other_mode = "mean" if mode == "sum" else "sum"
    other, _ = reference_train(
        make_net(), loss_fn, loader(), prepare, seed=11, accumulate=4, accumulate_mode=other_mode, **kwargs
    )
    assert not torch.equal(other.body[0].weight, ref.body[0].weight)  # the mode matters


def test_accumulate_mode_is_validated_and_passed_through() -> None:
    from singleshot.engine.train_config import EngineOptions, train_config_for

    assert TrainConfig().accumulate_mode == "mean" and EngineOptions().accumulate_mode == "mean"
    assert train_config_for(EngineOptions(accumulate_mode="sum"), 4, "out", "cpu").accumulate_mode == "sum"
    with pytest.raises(ConfigError, match="accumulate_mode.*'max'"):
        TrainConfig(accumulate_mode="max")
    with pytest.raises(ConfigError, match="accumulate_mode"):
        train_config_for(EngineOptions(accumulate_mode="Sum"), 4, "out", "cpu")
    with pytest.raises(ConfigError, match="accumulate_mode"):
        reference_train(make_net(), loss_fn, [], prepare, epochs=1, lr=0.1, accumulate_mode="total")
