"""The target containers cross process boundaries (DataLoader workers) by value, intact."""

from __future__ import annotations

import copy
import pickle
from multiprocessing.reduction import ForkingPickler

import torch
import torch.multiprocessing  # noqa: F401  (registers torch's shared-memory reductions with ForkingPickler)
from torch.utils.data import DataLoader, Dataset

from singleshot.structures import BoxTarget, Detections, Grasps, TubeletTarget


def _examples() -> list[object]:
    g = torch.Generator().manual_seed(0)
    return [
        BoxTarget(
            torch.rand(3, 4, generator=g),
            torch.tensor([0, 2, 1]),
            torch.tensor([False, True, False]),
            "img",
            (10, 20),
            (30, 40),
        ),
        TubeletTarget(torch.rand(2, 4, 4, generator=g), torch.tensor([1, 0]), "A/v1", torch.arange(3, 7), (96, 96)),
        Detections(torch.rand(2, 4, generator=g), torch.rand(2, generator=g), torch.tensor([3, 1]), "x"),
        Grasps(torch.rand(4, 5, generator=g), torch.rand(4, generator=g), "pcd0100", (480, 640)),
    ]


def _same(a: object, b: object) -> None:
    assert type(a) is type(b)
    for name, value in vars(a).items():
        other = getattr(b, name)
        if isinstance(value, torch.Tensor):
            assert isinstance(other, torch.Tensor) and other.dtype == value.dtype and torch.equal(other, value), name
        else:
            assert other == value, name


def test_pickle_round_trip_keeps_every_field() -> None:
    for obj in _examples():
        _same(obj, pickle.loads(pickle.dumps(obj)))
        _same(obj, copy.deepcopy(obj))


def test_worker_pickler_sends_tensors_inside_the_message() -> None:
    # torch's multiprocessing pickler would otherwise pass each tensor as a shared-memory handle
    for obj in _examples():
        data = bytes(ForkingPickler.dumps(obj))
        for value in vars(obj).values():
            if isinstance(value, torch.Tensor):
                assert value.numpy().tobytes() in data
        _same(obj, pickle.loads(data))


class _Items(Dataset):
    def __len__(self) -> int:
        return 6

    def __getitem__(self, i: int) -> tuple[torch.Tensor, TubeletTarget]:
        return torch.full((2, 3), float(i)), TubeletTarget(torch.full((1, 2, 4), float(i)), torch.tensor([i]), f"v{i}")


def test_targets_from_a_worker_process_are_intact() -> None:
    loader = DataLoader(_Items(), batch_size=3, num_workers=1, collate_fn=lambda b: b)
    seen = [t for batch in loader for _, t in batch]
    assert [t.video for t in seen] == [f"v{i}" for i in range(6)]
    for i, t in enumerate(seen):
        assert torch.equal(t.boxes, torch.full((1, 2, 4), float(i))) and t.labels.tolist() == [i]
