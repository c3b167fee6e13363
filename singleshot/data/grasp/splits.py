"""Train / test splits of grasp datasets: by order (GG-CNN), image-wise, object-wise, k-fold.

All functions take a number of samples (or their object ids) and return two sorted index arrays
``(train, test)`` (int64), so they apply to any list of samples.

* :func:`reference_split`: GG-CNN's split by order: the first ``int(n · 0.9)`` samples train, the rest
  test (its ``--split 0.9``; ``ds_rotate`` rotates the list first). Cornell's 885 images give 89 tests.
* :func:`image_wise_split` / :func:`kfold_split` with a seed: images shuffled, so views of one object
  land on both sides (the "image-wise" protocol of the papers).
* :func:`object_wise_kfold` / :func:`object_wise_split`: every image of an object on the same side.
  Objects come from ``object_id`` (Jacquard: the object's folder; Cornell: an object map). When any
  id is missing, the rule is **contiguous blocks in dataset order**: Cornell numbers the images of
  one object consecutively, so cutting the ordered list into k contiguous folds keeps all but at
  most two objects per fold boundary on one side. This is an approximation of the papers'
  object-wise protocol (which uses Cornell's object labels), and a warning says so.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence

import numpy as np

from singleshot.data.grasp.records import GraspSample
from singleshot.errors import ConfigError

logger = logging.getLogger(__name__)

__all__ = [
    "reference_split",
    "image_wise_split",
    "kfold_split",
    "object_wise_kfold",
    "object_wise_split",
    "split_samples",
]

Split = tuple[np.ndarray, np.ndarray]


def _check_fraction(test_fraction: float) -> None:
    if not 0 < test_fraction < 1:
        raise ConfigError(f"test_fraction: expected a value in (0, 1), got {test_fraction}")


def _check_fold(k: int, fold: int, n: int) -> None:
    if k < 2:
        raise ConfigError(f"k: k-fold needs k >= 2, got {k}")
    if not 0 <= fold < k:
        raise ConfigError(f"fold: expected 0 <= fold < {k}, got {fold}")
    if n < k:
        raise ConfigError(f"k: {k} folds need at least {k} samples (or objects), got {n}")


def _pair(n: int, test: np.ndarray) -> Split:
    mask = np.zeros(n, dtype=bool)
    mask[test] = True
    return np.flatnonzero(~mask).astype(np.int64), np.flatnonzero(mask).astype(np.int64)


def reference_split(n: int, train_fraction: float = 0.9, ds_rotate: float = 0.0) -> Split:
    """GG-CNN's split by order: after rotating the list by ``int(n · ds_rotate)``, the first
    ``int(n · train_fraction)`` samples train and the rest test."""
    _check_fraction(train_fraction)
    order = np.roll(np.arange(n), -int(n * ds_rotate))
    cut = int(n * train_fraction)
    return np.sort(order[:cut]).astype(np.int64), np.sort(order[cut:]).astype(np.int64)


def image_wise_split(n: int, test_fraction: float = 0.1, seed: int = 0) -> Split:
    """Shuffle the images with ``seed``; ``n − int(n · (1 − test_fraction))`` of them test."""
    _check_fraction(test_fraction)
    perm = np.random.default_rng(seed).permutation(n)
    return _pair(n, perm[int(n * (1 - test_fraction)) :])


def kfold_split(n: int, k: int = 5, fold: int = 0, seed: int | None = 0) -> Split:
    """Fold ``fold`` of ``k`` tests, the others train; images shuffled with ``seed`` (None: in order).
    Fold sizes differ by at most one."""
    _check_fold(k, fold, n)
    order = np.arange(n) if seed is None else np.random.default_rng(seed).permutation(n)
    return _pair(n, np.array_split(order, k)[fold])


def _object_groups(object_ids: Sequence[str | None]) -> list[np.ndarray] | None:
    """Image indices per object in order of first appearance, or None when an id is missing."""
    if any(o is None for o in object_ids):
        return None
    groups: dict[str, list[int]] = {}
    for i, o in enumerate(object_ids):
        groups.setdefault(str(o), []).append(i)
    return [np.asarray(v, dtype=np.int64) for v in groups.values()]


def _warn_contiguous() -> None:
    warnings.warn(
        "object-wise split without object ids: using contiguous blocks of the dataset order "
        "(consecutive images of one object stay together except at block boundaries)",
        stacklevel=3,
    )


def object_wise_kfold(object_ids: Sequence[str | None], k: int = 5, fold: int = 0, seed: int | None = 0) -> Split:
    """k-fold over objects: fold ``fold`` holds the images of about ``1/k`` of the objects.

    Args:
        object_ids: one id per sample (None entries switch to contiguous blocks, with a warning).
        k, fold: fold ``fold`` of ``k`` tests.
        seed: shuffle the objects (None: objects in order of first appearance).
    """
    n = len(object_ids)
    groups = _object_groups(object_ids)
    if groups is None:
        _warn_contiguous()
        _check_fold(k, fold, n)
        return _pair(n, np.array_split(np.arange(n), k)[fold])
    _check_fold(k, fold, len(groups))
    order = np.arange(len(groups)) if seed is None else np.random.default_rng(seed).permutation(len(groups))
    chosen = np.array_split(order, k)[fold]
    return _pair(n, np.concatenate([groups[j] for j in chosen]))


def object_wise_split(object_ids: Sequence[str | None], test_fraction: float = 0.1, seed: int | None = 0) -> Split:
    """Hold out ``~test_fraction`` of the objects (all their images); without ids, the last
    ``n − int(n · (1 − test_fraction))`` images in order (a warning says so)."""
    _check_fraction(test_fraction)
    n = len(object_ids)
    groups = _object_groups(object_ids)
    if groups is None:
        _warn_contiguous()
        return _pair(n, np.arange(int(n * (1 - test_fraction)), n))
    m = len(groups)
    order = np.arange(m) if seed is None else np.random.default_rng(seed).permutation(m)
    n_test = max(1, m - int(m * (1 - test_fraction)))
    return _pair(n, np.concatenate([groups[j] for j in order[m - n_test :]]))


def split_samples(
    samples: Sequence[GraspSample],
    mode: str = "image",
    k: int | None = None,
    fold: int = 0,
    test_fraction: float = 0.1,
    seed: int = 0,
) -> tuple[list[GraspSample], list[GraspSample]]:
    """Split samples into (train, test) lists.

    Args:
        samples: the dataset's samples, in dataset order.
        mode: ``"image"`` (shuffled), ``"object"`` (by ``object_id``) or ``"reference"`` (GG-CNN's by order).
        k: number of folds for cross-validation (None: a single split by ``test_fraction``).
            With ``mode="reference"`` the folds are contiguous (unshuffled).
        fold: which fold tests.
        test_fraction: share of the test side when ``k`` is None.
        seed: shuffling seed.
    """
    n = len(samples)
    if mode == "image":
        tr, te = image_wise_split(n, test_fraction, seed) if k is None else kfold_split(n, k, fold, seed)
    elif mode == "object":
        ids = [s.object_id for s in samples]
        tr, te = object_wise_split(ids, test_fraction, seed) if k is None else object_wise_kfold(ids, k, fold, seed)
    elif mode == "reference":
        tr, te = reference_split(n, 1 - test_fraction) if k is None else kfold_split(n, k, fold, None)
    else:
        raise ConfigError(f"split mode: expected 'image', 'object' or 'reference', got {mode!r}")
    logger.info("%s split: %d train, %d test samples", mode, len(tr), len(te))
    return [samples[i] for i in tr], [samples[i] for i in te]
