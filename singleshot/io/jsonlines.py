"""JSON Lines: one JSON object per line, appended as results become final, read back or turned into
the plain JSON list the scoring modes read."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from singleshot.atomic import write_text
from singleshot.errors import DataError

__all__ = ["json_from_lines", "read_json_lines"]


def read_json_lines(path: str | Path, what: str = "JSON Lines") -> list[Any]:
    """The records of ``path`` (blank lines ignored).

    Raises:
        DataError: naming the file (and the line) when it is missing, unreadable, or a line is not JSON
            (e.g. cut short by a crash).
    """
    path = Path(path)
    records = []
    try:
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, start=1):
                if line.strip():
                    try:
                        records.append(json.loads(line))
                    except json.JSONDecodeError as exc:
                        raise DataError(f"{path}:{number}: not a JSON object ({exc})") from None
    except FileNotFoundError:
        raise DataError(f"{path}: {what} file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read {what} JSON Lines ({exc})") from exc
    return records


def json_from_lines(lines: str | Path, out: str | Path, sort_key: Callable[[Any], Any] | None = None) -> list[Any]:
    """Write ``out``, the JSON list of the records of the JSON Lines file ``lines`` (sorted by
    ``sort_key`` when given); returns the records."""
    records = read_json_lines(lines)
    if sort_key is not None:
        records.sort(key=sort_key)
    write_text(out, json.dumps(records))
    return records
