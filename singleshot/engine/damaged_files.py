"""Why a weights or checkpoint file cannot be read, in one line: empty, truncated (its end missing,
as when a copy or a write was cut short), or damaged otherwise.

``torch.load`` of a zero-byte ``last.pt`` raises ``EOFError('')`` (shown as ``not a readable
checkpoint ()``) and of a truncated one ``PytorchStreamReader failed reading zip archive: failed
finding central directory`` or even ``OSError: [Errno 22] Invalid argument``; safetensors says
``header too small`` or ``incomplete metadata``. :func:`unreadable_file` looks at the file itself
(its size, and the end a whole file of its kind has) to say which it is.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

from singleshot.errors import WeightsError

__all__ = ["empty_file_error", "is_truncated", "unreadable_file"]

#: The zip "end of central directory" record's signature: the record (22 bytes and a comment of at
#: most 65535) ends a whole zip (``torch.save``'s format).
_ZIP_END = b"PK\x05\x06"
_ZIP_START = b"PK\x03\x04"
_ADVICE = "was it cut short while being written or copied (a killed run, a full disk)?"


def empty_file_error(path: str | Path, what: str) -> WeightsError | None:
    """A :class:`WeightsError` naming ``path`` when it is an empty file (0 bytes), else None."""
    path = Path(path)
    try:
        empty = path.stat().st_size == 0
    except OSError:
        return None
    return WeightsError(f"{path}: empty file (0 bytes), not a {what}; {_ADVICE}") if empty else None


def is_truncated(path: str | Path) -> bool:
    """Whether ``path`` starts as a zip (``torch.save``) or a safetensors file but lacks the end such
    a whole file has (zip: its end-of-directory record; safetensors: the bytes its header declares)."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(8)
            if head.startswith(_ZIP_START):
                start = max(0, size - (22 + 65535))
                f.seek(start)
                tail = f.read()
                at = tail.rfind(_ZIP_END)
                if at < 0 or len(tail) < at + 22:  # no end record, or a cut one
                    return True
                (comment,) = struct.unpack("<H", tail[at + 20 : at + 22])
                return len(tail) < at + 22 + comment
            if len(head) < 8:
                return path.suffix.lower() == ".safetensors"
            (n,) = struct.unpack("<Q", head)
            if path.suffix.lower() != ".safetensors" or n > 100_000_000:
                return False
            raw = f.read(n)
            if len(raw) < n:
                return True
            header = json.loads(raw)
    except (OSError, ValueError, struct.error):
        return False
    ends = [int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__" and isinstance(v, dict)]
    return size < 8 + n + max(ends, default=0)


def unreadable_file(path: str | Path, what: str, exc: BaseException) -> WeightsError:
    """The error for ``path`` (a ``what``: "checkpoint", "safetensors file") whose reader raised
    ``exc``: empty, truncated, or not readable (with the reader's first line)."""
    path = Path(path)
    empty = empty_file_error(path, what)
    if empty is not None:
        return empty
    if is_truncated(path):
        size = os.path.getsize(path)
        return WeightsError(f"{path}: truncated {what} ({size} bytes; its end is missing); {_ADVICE}")
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return WeightsError(f"{path}: not a readable {what} ({first})")
