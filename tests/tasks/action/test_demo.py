"""``singleshot action demo`` end to end at toy scale, the YOWO recipes in configs/, and the
k-means anchors of the demo."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from singleshot.cli import main
from singleshot.config import build_config
from singleshot.engine.weights import load_weights
from singleshot.errors import ConfigError
from singleshot.io.video import read_frames
from singleshot.models.yowo import JHMDB21_ANCHORS, UCF24_ANCHORS
from singleshot.structures import ActionAnnotations, Tube, VideoAnnotation
from singleshot.tasks.action.act_weights import stream_metas
from singleshot.tasks.action.config import ActionConfig
from singleshot.tasks.action.data import ensure_demo_dataset
from singleshot.tasks.action.predictor import build_action_model
from singleshot.tasks.action.yowo_train import kmeans_anchors

CONFIGS = Path(__file__).resolve().parents[3] / "configs"


pytestmark = pytest.mark.usefixtures("one_thread")


def test_demo_pipeline_at_toy_scale(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = [
        "action",
        "demo",
        "epochs=1",
        "n_train=4",
        "n_test=2",
        "video_size=48,64",
        "video_frames=12,14",
        "imgsz=64",
        "clip_len=4",
        "width=4",
        "batch=4",
        "workers=0",
        f"project={tmp_path}",
    ]
    assert main(args) == 0
    got = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in ("frame_map", "video_map@0.2", "video_map@0.5", "video_map@0.75", "video_map@0.5:0.95", "per_class"):
        assert key in got
    assert set(got["per_class"]) == {"Bounce", "Pulse", "Slide", "Spin"}
    run = tmp_path / "demo"
    assert (run / "results.png").is_file() and (run / "metrics.json").is_file()
    assert (tmp_path / "demo_data" / "SynthAction-GT.pkl").is_file() and (
        tmp_path / "demo_data" / "testlist.txt"
    ).is_file()
    frames = list(read_frames(Path(got["annotated_video"])))
    assert 12 <= len(frames) <= 14 and frames[0].shape == (48, 64, 3)
    _, meta = load_weights(run / "best.safetensors")
    assert len(meta["anchors"]) == 5 and max(max(a) for a in meta["anchors"]) < 2  # k-means: small synthetic boxes
    assert meta["linking"] == "act" and meta["postprocess"]["mode"] == "per_class"  # the demo's evaluation, recorded


def test_kmeans_anchors_recover_two_box_shapes() -> None:
    tubes = []
    for i, (w, h) in enumerate([(10, 20)] * 30 + [(40, 30)] * 30):
        boxes = np.array([[5, 5, 5 + w, 5 + h]], np.float32)
        tubes.append(Tube(f"v{i}", 0, np.array([1]), boxes))
    videos = {t.video: VideoAnnotation(t.video, 1, (100, 200), [t]) for t in tubes}
    ann = ActionAnnotations(["a"], videos)
    anchors = kmeans_anchors(ann, list(videos), grid=(4, 8), k=2)
    # widths are fractions of 200 px times 8 columns, heights fractions of 100 px times 4 rows
    np.testing.assert_allclose(anchors, [[0.4, 0.8], [1.6, 1.2]])


@pytest.mark.parametrize("name", ["yowo_ucf24.yaml", "yowo_jhmdb.yaml"])
def test_published_recipes_build(name: str) -> None:
    cfg = build_config(ActionConfig, CONFIGS / name, {})
    jhmdb = "jhmdb" in name
    # YOWO's cfg/ucf24.yaml (batch 10 to 128, x0.5 at epochs 2-5, 16 frames) and cfg/jhmdb.yaml
    # (batch 6 to 128, x0.5 at epochs 3-6, 32 frames); both sum the gradients of a step's batches
    batch, accumulate, milestones, clip_len = (6, 21, (2, 3, 4, 5), 32) if jhmdb else (10, 12, (1, 2, 3, 4), 16)
    assert (cfg.optimizer, cfg.lr, cfg.weight_decay, cfg.batch, cfg.accumulate) == (
        "adam",
        1e-4,
        5e-4,
        batch,
        accumulate,
    )
    assert cfg.milestones == milestones and cfg.gamma == 0.5 and cfg.clip_len == clip_len and cfg.imgsz == 224
    assert cfg.accumulate_mode == "sum"
    with torch.device("meta"):
        model, kwargs = build_action_model(cfg, 21 if jhmdb else 24)
    assert kwargs["backbone3d"] == "resnext101" and kwargs["backbone2d"] == "darknet19"
    expected = JHMDB21_ANCHORS if jhmdb else UCF24_ANCHORS
    np.testing.assert_allclose(model.anchors.tolist(), expected, rtol=1e-6)
    trained_2d = {n.split(".")[1] for n, p in model.backbone_2d.named_parameters() if p.requires_grad}
    trained_3d = {n.split(".")[0] for n, p in model.backbone_3d.named_parameters() if p.requires_grad}
    if jhmdb:  # get_fine_tuning_parameters with both backbones frozen: their last layers train
        assert trained_2d == {"29", "30"} and trained_3d == {"layer4"}
    else:
        assert all(p.requires_grad for p in model.parameters())


def test_out_stride_16_reaches_the_tiny_backbones_only() -> None:
    fine = ActionConfig(arch="yowo_tiny", width=4, out_stride=16, clip_len=4)
    model, kwargs = build_action_model(fine, 3)
    assert kwargs["stride"] == 16 and model.stride == 16
    assert model(torch.randn(1, 3, 4, 64, 96))["out"].shape[-2:] == (4, 6)
    mixed = ActionConfig(arch="yowo", backbone3d="tiny3d", backbone2d="tiny2d", width=4, out_stride=16, clip_len=4)
    assert build_action_model(mixed, 3)[0].stride == 16
    published = ActionConfig(arch="yowo", backbone3d="resnet18", backbone2d="darknet19", out_stride=16)
    with pytest.raises(ConfigError, match="out_stride=16"):
        build_action_model(published, 3)
    with pytest.raises(ConfigError, match="8, 16 or 32"):
        build_action_model(ActionConfig(out_stride=4), 3)
    eight = ActionConfig(arch="yowo_tiny", width=4, out_stride=8, clip_len=4)
    model, kwargs = build_action_model(eight, 3)
    assert kwargs["stride"] == 8 and model.stride == 8 and model.backbone_3d.stride == 16


def test_demo_dataset_is_rewritten_when_the_arguments_change(tmp_path, monkeypatch):
    import singleshot.data.action.synthetic as synthetic

    calls: list[int] = []
    real = synthetic.generate_action_dataset

    def counting(*args, **kwargs):
        calls.append(args[5])
        return real(*args, **kwargs)

    monkeypatch.setattr(synthetic, "generate_action_dataset", counting)
    root = tmp_path / "demo"
    for seed in (0, 0, 1, 0):
        assert ensure_demo_dataset(root, 1, 1, (48, 64), (12, 12), seed) == root
        markers = sorted(p.name for p in root.glob(".complete-*"))
        assert markers == [f".complete-1-1-48x64-12-12-{seed}"]
    assert calls == [0, 1, 0]  # the second seed-0 call found its marker; the last one did not
    assert len((root / "trainlist.txt").read_text().split()) > 0


def test_act_demo_with_flow5_at_toy_scale(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``action demo model=act modality=rgb+flow``: the demo videos' flow computed once (the flow
    mode), a FLOW5 motion stream trained on it, the annotated video with the flow computed online;
    ``action val`` with ``flow=`` scores as the training's evaluation did."""
    args = [
        "action",
        "demo",
        "model=act",
        "modality=rgb+flow",
        "epochs=1",
        "n_train=4",
        "n_test=2",
        "video_size=48,64",
        "video_frames=12,14",
        "imgsz=64",
        "K=3",
        "act_width=0.25",
        "batch=8",
        "workers=0",
        "parallel_branches=false",
        "conf=0.2",
        f"project={tmp_path}",
    ]
    assert main(args) == 0
    got = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    flow = tmp_path / "demo_data" / "flow-dis"
    assert len(list(flow.glob("*/*/00001.jpg"))) == 6 and len(list(flow.glob(".complete-*"))) == 1
    run = tmp_path / "demo_act"
    flow_meta = stream_metas(load_weights(run / "best.safetensors")[1])[1]
    assert flow_meta["modality"] == "flow" and flow_meta["flow_stack"] == 5
    assert flow_meta["arch_kwargs"]["in_channels"] == 15 and flow_meta["flow_images"]["method"] == "dis"
    assert 12 <= len(list(read_frames(Path(got["annotated_video"])))) <= 14
    val = [
        "action",
        "val",
        f"weights={run / 'best.safetensors'}",
        f"data={tmp_path / 'demo_data'}",
        f"flow={flow}",
        "workers=0",
        "conf=0.2",
        "cache=false",
        f"project={tmp_path}",
    ]
    assert main(val) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["frame_map"] == pytest.approx(got["frame_map"])
