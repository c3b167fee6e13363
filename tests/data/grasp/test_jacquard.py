"""Jacquard reader on the real samples, including the angle sign convention."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from singleshot.data.grasp.jacquard import find_jacquard_samples, load_jacquard, read_jacquard_grasps
from singleshot.data.grasp.rects import jacquard_to_grasps
from singleshot.errors import ConfigError, DataError


def test_real_samples(shared_data) -> None:  # type: ignore[no-untyped-def]
    root = shared_data("jacquard")
    samples = find_jacquard_samples(root)
    assert len(samples) == 3
    assert {s.object_id for s in samples} == {"1a9fa4c269cfcc1b738e43095496b061", "2f486fc43af412df22ebff72a57eff4"}
    s = samples[0]
    assert s.image_id == "0_1a9fa4c269cfcc1b738e43095496b061"
    img = load_jacquard(s, depth=True, rgb=True)
    assert img.depth is not None and img.depth.shape == (1024, 1024) and img.depth.dtype == np.float32
    assert img.rgb is not None and img.rgb.shape == (1024, 1024, 3)
    lines = [line for line in s.grasp_path.read_text().splitlines() if line.strip()]
    assert len(img.grasps) == len(lines)
    x, y, th, op, jaw = (float(v) for v in lines[0].split(";"))
    assert img.grasps[0].tolist() == pytest.approx([x, y, -math.radians(th), op, jaw], abs=1e-4)


def test_angle_sign_against_the_object_mask(shared_data) -> None:  # type: ignore[no-untyped-def]
    # With the right sign, the gripper's fingers (±opening/2 along the opening direction) fall off
    # the object's mask; with the opposite sign they land on it much more often.
    def fingers_on_mask(grasps: np.ndarray, mask: np.ndarray) -> float:
        hits = []
        for cx, cy, a, op, _ in grasps:
            for k in (-0.5, 0.5):
                x = int(np.clip(round(cx + k * op * math.cos(a)), 0, mask.shape[1] - 1))
                y = int(np.clip(round(cy - k * op * math.sin(a)), 0, mask.shape[0] - 1))
                hits.append(mask[y, x])
        return float(np.mean(hits))

    ours, flipped = [], []
    for s in find_jacquard_samples(shared_data("jacquard")):
        assert s.mask_path is not None
        mask = np.asarray(Image.open(s.mask_path)) > 0
        raw = read_jacquard_grasps(s.grasp_path)
        centres = raw[:, :2].round().astype(int)
        assert mask[centres[:, 1], centres[:, 0]].mean() > 0.9  # centres lie on the object
        ours.append(fingers_on_mask(jacquard_to_grasps(raw), mask))
        mirrored = raw.copy()
        mirrored[:, 2] *= -1
        flipped.append(fingers_on_mask(jacquard_to_grasps(mirrored), mask))
    # Measured: 0.19 / 0.23 / 0.06 against 0.43 / 0.26 / 0.11.
    assert all(a < b for a, b in zip(ours, flipped))
    assert np.mean(ours) < 0.7 * np.mean(flipped)


@pytest.mark.filterwarnings("ignore:.*stereo_depth.tiff. not found")
def test_stereo_depth_holes_are_repaired(shared_data) -> None:  # type: ignore[no-untyped-def]
    with pytest.warns(UserWarning, match="1_1a9fa4c269cfcc1b738e43095496b061_stereo_depth.tiff: not found"):
        samples = find_jacquard_samples(shared_data("jacquard"), depth="stereo")
    s = samples[0]
    with pytest.warns(UserWarning, match=r"0_1a9fa.*_stereo_depth\.tiff: inpainted \d+ invalid depth pixels \(0\.8"):
        img = load_jacquard(s)
    assert img.depth is not None and (img.depth > 0).all()
    with pytest.raises(DataError, match="no depth image"):
        load_jacquard(samples[1])
    with pytest.raises(ConfigError, match="depth"):
        find_jacquard_samples(shared_data("jacquard"), depth="bogus")


def test_malformed_and_nan_lines(tmp_path: Path) -> None:
    f = tmp_path / "0_obj_grasps.txt"
    f.write_text("1;2;3;4;5\n\nnan;2;3;4;5\n6;7;8;9;10\n")
    with pytest.warns(UserWarning, match=r"0_obj_grasps\.txt: line 3"):
        rows = read_jacquard_grasps(f)
    assert rows.tolist() == [[1, 2, 3, 4, 5], [6, 7, 8, 9, 10]]
    f.write_text("1;2;3;4;5\n1;2;3;4\n")
    with pytest.raises(DataError, match=r"0_obj_grasps\.txt: line 2"):
        read_jacquard_grasps(f)


def test_view_without_grasps_is_skipped(shared_data, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    src = shared_data("jacquard") / "2f486fc43af412df22ebff72a57eff4"
    dst = tmp_path / "2f486fc43af412df22ebff72a57eff4"
    shutil.copytree(src, dst)
    (dst / "0_2f486fc43af412df22ebff72a57eff4_grasps.txt").write_text("\n")
    with pytest.warns(UserWarning, match="no usable grasp; view skipped"):
        assert find_jacquard_samples(tmp_path) == []
    with pytest.raises(DataError, match="no usable grasp"):
        find_jacquard_samples(tmp_path, strict=True)
