"""Learning-rate schedules stepped once per optimizer step (iteration).

Every schedule is a multiplicative factor on the optimizer's base learning rate, applied through
``torch.optim.lr_scheduler.LambdaLR``. The factor at iteration ``i`` (0-based, counted in
optimizer steps, not micro-batches) is ``warmup(i) * main(i)``:

- ``warmup(i) = warmup_factor + (1 - warmup_factor) * i / warmup_iters`` for ``i < warmup_iters``,
  else 1 (linear warm-up, as in the SSD and torchvision detection recipes);
- ``main(i)`` by ``name``:
  ``"constant"``: 1;
  ``"multistep"``: ``gamma ** (number of milestones <= i)`` (SSD: gamma 0.1 at 80k and 100k;
  YOWO's "lr x 0.5 at given epochs" is gamma 0.5 with milestones = epoch x iterations per epoch);
  ``"cosine"``: ``min_factor + (1 - min_factor) * (1 + cos(pi * i / total_iters)) / 2``;
  ``"poly"``: ``min_factor + (1 - min_factor) * (1 - i / total_iters) ** power``.

The scheduler is resumable: ``scheduler.state_dict()`` holds only numbers (the factor function is
rebuilt from the same arguments), so ``torch.load(weights_only=True)`` reads it back.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Sequence

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

from singleshot.errors import ConfigError

__all__ = ["SCHEDULES", "build_scheduler", "lr_factor"]

SCHEDULES = ("multistep", "cosine", "poly", "constant")


def lr_factor(
    name: str,
    total_iters: int,
    warmup_iters: int = 0,
    warmup_factor: float = 0.001,
    milestones: Sequence[int] = (),
    gamma: float = 0.1,
    power: float = 0.9,
    min_factor: float = 0.0,
) -> Callable[[int], float]:
    """Return ``f(i) -> float``, the learning-rate multiplier at iteration ``i`` (see module doc).

    Raises :class:`ConfigError` naming the argument for an unknown ``name`` or invalid values.
    """
    if name not in SCHEDULES:
        raise ConfigError(f"schedule: unknown schedule {name!r}; expected one of {list(SCHEDULES)}")
    if total_iters < 1:
        raise ConfigError(f"total_iters: must be >= 1, got {total_iters}")
    if warmup_iters < 0:
        raise ConfigError(f"warmup_iters: must be >= 0, got {warmup_iters}")
    if not 0.0 <= warmup_factor <= 1.0:
        raise ConfigError(f"warmup_factor: must lie in [0, 1], got {warmup_factor}")
    ms = sorted(int(m) for m in milestones)
    if any(m < 0 for m in ms):
        raise ConfigError(f"milestones: must be >= 0 iterations, got {list(milestones)}")
    if name == "multistep" and not ms:
        raise ConfigError("milestones: the 'multistep' schedule needs at least one milestone")

    def main(i: int) -> float:
        if name == "multistep":
            return gamma ** bisect.bisect_right(ms, i)
        progress = min(max(i / total_iters, 0.0), 1.0)
        if name == "cosine":
            return min_factor + (1.0 - min_factor) * 0.5 * (1.0 + math.cos(math.pi * progress))
        if name == "poly":
            return min_factor + (1.0 - min_factor) * (1.0 - progress) ** power
        return 1.0

    def factor(i: int) -> float:
        warm = 1.0
        if i < warmup_iters:
            warm = warmup_factor + (1.0 - warmup_factor) * i / warmup_iters
        return warm * main(i)

    return factor


def build_scheduler(
    optimizer: Optimizer,
    name: str,
    total_iters: int,
    warmup_iters: int = 0,
    warmup_factor: float = 0.001,
    milestones: Sequence[int] = (),
    gamma: float = 0.1,
    power: float = 0.9,
    min_factor: float = 0.0,
) -> LambdaLR:
    """Build a per-iteration ``LambdaLR`` for ``optimizer``; call ``scheduler.step()`` after
    every ``optimizer.step()``. ``milestones`` and ``warmup_iters`` count optimizer steps."""
    fn = lr_factor(name, total_iters, warmup_iters, warmup_factor, milestones, gamma, power, min_factor)
    return LambdaLR(optimizer, lr_lambda=fn)
