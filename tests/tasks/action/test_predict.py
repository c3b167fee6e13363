"""``singleshot action predict`` and the YOWO predictor: clip assembly (key frame last, start clamped),
online streaming equal to whole-video inference, output files readable by the metrics readers."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.transforms.v2.functional as TF
from PIL import Image

from singleshot.cli import main
from singleshot.engine.weights import save_weights
from singleshot.errors import ConfigError
from singleshot.io.video import VideoWriter, read_frames
from singleshot.metrics.action_files import read_frame_detections, read_tubes
from singleshot.postprocess.yowo import yowo_postprocess
from singleshot.structures import FrameDets, Tube
from singleshot.tasks.action.config import ActionConfig
from singleshot.tasks.action.evaluate import load_predictor
from singleshot.tasks.action.predictor import action_meta, build_action_model, link_tubes, trim_tube, yowo_linking

CLASSES = ["a", "b", "c"]


pytestmark = pytest.mark.usefixtures("one_thread")


def _weights(path: Path, imgsz: int = 64, clip_len: int = 4, stride: int = 1) -> Path:
    cfg = ActionConfig(arch="yowo_tiny", width=4, clip_len=clip_len, imgsz=imgsz, stride=stride)
    torch.manual_seed(0)
    model, kwargs = build_action_model(cfg, len(CLASSES))
    save_weights(path, model, action_meta(model, cfg, kwargs, CLASSES))
    return path


def _frames(n: int, h: int = 64, w: int = 80, seed: int = 0) -> np.ndarray:
    """uint8 [n, h, w, 3]: a bright square moving right over a noisy background."""
    rng = np.random.default_rng(seed)
    out = rng.integers(0, 60, (n, h, w, 3), dtype=np.uint8)
    for t in range(n):
        out[t, 20:40, 5 + 2 * t : 25 + 2 * t] = 230
    return out


def _last_json(capsys: pytest.CaptureFixture[str]) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_clips_end_at_the_key_frame_and_clamp_at_the_start(tmp_path: Path) -> None:
    predictor = load_predictor(ActionConfig(weights=str(_weights(tmp_path / "w.safetensors", stride=2))))
    frames = torch.from_numpy(_frames(7)).permute(0, 3, 1, 2)
    stored = predictor.prepare(frames)
    expected_frames = {1: [1, 1, 1, 1], 2: [1, 1, 1, 2], 5: [1, 1, 3, 5], 7: [1, 3, 5, 7]}  # T=4, stride 2
    clips = predictor.clips(stored, list(expected_frames))
    mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    for b, idx in enumerate(expected_frames.values()):
        resized = TF.resize(frames[[i - 1 for i in idx]], [64, 64], antialias=True)  # torchvision, on uint8
        ref = ((resized.float() / 255 - mean) / std).permute(1, 0, 2, 3)
        torch.testing.assert_close(clips[b], ref)
    with torch.no_grad():
        out = predictor.model(clips)
    ref_dets = yowo_postprocess(
        out, predictor.model.anchors, 3, (64, 64), [(64, 80)] * 4, conf_thresh=0.005, nms_thresh=0.4, max_det=100
    )
    got = predictor(clips, [(64, 80)] * 4)
    for g, r in zip(got, ref_dets):
        torch.testing.assert_close(g.boxes, r.boxes)
        assert len(g) > 0 and float(g.boxes[:, 2].max()) <= 80 and float(g.boxes[:, 3].max()) <= 64


def test_online_stream_equals_whole_video_inference(tmp_path: Path) -> None:
    predictor = load_predictor(ActionConfig(weights=str(_weights(tmp_path / "w.safetensors", stride=2))))
    frames = _frames(11)
    offline = predictor.detect_video(predictor.prepare(torch.from_numpy(frames).permute(0, 3, 1, 2)), (64, 80), batch=4)
    online = list(predictor.stream(iter(frames), batch=3))
    assert [n for n, _, _ in online] == list(range(1, 12)) and predictor.span == 7
    for (_, frame, d), ref in zip(online, offline):
        assert frame.shape == (64, 80, 3)
        torch.testing.assert_close(d.boxes, ref.boxes, rtol=1e-4, atol=1e-3)
        torch.testing.assert_close(d.scores, ref.scores, rtol=1e-4, atol=1e-5)
        assert torch.equal(d.labels, ref.labels)


def _check_outputs(out: dict, n: int, h: int, w: int) -> None:
    dets = read_frame_detections(out["frame_detections"])
    assert out["frames"] == n and len(dets) == out["detections"] > 0
    assert set(dets.frame.tolist()) <= set(range(1, n + 1)) and dets.label.max() < 3
    assert dets.boxes[:, 2].max() <= w and dets.boxes[:, 3].max() <= h and (dets.boxes >= 0).all()
    tubes = read_tubes(out["tubes_file"])
    assert tubes and all(t.frames.tolist() == list(range(1, n + 1)) for t in tubes)  # Viterbi: no trimming
    assert [t.score for t in tubes] == sorted((t.score for t in tubes), reverse=True)
    t = tubes[0]  # each tube box is a detection of its class on its frame
    for f, box in zip(t.frames[:5], t.boxes[:5]):
        rows = (dets.frame == f) & (dets.label == t.label)
        assert np.isclose(dets.boxes[rows], box, atol=1e-3).all(axis=1).any()
    video = list(read_frames(Path(out["video"])))
    assert len(video) == n and video[0].shape == (h - h % 2, w - w % 2, 3)


def test_predict_on_a_generated_video_and_a_frame_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    weights = _weights(tmp_path / "w.safetensors")
    frames = _frames(16)
    with VideoWriter(tmp_path / "clip.mp4", 25.0, 80, 64) as writer:
        for f in frames:
            writer.write(f)
    assert (
        main(["action", "predict", f"weights={weights}", f"source={tmp_path / 'clip.mp4'}", f"project={tmp_path}"]) == 0
    )
    _check_outputs(_last_json(capsys), 16, 64, 80)
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, f in enumerate(frames, start=1):
        Image.fromarray(f).save(folder / f"{i:05d}.png")
    args = ["action", "predict", f"weights={weights}", f"source={folder}", f"project={tmp_path}", "video_name=X/frames"]
    assert main(args) == 0
    out = _last_json(capsys)
    _check_outputs(out, 16, 64, 80)
    assert set(read_frame_detections(out["frame_detections"]).videos) == {"X/frames"}
    missing = ["action", "predict", f"weights={weights}", f"source={tmp_path / 'missing.mp4'}", f"project={tmp_path}"]
    assert main(missing) == 2
    assert "missing.mp4" in capsys.readouterr().err
    assert not (tmp_path / "predict3").exists()  # the failed call leaves no folder


def test_predict_on_a_real_ucf101_video(
    shared_data: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    video = shared_data("video", "v_Basketball_g01_c01.avi")
    weights = _weights(tmp_path / "w.safetensors")
    assert main(["action", "predict", f"weights={weights}", f"source={video}", f"project={tmp_path}", "batch=16"]) == 0
    _check_outputs(_last_json(capsys), 141, 240, 320)


def test_trim_keeps_the_best_run_of_confident_frames() -> None:
    scores = np.array([0.01, 0.5, 0.6, 0.02, 0.9, 0.8, 0.7, 0.01], np.float32)
    boxes = np.arange(32, dtype=np.float32).reshape(8, 4)
    tube = Tube("v", 1, np.arange(1, 9), boxes, float(scores.mean()), scores)
    cut = trim_tube(tube, 0.1)
    assert cut is not None and cut.frames.tolist() == [5, 6, 7]  # 2.4 beats 1.1
    assert cut.score == pytest.approx(0.8) and np.array_equal(cut.boxes, boxes[4:7])
    assert trim_tube(tube, 0.95) is None


def test_act_linking_of_frame_detections_by_hand() -> None:
    """``linking=act``: per-frame detections as one-frame tubelets through ACT's linking. Video "v":
    an actor of label 0 moving 1 px a frame over frames 1-20, missed on frames 8-10 (a gap of 3 < 5:
    bridged), a far distractor of label 0 on frames 1-20 too (a second tube), and a label-1 blip on
    frames 3-6 (4 frames < min_length 15: dropped). Each tube's frame scores are its detections'."""
    rows = []
    for f in range(1, 21):
        if not 8 <= f <= 10:
            rows.append((0, f, 0, 0.9, (10.0 + f, 10.0, 30.0 + f, 40.0)))
        rows.append((0, f, 0, 0.2, (100.0, 100.0, 120.0, 130.0)))
        if 3 <= f <= 6:
            rows.append((0, f, 1, 0.5, (10.0 + f, 10.0, 30.0 + f, 40.0)))
    v, f, c, s, b = (np.array(x) for x in zip(*rows))
    dets = FrameDets(["v"], v, f, c, s, np.stack(b))
    tubes = sorted(link_tubes(dets, {"v": 20}, linking="act"), key=lambda t: -t.score)
    assert [(t.label, len(t)) for t in tubes] == [(0, 17), (0, 20)]
    actor, distractor = tubes
    assert actor.frames.tolist() == [*range(1, 8), *range(11, 21)]
    assert np.allclose(actor.boxes[:, 0], 10.0 + actor.frames) and actor.score == pytest.approx(0.9)
    assert np.allclose(actor.frame_scores, 0.9) and np.allclose(distractor.boxes, [100, 100, 120, 130])
    assert distractor.score == pytest.approx(0.2)
    # trimming applies after linking; MOC's preset (link IoU 0.5, gap K = 1) cuts the actor at the gap
    assert len(link_tubes(dets, {"v": 20}, trim=0.5, linking="act")) == 1
    moc = sorted((t.label, len(t)) for t in link_tubes(dets, {"v": 20}, linking="moc"))
    assert moc == [(0, 20)]  # the actor's pieces (7 and 10 frames) are shorter than min_length 15
    assert yowo_linking(ActionConfig(), {"linking": "act"}) == "act"  # recorded in the weights
    assert yowo_linking(ActionConfig(linking="moc"), {"linking": "act"}) == "moc"  # the command line wins
    assert yowo_linking(ActionConfig()) == "viterbi"
    with pytest.raises(ConfigError, match="linking='tracks'"):
        yowo_linking(ActionConfig(linking="tracks"))


def test_export_mode_then_predict_with_the_onnx_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``action export`` on the CLI, then ``predict`` given the ``.onnx``: the same detections as
    with the ``.safetensors`` (onnxruntime vs PyTorch, within float tolerance)."""
    weights = _weights(tmp_path / "w.safetensors")
    assert main(["action", "export", f"weights={weights}", f"dst={tmp_path / 'w.onnx'}"]) == 0
    assert _last_json(capsys)["dst"] == str(tmp_path / "w.onnx")
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, f in enumerate(_frames(10), start=1):
        Image.fromarray(f).save(folder / f"{i:05d}.png")
    outs = {}
    for kind in ("safetensors", "onnx"):
        args = [
            "action",
            "predict",
            f"weights={tmp_path / ('w.' + kind)}",
            f"source={folder}",
            f"project={tmp_path / kind}",
        ]
        assert main(args) == 0
        outs[kind] = _last_json(capsys)
    _check_outputs(outs["onnx"], 10, 64, 80)
    a, b = (read_frame_detections(outs[k]["frame_detections"]) for k in ("safetensors", "onnx"))
    assert len(a) == len(b) > 0 and (a.frame == b.frame).all() and (a.label == b.label).all()
    assert np.allclose(a.boxes, b.boxes, atol=1e-2) and np.allclose(a.score, b.score, atol=1e-4)


def test_a_stalled_stream_ends_with_everything_so_far_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], stalling_http_server: Callable
) -> None:
    """An HTTP stream that sends half a video then goes silent: predict stops after timeout= seconds
    with a message, and the frames received are in a valid annotated video and the JSON (Lines) files."""
    video = tmp_path / "clip.ts"
    import av

    container = av.open(str(video), mode="w", format="mpegts")
    stream = container.add_stream("mpeg4", rate=25)
    stream.width, stream.height, stream.pix_fmt = 80, 64, "yuv420p"
    for frame in _frames(40):
        for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    data = video.read_bytes()

    with stalling_http_server(data, hold_seconds=5) as url:
        weights = _weights(tmp_path / "w.safetensors")
        code = main(
            ["action", "predict", f"weights={weights}", f"source={url}", f"project={tmp_path / 'p'}", "timeout=1.5"]
        )
    assert code == 2
    err = capsys.readouterr().err
    assert "stalled" in err and "processed and written" in err
    out = tmp_path / "p" / "predict"
    frames = list(read_frames(out / "live.mp4"))
    assert 5 < len(frames) < 40  # the frames that arrived, in a playable file
    lines = (out / "live_frames.jsonl").read_text().splitlines()
    assert all(json.loads(line)["frame"] <= len(frames) for line in lines)
    assert len(read_frame_detections(out / "live_frames.json")) == len(lines)
    read_tubes(out / "live_tubes.json")  # valid


def test_predict_folder_of_videos_names_them_apart_and_skips_an_undecodable_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A folder of videos and frame folders: the frame folder ``a/`` and the video ``a.mp4`` are
    named ``a`` and ``a_1`` (their files apart); an undecodable video is skipped, its empty files
    removed, listed in skipped.txt, exit status 3; ``video_name=`` is refused there; a folder whose
    every video is undecodable is an error (2)."""
    weights = _weights(tmp_path / "w.safetensors")
    videos = tmp_path / "videos"
    (videos / "a").mkdir(parents=True)
    frames = _frames(6)
    for i, f in enumerate(frames, start=1):
        Image.fromarray(f).save(videos / "a" / f"{i:05d}.png")
    with VideoWriter(videos / "a.mp4", 25.0, 80, 64) as writer:
        for f in frames:
            writer.write(f)
    (videos / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 not a video")
    args = ["action", "predict", f"weights={weights}", f"project={tmp_path / 'runs'}", "batch=4"]
    assert main([*args, f"source={videos}"]) == 3
    got = _last_json(capsys)
    out = Path(got["out"])
    assert got["videos"] == 2 and got["frames"] == 12 and got["skipped_inputs"] == 1
    assert sorted(got["per_video"]) == ["a", "a_1"] and got["detections"] > 0
    for name in ("a", "a_1"):
        assert set(read_frame_detections(out / f"{name}_frames.json").videos) == {name}
        assert (out / f"{name}.mp4").is_file() and (out / f"{name}_tubes.json").is_file()
    assert not list(out.glob("broken*"))
    assert "broken.mp4" in (out / "skipped.txt").read_text()

    assert main([*args, f"source={videos}", "video_name=X", "name=named"]) == 2
    assert "video_name=X names one video" in capsys.readouterr().err
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "b.mp4").write_bytes(b"garbage")
    assert main([*args, f"source={bad}", "name=bad"]) == 2
    assert f"{bad}: none of its 1 video file(s) could be read" in capsys.readouterr().err
    assert not (tmp_path / "runs" / "bad").exists() and not (tmp_path / "runs" / "named").exists()
