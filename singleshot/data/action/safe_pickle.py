"""Restricted unpickling of annotation pickles (ACT ``*-GT.pkl``, UCF101-24 ``pyannot.pkl``).

A plain ``pickle.load`` runs whatever callable the file names, so a downloaded pickle could run
arbitrary code. :func:`safe_load_pickle` resolves only the globals that NumPy arrays, NumPy scalars
and plain containers need; any other global is refused with a :class:`DataError` naming the file
and the global. Files written by Python 2 (as ACT's are) are read with ``encoding="latin1"``.
"""

from __future__ import annotations

import builtins
import collections
import io
import logging
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from singleshot.errors import DataError

logger = logging.getLogger(__name__)

__all__ = ["safe_load_pickle", "safe_loads_pickle", "allowed_globals"]


def numpy_core_modules() -> tuple[Any, Any]:
    """NumPy's ``multiarray`` and ``numeric`` modules, under their NumPy 2 or NumPy 1 names."""
    try:
        from numpy._core import multiarray, numeric
    except ImportError:  # NumPy < 2
        from numpy.core import multiarray, numeric  # type: ignore[no-redef]
    return multiarray, numeric


_BUILTIN_NAMES = (
    "list",
    "dict",
    "tuple",
    "set",
    "frozenset",
    "int",
    "float",
    "str",
    "bytes",
    "bytearray",
    "complex",
    "slice",
    "bool",
)


def allowed_globals() -> dict[tuple[str, str], Any]:
    """The table of ``(module, name) -> object`` that :func:`safe_load_pickle` resolves.

    NumPy objects are listed under both their NumPy 1 (``numpy.core``) and NumPy 2
    (``numpy._core``) module names, so pickles from either version load without importing the
    deprecated ``numpy.core`` package.
    """
    multiarray, numeric = numpy_core_modules()
    table: dict[tuple[str, str], Any] = {}
    for package in ("numpy.core", "numpy._core"):
        table[(f"{package}.multiarray", "_reconstruct")] = multiarray._reconstruct
        table[(f"{package}.multiarray", "scalar")] = multiarray.scalar
        table[(f"{package}.numeric", "_frombuffer")] = numeric._frombuffer
    table[("numpy", "ndarray")] = np.ndarray
    table[("numpy", "dtype")] = np.dtype
    for name in _BUILTIN_NAMES:
        table[("builtins", name)] = getattr(builtins, name)
        table[("__builtin__", name)] = getattr(builtins, name)  # Python 2 pickles
    table[("__builtin__", "unicode")] = str
    table[("__builtin__", "long")] = int
    table[("collections", "OrderedDict")] = collections.OrderedDict
    # Protocol-2 pickles written by Python 3 store bytes as _codecs.encode(str, "latin1").
    import _codecs

    table[("_codecs", "encode")] = _codecs.encode
    return table


class _RestrictedUnpickler(pickle.Unpickler):
    """An Unpickler whose ``find_class`` consults only :func:`allowed_globals`."""

    def __init__(self, file: io.BufferedIOBase, source: str) -> None:
        super().__init__(file, encoding="latin1")
        self._source = source
        self._table = allowed_globals()

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._table[(module, name)]
        except KeyError:
            raise DataError(
                f"{self._source}: refused to unpickle the global '{module}.{name}' "
                "(only NumPy arrays, NumPy scalars and plain containers are allowed)"
            ) from None


def safe_loads_pickle(data: bytes, source: str = "<bytes>") -> Any:
    """Unpickle ``data`` with the restricted Unpickler; ``source`` names it in errors.

    Raises:
        DataError: a refused global, or data that is not a valid pickle.
    """
    try:
        return _RestrictedUnpickler(io.BytesIO(data), source).load()
    except DataError:
        raise
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        AttributeError,
        IndexError,
        KeyError,
        OverflowError,
        MemoryError,
        UnicodeDecodeError,
    ) as exc:
        raise DataError(f"{source}: not a valid pickle ({type(exc).__name__}: {exc})") from exc


def safe_load_pickle(path: str | Path) -> Any:
    """Load a pickle file that may only contain NumPy arrays/scalars and plain containers.

    Args:
        path: the pickle file.

    Returns:
        The unpickled object (dicts, lists, tuples, strings, numbers, ``np.ndarray``...).

    Raises:
        DataError: the file is missing or corrupt, or it names a global outside the allowed table
            (the message names the file and the refused global, e.g. ``'posix.system'``).
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: pickle file not found") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc})") from exc
    if not data:
        raise DataError(f"{path}: pickle file is empty")
    return safe_loads_pickle(data, str(path))
