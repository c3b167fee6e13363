"""The ACT tubelet cache is keyed by the data as well as the weights: a second dataset evaluated into
the same cache (same video names, other files) is computed afresh and gets its own metrics; a video
whose frame file changed is recomputed alone; the log says what was reused and why."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from singleshot.cli import main
from singleshot.data.action.readers import load_action_annotations
from singleshot.data.action.synthetic import SYNTH_PICKLE, generate_action_dataset
from singleshot.engine.weights import save_weights
from singleshot.models.act import act_tiny
from singleshot.postprocess.tubelet import TubeletPostprocess
from singleshot.tasks.action.act_evaluate import evaluate_act
from singleshot.tasks.action.act_predictor import ACTPredictor
from singleshot.tasks.action.config import ActionConfig

K = 3
CLASSES = ["Bounce", "Pulse", "Slide", "Spin"]
META = {
    "task": "action",
    "family": "act",
    "architecture": "act_tiny",
    "arch_kwargs": {"k": K, "image_size": 64, "width": 0.25},
    "K": K,
    "num_classes": 4,
    "classes": CLASSES,
    "input_size": [64, 64],
}

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def two_datasets(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two datasets with the same video names (the generator's) and other frames."""
    tmp = tmp_path_factory.mktemp("two_datasets")
    for seed, name in ((3, "a"), (4, "b")):
        generate_action_dataset(tmp / name, 1, 3, size=(48, 64), num_frames=(12, 15), seed=seed)
    return tmp / "a", tmp / "b"


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return act_tiny(4, k=K, image_size=64, width=0.25)


def _predictor() -> tuple[ACTPredictor, list[int]]:
    """An ACT predictor and the list of frames its trunk sees per call (the feature cache: each frame once)."""
    settings = TubeletPostprocess(score_thresh=0.21, topk_candidates=60, max_detections=30)
    predictor = ACTPredictor(_model(), dict(META), settings)
    seen: list[int] = []
    predictor.model.backbone.register_forward_hook(lambda m, args, out: seen.append(int(args[0].shape[0])))
    return predictor, seen


def _frames(ann: object, videos: list[str]) -> int:
    return sum(n for n in (ann.videos[v].num_frames for v in videos) if n >= K)


def test_a_second_dataset_is_not_served_the_firsts_tubelets(
    two_datasets: tuple[Path, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (root_a, root_b), cache = two_datasets, tmp_path / "tubelets"
    ann_a, ann_b = (load_action_annotations(r / SYNTH_PICKLE) for r in (root_a, root_b))
    assert ann_a.test_videos == ann_b.test_videos  # the same names: only the files tell them apart
    predictor, seen = _predictor()
    cfg = ActionConfig(batch=4, protocol="act")
    evaluate_act(predictor, ann_a, root_a, cfg, cache_dir=cache)
    seen.clear()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="singleshot.tasks.action.tubelet_cache"):
        cached_b, dets_b, _ = evaluate_act(predictor, ann_b, root_b, cfg, cache_dir=cache)
    assert sum(seen) == _frames(ann_b, ann_b.test_videos)  # every video of b ran
    assert "reusing" not in caplog.text and "3 made from other input files" in caplog.text
    fresh_b, dets0, _ = evaluate_act(predictor, ann_b, root_b, cfg)  # no cache at all
    for key in ("frame_map", "video_map@0.2", "video_map@0.5"):
        assert cached_b[key] == fresh_b[key]
    np.testing.assert_array_equal(dets_b.frame, dets0.frame)
    np.testing.assert_array_equal(dets_b.score, dets0.score)
    # b again: everything reused, and the log says on what grounds
    seen.clear()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="singleshot.tasks.action.tubelet_cache"):
        again, _, _ = evaluate_act(predictor, ann_b, root_b, cfg, cache_dir=cache)
    assert sum(seen) == 0 and again["frame_map"] == fresh_b["frame_map"]
    assert "reusing 3 of 3 videos" in caplog.text and "sizes and times" in caplog.text


def test_a_changed_frame_file_recomputes_its_video_only(
    two_datasets: tuple[Path, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "data"
    generate_action_dataset(root, 1, 3, size=(48, 64), num_frames=(12, 15), seed=5)
    ann = load_action_annotations(root / SYNTH_PICKLE)
    predictor, seen = _predictor()
    cfg, cache = ActionConfig(batch=4, protocol="act"), tmp_path / "tubelets"
    evaluate_act(predictor, ann, root, cfg, cache_dir=cache)
    video = ann.test_videos[1]
    frame = sorted((root / "rgb-images" / video).iterdir())[4]
    with Image.open(frame) as im:
        pixels = np.asarray(im.convert("RGB"))
    Image.fromarray(255 - pixels).save(frame)  # the video was re-extracted: other pixels
    st = frame.stat()
    os.utime(frame, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))  # and surely another time
    seen.clear()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="singleshot.tasks.action.tubelet_cache"):
        cached, dets, _ = evaluate_act(predictor, ann, root, cfg, cache_dir=cache)
    assert sum(seen) == _frames(ann, [video])  # only the changed video ran
    assert "reusing 2 of 3 videos" in caplog.text and "1 made from other input files" in caplog.text
    fresh, dets0, _ = evaluate_act(predictor, ann, root, cfg)
    np.testing.assert_array_equal(dets.score, dets0.score)
    assert cached["frame_map"] == fresh["frame_map"]


def test_action_val_of_two_datasets_into_one_project(
    two_datasets: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``action val`` (cache=true, its default) on dataset a, then on dataset b into the same
    project: b's files and metrics are b's own (those of a run without a cache)."""
    root_a, root_b = two_datasets
    weights = tmp_path / "act.safetensors"
    save_weights(weights, _model(), META)
    common = ["action", "val", f"weights={weights}", "workers=0", "conf=0.02"]

    def val(root: Path, project: Path, *extra: str) -> tuple[dict, str]:
        capsys.readouterr()
        caplog.clear()
        with caplog.at_level(logging.INFO):
            assert main([*common, f"data={root / SYNTH_PICKLE}", f"project={project}", *extra]) == 0
        result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        return result, (Path(result["save_dir"]) / "frames.json").read_text()

    val(root_a, tmp_path / "p")
    got, frames = val(root_b, tmp_path / "p")
    assert "reusing" not in caplog.text and "already done" not in caplog.text
    ref, ref_frames = val(root_b, tmp_path / "fresh", "cache=false")
    assert frames == ref_frames
    assert {k: got[k] for k in ("frame_map", "video_map@0.5")} == {k: ref[k] for k in ("frame_map", "video_map@0.5")}
