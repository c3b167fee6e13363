"""ACT inference and evaluation pieces: linking candidates against a loop-by-loop reference, the
online stream against the whole-video pass, Caffe's BGR input, ACT's optimizer groups, and the
tubelet cache (an interrupted evaluation resumes with the videos it had not done) and worker
processes (the same detections and metrics as in-process)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from singleshot.data.action.frames import read_clip_frames
from singleshot.data.action.readers import load_action_annotations
from singleshot.data.action.synthetic import SYNTH_PICKLE, generate_action_dataset
from singleshot.models.act import act_tiny
from singleshot.postprocess.tubelet import TubeletPostprocess
from singleshot.tasks.action.act_evaluate import evaluate_act, load_tubelets
from singleshot.tasks.action.act_predictor import ACTPredictor
from singleshot.tasks.action.act_train import act_param_groups
from singleshot.tasks.action.act_tubelets import CandidateSettings, linking_candidates
from singleshot.tasks.action.config import ActionConfig

K = 3


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    root = tmp_path_factory.mktemp("act_data")
    generate_action_dataset(root, 1, 3, size=(48, 64), num_frames=(12, 15), seed=3)
    return root, load_action_annotations(root / SYNTH_PICKLE)


def _meta(**extra: object) -> dict:
    meta = {
        "family": "act",
        "architecture": "act_tiny",
        "arch_kwargs": {"k": K, "image_size": 64, "width": 0.25},
        "num_classes": 4,
        "classes": ["Bounce", "Pulse", "Slide", "Spin"],
        "input_size": [64, 64],
    }
    meta.update(extra)
    return meta


def _predictor(seed: int = 0) -> ACTPredictor:
    torch.manual_seed(seed)
    model = act_tiny(4, k=K, image_size=64, width=0.25)
    settings = TubeletPostprocess(score_thresh=0.21, topk_candidates=60, max_detections=30)
    return ACTPredictor(model, _meta(), settings, candidates=CandidateSettings(keep=40))


def _decode(d: np.ndarray, p: np.ndarray) -> np.ndarray:
    """SSD's centre-size decoding with variances (0.1, 0.2), one box, then xyxy."""
    cx, cy = p[0] + d[0] * 0.1 * p[2], p[1] + d[1] * 0.1 * p[3]
    w, h = p[2] * math.exp(d[2] * 0.2), p[3] * math.exp(d[3] * 0.2)
    return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - iw * ih
    return iw * ih / union if union > 0 else 0.0


def test_linking_candidates_match_a_greedy_reference() -> None:
    g = torch.Generator().manual_seed(0)
    b, p, c, h, w = 2, 40, 3, 90, 120
    loc, conf = torch.randn(b, p, 4 * K, generator=g), torch.randn(b, p, c + 1, generator=g) * 2
    priors = torch.cat([torch.rand(p, 2, generator=g), torch.rand(p, 2, generator=g) * 0.5 + 0.1], 1)
    for floor in (0.0, 0.85):
        _check_candidates(loc, conf, priors, (h, w), CandidateSettings(nms_thresh=0.5, keep=12, min_score=floor))


def _check_candidates(
    loc: torch.Tensor, conf: torch.Tensor, priors: torch.Tensor, size: tuple[int, int], settings: CandidateSettings
) -> None:
    (b, p, _), c, (h, w) = loc.shape, conf.shape[-1] - 1, size
    got = linking_candidates({"loc": loc, "conf": conf}, priors, [(h, w)] * b, settings)
    for i in range(b):
        probs = conf[i].softmax(-1)[:, 1:].numpy()
        tubes = []
        for j in range(p):
            boxes = np.stack([_decode(loc[i, j, 4 * f : 4 * f + 4].numpy(), priors[j].numpy()) for f in range(K)])
            tubes.append(np.clip(boxes * [w, h, w, h], 0, [w, h, w, h]))
        kept: list[int] = []
        for j in sorted(range(p), key=lambda j: -probs[j].max()):
            if probs[j].max() > settings.min_score and all(
                np.mean([_iou(tubes[j][f], tubes[q][f]) for f in range(K)]) <= 0.5 for q in kept
            ):
                kept.append(j)
        kept = kept[: settings.keep]
        assert 0 < len(kept) and (len(kept) < settings.keep or settings.min_score == 0)
        boxes, scores = got[i]
        assert boxes.shape == (len(kept), K, 4) and scores.shape == (len(kept), c)
        np.testing.assert_allclose(boxes.numpy(), np.stack([tubes[j] for j in kept]), rtol=1e-4, atol=1e-3)
        np.testing.assert_allclose(scores.numpy(), probs[kept], rtol=1e-5)


def test_stream_equals_the_whole_video_pass(data: tuple[Path, object]) -> None:
    root, ann = data
    video = ann.test_videos[0]
    n = ann.videos[video].num_frames
    frames = read_clip_frames(root, video, range(1, n + 1))
    predictor = _predictor()
    whole = predictor.detect_video(predictor.prepare(frames), (48, 64), video, batch=5)
    online, size = predictor.stream((f.permute(1, 2, 0).numpy() for f in frames), video, batch=2)
    assert size == (48, 64) and online.num_frames == whole.num_frames == n
    assert sorted(set(whole.det_start.tolist())) == list(range(1, n - K + 2))
    for name in ("det_start", "det_labels", "cand_start"):
        np.testing.assert_array_equal(getattr(online, name), getattr(whole, name))
    for name in ("det_boxes", "det_scores", "cand_boxes", "cand_scores"):
        np.testing.assert_allclose(getattr(online, name), getattr(whole, name), rtol=1e-4, atol=1e-3)


def test_bgr_caffe_input_is_pixels_minus_the_bgr_mean() -> None:
    torch.manual_seed(0)
    meta = _meta(channel_order="BGR", mean=[104 / 255, 117 / 255, 123 / 255], std=[1 / 255] * 3)
    predictor = ACTPredictor(act_tiny(4, k=K, image_size=64, width=0.25), meta)
    frames = torch.randint(0, 256, (K, 3, 64, 64), dtype=torch.uint8)
    got = predictor.normalise(predictor.prepare(frames)[None])[0]
    expected = frames.flip(1).float() - torch.tensor([104.0, 117.0, 123.0]).view(1, 3, 1, 1)
    assert torch.allclose(got, expected, atol=1e-3)


def test_optimizer_groups_follow_act_caffe_multipliers() -> None:
    model = act_tiny(4, k=K, image_size=64, width=0.25)
    groups = act_param_groups(model, 0.1, 5e-4)
    seen = [id(p) for g in groups for p in g["params"]]
    assert sorted(seen) == sorted(id(p) for p in model.parameters()) and len(seen) == len(set(seen))
    setting = {id(p): (g["lr"], g["weight_decay"]) for g in groups for p in g["params"]}
    for name, p in model.named_parameters():
        base = 0.1 / K if name.startswith("backbone.") else 0.1
        want = (2 * base, 0.0) if name.endswith(".bias") else (base, 5e-4)
        assert setting[id(p)] == pytest.approx(want), name
    assert groups[0]["lr"] == pytest.approx(0.1)  # the logged rate is the heads' weights'


def _frames(ann: object, videos: list[str]) -> int:
    """Frames of the videos that have a window (K = 3 frames or more)."""
    n = [ann.videos[v].num_frames for v in videos]
    return sum(f for f in n if f >= K)


def test_cache_resumes_an_interrupted_evaluation(data: tuple[Path, object], tmp_path: Path) -> None:
    root, ann = data
    videos, cache = list(ann.test_videos), tmp_path / "tubelets"
    predictor = _predictor()
    cfg = ActionConfig(batch=4, protocol="act")
    seen: list[int] = []  # frames through the trunk: each frame once (the feature cache)
    predictor.model.backbone.register_forward_hook(lambda m, args, out: seen.append(int(args[0].shape[0])))
    evaluate_act(predictor, ann, root, cfg, videos[:2], cache_dir=cache)  # stopped after two videos
    assert sum(seen) == _frames(ann, videos[:2])
    stamps = {v: (cache / f"{v}.npz").stat().st_mtime_ns for v in videos[:2]}
    assert not (cache / f"{videos[2]}.npz").exists()
    seen.clear()
    resumed, dets, tubes = evaluate_act(predictor, ann, root, cfg, videos, cache_dir=cache)
    assert sum(seen) == _frames(ann, videos[2:])  # only the third video ran
    assert {v: (cache / f"{v}.npz").stat().st_mtime_ns for v in videos[:2]} == stamps
    seen.clear()
    fresh, dets0, _ = evaluate_act(predictor, ann, root, cfg, videos)  # no cache: everything runs
    assert sum(seen) == _frames(ann, videos)
    for key in ("frame_map", "video_map@0.2", "video_map@0.5"):
        assert resumed[key] == fresh[key]
    np.testing.assert_array_equal(dets.score, dets0.score)
    # other weights: the stamp differs, the files are not reused
    with torch.no_grad():
        next(predictor.model.parameters()).add_(0.01)
    assert load_tubelets(cache / f"{videos[0]}.npz", "another key", "any data") is None
    seen.clear()
    evaluate_act(predictor, ann, root, cfg, videos, cache_dir=cache)
    assert sum(seen) == _frames(ann, videos)


def test_worker_processes_give_the_same_results(data: tuple[Path, object], tmp_path: Path) -> None:
    root, ann = data
    predictor = _predictor(seed=1)
    cfg = ActionConfig(batch=4, protocol="act")
    m0, d0, t0 = evaluate_act(predictor, ann, root, cfg, workers=0)
    m2, d2, t2 = evaluate_act(predictor, ann, root, cfg, workers=2, cache_dir=tmp_path / "c")
    assert len(d0) > 0 and len(d0) == len(d2)
    np.testing.assert_array_equal(d0.frame, d2.frame)
    np.testing.assert_allclose(d0.score, d2.score, rtol=1e-5)
    np.testing.assert_allclose(d0.boxes, d2.boxes, rtol=1e-5, atol=1e-3)
    assert [(t.video, t.label, t.frames.tolist()) for t in t0] == [(t.video, t.label, t.frames.tolist()) for t in t2]
    for key in ("frame_map", "video_map@0.2", "video_map@0.5", "video_map@0.5:0.95"):
        assert m0[key] == pytest.approx(m2[key], abs=1e-9)
    assert sorted(p.name for p in (tmp_path / "c").rglob("*.npz")) == sorted(
        Path(v).name + ".npz" for v in ann.test_videos
    )


def test_one_worker_runs_in_this_process(
    data: tuple[Path, object], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """workers=1 (the key's help: "0 or 1: in this process") starts no process pool: one worker
    would do the work alone while this process waits."""
    from singleshot.tasks.action import act_evaluate

    def no_pool(*args: object, **kwargs: object) -> None:
        raise AssertionError("a process pool was started for workers=1")

    monkeypatch.setattr(act_evaluate, "ProcessPoolExecutor", no_pool)
    root, ann = data
    predictor = _predictor(seed=1)
    cfg = ActionConfig(batch=4, protocol="act")
    m1, d1, _ = evaluate_act(predictor, ann, root, cfg, workers=1)
    m0, d0, _ = evaluate_act(predictor, ann, root, cfg, workers=0)
    np.testing.assert_array_equal(d1.score, d0.score)
    assert m1["frame_map"] == m0["frame_map"]


def test_trim_cuts_act_tubes_to_their_confident_frames(data: tuple[Path, object]) -> None:
    root, ann = data
    predictor = _predictor(seed=1)
    untrimmed, dets, tubes = evaluate_act(predictor, ann, root, ActionConfig(batch=4, protocol="act"))
    scores = np.concatenate([t.frame_scores for t in tubes])
    thresh = float(np.quantile(scores, 0.5))  # cuts about half of the linked frames
    trimmed, dets_t, tubes_t = evaluate_act(predictor, ann, root, ActionConfig(batch=4, protocol="act", trim=thresh))
    np.testing.assert_array_equal(dets.score, dets_t.score)  # frame detections do not change
    assert trimmed["frame_map"] == untrimmed["frame_map"] and "trimmed at frame score" in trimmed["linking"]
    assert 0 < sum(len(t) for t in tubes_t) < sum(len(t) for t in tubes)
    expected = {(t.video, t.label, tuple(t.frames.tolist())) for t in tubes}
    for t in tubes_t:
        assert bool((t.frame_scores >= thresh).all()) and len(t) > 0
        # a contiguous run of an untrimmed tube of the same video and class
        assert any(v == t.video and lab == t.label and set(t.frames.tolist()) <= set(f) for v, lab, f in expected)
