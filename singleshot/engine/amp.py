"""Mixed precision: which autocast dtype a run uses and whether it needs a gradient scaler.

``amp=true`` runs the forward pass and the loss under ``torch.autocast``: bfloat16 on CPU (no
scaler needed: bfloat16 has float32's exponent range) and float16 on CUDA with a
``torch.amp.GradScaler`` that multiplies the loss before ``backward`` so small gradients do not
flush to zero, unscales them before clipping, skips steps whose gradients overflowed and adapts
the scale. ``amp_dtype`` overrides the choice (float16 on CPU also gets a scaler). The scaler's
state is part of every checkpoint.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import torch

from singleshot.errors import ConfigError

logger = logging.getLogger(__name__)

__all__ = ["resolve_amp_dtype", "autocast", "make_scaler"]


def resolve_amp_dtype(amp: bool, amp_dtype: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype (``None`` when ``amp`` is off); ``"auto"``: bfloat16 on CPU, else float16."""
    if not amp:
        return None
    if amp_dtype == "auto":
        return torch.bfloat16 if device.type == "cpu" else torch.float16
    dtypes = {"bfloat16": torch.bfloat16, "float16": torch.float16}
    if amp_dtype not in dtypes:
        raise ConfigError(f"amp_dtype: unknown {amp_dtype!r}; expected auto, bfloat16 or float16")
    return dtypes[amp_dtype]


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager[Any]:
    """``torch.autocast`` for ``device``'s type with ``dtype``, or a no-op context for ``None``."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def make_scaler(device: torch.device, dtype: torch.dtype | None) -> torch.amp.GradScaler | None:
    """A gradient scaler for float16 autocast, ``None`` otherwise."""
    if dtype != torch.float16:
        return None
    return torch.amp.GradScaler(device.type)
