"""Resumable sampler and per-sample seeding: order from (seed, epoch) only, exact skips, shards."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from singleshot.engine.sampler import ResumableSampler, SeededDataset, build_train_loader, mix_seed
from singleshot.errors import ConfigError


class Augmented(Dataset):
    """Sample i is (i, draws from torch, NumPy and random): any seeding difference shows."""

    def __len__(self) -> int:
        return 22

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.tensor(
            [float(i), float(torch.rand(())), float(np.random.rand()), random.random()], dtype=torch.float64
        )


def test_order_is_a_function_of_seed_and_epoch() -> None:
    a, b = ResumableSampler(50, seed=7), ResumableSampler(50, seed=7)
    b.set_epoch(3)
    torch.manual_seed(123)  # the global generator plays no part
    third = list(b)
    a.set_epoch(0)
    list(a)
    a.set_epoch(3)
    assert list(a) == third
    assert sorted(third) == list(range(50))
    a.set_epoch(4)
    assert list(a) != third
    assert list(ResumableSampler(50, seed=8, with_seeds=False).__iter__()) != list(ResumableSampler(50, seed=7))
    assert list(ResumableSampler(5, shuffle=False)) == [0, 1, 2, 3, 4]


def test_skipping_reproduces_the_rest_of_the_epoch() -> None:
    s = ResumableSampler(30, seed=1, with_seeds=True)
    s.set_epoch(2)
    full = list(s)
    s.set_epoch(2, start=12)
    assert len(s) == 18 and list(s) == full[12:]
    assert full[5][1] == mix_seed(1, 2, full[5][0])  # the sample seed depends on (seed, epoch, index)
    with pytest.raises(ConfigError, match="start"):
        s.set_epoch(2, start=31)


@pytest.mark.parametrize("size", [32, 27])  # 27: padded to 28 by repeating the first sample
def test_shards_of_a_batch_make_the_global_batch(size: int) -> None:
    world, batch = 2, 4
    whole = ResumableSampler(size, seed=5, num_replicas=1, rank=0)
    shards = [ResumableSampler(size, seed=5, num_replicas=world, rank=r) for r in range(world)]
    for s in (whole, *shards):
        s.set_epoch(1)
    order = list(whole)
    parts = [list(s) for s in shards]
    assert len(parts[0]) == len(parts[1]) == -(-size // world)
    padded = (order * 2)[: len(parts[0]) * world]
    for j in range(0, len(parts[0]), batch):
        union = sorted(parts[0][j : j + batch] + parts[1][j : j + batch])
        assert union == sorted(padded[j * world : (j + batch) * world])
    assert set(parts[0]) | set(parts[1]) == set(range(size))


def test_loader_batches_do_not_depend_on_workers_or_on_skips() -> None:
    def batches(workers: int, start: int = 0) -> list[torch.Tensor]:
        loader = build_train_loader(Augmented(), 4, seed=9, workers=workers)
        loader.sampler.set_epoch(1, start * 4)
        return list(loader)

    reference = batches(0)
    assert len(reference) == 6 and reference[-1].shape == (2, 4)
    assert not torch.equal(reference[0][0, 1:], reference[0][1, 1:])  # samples draw different numbers
    for got in (batches(1), batches(2)):
        assert all(torch.equal(a, b) for a, b in zip(got, reference, strict=True))
    resumed = batches(1, start=2)
    assert all(torch.equal(a, b) for a, b in zip(resumed, reference[2:], strict=True))


def test_main_process_loading_leaves_the_training_rng_alone() -> None:
    loader = build_train_loader(Augmented(), 4, seed=9, workers=0)
    torch.manual_seed(0), np.random.seed(0), random.seed(0)
    expected = (torch.rand(3), np.random.rand(3), random.random())
    torch.manual_seed(0), np.random.seed(0), random.seed(0)
    list(loader)
    got = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(expected[0], got[0]) and np.array_equal(expected[1], got[1]) and expected[2] == got[2]


def test_seeded_dataset_passes_plain_indices_and_attributes() -> None:
    base = Augmented()
    base.class_names = ["a"]  # type: ignore[attr-defined]
    ds = SeededDataset(base)
    assert ds.class_names == ["a"] and len(ds) == 22
    assert ds[(3, 11)][0] == 3.0 and torch.equal(ds[(3, 11)], ds[(3, 11)])
    assert not torch.equal(ds[(3, 11)], ds[(3, 12)])
    assert ds[4][0] == 4.0


def test_mix_seed_spreads_nearby_inputs() -> None:
    seeds = {mix_seed(s, e, i) for s in range(3) for e in range(3) for i in range(50)}
    assert len(seeds) == 450 and all(0 <= v < 2**63 for v in seeds)
    assert mix_seed(1, 2) != mix_seed(2, 1)
