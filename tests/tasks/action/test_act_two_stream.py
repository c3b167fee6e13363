"""Two-stream ACT: the RGB-difference images against a NumPy formula, the training windows' motion
half, the flow flip, ACT's late fusion (mean class probabilities, RGB boxes), the online stream
with its one-frame look-ahead, and ``action train modality=rgb+diff`` -> one weights file of both
streams that ``action val`` fuses."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torchvision import tv_tensors

from singleshot.cli import main
from singleshot.data.action.clip_transforms import ClipResize
from singleshot.data.action.flow import video_flow_images
from singleshot.data.action.frames import read_clip_frames, read_frame
from singleshot.data.action.readers import load_action_annotations
from singleshot.data.action.synthetic import SYNTH_PICKLE, generate_action_dataset
from singleshot.engine.weights import load_weights
from singleshot.errors import ConfigError
from singleshot.models.act import act_tiny
from singleshot.postprocess.tubelet import TubeletPostprocess
from singleshot.tasks.action.act_predictor import ACTPredictor
from singleshot.tasks.action.act_tubelets import CandidateSettings
from singleshot.tasks.action.act_two_stream import FlowFlip, TwoStreamACT, TwoStreamTubeletDataset, motion_images
from singleshot.tasks.action.act_weights import stream_metas
from singleshot.tasks.action.flow import compute_flow

K = 3
META = {"input_size": [64, 64], "classes": ["Bounce", "Pulse", "Slide", "Spin"]}
FAST = {
    "settings": TubeletPostprocess(score_thresh=0.21, topk_candidates=60, max_detections=30),
    "candidates": CandidateSettings(keep=40),
}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    root = tmp_path_factory.mktemp("two_stream")
    generate_action_dataset(root, 3, 2, size=(48, 64), num_frames=(12, 14), seed=1)
    return root, load_action_annotations(root / SYNTH_PICKLE)


def test_motion_images_are_the_clamped_central_difference() -> None:
    frames = torch.randint(0, 256, (5, 3, 4, 6), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    f = frames.numpy().astype(np.int64)
    padded = np.concatenate([f[:1], f, f[-1:]])
    expected = np.clip(128 + np.floor((padded[2:] - padded[:-2]) / 2), 0, 255)
    np.testing.assert_array_equal(motion_images(frames).numpy(), expected)


@pytest.mark.parametrize("cache", [True, False])
def test_training_windows_hold_frames_then_their_motion_images(data: tuple[Path, object], cache: bool) -> None:
    root, ann = data
    ds = TwoStreamTubeletDataset(ann, root, None, K, (48, 64), True, transform=ClipResize((48, 64)), modality="diff")
    ds.cache_frames = cache
    video = ds.videos[0]
    n = ann.videos[video].num_frames
    whole = read_clip_frames(root, video, range(1, n + 1))
    motion = motion_images(whole)
    for start in (1, 2, n - K + 1, 1):  # both ends of the video (clamped neighbours); again from the cache
        clip = ds._read(video, list(range(start, start + K)))
        assert torch.equal(clip[:K], whole[start - 1 : start - 1 + K])
        assert torch.equal(clip[K:], motion[start - 1 : start - 1 + K])
    assert len(ds.__dict__.get("_diffs", {})) == (K + 1 + K if cache else 0)
    item, target = ds[0]
    assert item.shape == (2 * K, 3, 48, 64) and target.boxes.shape[1:] == (K, 4)


def test_flow_flip_mirrors_both_streams_and_negates_flow_x() -> None:
    x = torch.arange(2 * 2 * 3 * 2 * 3, dtype=torch.uint8).view(4, 3, 2, 3)  # K = 2: 2 RGB + 2 flow frames
    boxes = tv_tensors.BoundingBoxes(torch.tensor([[0.0, 0.0, 1.0, 2.0]]), format="XYXY", canvas_size=(2, 3))
    out, out_boxes = FlowFlip(2, p=1.0)(tv_tensors.Image(x), boxes)
    mirrored = x.flip(-1)
    assert torch.equal(out[:2], mirrored[:2]) and torch.equal(out[2:, 1:], mirrored[2:, 1:])
    assert torch.equal(out[2:, 0], 255 - mirrored[2:, 0])
    assert out_boxes.tolist() == [[2.0, 0.0, 3.0, 2.0]]


class _Fused(nn.Module):
    """Reference: an RGB model whose logits are replaced by log of the weighted mean of its
    probabilities (weight 1 - w) and a constant probability vector (weight w): what ACT's fusion gives
    when the other stream is constant (ACT: w = 0.5)."""

    def __init__(self, rgb: nn.Module, probs: torch.Tensor, w: float) -> None:
        super().__init__()
        self.rgb, self.k, self.priors, self.num_classes, self.probs = rgb, rgb.k, rgb.priors, rgb.num_classes, probs
        self.w = w

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.rgb(x)
        return {"loc": out["loc"], "conf": ((1 - self.w) * out["conf"].softmax(-1) + self.w * self.probs).log()}


@pytest.mark.parametrize("weight", [None, 0.5, 0.75])
def test_late_fusion_averages_class_probabilities_and_keeps_rgb_boxes(weight: float | None) -> None:
    torch.manual_seed(0)
    rgb, flow = act_tiny(4, k=K, image_size=64, width=0.25), act_tiny(4, k=K, image_size=64, width=0.25)
    logits = torch.tensor([0.5, 2.0, -1.0, 0.0, 1.0])
    with torch.no_grad():  # the motion stream predicts the same class probabilities everywhere
        for conv in flow.head.conf:
            conv.weight.zero_()
            conv.bias.copy_(logits.repeat(conv.bias.numel() // 5))
    flow_meta = {"modality": "diff"} if weight is None else {"modality": "diff", "fusion_weight": weight}
    two = ACTPredictor(rgb, META, flow_model=flow, flow_meta=flow_meta, **FAST)
    ref = ACTPredictor(_Fused(rgb, logits.softmax(0), 0.5 if weight is None else weight), META, **FAST)
    windows = torch.randint(0, 256, (2, K, 6, 64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    got_dets, got_cands = two.detect_windows(windows, [1, 2], (48, 64))
    exp_dets, exp_cands = ref.detect_windows(windows[:, :, :3], [1, 2], (48, 64))
    for g, e in zip(got_dets, exp_dets):
        assert len(g) == len(e) > 0
        assert torch.allclose(g.scores, e.scores, atol=1e-5) and torch.allclose(g.boxes, e.boxes, atol=1e-3)
    for (gb, gs), (eb, es) in zip(got_cands, exp_cands):
        assert torch.allclose(gs, es, atol=1e-5) and torch.allclose(gb, eb, atol=1e-3)


def test_fusion_weight_outside_zero_one_is_refused() -> None:
    rgb, flow = act_tiny(4, k=K, image_size=64, width=0.25), act_tiny(4, k=K, image_size=64, width=0.25)
    with pytest.raises(ConfigError, match="fusion_weight must lie in"):
        ACTPredictor(rgb, META, flow_model=flow, flow_meta={"modality": "diff", "fusion_weight": 1.5}, **FAST)


def test_online_stream_with_look_ahead_equals_the_whole_video(data: tuple[Path, object]) -> None:
    root, ann = data
    torch.manual_seed(0)
    rgb, flow = act_tiny(4, k=K, image_size=64, width=0.25), act_tiny(4, k=K, image_size=64, width=0.25)
    predictor = ACTPredictor(rgb, META, flow_model=flow, flow_meta={"modality": "diff"}, **FAST)
    video = ann.test_videos[0]
    n = ann.videos[video].num_frames
    frames = read_clip_frames(root, video, range(1, n + 1))
    whole = predictor.detect_video(predictor.prepare(frames), (48, 64), video, batch=4)
    online, _ = predictor.stream((f.permute(1, 2, 0).numpy() for f in frames), video, batch=3)
    assert online.num_frames == n and len(whole.det_start) > 0
    np.testing.assert_array_equal(online.det_start, whole.det_start)
    np.testing.assert_allclose(online.det_scores, whole.det_scores, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(online.cand_boxes, whole.cand_boxes, rtol=1e-4, atol=1e-3)


def two_stream_train_args(root: Path, project: Path, *extra: str) -> list[str]:
    """The command line of a one-epoch tiny two-stream ACT (RGB + RGB difference, motion weight 0.75)
    on the data at ``root``, into ``project/run``; ``extra`` keys added."""
    return [
        "action",
        "train",
        "model=act",
        "arch=act_tiny",
        "act_width=0.25",
        f"K={K}",
        "imgsz=64",
        "batch=8",
        "workers=0",
        "epochs=1",
        "modality=rgb+diff",
        "motion_weight=0.75",
        *extra,
        f"data={root}",
        f"project={project}",
        "name=run",
    ]


def test_train_two_streams_then_val_uses_both(
    data: tuple[Path, object], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, _ = data
    assert main(two_stream_train_args(root, tmp_path, "conf=0.2")) == 0
    run = tmp_path / "run"
    _, meta = load_weights(run / "best.safetensors")  # both streams in one file
    flow_meta = stream_metas(meta)[1]
    assert flow_meta["modality"] == "diff" and not (run / "best_flow.safetensors").exists()
    assert flow_meta["fusion_weight"] == 0.75  # val and predict fuse as training's evaluation did
    trained = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    val = [
        "action",
        "val",
        f"weights={run / 'best.safetensors'}",
        f"data={root / SYNTH_PICKLE}",
        "workers=0",
        "conf=0.2",
        f"project={tmp_path}",
        "cache=false",
    ]
    assert main(val) == 0
    both = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert both["frame_map"] == pytest.approx(trained["frame_map"])  # val found the motion stream by itself
    assert main([*val, "flow_weights=none"]) == 0
    rgb_only = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rgb_only["n_detections"] != both["n_detections"]


def test_parallel_streams_give_the_same_gradients() -> None:
    import copy

    from singleshot.tasks.action.act_two_stream import TwoStreamACT

    torch.manual_seed(0)
    seq = TwoStreamACT(act_tiny(3, k=K, image_size=64, width=0.25), act_tiny(3, k=K, image_size=64, width=0.25))
    par = copy.deepcopy(seq)
    par.parallel = True
    x = torch.randn(2, 2 * K, 3, 64, 64)
    outs = [m(x) for m in (seq, par)]
    for key in ("loc", "conf", "flow_loc", "flow_conf"):
        assert torch.equal(outs[0][key], outs[1][key])
    for out in outs:
        sum(v.square().mean() for v in out.values()).backward()
    for (name, p), q in zip(seq.named_parameters(), par.parameters()):
        assert torch.equal(p.grad, q.grad), name


# ---------------------------------------------------------------- FLOW5: n = 5 flow images per frame
N_FLOW = 5


@pytest.fixture(scope="module")
def flow_root(data: tuple[Path, object]) -> Path:
    root, _ = data
    compute_flow(root, root / "flow")
    return root / "flow"


def test_flip_negates_x_in_every_stacked_flow_image() -> None:
    k = 2
    x = torch.randint(
        0, 256, (k + k + N_FLOW - 1, 3, 2, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
    )
    out = FlowFlip(k, p=1.0)(tv_tensors.Image(x))
    mirrored = x.flip(-1)
    assert torch.equal(out[:k], mirrored[:k]) and torch.equal(out[k:, 1:], mirrored[k:, 1:])
    assert torch.equal(out[k:, 0], 255 - mirrored[k:, 0])  # all K + 4 flow images, hence all 5 of each stack


@pytest.mark.parametrize("cache", [True, False])
def test_flow5_windows_read_k_plus_4_flow_images_clamped_at_the_end(
    data: tuple[Path, object], flow_root: Path, cache: bool
) -> None:
    root, ann = data
    ds = TwoStreamTubeletDataset(
        ann,
        root,
        None,
        K,
        (48, 64),
        True,
        transform=ClipResize((48, 64)),
        modality="flow",
        flow_root=flow_root,
        flow_stack=N_FLOW,
    )
    ds.cache_frames = cache
    video = ds.videos[0]
    n = ann.videos[video].num_frames
    for start, wanted in ((1, range(1, K + N_FLOW)), (n - K + 1, [min(f, n) for f in range(n - K + 1, n + N_FLOW)])):
        clip = ds._read(video, list(range(start, start + K)))
        assert clip.shape[0] == K + K + N_FLOW - 1
        assert torch.equal(clip[:K], read_clip_frames(root, video, range(start, start + K)))
        flows = torch.stack([read_frame(flow_root / video / f"{f:05d}.jpg") for f in wanted])
        assert torch.equal(clip[K:], flows)
    item, _ = ds[0]
    assert item.shape == (K + K + N_FLOW - 1, 3, 48, 64)


def test_two_stream_act_feeds_the_flow_stream_its_15_channel_stacks() -> None:
    torch.manual_seed(0)
    rgb = act_tiny(3, k=K, image_size=64, width=0.25)
    flow = act_tiny(3, k=K, image_size=64, width=0.25, in_channels=3 * N_FLOW)
    model = TwoStreamACT(rgb, flow).eval()
    x = torch.randn(2, K + K + N_FLOW - 1, 3, 64, 64)
    with torch.no_grad():
        out = model(x)
        stacks = torch.stack([torch.cat([x[:, K + i + j] for j in range(N_FLOW)], 1) for i in range(K)], 1)
        want = flow(stacks)
    assert stacks.shape == (2, K, 15, 64, 64)
    assert torch.equal(out["flow_conf"], want["conf"]) and torch.equal(out["flow_loc"], want["loc"])
    assert torch.equal(out["conf"], rgb(x[:, :K])["conf"])


def _flow_predictor(meta: dict | None = None) -> ACTPredictor:
    torch.manual_seed(0)
    rgb = act_tiny(4, k=K, image_size=64, width=0.25)
    flow = act_tiny(4, k=K, image_size=64, width=0.25, in_channels=3 * N_FLOW)
    return ACTPredictor(rgb, META, flow_model=flow, flow_meta={"modality": "flow", **(meta or {})}, **FAST)


def test_flow5_online_stream_equals_the_whole_video(data: tuple[Path, object]) -> None:
    root, ann = data
    predictor = _flow_predictor()
    assert predictor.flow_stack == N_FLOW
    video = ann.test_videos[0]
    n = ann.videos[video].num_frames
    frames = read_clip_frames(root, video, range(1, n + 1))
    arrays = [f.permute(1, 2, 0).numpy() for f in frames]
    flow = torch.stack([torch.from_numpy(im).permute(2, 0, 1) for im in video_flow_images(arrays)])
    stored = predictor.prepare(frames, flow)
    # the windows of the last start: frame t of the window gets flow images t .. t+4, clamped at n
    last = predictor.windows(stored, [n - K + 1])[0]
    for j in range(K):
        want = [stored[min(n - K + j + i, n - 1), 3:] for i in range(N_FLOW)]
        assert torch.equal(last[j, 3:], torch.cat(want)) and torch.equal(last[j, :3], stored[n - K + j, :3])
    whole = predictor.detect_video(stored, (48, 64), video, batch=4)
    online, _ = predictor.stream(iter(arrays), video, batch=3)  # flow computed on the way (DIS)
    assert online.num_frames == n and len(whole.det_start) > 0
    np.testing.assert_array_equal(online.det_start, whole.det_start)
    np.testing.assert_allclose(online.det_scores, whole.det_scores, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(online.cand_boxes, whole.cand_boxes, rtol=1e-4, atol=1e-3)


def test_a_caffe_flow_stream_gets_acts_flow5_input() -> None:
    """ACT's extract_tubelets: per frame, the 5 flow images as OpenCV reads them (BGR) minus
    (104, 117, 123), concatenated along channels; our metadata of a converted flow model says that."""
    caffe = {"channel_order": "BGR", "mean": [104 / 255, 117 / 255, 123 / 255], "std": [1 / 255] * 3}
    predictor = _flow_predictor(caffe)
    seen: list[torch.Tensor] = []
    predictor.streams[1].model.register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    g = torch.Generator().manual_seed(3)
    n = 7
    frames = torch.randint(0, 256, (n, 3, 64, 64), dtype=torch.uint8, generator=g)
    flow = torch.randint(0, 256, (n, 3, 64, 64), dtype=torch.uint8, generator=g)
    predictor.detect_windows(predictor.windows(predictor.prepare(frames, flow), [4]), [4], (64, 64))
    mean = torch.tensor([104.0, 117.0, 123.0]).view(3, 1, 1)
    for j in range(K):  # window start 4 (1-based): frame 4 + j reads flow images min(4 + j + i, 7)
        want = torch.cat([flow[min(3 + j + i, n - 1)].flip(0).float() - mean for i in range(N_FLOW)])
        assert torch.allclose(seen[0][0, j], want, atol=1e-3)
