"""Train/test splits: sizes, disjointness, determinism, objects never on both sides."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from singleshot.data.grasp.records import GraspSample
from singleshot.data.grasp.splits import (
    image_wise_split,
    kfold_split,
    object_wise_kfold,
    object_wise_split,
    reference_split,
    split_samples,
)
from singleshot.errors import ConfigError


def _check_partition(n: int, train: np.ndarray, test: np.ndarray) -> None:
    assert len(np.intersect1d(train, test)) == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([train, test])), np.arange(n))


def test_reference_split_by_order() -> None:
    train, test = reference_split(885)
    _check_partition(885, train, test)
    assert len(test) == 89  # int(885 * 0.9) = 796 train images, as GG-CNN's --split 0.9
    np.testing.assert_array_equal(test, np.arange(796, 885))
    _, test_rot = reference_split(10, 0.9, ds_rotate=0.5)
    np.testing.assert_array_equal(test_rot, [4])  # list rotated by 5: order 5..9, 0..4; last one tests


def test_image_wise_is_shuffled_and_seeded() -> None:
    a = image_wise_split(885, 0.1, seed=3)
    b = image_wise_split(885, 0.1, seed=3)
    c = image_wise_split(885, 0.1, seed=4)
    _check_partition(885, *a)
    assert len(a[1]) == 89
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])
    assert a[1].max() - a[1].min() > 500  # not a contiguous block


def test_kfold_folds_cover_everything_once() -> None:
    tests = [kfold_split(23, 5, f, seed=0)[1] for f in range(5)]
    np.testing.assert_array_equal(np.sort(np.concatenate(tests)), np.arange(23))
    assert sorted(len(t) for t in tests) == [4, 4, 5, 5, 5]
    for f in range(5):
        _check_partition(23, *kfold_split(23, 5, f, seed=0))
    with pytest.raises(ConfigError):
        kfold_split(23, 5, 5)
    with pytest.raises(ConfigError):
        kfold_split(3, 5, 0)


def test_object_wise_keeps_objects_together() -> None:
    ids = [f"o{i // 3}" for i in range(30)] + ["o2", "o5"]  # 10 objects, two revisited later
    seen = []
    for f in range(5):
        train, test = object_wise_kfold(ids, 5, f, seed=1)
        _check_partition(len(ids), train, test)
        assert not {ids[i] for i in train} & {ids[i] for i in test}
        seen += sorted({ids[i] for i in test})
    assert sorted(seen) == sorted(set(ids))
    train, test = object_wise_split(ids, 0.2, seed=0)
    assert len({ids[i] for i in test}) == 2 and not {ids[i] for i in train} & {ids[i] for i in test}


def test_object_wise_without_ids_uses_contiguous_blocks() -> None:
    with pytest.warns(UserWarning, match="contiguous blocks"):
        train, test = object_wise_kfold([None] * 10, 5, 2)
    np.testing.assert_array_equal(test, [4, 5])
    with pytest.warns(UserWarning, match="contiguous blocks"):
        _, test = object_wise_split([None] * 10, 0.2)
    np.testing.assert_array_equal(test, [8, 9])


def test_split_samples_modes() -> None:
    samples = [GraspSample(f"pcd{i:04d}", "cornell", Path("x"), None, None, object_id=f"o{i // 4}") for i in range(40)]
    train, test = split_samples(samples, "object", k=5, fold=0)
    assert len(train) + len(test) == 40 and not {s.object_id for s in train} & {s.object_id for s in test}
    train, test = split_samples(samples, "reference")
    assert [s.image_id for s in test] == ["pcd0036", "pcd0037", "pcd0038", "pcd0039"]
    train, test = split_samples(samples, "image", k=4, fold=1, seed=0)
    assert len(test) == 10
    with pytest.raises(ConfigError, match="split mode"):
        split_samples(samples, "random")
