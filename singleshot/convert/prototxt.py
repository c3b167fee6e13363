"""A reader for Caffe's ``.prototxt`` net definitions (protobuf text format) into plain dicts.

Every field maps to a *list* of values (protobuf text format allows any field to repeat); a nested
message ``name { ... }`` becomes a dict of the same kind. Scalars become ``int``, ``float``,
``bool`` (``true``/``false``) or ``str`` (quoted strings and enum names). No schema is needed, so
every layer type of every Caffe fork parses.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from singleshot.errors import WeightsError

Message = dict[str, list[Any]]

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<comment>\#[^\n]*)
      | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
      | (?P<punct>[{}:;,\[\]])
      | (?P<word>[^\s{}:;,\[\]"'\#]+)
    )""",
    re.VERBOSE,
)


def _tokens(text: str, source: str) -> list[tuple[str, str, int]]:
    out: list[tuple[str, str, int]] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            if text[pos:].strip() == "":
                break
            line = text.count("\n", 0, pos) + 1
            raise WeightsError(f"{source}: line {line}: cannot read {text[pos : pos + 20]!r}")
        pos = m.end()
        kind = m.lastgroup
        if kind and kind != "comment":
            out.append((kind, m.group(kind), text.count("\n", 0, m.start(kind)) + 1))
    return out


def _scalar(kind: str, value: str) -> Any:
    if kind == "string":
        return bytes(value[1:-1], "utf-8").decode("unicode_escape")
    if value in ("true", "True"):
        return True
    if value in ("false", "False"):
        return False
    try:
        return int(value)
    except ValueError:
        pass
    try:
        return float(value)
    except ValueError:
        return value  # an enum name


def parse_prototxt(text: str, source: str = "<prototxt>") -> Message:
    """Parse protobuf text format.

    Returns:
        ``{field: [value, ...]}``, nested messages as dicts of the same form.

    Raises:
        WeightsError: malformed text (the source and line are named).
    """
    tokens = _tokens(text, source)
    stack: list[Message] = [{}]
    i = 0
    while i < len(tokens):
        kind, value, line = tokens[i]
        if kind == "punct" and value in ";,":
            i += 1
            continue
        if kind == "punct" and value == "}":
            if len(stack) == 1:
                raise WeightsError(f"{source}: line {line}: unmatched '}}'")
            stack.pop()
            i += 1
            continue
        if kind != "word":
            raise WeightsError(f"{source}: line {line}: expected a field name, found {value!r}")
        name = value
        i += 1
        if i < len(tokens) and tokens[i][1] == ":":
            i += 1
        if i >= len(tokens):
            raise WeightsError(f"{source}: line {line}: field {name!r} has no value")
        kind, value, line = tokens[i]
        if value == "{":
            child: Message = {}
            stack[-1].setdefault(name, []).append(child)
            stack.append(child)
            i += 1
        elif value == "[":  # short form of a repeated scalar: name: [1, 2, 3]
            i += 1
            while i < len(tokens) and tokens[i][1] != "]":
                if tokens[i][1] != ",":
                    stack[-1].setdefault(name, []).append(_scalar(tokens[i][0], tokens[i][1]))
                i += 1
            i += 1
        elif kind in ("word", "string"):
            stack[-1].setdefault(name, []).append(_scalar(kind, value))
            i += 1
        else:
            raise WeightsError(f"{source}: line {line}: field {name!r} has no value (found {value!r})")
    if len(stack) != 1:
        raise WeightsError(f"{source}: {len(stack) - 1} unclosed '{{' at the end of the file")
    return stack[0]


def read_prototxt(path: str | Path) -> Message:
    """Parse a ``.prototxt`` file (see :func:`parse_prototxt`)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise WeightsError(f"{path}: cannot read the net definition ({e.strerror})") from None
    return parse_prototxt(text, str(path))


def first(message: Message, name: str, default: Any = None) -> Any:
    """The first value of field ``name``, or ``default`` when the field is absent."""
    values = message.get(name)
    return values[0] if values else default


def layers_of(net: Message) -> list[Message]:
    """The layer messages of a net definition, new (``layer``) or V1 (``layers``) style."""
    return list(net.get("layer", [])) + list(net.get("layers", []))
