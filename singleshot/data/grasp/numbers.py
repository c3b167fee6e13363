"""The number grammar of the grasp annotation files (Cornell rectangles, Jacquard grasp lines).

Python's ``float`` accepts more than a data file should hold (``1_000``, non-ASCII digits such as
``'١٢'``, surrounding whitespace), so a mutilated file could parse into silently different values.
:func:`parse_number` accepts only plain ASCII decimals with an optional exponent, plus ``nan`` and
``inf``/``infinity`` in any case (the readers skip the rectangles or grasps that hold them: a few
real Cornell files have ``NaN`` coordinates).
"""

from __future__ import annotations

import re

__all__ = ["parse_number"]

_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|[+-]?(?:nan|inf|infinity)", re.I | re.A)


def parse_number(token: str) -> float:
    """``token`` as a float.

    Raises:
        ValueError: ``token`` is not a plain decimal number (``-1.5``, ``.5``, ``3e-2``), ``nan`` or ``inf``.
    """
    if not _NUMBER.fullmatch(token):
        raise ValueError(f"not a number: {token[:40]!r}")
    return float(token)
