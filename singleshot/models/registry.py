"""The one table of model architectures, for every family.

A builder is registered where it is defined::

    @register_model("ssd300", task="detect", family="ssd")
    def ssd300(num_classes: int, priors: str = "voc") -> SSD: ...

and built by name, as timm's ``create_model``: ``create_model("ssd300", 21)``. Weights files name
their architecture in their metadata; :func:`model_from_meta` rebuilds it (without loading the
tensors). The table is filled when :mod:`singleshot.models` is imported (its ``__init__`` imports
every module that defines a builder).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from torch import nn

from singleshot.errors import ConfigError, WeightsError

__all__ = [
    "ModelEntry",
    "register_model",
    "create_model",
    "model_entry",
    "list_models",
    "model_from_meta",
    "check_weights_task",
]

Builder = TypeVar("Builder", bound=Callable[..., nn.Module])
MetaReader = Callable[[Mapping[str, Any]], dict[str, Any]]


def class_kwargs(meta: Mapping[str, Any]) -> dict[str, Any]:
    """Builder arguments of a detector's weights metadata: ``num_classes`` plus ``arch_kwargs``."""
    return {"num_classes": int(meta["num_classes"]), **dict(meta.get("arch_kwargs") or {})}


@dataclass(frozen=True)
class ModelEntry:
    """One registered architecture.

    Attributes:
        name: the name used on the command line and in weights metadata (``architecture``).
        builder: ``builder(*args, **kwargs) -> nn.Module`` whose ``forward`` returns a dict of raw outputs.
        task: the CLI task that trains it (``detect``, ``action``, ``grasp``).
        family: the model family inside the task (``ssd``, ``yowo``, ``act``, ``ggcnn``, ``psp``).
        from_meta: weights metadata -> builder keyword arguments (default :func:`class_kwargs`).
    """

    name: str
    builder: Callable[..., nn.Module]
    task: str
    family: str
    from_meta: MetaReader = field(default=class_kwargs)


_MODELS: dict[str, ModelEntry] = {}


def register_model(
    name: str, *, task: str, family: str, from_meta: MetaReader = class_kwargs
) -> Callable[[Builder], Builder]:
    """Decorator: add the decorated builder to the table under ``name`` (names are unique)."""

    def add(builder: Builder) -> Builder:
        if name in _MODELS and _MODELS[name].builder is not builder:
            raise ValueError(f"model name {name!r} registered twice")
        _MODELS[name] = ModelEntry(name, builder, task, family, from_meta)
        return builder

    return add


def model_entry(name: str, task: str | None = None) -> ModelEntry:
    """The entry registered as ``name``; with ``task``, it must be one of that task's models.

    Raises:
        ConfigError: no model of that name, or one of another task (the message lists the valid
            names: ``task``'s only when given).
    """
    entry = _MODELS.get(name)
    valid = ", ".join(list_models(task=task))
    if entry is None:
        raise ConfigError(f"unknown model {name!r}; valid names: {valid}")
    if task is not None and entry.task != task:
        raise ConfigError(
            f"model={name} is {'an' if entry.task[0] in 'aeiou' else 'a'} {entry.task} ({entry.family}) model; {task} models: {valid}"
        )
    return entry


def list_models(task: str | None = None, family: str | None = None) -> list[str]:
    """Registered names (sorted), optionally of one task and/or one family."""
    return sorted(
        e.name for e in _MODELS.values() if (task is None or e.task == task) and (family is None or e.family == family)
    )


def create_model(name: str, /, *args: Any, **kwargs: Any) -> nn.Module:
    """Build the model registered as ``name``; ``args``/``kwargs`` go to its builder
    (detectors: ``num_classes`` first, background excluded).

    Raises:
        ConfigError: ``name`` is unknown or the builder rejects the arguments.
    """
    builder = model_entry(name).builder
    try:
        return builder(*args, **kwargs)
    except TypeError as exc:
        raise ConfigError(f"model {name!r}: bad arguments {sorted(kwargs)}: {exc}") from exc


def check_weights_task(meta: Mapping[str, Any], task: str, source: str | Path = "") -> None:
    """Refuse weights of another task: their ``architecture`` is registered for another task, or
    their ``task`` metadata names another one.

    Raises:
        WeightsError: one line naming both families, e.g. ``x.safetensors holds action (act)
            weights; detect needs detect weights``.
    """
    arch = str(meta.get("architecture", ""))
    entry = _MODELS.get(arch)
    if entry is not None:
        other, family = entry.task, entry.family
    else:
        other, family = str(meta.get("task", task)), str(meta.get("family", "") or arch)
    if other != task:
        what = f"{other} ({family})" if family and family != other else other
        raise WeightsError(f"{source or 'the weights'} holds {what} weights; {task} needs {task} weights")


def model_from_meta(meta: Mapping[str, Any], task: str | None = None, source: str | Path = "") -> nn.Module:
    """Build the architecture described by weights metadata (without loading weights).

    Args:
        meta: weights metadata naming ``architecture`` (and what its entry's ``from_meta`` reads,
            e.g. ``num_classes`` and ``arch_kwargs``).
        task: when given, the weights must be of this task's architectures.
        source: the weights file, named in the errors.

    Raises:
        WeightsError: the metadata lacks a key, names an unknown architecture or one of another task.
    """
    where = f"{source}: " if str(source) else ""
    if task is not None:
        check_weights_task(meta, task, source)
    try:
        arch = str(meta["architecture"])
    except KeyError:
        raise WeightsError(f"{where}weights metadata lacks 'architecture'; it must name the model it holds") from None
    if arch not in _MODELS:
        raise WeightsError(
            f"{where}weights metadata: unknown architecture {arch!r}; valid names: {', '.join(sorted(_MODELS))}"
        )
    entry = _MODELS[arch]
    try:
        kwargs = entry.from_meta(meta)
    except KeyError as e:
        raise WeightsError(
            f"{where}weights metadata lacks {e}; it must name the architecture and num_classes"
        ) from None
    try:
        return entry.builder(**kwargs)
    except (TypeError, ConfigError) as exc:
        raise WeightsError(f"{where}weights metadata of {arch!r}: {exc}") from exc
