"""Grasp post-processing against independent references: ``scipy.ndimage.gaussian_filter`` for the
smoothing and a NumPy re-statement of ``skimage.feature.peak_local_max`` (maximum filter with mode
"nearest", threshold, border, stable ranking, greedy Chebyshev spacing) for the peaks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from singleshot.postprocess.grasp import GraspPostprocess, find_peaks, gaussian_blur, maps_to_grasps, smooth_maps


def _skimage_like_peaks(
    img: np.ndarray, min_distance: int, threshold: float, border: int, num_peaks: int | None
) -> list[tuple[int, int]]:
    size = 2 * min_distance + 1
    mx = ndimage.maximum_filter(img, size=size, mode="nearest")
    mask = img == mx
    if mask.all():
        return []
    mask &= img > threshold
    if border:
        mask[:border] = mask[-border:] = False
        mask[:, :border] = mask[:, -border:] = False
    coords = np.transpose(np.nonzero(mask))
    coords = coords[np.argsort(-img[mask], kind="stable")]
    kept: list[tuple[int, int]] = []
    for r, c in coords:
        if all(max(abs(r - kr), abs(c - kc)) >= min_distance for kr, kc in kept):
            kept.append((int(r), int(c)))
    return kept if num_peaks is None else kept[:num_peaks]


@pytest.mark.parametrize("sigma", [1.0, 2.0, 3.3])
def test_gaussian_blur_matches_scipy(sigma: float) -> None:
    img = torch.rand(2, 37, 45, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ours = gaussian_blur(img, sigma)
    for i in range(2):
        ref = ndimage.gaussian_filter(img[i].numpy(), sigma, mode="nearest", truncate=4.0)
        np.testing.assert_allclose(ours[i].numpy(), ref, atol=1e-12)
    assert torch.equal(gaussian_blur(img, 0.0), img)


def test_find_peaks_matches_reference_on_random_maps() -> None:
    gen = torch.Generator().manual_seed(1)
    noise = torch.rand(3, 120, 140, generator=gen, dtype=torch.float64)
    q = torch.stack([gaussian_blur(noise, s)[i] for i, s in enumerate((1.0, 2.0, 0.0))])  # last: raw noise
    q[2] *= 0.5  # some values below the threshold
    for md, thr, num in [(20, 0.2, None), (5, 0.3, 7), (3, 0.4, None)]:
        bi, ri, ci, scores = find_peaks(q, md, thr, True, num)
        for i in range(3):
            ref = _skimage_like_peaks(q[i].numpy(), md, thr, md, num)
            sel = bi == i
            assert list(zip(ri[sel].tolist(), ci[sel].tolist())) == ref, (md, i)
            assert torch.equal(scores[sel], q[i][ri[sel], ci[sel]])
        assert bool((bi[1:] >= bi[:-1]).all())  # grouped by image
    assert len(ri) > 50  # the many-candidate case was exercised


def test_find_peaks_special_cases() -> None:
    q = torch.zeros(4, 60, 60)
    q[0] = 0.7  # constant image: no peaks
    q[1, 30, 30] = 0.2  # not strictly above the threshold
    q[2, 10, 30] = 0.9  # inside the 20 px border
    q[3, 30, 30] = 0.9  # a plateau: one peak, the first in row-major order
    q[3, 30, 31] = 0.9
    q[3, 40, 30] = 0.5  # 10 px away: suppressed
    q[3, 30, 45] = 0.6  # a local maximum of its own window? no: (30, 30) is within 20 px
    q[3, 21, 39] = 0.8  # Chebyshev distance 9 from (30, 30): suppressed
    bi, ri, ci, _ = find_peaks(q, 20, 0.2, True, None)
    assert bi.tolist() == [3] and (ri.tolist(), ci.tolist()) == ([30], [30])
    bi, ri, ci, _ = find_peaks(q, 20, 0.2, False, None)
    assert (2, 10, 30) in list(zip(bi.tolist(), ri.tolist(), ci.tolist()))
    # equal peaks exactly min_distance apart (Chebyshev 20) both stay; 19 apart only the first
    q2 = torch.zeros(2, 100, 100)
    q2[:, 40, 40] = 1.0
    q2[0, 60, 45] = q2[1, 59, 45] = 1.0
    bi, ri, ci, _ = find_peaks(q2, 20, 0.2, True, None)
    assert list(zip(bi.tolist(), ri.tolist(), ci.tolist())) == [(0, 40, 40), (0, 60, 45), (1, 40, 40)]
    for i in range(2):
        ref = _skimage_like_peaks(q2[i].numpy(), 20, 0.2, 20, None)
        assert [(r, c) for b, r, c in zip(bi.tolist(), ri.tolist(), ci.tolist()) if b == i] == ref
    assert find_peaks(q2, 20, 0.2, True, 1)[1].tolist() == [40, 40]


def test_maps_to_grasps_reads_smoothed_maps() -> None:
    h, w = 100, 120
    pos = torch.zeros(2, 1, h, w)
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    pos[0, 0] = torch.exp(-((xx - 70.0) ** 2 + (yy - 40.0) ** 2) / 50)
    pos[0, 0] += 0.6 * torch.exp(-((xx - 40.0) ** 2 + (yy - 60.0) ** 2) / 50)
    theta = 0.4
    outputs = {
        "pos": pos,
        "cos": torch.full((2, 1, h, w), math.cos(2 * theta)),
        "sin": torch.full((2, 1, h, w), math.sin(2 * theta)),
        "width": torch.full((2, 1, h, w), 0.4),
    }
    out = maps_to_grasps(outputs, 2, image_ids=["a", "b"])
    assert [len(g) for g in out] == [2, 0] and out[0].image_id == "a" and out[0].size == (h, w)
    g = out[0].grasps
    assert g[0].tolist() == pytest.approx([70.0, 40.0, theta, 60.0, 30.0], abs=1e-5)
    assert g[1, :2].tolist() == [40.0, 60.0]
    q, _, _ = smooth_maps(outputs)
    assert out[0].scores.tolist() == pytest.approx([float(q[0, 40, 70]), float(q[0, 60, 40])])
    assert len(GraspPostprocess()(outputs)[0]) == 1  # the reference's top-1


def test_angle_range_and_defaults() -> None:
    # sin 2θ = 0, cos 2θ = -1 is the ±90° grasp: atan2 gives +π, angle +π/2
    outputs = {
        "pos": torch.zeros(1, 1, 64, 64),
        "cos": -torch.ones(1, 1, 64, 64),
        "sin": torch.zeros(1, 1, 64, 64),
        "width": torch.ones(1, 1, 64, 64),
    }
    outputs["pos"][0, 0, 32, 32] = 20.0  # smoothed with σ 2: ≈ 0.8
    g = maps_to_grasps(outputs)[0].grasps
    assert g.shape == (1, 5)
    assert float(g[0, 2]) == pytest.approx(math.pi / 2) and float(g[0, 3]) == pytest.approx(150.0)
