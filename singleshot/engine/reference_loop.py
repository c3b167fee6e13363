"""What the engine does, written as one plain loop with no trainer (documentation and a test oracle).

With the same seed, model, data and settings, :func:`reference_train` leaves the same weights
(and EMA weights) as ``Trainer(...).train()`` with ``optimizer="sgd"``, with or without gradient
accumulation (either ``accumulate_mode``), mixed precision, clipping and EMA. Everything else the
trainer adds (checkpoints, resume, DDP, logs, plots, evaluation, hooks, the non-finite limit) is
bookkeeping around this loop.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from singleshot.engine.schedules import build_scheduler
from singleshot.engine.seed import seed_everything
from singleshot.engine.train_config import check_accumulate_mode


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
    clip_grad: float | None = None,
    amp_dtype: torch.dtype | None = None,
    ema_decay: float | None = None,
    accumulate: int = 1,
    accumulate_mode: str = "mean",
) -> tuple[nn.Module, nn.Module | None]:
    """Train ``model`` in place for ``epochs`` passes over ``loader``.

    Args:
        model: returns a dict of raw output tensors for ``inputs``.
        loss_fn: ``(outputs, targets) -> {name: scalar tensor}``; the total is their sum.
        loader: re-iterable batches with ``len()``.
        prepare_batch: ``(batch, device) -> (inputs, targets)`` on ``device``.
        epochs: passes over ``loader``.
        lr, momentum, weight_decay: plain SGD's settings.
        schedule: a schedule name of :mod:`singleshot.engine.schedules`, counted in optimizer steps.
        seed: seeds the data order and any dropout (after the model is built).
        device: where to train.
        clip_grad: max total gradient L2 norm (``None``: no clipping).
        amp_dtype: autocast dtype (``None``: float32); float16 also uses a gradient scaler.
        ema_decay: decay of an EMA of the weights (``None``: no EMA).
        accumulate: micro-batches per optimizer step (the last group of an epoch may be smaller).
        accumulate_mode: ``"mean"``: each micro-batch's loss is divided by ``accumulate`` and a
            smaller last group is rescaled to the mean over the micro-batches present; ``"sum"``:
            the gradients of the group's micro-batches are summed (YOWO), with no rescaling.

    Returns ``(model, ema_model)``, ``ema_model`` ``None`` without ``ema_decay``.
    """
    check_accumulate_mode(accumulate_mode)
    dev = torch.device(device)
    model.to(dev).train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    steps_per_epoch = -(-len(loader) // accumulate)  # ceil: a smaller last group still steps
    scheduler = build_scheduler(optimizer, schedule, total_iters=epochs * steps_per_epoch)
    scaler = torch.amp.GradScaler(dev.type) if amp_dtype == torch.float16 else None
    ema = copy.deepcopy(model).eval() if ema_decay is not None else None
    updates = 0

    def step() -> None:
        """Apply the accumulated gradients: one optimizer step, the schedule, the EMA."""
        nonlocal updates
        if scaler and clip_grad:
            scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
        if clip_grad:
            torch.nn.utils.clip_grad_norm_(params, clip_grad)
        if scaler:
            scaler.step(optimizer)  # skipped if the gradients overflowed; then the scale shrinks
            scaler.update()
        else:
            optimizer.step()
        scheduler.step()  # the learning rate for the next step
        optimizer.zero_grad(set_to_none=True)
        if ema is not None:  # the EMA moves toward the new weights, fast at first
            updates += 1
            decay = min(ema_decay, (1 + updates) / (10 + updates))
            with torch.no_grad():
                for e, m in zip(ema.state_dict().values(), model.state_dict().values()):
                    e.lerp_(m, 1 - decay) if e.dtype.is_floating_point else e.copy_(m)

    seed_everything(seed)  # after building the model: seeds the data order and any dropout
    for _ in range(epochs):
        micro = 0  # micro-batches whose gradients are accumulated and not yet applied
        for batch in loader:
            inputs, targets = prepare_batch(batch, dev)
            with torch.autocast(dev.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                losses = loss_fn(model(inputs), targets)  # {name: scalar tensor}
            total = sum(losses.values())
            if not torch.isfinite(total):  # skip: no backward; the group's gradients so far are dropped
                optimizer.zero_grad(set_to_none=True)
                micro = 0
                continue
            loss = total / accumulate if accumulate_mode == "mean" else total  # "sum": as YOWO, not divided
            (scaler.scale(loss) if scaler else loss).backward()
            micro += 1
            if micro == accumulate:
                step()
                micro = 0
        if micro > 0:  # a smaller last group steps too
            if micro != accumulate and accumulate_mode == "mean":  # the mean over the micro-batches present
                for p in params:
                    if p.grad is not None:
                        p.grad.mul_(accumulate / micro)
            step()
    return model, ema
