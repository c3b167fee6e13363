"""The synthetic generator writes real Cornell / Jacquard files that the readers accept."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from singleshot.data.grasp.cornell import find_cornell_samples, load_cornell
from singleshot.data.grasp.depth import invalid_depth_mask, read_depth_tiff
from singleshot.data.grasp.jacquard import find_jacquard_samples, load_jacquard
from singleshot.data.grasp.synthetic import generate_grasp_dataset
from singleshot.errors import ConfigError

SIZE = (120, 160)


def test_cornell_layout_read_back(tmp_path: Path) -> None:
    ids = generate_grasp_dataset(tmp_path, num_images=8, seed=0, size=SIZE, images_per_object=3)
    assert ids == [f"pcd{100 + i:04d}" for i in range(8)]
    raw = read_depth_tiff(tmp_path / "01" / "pcd0100d.tiff")
    assert raw.shape == SIZE and raw.dtype == np.float32
    assert invalid_depth_mask(raw).any()  # sensor-like holes are present in the file
    with Image.open(tmp_path / "01" / "pcd0100r.png") as im:
        assert im.mode == "RGB" and im.size == (SIZE[1], SIZE[0])
    samples = find_cornell_samples(tmp_path, object_map=tmp_path / "objects.txt")
    assert [s.image_id for s in samples] == ids
    assert [s.object_id for s in samples] == ["obj000"] * 3 + ["obj001"] * 3 + ["obj002"] * 2
    n_on = n = 0
    for s in samples:
        with pytest.warns(UserWarning, match="inpainted"):
            img = load_cornell(s, depth=True, rgb=True)
        assert img.depth is not None and len(img.grasps) >= 2 and len(img.negatives) >= 1
        d = img.depth
        table = float(np.median(np.concatenate([d[:5].ravel(), d[-5:].ravel()])))
        assert 0.55 < table < 0.75
        for cx, cy, th, op, _ in img.grasps:
            centre = d[int(round(cy)), int(round(cx))]
            u = np.array([math.cos(th), -math.sin(th)]) * (op / 2 + 1)
            fingers = [d[int(round(cy + k * u[1])), int(round(cx + k * u[0]))] for k in (-1, 1)]
            n += 1
            # On the object: nearer than the table by > 5 mm; the fingers reach past it to the table.
            n_on += bool(centre < table - 0.005 and min(fingers) > centre + 0.005)
    assert n_on == n


def test_deterministic_given_seed(tmp_path: Path) -> None:
    generate_grasp_dataset(tmp_path / "a", num_images=3, seed=5, size=(64, 80))
    generate_grasp_dataset(tmp_path / "b", num_images=3, seed=5, size=(64, 80))
    generate_grasp_dataset(tmp_path / "c", num_images=3, seed=6, size=(64, 80))
    for name in ("pcd0102d.tiff", "pcd0102r.png", "pcd0102cpos.txt", "pcd0102cneg.txt"):
        assert (tmp_path / "a" / "01" / name).read_bytes() == (tmp_path / "b" / "01" / name).read_bytes()
    first = (tmp_path / "a" / "01" / "pcd0100cpos.txt").read_text()
    assert first != (tmp_path / "c" / "01" / "pcd0100cpos.txt").read_text()


def test_jacquard_layout_read_back(tmp_path: Path) -> None:
    generate_grasp_dataset(tmp_path, num_images=4, seed=1, size=(96, 96), layout="jacquard", images_per_object=2)
    samples = find_jacquard_samples(tmp_path)
    assert [s.image_id for s in samples] == ["0_obj000", "1_obj000", "0_obj001", "1_obj001"]
    assert samples[0].mask_path is not None
    with pytest.warns(UserWarning, match="inpainted"):
        img = load_jacquard(samples[0])
    mask = np.asarray(Image.open(samples[0].mask_path)) > 0
    c = img.grasps[:, :2].round().astype(int)
    assert mask[c[:, 1], c[:, 0]].all()


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="layout"):
        generate_grasp_dataset(tmp_path, 1, layout="voc")
    with pytest.raises(ConfigError):
        generate_grasp_dataset(tmp_path, 0)
