"""A tiny but real training run on the engine, for tests that need a separate process.

Not a test module: tests import :func:`run` in-process (the uninterrupted reference) and launch
this file as a script (a run killed with SIGKILL, a ``torchrun`` DDP run). Data: fixed random
regression samples with a random "augmentation" drawn from torch, NumPy and ``random``; model: a
two-layer MLP with dropout. Rank 0 saves ``final.pt`` (weights, EMA weights, per-step losses).
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from singleshot.engine.distributed import init_distributed, is_main_process
from singleshot.engine.hooks import Hook
from singleshot.engine.sampler import build_train_loader
from singleshot.engine.train_config import TrainConfig
from singleshot.engine.trainer import Trainer


class RandomData(Dataset):
    """``n`` fixed inputs x (Tensor[6]) and targets y (Tensor[3]); ``__getitem__`` adds noise."""

    def __init__(self, n: int) -> None:
        g = torch.Generator().manual_seed(1)
        self.x = torch.randn(n, 6, generator=g)
        self.y = torch.tanh(self.x @ torch.randn(6, 3, generator=g))

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        noise = 0.05 * torch.randn(6) + 0.02 * torch.from_numpy(np.random.randn(6)).float() + 0.01 * random.random()
        return self.x[i] + noise, self.y[i]


class TinyNet(nn.Module):
    def __init__(self, dropout: float) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(dropout), nn.Linear(16, 3))

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        return {"pred": self.body(x)}


def loss_fn(out: dict[str, Tensor], y: Tensor) -> dict[str, Tensor]:
    return {"mse": nn.functional.mse_loss(out["pred"], y), "l1": 0.1 * nn.functional.l1_loss(out["pred"], y)}


def prepare(batch: Any, device: torch.device) -> tuple[Tensor, Tensor]:
    return batch[0].to(device), batch[1].to(device)


def evaluate(model: nn.Module) -> dict[str, float]:
    data = RandomData(16)
    return {"score": -float(nn.functional.mse_loss(model(data.x)["pred"], data.y))}


class Record(Hook):
    """Keeps each step's losses (averaged over processes) and optionally sleeps after the step."""

    def __init__(self, sleep: float) -> None:
        self.sleep = sleep
        self.losses: list[float] = []

    def after_step(self, trainer: Trainer) -> None:
        self.losses.append(trainer.step_losses["total"])
        if self.sleep:
            time.sleep(self.sleep)


def run(
    out: str | Path,
    *,
    epochs: int = 3,
    batch: int = 4,
    n: int = 36,
    accumulate: int = 2,
    workers: int = 0,
    resume: bool = False,
    checkpoint_every: int = 0,
    dropout: float = 0.1,
    ema: float | None = None,
    amp: bool = False,
    amp_dtype: str = "auto",
    sleep: float = 0.0,
    seed: int = 3,
    hooks: tuple[Hook, ...] = (),
) -> tuple[Trainer, Record]:
    """Train and return the trainer and its step recorder (``batch`` is per process)."""
    device = init_distributed("cpu")
    torch.manual_seed(0)
    model = TinyNet(dropout)
    loader = build_train_loader(RandomData(n), batch, seed=seed, workers=workers)
    cfg = TrainConfig(
        epochs=epochs,
        lr=0.05,
        momentum=0.9,
        weight_decay=1e-4,
        schedule="cosine",
        warmup_iters=2,
        accumulate=accumulate,
        clip_grad=5.0,
        amp=amp,
        amp_dtype=amp_dtype,
        ema_decay=ema,
        out_dir=out,
        seed=seed,
        device=device,
        resume=resume,
        checkpoint_every=checkpoint_every,
        plot_every=0,
        log_every=1000,
    )
    record = Record(sleep)
    trainer = Trainer(model, loss_fn, loader, cfg, prepare, evaluate, "score", hooks=[record, *hooks])
    trainer.train()
    return trainer, record


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--accumulate", type=int, default=2)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--checkpoint-every", type=int, default=0)
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--ema", type=float, default=None)
    p.add_argument("--amp", action="store_true")
    p.add_argument("--amp-dtype", default="auto")
    p.add_argument("--sleep", type=float, default=0.0)
    a = p.parse_args()
    trainer, record = run(
        a.out,
        epochs=a.epochs,
        batch=a.batch,
        accumulate=a.accumulate,
        workers=a.workers,
        resume=a.resume,
        checkpoint_every=a.checkpoint_every,
        dropout=a.dropout,
        ema=a.ema,
        amp=a.amp,
        amp_dtype=a.amp_dtype,
        sleep=a.sleep,
    )
    if is_main_process():
        ema = trainer.ema.module.state_dict() if trainer.ema is not None else None
        torch.save(
            {"model": trainer.model.state_dict(), "ema": ema, "losses": record.losses, "iteration": trainer.iteration},
            Path(a.out) / "final.pt",
        )


if __name__ == "__main__":
    main()
