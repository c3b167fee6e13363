"""What the engine does, written as one plain loop with no trainer (documentation and a test oracle).

With the same seed, model, data and settings, :func:`reference_train` leaves the same weights as
``Trainer(...).train()`` with ``optimizer="sgd"``, ``accumulate=1`` and no clipping. Everything
else the trainer adds (checkpoints, resume, logs, plots, evaluation, hooks, the non-finite limit)
is bookkeeping around this loop.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from singleshot.engine.schedules import build_scheduler
from singleshot.engine.seed import seed_everything


def reference_train(
    model: nn.Module,
    loss_fn: Callable[[dict[str, Tensor], Any], dict[str, Tensor]],
    loader: Any,
    prepare_batch: Callable[[Any, torch.device], tuple[Any, Any]],
    epochs: int,
    lr: float,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    schedule: str = "constant",
    seed: int = 0,
    device: str = "cpu",
) -> nn.Module:
    """Train ``model`` in place for ``epochs`` passes over ``loader``; returns it."""
    dev = torch.device(device)
    model.to(dev).train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    scheduler = build_scheduler(optimizer, schedule, total_iters=epochs * len(loader))
    seed_everything(seed)  # after building the model: seeds the data order and any dropout
    for _ in range(epochs):
        for batch in loader:
            inputs, targets = prepare_batch(batch, dev)
            losses = loss_fn(model(inputs), targets)  # {name: scalar tensor}
            total = sum(losses.values())
            if not torch.isfinite(total):  # skip the step: no backward, no update
                continue
            total.backward()
            optimizer.step()  # then the learning rate for the next step
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
    return model
