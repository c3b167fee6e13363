"""Calibration inputs for int8 quantization (:func:`~singleshot.export.quantize.quantize_static_onnx`),
shared by every family's export.

A family's export reads its own datasets into pre-processed arrays; what is the same everywhere is
here: indices spread evenly over a dataset (:func:`even_picks`), N(0, 1) inputs for a smoke test
(:func:`random_calibration`), arrays from a ``.npy`` / ``.npz`` file in the graph's layout
(:func:`calibration_from_file`) and reading the first batch at once so that bad data fails where it
is named (:func:`eager`). Every batch is a float32 array ``[b, *shape]``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from singleshot.errors import DataError

__all__ = ["CALIB_FILES", "calibration_from_file", "eager", "even_picks", "random_calibration"]

#: Suffixes of the calibration files :func:`calibration_from_file` reads.
CALIB_FILES = (".npy", ".npz")


def even_picks(total: int, count: int) -> list[int]:
    """``min(count, total)`` indices (at least one) spread evenly over ``range(total)``."""
    if total <= 0:
        return []
    return np.unique(np.linspace(0, total - 1, max(1, min(int(count), total))).round().astype(int)).tolist()


def random_calibration(shape: Sequence[int], count: int, batch: int = 4, seed: int = 0) -> Iterator[np.ndarray]:
    """``count`` (at least one) inputs drawn from N(0, 1), as float32 arrays [b, *shape], b <= ``batch``."""
    rng = np.random.default_rng(seed)
    count = max(1, int(count))
    for start in range(0, count, batch):
        yield rng.standard_normal((min(batch, count - start), *shape)).astype(np.float32)


def calibration_from_file(path: str | Path, shape: Sequence[int], count: int, batch: int = 4) -> Iterator[np.ndarray]:
    """Pre-processed inputs from a ``.npy`` (one array) or ``.npz`` (all its arrays, concatenated).

    Args:
        path: the file; arrays are [N, *shape] or a single sample [*shape].
        shape: one sample's shape in the graph's layout (checked).
        count: at most this many samples, spread evenly over the file's.
        batch: samples per yielded array.

    Raises:
        DataError: unreadable file, no samples, or samples of another shape.
    """
    path = Path(path)
    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.lib.npyio.NpzFile):
            with loaded:
                arrays = [loaded[k] for k in loaded.files]
        else:
            arrays = [loaded]
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read calibration arrays ({exc})") from None
    parts = [a[None] if a.ndim == len(shape) else a for a in arrays]
    bad = [tuple(a.shape[1:]) for a in parts if tuple(a.shape[1:]) != tuple(shape)]
    if bad:
        raise DataError(f"{path}: calibration samples of shape {bad[0]}, the graph takes {tuple(shape)}")
    data = np.concatenate(parts).astype(np.float32, copy=False) if parts else np.zeros((0, *shape), np.float32)
    picks = even_picks(len(data), count)
    if not picks:
        raise DataError(f"{path}: no calibration samples")
    for start in range(0, len(picks), batch):
        yield np.ascontiguousarray(data[picks[start : start + batch]])


def eager(batches: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    """``batches`` with its first item computed now, so that errors in reading the calibration data
    surface here rather than inside onnxruntime's calibration loop (which reports them as "no data")."""
    first = next(batches, None)
    return iter(()) if first is None else itertools.chain([first], batches)
