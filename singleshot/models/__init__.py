"""Detection networks and the table of model builders.

``build_model(name, num_classes, **kw)`` looks ``name`` up in ``MODELS``; every builder takes
``num_classes`` (background excluded) first and returns a module whose ``forward`` gives a dict of
raw head outputs.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from singleshot.errors import ConfigError
from singleshot.models.act import act_slim, act_tiny, act_vgg16
from singleshot.models.small import ssd_slim
from singleshot.models.ssd import SSD, ssd300, ssd512
from singleshot.models.tiny import ssd_tiny
from singleshot.models.yowo import yowo, yowo_tiny

MODELS: dict[str, Callable[..., nn.Module]] = {
    "act_vgg16": act_vgg16,
    "act_tiny": act_tiny,
    "act_slim": act_slim,
    "ssd300": ssd300,
    "ssd512": ssd512,
    "ssd_slim": ssd_slim,
    "ssd_tiny": ssd_tiny,
    "yowo": yowo,
    "yowo_tiny": yowo_tiny,
}


def build_model(name: str, num_classes: int, **kwargs: object) -> nn.Module:
    """Build the model registered as ``name`` with ``num_classes`` classes (background excluded).

    Raises:
        ConfigError: ``name`` is not in ``MODELS`` or the builder rejects ``kwargs``.
    """
    try:
        builder = MODELS[name]
    except KeyError:
        raise ConfigError(f"unknown model {name!r}; valid names: {', '.join(sorted(MODELS))}") from None
    try:
        return builder(num_classes, **kwargs)
    except TypeError as exc:
        raise ConfigError(f"model {name!r}: bad arguments {sorted(kwargs)}: {exc}") from exc


__all__ = ["MODELS", "SSD", "build_model", "ssd300", "ssd512", "ssd_slim", "ssd_tiny"]
