"""collate_detection stacks images and keeps targets as a list."""

from __future__ import annotations

import pytest
import torch

from singleshot.data.collate import collate_detection
from singleshot.structures import BoxTarget


def test_stacks_images_and_lists_targets() -> None:
    batch = [
        (
            torch.full((3, 8, 8), float(i)),
            BoxTarget(
                boxes=torch.zeros((i, 4)),
                labels=torch.zeros(i, dtype=torch.int64),
                difficult=torch.zeros(i, dtype=torch.bool),
                image_id=str(i),
            ),
        )
        for i in range(3)
    ]
    images, targets = collate_detection(batch)
    assert tuple(images.shape) == (3, 3, 8, 8)
    assert [float(images[i, 0, 0, 0]) for i in range(3)] == [0.0, 1.0, 2.0]
    assert [t.image_id for t in targets] == ["0", "1", "2"] and [len(t) for t in targets] == [0, 1, 2]
    assert targets[2] is batch[2][1]


def test_rejects_mixed_sizes_and_empty_batch() -> None:
    batch = [(torch.zeros(3, 8, 8), BoxTarget(image_id="a")), (torch.zeros(3, 9, 8), BoxTarget(image_id="b"))]
    with pytest.raises(ValueError, match=r"a: \(3, 8, 8\).*b: \(3, 9, 8\)"):
        collate_detection(batch)
    with pytest.raises(ValueError, match="empty"):
        collate_detection([])
