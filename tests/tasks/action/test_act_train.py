"""``singleshot action train/val/predict/convert/demo`` with ``model=act`` on a tiny synthetic
dataset in the real YOWO layout + ACT pickle: the engine wiring, val files that ``score`` reads
back, predict on an encoded video, the Caffe import's command, and a seconds-long demo smoke run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from singleshot.cli import main
from singleshot.convert._common import ConvertedWeights
from singleshot.data.action.frames import read_clip_frames
from singleshot.data.action.readers import load_action_annotations
from singleshot.data.action.synthetic import SYNTH_PICKLE, generate_action_dataset
from singleshot.engine.weights import load_weights
from singleshot.io.video import VideoWriter, read_frames
from singleshot.metrics.action_score import score_action
from singleshot.models.act import act_tiny

TINY = [
    "model=act",
    "arch=act_tiny",
    "act_width=0.25",
    "K=3",
    "imgsz=64",
    "batch=8",
    "workers=0",
    "lr=1e-3",
    "optimizer=adam",
    "schedule=constant",
    "warmup=0",
]


pytestmark = pytest.mark.usefixtures("one_thread")


def _last_json(capsys: pytest.CaptureFixture[str]) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(dataset root, run folder) of two epochs on 3 + 2 tiny videos."""
    tmp = tmp_path_factory.mktemp("act_cli")
    root = tmp / "data"
    generate_action_dataset(root, 3, 2, size=(48, 64), num_frames=(12, 14), seed=0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert (
            main(
                ["action", "train", f"data={root}", *TINY, "epochs=2", "eval_every=2", "trim=0.05"]
                + [f"project={tmp}", "name=run"]
            )
            == 0
        )
    finally:
        torch.set_num_threads(threads)
    return root, tmp / "run"


def test_train_writes_act_weights_logs_and_plots(trained: tuple[Path, Path]) -> None:
    _, run = trained
    for name in ("best.safetensors", "last.pt", "results.csv", "results.png", "config.yaml"):
        assert (run / name).is_file(), name
    state, meta = load_weights(run / "best.safetensors")
    assert meta["family"] == "act" and meta["architecture"] == "act_tiny" and meta["K"] == 3
    assert meta["arch_kwargs"] == {"k": 3, "image_size": 64, "width": 0.25} and meta["input_size"] == [64, 64]
    assert meta["classes"] == ["Bounce", "Pulse", "Slide", "Spin"] and meta["epoch"] == 2
    assert set(meta["metrics"]) >= {"frame_map", "video_map@0.5"}
    assert state["head.loc.0.weight"].shape[0] % (4 * 3) == 0  # 4K offsets per anchor
    rows = (run / "results.csv").read_text().strip().splitlines()
    assert len(rows) == 3 and "metrics/frame_map" in rows[0]


def test_val_of_the_runs_weights_prints_the_runs_metrics(
    trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The evaluation settings of the run (here trim=0.05, ACT's protocol) travel in its weights."""
    root, run = trained
    _, meta = load_weights(run / "best.safetensors")
    assert meta["train_config"]["trim"] == 0.05
    capsys.readouterr()
    assert main(["action", "val", f"weights={run / 'best.safetensors'}", f"data={root}", f"project={tmp_path}"]) == 0
    got = _last_json(capsys)
    assert got["trim"] == 0.05  # taken from the weights, not the default 0
    assert {k: got[k] for k in ("frame_map", "video_map@0.5")} == {
        k: meta["metrics"][k] for k in ("frame_map", "video_map@0.5")
    }
    assert (
        main(["action", "val", f"weights={run / 'best.safetensors'}", f"data={root}", f"project={tmp_path}", "trim=0"])
        == 0
    )
    assert _last_json(capsys)["trim"] == 0.0  # a key given wins


def test_val_is_act_protocol_caches_tubelets_and_scores_back(
    trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, run = trained
    args = [
        "action",
        "val",
        f"weights={run / 'best.safetensors'}",
        f"data={root / SYNTH_PICKLE}",
        f"project={tmp_path}",
        "workers=0",
        "conf=0.02",
    ]
    capsys.readouterr()
    assert main(args) == 0
    got = _last_json(capsys)
    assert got["protocol"] == "act" and got["linking"].startswith("act")  # ACT's protocol unless asked otherwise
    assert got["save_dir"] == str(tmp_path / "val")
    ann = load_action_annotations(root / SYNTH_PICKLE)
    cached = [tmp_path / "cache" / "tubelets" / f"{v}.npz" for v in ann.test_videos]
    assert all(p.is_file() for p in cached)  # beside the run folders, so that later runs find it
    stamps = [p.stat().st_mtime_ns for p in cached]
    again = score_action(root / SYNTH_PICKLE, tmp_path / "val" / "frames.json", tmp_path / "val" / "tubes.json", "act")
    assert again["frame_map"] == pytest.approx(got["frame_map"]) and again["video_map@0.5"] == pytest.approx(
        got["video_map@0.5"]
    )
    assert main([*args, "protocol=yowo", "linking=moc"]) == 0  # an explicit protocol wins; the cache is reused
    other = _last_json(capsys)
    assert other["protocol"] == "yowo" and other["linking"].startswith("moc")
    assert other["save_dir"] == str(tmp_path / "val2") and (tmp_path / "val2" / "tubes.json").is_file()
    assert [p.stat().st_mtime_ns for p in cached] == stamps  # read back, not recomputed


def test_predict_on_an_encoded_video(trained: tuple[Path, Path], tmp_path: Path) -> None:
    root, run = trained
    ann = load_action_annotations(root / SYNTH_PICKLE)
    video = ann.test_videos[0]
    n = ann.videos[video].num_frames
    clip = tmp_path / "clip.mp4"
    with VideoWriter(clip, 10.0, 64, 48) as writer:
        for frame in read_clip_frames(root, video, range(1, n + 1)):
            writer.write(frame.permute(1, 2, 0).numpy())
    args = [
        "action",
        "predict",
        f"weights={run / 'best.safetensors'}",
        f"source={clip}",
        f"project={tmp_path}",
        "show_conf=0",
        "conf=0.02",
    ]
    assert main(args) == 0
    out = tmp_path / "predict"
    frames = json.loads((out / "clip_frames.json").read_text())
    tubes = json.loads((out / "clip_tubes.json").read_text())
    assert all(e["video"] == "clip" and 1 <= e["frame"] <= n for e in frames)
    assert all(len(t["frames"]) == len(t["boxes"]) and 0 <= t["label"] < 4 for t in tubes)
    assert [t["score"] for t in tubes] == sorted((t["score"] for t in tubes), reverse=True)
    drawn = list(read_frames(out / "clip.mp4"))
    assert len(drawn) == n and drawn[0].shape == (48, 64, 3)


def test_convert_from_caffe_writes_act_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The file mapping itself is proven in tests/convert/test_caffe_act.py; here: the command's wiring.
    import singleshot.convert.caffe_act as caffe_act

    model = act_tiny(3, k=2, image_size=64, width=0.25)
    meta = {
        "family": "act",
        "architecture": "act_tiny",
        "arch_kwargs": {"k": 2, "image_size": 64, "width": 0.25},
        "num_classes": 3,
        "classes": ["a", "b", "c"],
        "K": 2,
        "input_size": [64, 64],
        "channel_order": "BGR",
        "mean": [104 / 255, 117 / 255, 123 / 255],
        "std": [1 / 255] * 3,
    }
    calls: list[tuple[str, str]] = []

    def fake(prototxt: str, caffemodel: str) -> ConvertedWeights:
        calls.append((str(prototxt), str(caffemodel)))
        return ConvertedWeights(dict(model.state_dict()), meta, {}, str(caffemodel))

    monkeypatch.setattr(caffe_act, "convert_caffe_act", fake)
    dst = tmp_path / "act.safetensors"
    capsys.readouterr()
    assert main(["action", "convert", "from=caffe", "prototxt=deploy.prototxt", f"dst={dst}"]) == 2
    assert "from=caffe needs caffemodel=" in capsys.readouterr().err and not dst.exists()
    assert (
        main(
            [
                "action",
                "convert",
                "from=caffe",
                "prototxt=d.prototxt",
                "caffemodel=m.caffemodel",
                f"dst={dst}",
                "classes=x,y,z",
            ]
        )
        == 0
    )
    assert calls == [("d.prototxt", "m.caffemodel")] and _last_json(capsys)["K"] == 2
    state, written = load_weights(dst)
    assert written["classes"] == ["x", "y", "z"] and written["channel_order"] == "BGR" and written["family"] == "act"
    for key, value in model.state_dict().items():
        assert torch.equal(state[key], value), key


def test_demo_smoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = [
        "action",
        "demo",
        "model=act",
        f"project={tmp_path}",
        "n_train=3",
        "n_test=2",
        "video_size=48,64",
        "video_frames=12,14",
        "epochs=1",
        "imgsz=64",
        "act_width=0.25",
        "K=3",
        "batch=8",
        "workers=0",
    ]
    capsys.readouterr()
    assert main(args) == 0
    got = _last_json(capsys)
    for key in (
        "frame_map",
        "video_map@0.2",
        "video_map@0.5",
        "video_map@0.75",
        "video_map@0.5:0.95",
        "per_class",
        "epochs",
        "train_seconds",
        "weights",
        "annotated_video",
        "demo_seconds",
    ):
        assert key in got, key
    assert Path(got["annotated_video"]).is_file() and (Path(got["out"]) / "results.png").is_file()
    assert np.isfinite(got["frame_map"]) and got["epochs"] == 1
    assert "two_stream" in load_weights(Path(got["out"]) / "best.safetensors")[1]  # the demo's RGB-difference stream


def test_train_act_with_a_teacher(
    trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``teacher=`` for ACT: soft labels on every anchor cuboid, logged as ``kd``; the student alone is
    saved; a teacher with another K is refused."""
    root, run = trained
    teacher = run / "best.safetensors"
    args = [
        "action",
        "train",
        f"data={root}",
        *TINY,
        "epochs=1",
        f"project={tmp_path}",
        "name=kd",
        f"teacher={teacher}",
    ]
    assert main(args) == 0
    rows = (tmp_path / "kd" / "results.csv").read_text().strip().splitlines()
    header, first = rows[0].split(","), rows[1].split(",")
    assert float(first[header.index("train/kd")]) > 0
    state, meta = load_weights(tmp_path / "kd" / "best.safetensors")
    assert set(state) == set(load_weights(teacher)[0]) and meta["family"] == "act"
    capsys.readouterr()
    assert main([*args, "K=2", "name=bad"]) != 0
    assert "K" in capsys.readouterr().err


def test_export_then_val_with_the_onnx_file_in_worker_processes(
    trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``action export`` then ``val weights=*.onnx``: in this process and in worker processes (each
    opening its own onnxruntime session), the metrics of the ``.safetensors``; the tubelet cache
    is keyed by the file, so it is not mistaken for the torch model's."""
    root, run = trained
    onnx = tmp_path / "act.onnx"
    assert main(["action", "export", f"weights={run / 'best.safetensors'}", f"dst={onnx}"]) == 0
    common = [f"data={root / SYNTH_PICKLE}", "conf=0.02"]
    capsys.readouterr()
    results = {}
    for name, weights, workers in (("torch", run / "best.safetensors", 0), ("ort", onnx, 0), ("ort_workers", onnx, 2)):
        assert (
            main(["action", "val", f"weights={weights}", *common, f"project={tmp_path / name}", f"workers={workers}"])
            == 0
        )
        results[name] = _last_json(capsys)
    for name in ("ort", "ort_workers"):
        assert results[name]["frame_map"] == pytest.approx(results["torch"]["frame_map"], abs=1e-3)
        assert results[name]["video_map@0.5"] == pytest.approx(results["torch"]["video_map@0.5"], abs=1e-3)
