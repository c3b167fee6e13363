"""ACT's feature cache: each frame through the trunk once, windows from per-frame maps. The
tubelets equal those of every window run whole (``feature_cache=false``), for one and two streams
(RGB difference, FLOW5), K = 2 and 6, batch edges and videos shorter than K, offline and streaming."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from singleshot.models.act import act_tiny
from singleshot.postprocess.tubelet import TubeletPostprocess
from singleshot.tasks.action.act_predictor import ACTPredictor
from singleshot.tasks.action.act_tubelets import CandidateSettings, VideoTubelets

META = {"input_size": [64, 64], "classes": ["a", "b", "c"]}
FAST = {
    "settings": TubeletPostprocess(score_thresh=0.2, topk_candidates=60, max_detections=30),
    "candidates": CandidateSettings(keep=40),
}

pytestmark = pytest.mark.usefixtures("one_thread")


def _predictor(k: int, motion: str | None) -> ACTPredictor:
    torch.manual_seed(k)
    rgb = act_tiny(3, k=k, image_size=64, width=0.25)
    if motion is None:
        return ACTPredictor(rgb, META, **FAST)
    flow = act_tiny(3, k=k, image_size=64, width=0.25, in_channels=15 if motion == "flow" else 3)
    return ACTPredictor(rgb, META, flow_model=flow, flow_meta={"modality": motion}, **FAST)


def _video(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    base = torch.randint(0, 256, (1, 3, 40, 56), dtype=torch.uint8, generator=g)
    noise = torch.randint(-30, 30, (n, 3, 40, 56), generator=g)
    return (base.int() + noise).clamp(0, 255).to(torch.uint8)


def _same(a: VideoTubelets, b: VideoTubelets) -> None:
    assert a.num_frames == b.num_frames
    for name in ("det_start", "det_labels", "cand_start"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    for name in ("det_boxes", "det_scores", "cand_boxes", "cand_scores"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("k", [2, 6])
@pytest.mark.parametrize("motion", [None, "diff", "flow"])
def test_cached_windows_equal_whole_windows(k: int, motion: str | None) -> None:
    predictor = _predictor(k, motion)
    for n, batch, seed in ((13, 4, 0), (k, 1, 1), (k - 1, 3, 2), (9, 50, 3)):
        frames = _video(n, seed)
        flow = _video(n, seed + 10) if motion == "flow" else None
        stored = predictor.prepare(frames, flow)
        runs = {}
        for cache in (False, True):
            predictor.feature_cache = cache
            runs[cache] = predictor.detect_video(stored, (40, 56), "v", batch=batch)
        _same(runs[True], runs[False])
        if n >= k:
            assert len(runs[True].cand_start) > 0


@pytest.mark.parametrize("k", [2, 6])
@pytest.mark.parametrize("motion", [None, "diff"])
def test_cached_stream_equals_whole_stream(k: int, motion: str | None) -> None:
    predictor = _predictor(k, motion)
    for n, batch in ((15, 4), (k - 1, 2), (k + 1, 1)):
        arrays = [f.permute(1, 2, 0).numpy() for f in _video(n, n)]
        runs = {}
        for cache in (False, True):
            predictor.feature_cache = cache
            runs[cache] = predictor.stream(iter(arrays), "v", batch=batch)[0]
        _same(runs[True], runs[False])


def test_the_cache_holds_at_most_k_minus_one_frames_between_batches() -> None:
    from singleshot.tasks.action.act_predictor import WindowFeatures

    predictor = _predictor(6, None)
    stored = predictor.prepare(_video(30, 0))
    held = WindowFeatures(predictor)
    for first in range(1, 26, 4):
        starts = list(range(first, min(25, first + 3) + 1))
        held.add(lambda frames: predictor.frame_inputs(stored, frames), starts[-1] + 5)
        held.detect(starts, (40, 56))
        assert len(held.features[0]) <= 5
