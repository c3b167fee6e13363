"""GraspDataset: inputs and grasps of one view agree, on real Cornell / Jacquard and synthetic data."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from singleshot.data.grasp.augment import GraspAugment, transform_grasps
from singleshot.data.grasp.cornell import read_cornell_rectangles
from singleshot.data.grasp.dataset import GraspDataset, find_grasp_samples
from singleshot.data.grasp.depth import read_depth_tiff
from singleshot.data.grasp.rects import corners_to_grasps
from singleshot.data.grasp.synthetic import generate_grasp_dataset
from singleshot.errors import ConfigError
from singleshot.structures import Grasps


def test_cornell_gt_center_crop_as_the_reference(shared_data) -> None:  # type: ignore[no-untyped-def]
    root = shared_data("cornell")
    ds = GraspDataset(find_grasp_samples(root), input="depth", size=300, crop="gt_center", crop_size=300)
    x, target = ds[0]
    assert isinstance(target, Grasps) and x.shape == (1, 300, 300) and x.dtype == torch.float32
    # GG-CNN: centre = int(mean of the rectangles' points); left/top clamped into the 640x480 image.
    pts = read_cornell_rectangles(root / "pcd0100cpos.txt")
    cx, cy = (int(v) for v in pts.reshape(-1, 2).mean(axis=0))
    left, top = max(0, min(cx - 150, 640 - 300)), max(0, min(cy - 150, 480 - 300))
    crop = read_depth_tiff(root / "pcd0100d.tiff")[top : top + 300, left : left + 300]
    expected = np.clip(crop - crop.mean(), -1, 1)
    np.testing.assert_allclose(x[0].numpy(), expected, atol=1e-6)
    g = corners_to_grasps(pts)
    np.testing.assert_allclose(target.grasps[:, 0].numpy(), g[:, 0] - left, atol=1e-4)
    np.testing.assert_allclose(target.grasps[:, 1].numpy(), g[:, 1] - top, atol=1e-4)
    np.testing.assert_allclose(target.grasps[:, 2:].numpy(), g[:, 2:], atol=1e-5)
    assert target.size == (300, 300) and target.image_id == "pcd0100"
    assert torch.equal(target.scores, torch.ones(4))


def test_inputs_rgb_and_rgbd(shared_data) -> None:  # type: ignore[no-untyped-def]
    samples = find_grasp_samples(shared_data("cornell"))
    x_rgb, _ = GraspDataset(samples, input="rgb", size=150, crop="center")[1]
    x_rgbd, t = GraspDataset(samples, input="rgbd", size=150, crop="center")[1]
    x_d, _ = GraspDataset(samples, input="depth", size=150, crop="center")[1]
    assert x_rgb.shape == (3, 150, 150) and x_rgbd.shape == (4, 150, 150)
    assert abs(float(x_rgb.mean())) < 1e-5  # the reference subtracts the mean, not 0.5
    torch.testing.assert_close(x_rgbd[0], x_d[0])  # depth first, as the reference concatenates
    torch.testing.assert_close(x_rgbd[1:], x_rgb)
    # center crop 300 of 640x480 -> (170, 90), resized by 0.5: pixel centres map (x + 0.5) / 2 - 0.5.
    ds = GraspDataset(samples, input="depth", size=150, crop="center")
    g0 = ds.load(1).grasps
    expected = transform_grasps(g0, ds.view_matrix(1))
    np.testing.assert_allclose(t.grasps[:, 0].numpy(), (g0[:, 0] - 170 + 0.5) / 2 - 0.5, atol=1e-4)
    np.testing.assert_allclose(t.grasps.numpy(), expected, atol=1e-5)
    np.testing.assert_allclose(t.grasps[:, 3].numpy(), g0[:, 3] / 2, rtol=1e-5)
    back = transform_grasps(t.grasps.numpy(), np.linalg.inv(ds.view_matrix(1)))
    np.testing.assert_allclose(back[:, :2], g0[:, :2], atol=1e-3)


def test_jacquard_whole_view_resized(shared_data) -> None:  # type: ignore[no-untyped-def]
    samples = find_grasp_samples(shared_data("jacquard"))
    ds = GraspDataset(samples, input="depth", size=300, crop="center", crop_size=None)
    x, t = ds[2]
    assert x.shape == (1, 300, 300) and float(x.abs().max()) <= 1.0
    g0 = ds.load(2).grasps
    s = 300 / 1024
    np.testing.assert_allclose(t.grasps[:, 0].numpy(), (g0[:, 0] + 0.5) * s - 0.5, atol=1e-3)
    np.testing.assert_allclose(t.grasps[:, 3].numpy(), g0[:, 3] * s, rtol=1e-5)


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("grasp_synth")
    generate_grasp_dataset(root, num_images=6, seed=3, size=(120, 160))
    return root


def test_augmented_grasps_stay_on_the_objects(synthetic_root: Path) -> None:
    # After random rotations (any angle), flips and zooms, each grasp centre is still on the object
    # and its fingers still reach the table: pixels and grasps moved together.
    samples = find_grasp_samples(synthetic_root)
    aug = GraspAugment(rotate90=True, max_angle=45, zoom=(0.5, 1.0), hflip=0.5, vflip=0.5)
    ds = GraspDataset(samples, input="depth", size=96, crop="center", crop_size=100, augment=aug, cache=True)
    torch.manual_seed(0)
    checked = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(3):
            for i in range(len(ds)):
                x, t = ds[i]
                d = x[0].numpy()
                for cx, cy, th, op, _ in t.grasps.numpy():
                    u = np.array([math.cos(th), -math.sin(th)]) * (op / 2 + 1.5)
                    pts = [(cx, cy), (cx + u[0], cy + u[1]), (cx - u[0], cy - u[1])]
                    if not all(0 <= px <= 95 and 0 <= py <= 95 for px, py in pts):
                        continue  # cut off by the zoom
                    c, f1, f2 = (d[int(round(py)), int(round(px))] for px, py in pts)
                    assert c < min(f1, f2) - 0.003
                    checked += 1
    assert checked > 30


def test_bad_configuration(synthetic_root: Path) -> None:
    samples = find_grasp_samples(synthetic_root)
    with pytest.raises(ConfigError, match="input"):
        GraspDataset(samples, input="rgbx")
    with pytest.raises(ConfigError, match="crop"):
        GraspDataset(samples, crop="middle")
    with pytest.raises(ConfigError, match="format"):
        find_grasp_samples(synthetic_root, format="voc")
