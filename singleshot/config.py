"""Typed configuration from YAML files and ``key=value`` overrides.

A config is a dataclass. :func:`build_config` starts from its defaults, applies a YAML file's
mapping, then the command line's ``key=value`` pairs, converting each value to the field's type.
Unknown keys fail with a "did you mean" suggestion; nothing is silently ignored.
"""

from __future__ import annotations

import dataclasses
import difflib
import keyword
import math
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
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
    if tp is int:
        return _to_int(value, key)
    if tp is float:
        return _to_float(value, key)
    if tp is str:
        return str(value)
    if tp is Path:
        return Path(str(value))
    return value


def _to_int(value: Any, key: str) -> int:
    """An int from an int, a whole float (``2.0``) or text (``"8"``, ``"0x10"``, ``"2.0"``); a bool,
    a fractional or non-finite number is refused rather than truncated."""
    if isinstance(value, bool):
        raise ConfigError(f"{key}: expected int, got the boolean {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value, 0)
        except ValueError:
            pass
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{key}: expected int, got {value!r}") from None
    if not math.isfinite(number) or not number.is_integer():
        raise ConfigError(f"{key}: expected int, got {value!r} (a fraction is not truncated)")
    return int(number)


def _to_float(value: Any, key: str) -> float:
    """A finite float from a number or text; a bool, NaN or an infinity is refused."""
    if isinstance(value, bool):
        raise ConfigError(f"{key}: expected float, got the boolean {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{key}: expected float, got {value!r}") from None
    if not math.isfinite(number):
        raise ConfigError(f"{key}: expected a finite float, got {value!r}")
    return number


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


# ---------------------------------------------------------------- the keys of one mode
#: The order of the groups in a mode's help.
GROUPS = ("data", "model", "training", "distillation", "evaluation", "prediction", "export", "conversion", "output")


@dataclass(frozen=True)
class ModeSpec:
    """One ``singleshot TASK MODE``: what runs, and the keys it reads, with their help.

    Attributes:
        run: ``args -> result`` (the mode; ``args`` the ``key=value`` pairs, ``cfg=`` included).
        summary: one line saying what the mode does.
        config: the dataclass holding the keys' types and defaults.
        keys: ``args -> the keys this mode reads`` (a function, since a member named by ``model=``
            may read keys of its own).
        help: ``key -> (group, one line of meaning)`` for every key of ``config``.
        resolve: ``args -> the config the mode would run with`` (defaults of a demo or a member
            applied); None: ``config`` built from the arguments.
    """

    run: Callable[[dict[str, str]], Any]
    summary: str
    config: type
    keys: Callable[[Mapping[str, str]], Sequence[str]]
    help: Mapping[str, tuple[str, str]]
    resolve: Callable[[dict[str, str]], Any] | None = None


def fixed_keys(*groups: Iterable[str]) -> Callable[[Mapping[str, str]], tuple[str, ...]]:
    """A :attr:`ModeSpec.keys` that does not depend on the arguments: the union of ``groups``, in order."""
    names = tuple(dict.fromkeys(k for g in groups for k in g))
    return lambda args: names


def _key_name(field_name: str) -> str:
    return field_name[:-1] if field_name.endswith("_") and keyword.iskeyword(field_name[:-1]) else field_name


def _type_name(tp: Any) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        inner = [_type_name(a) for a in args if a is not type(None)]
        return " | ".join(inner) + (" | none" if type(None) in args else "")
    if origin in (list, tuple):
        return f"list of {_type_name(args[0]) if args else 'str'}"
    return getattr(tp, "__name__", str(tp)).replace("str", "text")


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "none"
    if isinstance(value, (list, tuple)):
        return ",".join(_show(v) for v in value) if value else '""'
    if value == "":
        return '""'
    return str(value)


def check_mode_keys(given: Iterable[str], spec: ModeSpec, args: Mapping[str, str], where: str) -> None:
    """Fail on the first key of ``given`` (command line or ``cfg=`` file keys, ``-`` read as ``_``)
    that the mode ``where`` (``"detect train"``) does not read, naming the close ones and all of them.

    Raises:
        ConfigError: ``unknown key 'n_train' for detect train; did you mean ...? its keys: ...``.
    """
    allowed = [_key_name(k) for k in spec.keys(args)]
    fields = {_key_name(f.name) for f in dataclasses.fields(spec.config)}
    for key in given:
        name = str(key).replace("-", "_")
        if name in allowed or name == "cfg":
            continue
        close = difflib.get_close_matches(name, allowed, n=3, cutoff=0.6)
        hint = f"; did you mean {' or '.join(close)}?" if close else ""
        other = " (other modes, or another model= / from=, read it)" if name in fields else ""
        raise ConfigError(
            f"unknown key {key!r} for {where}{other}{hint}\n"
            f"keys of {where}: {', '.join(sorted(allowed))} (singleshot {where} help explains each)"
        )


def mode_help(spec: ModeSpec, where: str, args: Mapping[str, str] | None = None) -> str:
    """The help of one mode: its summary, then every key it reads, grouped, with type, default and
    meaning (defaults as the mode resolves them: a demo's or a member's own)."""
    args = dict(args or {})
    keys = [_key_name(k) for k in spec.keys(args)]
    hints = typing.get_type_hints(spec.config)
    by_name = {_key_name(f.name): f.name for f in dataclasses.fields(spec.config)}
    try:
        resolved = _resolve(spec, args)
    except ConfigError:
        resolved = spec.config()
    rows: dict[str, list[tuple[str, str, str, str]]] = {}
    for key in keys:
        field_name = by_name.get(key, key)
        group, meaning = spec.help.get(key, spec.help.get(field_name, ("other", "")))
        tp = _type_name(hints[field_name]) if field_name in hints else "text"
        default = _show(getattr(resolved, field_name, ""))
        rows.setdefault(group, []).append((key, tp, default, meaning))
    lines = [f"usage: singleshot {where} key=value ...", "", spec.summary, ""]
    width = max((len(r[0]) for rs in rows.values() for r in rs), default=4)
    twidth = max((len(r[1]) for rs in rows.values() for r in rs), default=4)
    order = [g for g in GROUPS if g in rows] + sorted(g for g in rows if g not in GROUPS)
    for group in order:
        lines.append(f"{group}:")
        for key, tp, default, meaning in rows[group]:
            shown = default if len(default) <= 24 else default[:21] + "..."
            lines.append(f"  {key:<{width}}  {tp:<{twidth}}  {shown:<10}  {meaning}")
        lines.append("")
    lines.append("cfg=FILE.yaml reads keys from a YAML mapping (the command line wins); show=config prints the")
    lines.append("resolved configuration without running; verbose=true logs debug messages.")
    return "\n".join(lines)


def resolved_config(spec: ModeSpec, args: dict[str, str]) -> dict[str, Any]:
    """The configuration ``spec``'s mode would run with for ``args``: the values of its keys, in the
    mode's key order (``show=config``)."""
    values = config_to_dict(_resolve(spec, args))
    by_name = {_key_name(name): name for name in values}
    return {k: values[by_name[k]] for k in (_key_name(k) for k in spec.keys(args)) if k in by_name}


def _resolve(spec: ModeSpec, args: Mapping[str, str]) -> Any:
    """The config ``spec``'s mode builds from ``args``: its ``resolve``, else its config class from the
    ``cfg=`` YAML and the other arguments."""
    args = dict(args)
    if spec.resolve is not None:
        return spec.resolve(args)
    yaml_path = args.pop("cfg", None)
    return build_config(spec.config, yaml_path, args)
