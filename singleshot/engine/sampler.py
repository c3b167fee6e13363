"""Data order and augmentation randomness that a run killed mid-epoch can reproduce exactly.

Two rules make the batches after a resume equal to those of an uninterrupted run, whatever the
number of worker processes and however many batches were consumed before the kill:

1. **Order.** :class:`ResumableSampler` draws epoch ``e``'s permutation from a generator seeded
   with ``mix_seed(seed, e)`` only, so it depends on nothing but ``(seed, e)``;
   ``set_epoch(e, start)`` skips the first ``start`` samples of this process's share. With
   several processes (DDP) the permutation is padded to a multiple of the world size by repeating
   its beginning and process ``r`` takes positions ``r, r + W, r + 2W, ...``: the union of the
   ranks' ``j``-th batches of size ``B`` is the ``j``-th batch of size ``B * W`` of one process.
2. **Augmentation.** The sampler yields ``(index, sample_seed)`` pairs with
   ``sample_seed = mix_seed(seed, e, index)``; :class:`SeededDataset` seeds Python ``random``,
   NumPy's global generator and torch's CPU generator with it before reading the sample. The
   random draws of a sample thus depend on ``(seed, epoch, index)`` only, not on which worker
   reads it nor on what that worker read before. In the main process (``workers=0``) the three
   generators are saved and restored around the read, so data loading never shifts the random
   stream of the training step (dropout).

Worker processes are additionally seeded by :func:`singleshot.engine.seed.worker_init_fn` (from
the loader's own generator, which is seeded with ``seed``), which covers randomness outside
``__getitem__``. :func:`build_train_loader` assembles all of this into a ``DataLoader``.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, get_worker_info

from singleshot.engine.distributed import get_rank, get_world_size
from singleshot.engine.seed import worker_init_fn
from singleshot.errors import ConfigError

logger = logging.getLogger(__name__)

__all__ = ["mix_seed", "ResumableSampler", "SeededDataset", "build_train_loader", "resumable_sampler"]

_MASK64 = (1 << 64) - 1


def mix_seed(*values: int) -> int:
    """A well-mixed 63-bit seed from integers (chained splitmix64 finaliser); order matters."""
    h = 0x9E3779B97F4A7C15
    for v in values:
        z = ((h ^ (int(v) & _MASK64)) + 0x9E3779B97F4A7C15) & _MASK64
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
        h = z ^ (z >> 31)
    return h >> 1


class ResumableSampler(Sampler[Any]):
    """Seeded per-epoch order of ``size`` samples, shardable across processes, skippable.

    Args:
        size: number of samples in the dataset.
        seed: base seed; epoch ``e``'s order depends only on ``(seed, e)``.
        shuffle: permute (else ``0..size-1``).
        num_replicas, rank: the process group's shape (default: from :mod:`torch.distributed`).
        drop_tail: with several replicas, drop the last ``size % num_replicas`` samples of the
            permutation instead of padding with its first ones.
        with_seeds: yield ``(index, sample_seed)`` pairs for :class:`SeededDataset` instead of ints.
    """

    def __init__(
        self,
        size: int,
        seed: int = 0,
        shuffle: bool = True,
        num_replicas: int | None = None,
        rank: int | None = None,
        drop_tail: bool = False,
        with_seeds: bool = False,
    ) -> None:
        self.size = int(size)
        self.seed = int(seed)
        self.shuffle = shuffle
        self.num_replicas = get_world_size() if num_replicas is None else int(num_replicas)
        self.rank = get_rank() if rank is None else int(rank)
        if not 0 <= self.rank < self.num_replicas:
            raise ConfigError(f"rank: must lie in [0, {self.num_replicas}), got {self.rank}")
        self.with_seeds = with_seeds
        per = self.size // self.num_replicas if drop_tail else math.ceil(self.size / self.num_replicas)
        if per < 1:
            raise ConfigError(f"dataset: {self.size} samples cannot feed {self.num_replicas} processes")
        self.per_replica = per
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Use epoch ``epoch``'s order from its ``start``-th sample (of this replica) on."""
        if not 0 <= start <= self.per_replica:
            raise ConfigError(f"start: must lie in [0, {self.per_replica}], got {start}")
        self.epoch, self.start = int(epoch), int(start)

    def order(self, epoch: int) -> torch.Tensor:
        """This replica's full index order for ``epoch`` (int64 Tensor[per_replica])."""
        if self.shuffle:
            g = torch.Generator().manual_seed(mix_seed(self.seed, epoch))
            perm = torch.randperm(self.size, generator=g)
        else:
            perm = torch.arange(self.size)
        total = self.per_replica * self.num_replicas
        if total > self.size:
            perm = perm.repeat(math.ceil(total / self.size))
        return perm[:total][self.rank :: self.num_replicas]

    def __iter__(self) -> Iterator[Any]:
        indices = self.order(self.epoch)[self.start :].tolist()
        if not self.with_seeds:
            return iter(indices)
        return iter([(i, mix_seed(self.seed, self.epoch, i)) for i in indices])

    def __len__(self) -> int:
        return self.per_replica - self.start


@contextlib.contextmanager
def _restored_rng() -> Iterator[None]:
    """Save Python, NumPy and torch CPU generator states and restore them on exit."""
    py, npy, th = random.getstate(), np.random.get_state(), torch.get_rng_state()
    try:
        yield
    finally:
        random.setstate(py)
        np.random.set_state(npy)
        torch.set_rng_state(th)


class SeededDataset(Dataset):
    """Reads ``dataset[index]`` for a key ``(index, sample_seed)`` after seeding the generators.

    Plain integer keys are passed through unseeded. Other attributes are those of ``dataset``.
    """

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: Any) -> Any:
        if not isinstance(key, tuple):
            return self.dataset[key]
        index, seed = key
        guard = _restored_rng() if get_worker_info() is None else contextlib.nullcontext()
        with guard:
            random.seed(seed)
            np.random.seed([seed & 0xFFFFFFFF, seed >> 32])
            torch.default_generator.manual_seed(seed)  # CPU only: CUDA generators stay untouched
            return self.dataset[index]

    def __getattr__(self, name: str) -> Any:
        if name == "dataset":  # not yet set (during unpickling in a worker)
            raise AttributeError(name)
        return getattr(self.dataset, name)


def build_train_loader(
    dataset: Dataset,
    batch_size: int,
    *,
    seed: int = 0,
    shuffle: bool = True,
    drop_last: bool = False,
    workers: int = 0,
    collate_fn: Callable[[list[Any]], Any] | None = None,
    device: str = "cpu",
    persistent_workers: bool = True,
) -> DataLoader:
    """A training ``DataLoader`` that the trainer can resume mid-epoch (see the module doc).

    ``batch_size`` is per process. Under DDP the sampler shards the data across the process
    group (initialise it first, e.g. with :func:`singleshot.engine.distributed.init_distributed`).
    Memory is pinned when ``device`` is CUDA and CUDA is present.
    """
    if batch_size < 1:
        raise ConfigError(f"batch: must be >= 1, got {batch_size}")
    sampler = ResumableSampler(len(dataset), seed=seed, shuffle=shuffle, with_seeds=True)  # type: ignore[arg-type]
    pin = device.startswith("cuda") and torch.cuda.is_available()
    return DataLoader(
        SeededDataset(dataset),
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        collate_fn=collate_fn,
        drop_last=drop_last,
        pin_memory=pin,
        worker_init_fn=worker_init_fn,
        generator=torch.Generator().manual_seed(int(seed)),
        persistent_workers=workers > 0 and persistent_workers,
    )


def resumable_sampler(loader: Any, want_mid_epoch: bool = False) -> tuple[ResumableSampler | None, int]:
    """``(sampler, batch_size)`` of a loader the trainer can resume mid-epoch, else ``(None, 0)``.

    Warns when ``want_mid_epoch`` (mid-epoch checkpoints asked for) cannot be honoured, and when a
    distributed run's loader does not shard the data.
    """
    sampler = getattr(loader, "sampler", None)
    batch = int(getattr(loader, "batch_size", None) or 0)
    if isinstance(sampler, ResumableSampler) and batch > 0:
        return sampler, batch
    if get_world_size() > 1:
        logger.warning("train_loader has no ResumableSampler: every process reads all the data (not sharded)")
    if want_mid_epoch:
        logger.warning("checkpoint_every needs a loader from build_train_loader; last.pt is written at epoch ends only")
    return None, 0
