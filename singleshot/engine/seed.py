"""Seeding and random-number-generator state capture.

Reproducibility in singleshot rests on three generators: Python's ``random``, NumPy's legacy
global generator and torch's (CPU and, when present, CUDA). :func:`seed_everything` seeds all of
them; :func:`get_rng_state` / :func:`set_rng_state` capture and restore them in a form that
``torch.load(weights_only=True)`` accepts (tensors, lists, numbers, ``None``), so checkpoints can
hold them and resumed runs draw the same numbers as uninterrupted ones.
"""

from __future__ import annotations

import logging
import random
from typing import Any

import numpy as np
import torch

logger = logging.getLogger(__name__)

__all__ = ["seed_everything", "worker_init_fn", "get_rng_state", "set_rng_state"]


def seed_everything(seed: int) -> None:
    """Seed Python ``random``, NumPy's global generator and torch (all devices) with ``seed``."""
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def worker_init_fn(worker_id: int) -> None:
    """Seed ``random`` and NumPy inside a ``DataLoader`` worker from ``torch.initial_seed()``.

    Each worker's torch seed is ``base_seed + worker_id``, with ``base_seed`` drawn from the main
    process's torch generator when the loader's iterator is created, so it is reproducible under
    :func:`seed_everything` and restored by :func:`set_rng_state`. Recent torch versions already
    seed ``random`` and NumPy per worker; passing this function makes the per-worker seeding
    explicit and independent of the torch version (without any, forked workers would all inherit
    the parent's NumPy state and repeat the same "random" augmentations). ``worker_id`` is unused:
    ``torch.initial_seed()`` already differs per worker.
    """
    del worker_id
    seed = torch.initial_seed()
    random.seed(seed)
    np.random.seed(np.random.SeedSequence(seed).generate_state(4))


def get_rng_state() -> dict[str, Any]:
    """Capture the state of every global generator as tensors, lists and numbers.

    Returns a dict with keys ``torch`` (uint8 tensor), ``cuda`` (list of uint8 tensors, empty
    without CUDA), ``numpy`` (dict: ``keys`` int64 tensor[624], ``pos``, ``has_gauss``,
    ``cached_gaussian``) and ``python`` (dict: ``version``, ``state`` int64 tensor[625],
    ``gauss_next``).
    """
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state(legacy=True)
    if np_name != "MT19937":  # pragma: no cover - numpy's legacy generator is always MT19937
        raise RuntimeError(f"unexpected NumPy bit generator {np_name!r}")
    py_version, py_state, py_gauss = random.getstate()
    cuda = [s.clone() for s in torch.cuda.get_rng_state_all()] if torch.cuda.is_available() else []
    return {
        "torch": torch.get_rng_state().clone(),
        "cuda": cuda,
        "numpy": {
            "keys": torch.from_numpy(np.asarray(np_keys, dtype=np.int64).copy()),
            "pos": int(np_pos),
            "has_gauss": int(np_has_gauss),
            "cached_gaussian": float(np_gauss),
        },
        "python": {
            "version": int(py_version),
            "state": torch.tensor(py_state, dtype=torch.int64),
            "gauss_next": None if py_gauss is None else float(py_gauss),
        },
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore generators captured by :func:`get_rng_state`.

    CUDA states are restored only when CUDA is available and the number of devices matches;
    otherwise a warning says they were skipped.
    """
    torch.set_rng_state(state["torch"].to(dtype=torch.uint8, device="cpu"))
    cuda = state.get("cuda") or []
    if cuda:
        if torch.cuda.is_available() and torch.cuda.device_count() == len(cuda):
            torch.cuda.set_rng_state_all([s.to(dtype=torch.uint8, device="cpu") for s in cuda])
        else:
            logger.warning(
                "checkpoint holds %d CUDA generator states but %d CUDA devices are present; "
                "CUDA random numbers will not continue the saved sequence",
                len(cuda),
                torch.cuda.device_count() if torch.cuda.is_available() else 0,
            )
    npst = state["numpy"]
    keys = npst["keys"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", keys, int(npst["pos"]), int(npst["has_gauss"]), float(npst["cached_gaussian"])))
    pyst = state["python"]
    random.setstate((int(pyst["version"]), tuple(int(v) for v in pyst["state"].tolist()), pyst["gauss_next"]))
