"""Shared helpers of the weight converters: the source's state dict (read by the one loader of
foreign ``.pth`` files, :func:`singleshot.engine.weights.load_foreign_pth`), key checks and strict
loading."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from singleshot.engine.weights import load_foreign_pth, unwrap_state_dict
from singleshot.errors import WeightsError

logger = logging.getLogger(__name__)

StateSource = str | Path | Mapping[str, Tensor]


@dataclass
class ConvertedWeights:
    """A state dict in singleshot's key layout plus what is needed to reproduce the source's predictions.

    Attributes:
        state_dict: tensors keyed as in the target singleshot model (``backbone.*``, ``head.*``).
        metadata: JSON-serialisable facts: architecture, classes, input size, channel order,
            mean/std (in 0..1 pixel units), post-processing thresholds and the source's name.
        origin: our key -> the source's key (for error messages).
        source: the file (or ``<state dict>``) the weights came from.
    """

    state_dict: dict[str, Tensor]
    metadata: dict[str, Any] = field(default_factory=dict)
    origin: dict[str, str] = field(default_factory=dict)
    source: str = "<state dict>"


def as_state_dict(source: StateSource) -> tuple[dict[str, Tensor], str]:
    """A tensor state dict from a path or a mapping, and a name for error messages.

    A path is read by :func:`singleshot.engine.weights.load_foreign_pth`
    (``torch.load(weights_only=True)``: nothing but tensors and plain data is unpickled); both forms
    go through :func:`singleshot.engine.weights.unwrap_state_dict` (wrapper dicts such as
    ``{"state_dict": ...}`` are descended and a ``module.`` prefix on every key is removed).

    Raises:
        WeightsError: the file is missing, unsafe or unreadable, or holds no tensor state dict.
    """
    if isinstance(source, (str, Path)):
        return load_foreign_pth(source), str(source)
    return unwrap_state_dict(source, "<state dict>"), "<state dict>"


def rename_keys(
    sd: Mapping[str, Tensor], map_key: Callable[[str], str | None], source: str, what: str
) -> tuple[dict[str, Tensor], dict[str, str]]:
    """Rename every key of ``sd`` with ``map_key``; a key it does not know is a WeightsError.

    Returns:
        (state dict in singleshot's keys, our key -> the source's key).
    """
    out: dict[str, Tensor] = {}
    origin: dict[str, str] = {}
    for key, value in sd.items():
        ours = map_key(key)
        if ours is None:
            raise WeightsError(f"{source}: key {key!r} is not part of {what}")
        out[ours] = value
        origin[ours] = key
    return out, origin


def require(sd: Mapping[str, Tensor], key: str, source: str, ndim: int | None = None) -> Tensor:
    """``sd[key]``, or a WeightsError naming the missing key (and a wrong number of dimensions)."""
    if key not in sd:
        raise WeightsError(f"{source}: missing key {key!r}")
    t = sd[key]
    if ndim is not None and t.dim() != ndim:
        raise WeightsError(f"{source}: {key!r} has shape {tuple(t.shape)}, expected {ndim} dimensions")
    return t


def load_strict(
    model: nn.Module, state_dict: Mapping[str, Tensor], source: str, origin: Mapping[str, str] | None = None
) -> None:
    """Check keys and shapes against ``model``, then ``model.load_state_dict(strict=True)``.

    Args:
        origin: our key -> the source's key, to name the source's key in errors.

    Raises:
        WeightsError: a key is missing or unexpected, or a shape differs (the message names the key).
    """
    origin = origin or {}
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    if missing:
        raise WeightsError(f"{source}: no weights for {len(missing)} model keys, first {missing[:5]}")
    unexpected = [origin.get(k, k) for k in state_dict if k not in expected]
    if unexpected:
        raise WeightsError(f"{source}: {len(unexpected)} keys the model does not have, first {unexpected[:5]}")
    for key, ref in expected.items():
        got = state_dict[key]
        if tuple(got.shape) != tuple(ref.shape):
            name = f"{origin[key]!r} (-> {key!r})" if key in origin else repr(key)
            raise WeightsError(f"{source}: {name} has shape {tuple(got.shape)}, the model expects {tuple(ref.shape)}")
    model.load_state_dict(dict(state_dict), strict=True)
