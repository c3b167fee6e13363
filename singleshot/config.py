"""Typed configuration from YAML files and ``key=value`` overrides.

A config is a dataclass. :func:`build_config` starts from its defaults, applies a YAML file's
mapping, then the command line's ``key=value`` pairs, converting each value to the field's type.
Unknown keys fail with a "did you mean" suggestion; nothing is silently ignored.
"""

from __future__ import annotations

import dataclasses
import difflib
import keyword
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from singleshot.errors import ConfigError

T = TypeVar("T")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def parse_overrides(args: list[str]) -> dict[str, str]:
    """``["epochs=3", "model=ssd300"]`` -> ``{"epochs": "3", "model": "ssd300"}``."""
    out: dict[str, str] = {}
    for arg in args:
        key, sep, value = arg.partition("=")
        if not sep or not key:
            raise ConfigError(f"argument {arg!r} is not of the form key=value")
        out[key.strip()] = value.strip()
    return out


def _convert(value: Any, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null", "")):
            if type(None) in args:
                return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, key)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError("; ".join(errors))
    if origin in (list, tuple):
        items = value
        if isinstance(value, str):
            items = [v for v in value.strip("[]()").split(",") if v.strip()]
        if not isinstance(items, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        inner = args[0] if args else str
        conv = [_convert(v.strip() if isinstance(v, str) else v, inner, key) for v in items]
        return conv if origin is list else tuple(conv)
    if tp is bool:
        if isinstance(value, bool):
            return value
        text = str(value).lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if tp in (int, float):
        try:
            number = float(value) if tp is float else int(str(value), 0) if isinstance(value, str) else int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key}: expected {tp.__name__}, got {value!r}") from None
        return number
    if tp is str:
        return str(value)
    if tp is Path:
        return Path(str(value))
    return value


def load_yaml_mapping(path: str | Path) -> dict[str, Any]:
    """The ``key: value`` mapping of a YAML config file (an empty file is an empty mapping).

    Raises:
        ConfigError: naming the file when it cannot be read or parsed or holds no mapping.
    """
    path = Path(path)
    try:
        loaded = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"{path}: cannot read the YAML config: {e}") from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: a config file must hold a mapping of key: value")
    return loaded


def build_config(cls: type[T], yaml_path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> T:
    """An instance of the dataclass ``cls`` from defaults, a YAML file, then overrides.

    Raises:
        ConfigError: naming an unknown key (with the closest valid keys) or a value of the wrong type.
    """
    values: dict[str, Any] = load_yaml_mapping(yaml_path) if yaml_path else {}
    values.update(overrides or {})
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        name = key.replace("-", "_")
        if keyword.iskeyword(name):  # `from=...` on the command line is the field `from_`
            name += "_"
        if name not in fields:
            close = difflib.get_close_matches(name, list(fields), n=3, cutoff=0.6)
            hint = f"; did you mean {' or '.join(close)}?" if close else f"; valid keys: {', '.join(sorted(fields))}"
            raise ConfigError(f"unknown key {key!r} for {cls.__name__}{hint}")
        kwargs[name] = _convert(value, hints[name], key)
    return cls(**kwargs)


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-friendly dict of a config dataclass (paths become strings)."""
    out = {}
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        out[f.name] = str(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v
    return out
