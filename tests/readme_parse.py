"""The commands README.md shows, read from its text (helper of tests/test_readme_commands.py).

A command is a line of a fenced code block that starts with ``singleshot``, ``.venv/bin/singleshot``
or ``torchrun ... -m singleshot`` (a trailing ``\\`` continues it on the next line, a ``  # comment``
is dropped), or an inline ``singleshot ...`` in backticks of the prose that names a real task and
mode: every ``.venv/bin/singleshot ...``, and a ``singleshot TASK MODE key=value ...`` with at least
one key. Prose forms with placeholders (``singleshot TASK MODE ...``, ``data=...``) are not commands.

README notation inside a command: ``[key=value]`` is an option, ``a|b|c`` alternatives of one value.
:func:`variants` spells a command out as the argument lists to run.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

LAUNCHERS = ("singleshot", ".venv/bin/singleshot", "torchrun")
_FENCE = re.compile(r"^```")
_INLINE = re.compile(r"`((?:\.venv/bin/)?singleshot [^`]+)`")
_PLACEHOLDER = re.compile(r"\.\.\.|<|>|\b[A-Z]{3,}\b")  # TASK, MODE, key=..., <data>


@dataclass(frozen=True)
class ReadmeCommand:
    """One command of README.md.

    Attributes:
        text: the command as written (continuation lines joined, comment dropped).
        line: 1-based README line where it starts.
        launcher: ``singleshot``, ``.venv/bin/singleshot`` or ``torchrun``.
        words: what follows ``singleshot``: TASK, MODE, then ``key=value`` words in README notation.
        inline: found in the prose rather than in a code block.
    """

    text: str
    line: int
    launcher: str
    words: tuple[str, ...]
    inline: bool = False

    @property
    def task(self) -> str:
        return self.words[0] if self.words else ""

    @property
    def mode(self) -> str:
        return self.words[1] if len(self.words) > 1 else ""

    def value(self, key: str) -> str:
        """The first value written for ``key`` (options included, alternatives kept), or ``""``."""
        for word in self.words[2:]:
            k, _, v = word.strip("[]").partition("=")
            if k == key:
                return v.strip("[]")
        return ""


def _split(text: str, line: int, inline: bool) -> ReadmeCommand | None:
    """The command of one logical line, or None when the line is not a singleshot command."""
    tokens = text.split()
    if not tokens:
        return None
    if tokens[0] == "torchrun":
        if (
            "-m" not in tokens
            or tokens.index("-m") + 1 >= len(tokens)
            or tokens[tokens.index("-m") + 1] != "singleshot"
        ):
            return None
        return ReadmeCommand(text, line, "torchrun", tuple(tokens[tokens.index("-m") + 2 :]), inline)
    if tokens[0] in ("singleshot", ".venv/bin/singleshot"):
        return ReadmeCommand(text, line, tokens[0], tuple(tokens[1:]), inline)
    return None


def _block_commands(lines: list[str]) -> Iterator[ReadmeCommand]:
    inside = False
    i = 0
    while i < len(lines):
        if _FENCE.match(lines[i]):
            inside = not inside
            i += 1
            continue
        if not inside:
            i += 1
            continue
        start, text = i, lines[i]
        while text.rstrip().endswith("\\") and i + 1 < len(lines):
            i += 1
            text = text.rstrip()[:-1] + " " + lines[i].strip()
        i += 1
        text = re.sub(r"(^|\s)#.*$", "", text).strip()
        command = _split(text, start + 1, inline=False)
        if command is not None:
            yield command


def _inline_commands(lines: list[str]) -> Iterator[ReadmeCommand]:
    inside = False
    for number, line in enumerate(lines, start=1):
        if _FENCE.match(line):
            inside = not inside
            continue
        if inside:
            continue
        for match in _INLINE.finditer(line):
            text = match.group(1).strip()
            command = _split(text, number, inline=True)
            if command is None or (command.launcher == "singleshot" and not any("=" in w for w in command.words)):
                continue  # `singleshot detect convert`: the mode named in prose, not a command
            if command.launcher == "singleshot" and _PLACEHOLDER.search(text):
                continue  # `singleshot TASK MODE key=value ...`: the grammar, not a command
            yield command


def readme_commands(readme: Path) -> list[ReadmeCommand]:
    """Every command of ``readme``: the code blocks' first, then the inline ones, in README order."""
    lines = readme.read_text(encoding="utf-8").splitlines()
    return [*_block_commands(lines), *_inline_commands(lines)]


def _groups(words: tuple[str, ...]) -> list[tuple[bool, list[str]]]:
    """(optional, words) per word or per ``[...]`` group (a group may span several words)."""
    groups: list[tuple[bool, list[str]]] = []
    open_group: list[str] | None = None
    for word in words:
        if open_group is None and word.startswith("["):
            open_group = []
            word = word[1:]
        if open_group is not None:
            closed = word.endswith("]")
            open_group.append(word[:-1] if closed else word)
            if closed:
                groups.append((True, open_group))
                open_group = None
        else:
            groups.append((False, [word]))
    if open_group is not None:
        raise ValueError(f"unclosed [ in: {' '.join(words)}")
    return groups


def _choices(word: str) -> list[str]:
    """``key=a|b|c`` -> ``[key=a, key=b, key=c]``; a word without alternatives -> ``[word]``."""
    key, eq, value = word.partition("=")
    if not eq or "|" not in value:
        return [word]
    return [f"{key}={v}" for v in value.split("|")]


def variants(command: ReadmeCommand) -> list[tuple[str, ...]]:
    """The argument lists (after ``singleshot``) that spell the command out, the plain one first:
    no options and the first alternative of each value; then each option added alone (its first
    alternatives); then each further alternative of each value, one at a time (with its option)."""
    groups = _groups(command.words)
    choices = [(optional, [_choices(w) for w in ws]) for optional, ws in groups]

    def build(extra: int | None = None, pick: tuple[int, int, int] | None = None) -> tuple[str, ...]:
        out: list[str] = []
        for g, (optional, words) in enumerate(choices):
            if optional and g != extra and (pick is None or pick[0] != g):
                continue
            for w, alts in enumerate(words):
                out.append(alts[pick[2]] if pick is not None and pick[:2] == (g, w) else alts[0])
        return tuple(out)

    found = [build()]
    found += [build(extra=g) for g, (optional, _) in enumerate(choices) if optional]
    for g, (_, words) in enumerate(choices):
        for w, alts in enumerate(words):
            found += [build(pick=(g, w, a)) for a in range(1, len(alts))]
    return list(dict.fromkeys(found))
