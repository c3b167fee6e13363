"""Exponential moving average (EMA) of a model's weights.

After every optimizer step each floating-point entry ``e`` of the EMA's state dict moves toward
the model's ``m``: ``e <- e + (1 - d) * (m - e)`` (``torch.lerp``), with
``d = min(decay, (1 + n) / (10 + n))`` at the ``n``-th update (1-based), so the average follows
the fast-changing early weights closely and settles to ``decay`` later (the num_updates rule of
TensorFlow's ``ExponentialMovingAverage``). Integer buffers (BatchNorm's ``num_batches_tracked``)
are copied. Evaluation and deployable weights use the EMA when it is on.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

logger = logging.getLogger(__name__)

__all__ = ["ModelEMA", "ema_decay_at", "inference_state_dict"]


def ema_decay_at(decay: float, updates: int) -> float:
    """The decay used by the ``updates``-th update (1-based): ``min(decay, (1 + n) / (10 + n))``."""
    return min(decay, (1.0 + updates) / (10.0 + updates))


class ModelEMA:
    """An EMA copy of ``model`` (a deep copy in eval mode, without gradients).

    Args:
        model: the trained module (unwrapped from DDP).
        decay: the long-run decay in (0, 1), e.g. 0.9998.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.decay = float(decay)
        self.updates = 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the average one step toward ``model``'s current weights and buffers."""
        self.updates += 1
        d = ema_decay_at(self.decay, self.updates)
        current = model.state_dict()
        for name, ema in self.module.state_dict().items():
            value = current[name].detach()
            if ema.dtype.is_floating_point:
                ema.lerp_(value.to(ema.dtype), 1.0 - d)
            else:
                ema.copy_(value)

    def state_dict(self) -> dict[str, Any]:
        """``{"model": state dict, "updates": int, "decay": float}`` (weights-only loadable)."""
        return {"model": self.module.state_dict(), "updates": self.updates, "decay": self.decay}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a :meth:`state_dict`."""
        self.module.load_state_dict(state["model"])
        self.updates = int(state["updates"])


def inference_state_dict(checkpoint: Mapping[str, Any]) -> dict[str, Tensor]:
    """The weights to deploy from a trainer checkpoint: the EMA's when present, else the model's."""
    ema = checkpoint.get("ema")
    return dict(ema["model"]) if ema else dict(checkpoint["model"])
