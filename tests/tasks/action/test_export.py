"""ONNX export of YOWO and ACT: onnxruntime against PyTorch, the weights-file path, int8 calibration."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor, nn

pytest.importorskip("onnxruntime")
import onnx  # noqa: E402

from singleshot.engine.weights import save_weights  # noqa: E402
from singleshot.errors import ConfigError  # noqa: E402
from singleshot.export.onnx_runtime import OnnxModel  # noqa: E402
from singleshot.models import create_model  # noqa: E402
from singleshot.models.act import ACTDetector  # noqa: E402
from singleshot.models.l2norm import L2Norm  # noqa: E402
from singleshot.models.stream_conv import StreamDilatedConv2d  # noqa: E402
from singleshot.ops.priors import PriorSpec  # noqa: E402
from singleshot.tasks.action.act_predictor import ACTPredictor  # noqa: E402
from singleshot.tasks.action.act_two_stream import TwoStreamACT, fuse_streams  # noqa: E402
from singleshot.tasks.action.act_weights import stream_metas, two_stream_meta  # noqa: E402
from singleshot.tasks.action.export import (  # noqa: E402
    calibration_batches,
    export_action,
    export_action_model,
    load_onnx_action_model,
)

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
YOWO_KW = {"clip_len": 4, "width": 8, "cfam_channels": 32}
ACT_KW = {"k": 3, "image_size": 64, "width": 0.5}


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def _randomise_bn(model: nn.Module) -> nn.Module:
    """Non-trivial BatchNorm statistics, so that an export in training mode would not match."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d | nn.BatchNorm3d):
                m.running_mean.copy_(torch.rand(m.running_mean.shape, generator=g) * 0.4 - 0.2)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
    return model.eval()


def _yowo_meta(model: nn.Module) -> dict:
    return {
        "task": "action",
        "family": "yowo",
        "architecture": "yowo_tiny",
        "arch_kwargs": YOWO_KW,
        "num_classes": 3,
        "classes": ["a", "b", "c"],
        "anchors": model.anchors.tolist(),
        "clip_len": 4,
        "stride": 1,
        "input_size": [64, 64],
        "channel_order": "RGB",
        "mean": MEAN,
        "std": STD,
    }


def _act_meta() -> dict:
    return {
        "task": "action",
        "family": "act",
        "architecture": "act_tiny",
        "arch_kwargs": ACT_KW,
        "num_classes": 3,
        "classes": ["a", "b", "c"],
        "input_size": [64, 64],
        "channel_order": "RGB",
        "mean": MEAN,
        "std": STD,
    }


def _assert_close(onnx_out: dict[str, Tensor], torch_out: dict[str, Tensor], atol: float = 1e-4) -> None:
    assert sorted(onnx_out) == sorted(torch_out)
    for key, ref in torch_out.items():
        assert onnx_out[key].shape == ref.shape, key
        assert (onnx_out[key] - ref).abs().max().item() <= atol, key


def _batch_axis(path: Path) -> list:
    """Each graph input's and output's first dimension: a name when symbolic, else its size."""
    graph = onnx.load(str(path)).graph
    return [
        (d.dim_param or d.dim_value) for v in (*graph.input, *graph.output) for d in v.type.tensor_type.shape.dim[:1]
    ]


@pytest.fixture(scope="module")
def yowo() -> nn.Module:
    torch.manual_seed(0)
    return _randomise_bn(create_model("yowo_tiny", 3, **YOWO_KW))


@pytest.fixture(scope="module")
def act() -> nn.Module:
    torch.manual_seed(0)
    return _randomise_bn(create_model("act_tiny", 3, **ACT_KW))


def test_yowo_raw_outputs_match_at_batch_1_and_2(yowo: nn.Module, tmp_path: Path) -> None:
    path = export_action_model(yowo, _yowo_meta(yowo), tmp_path / "yowo.onnx")
    onnx_model = OnnxModel(path, threads=1)
    assert onnx_model.input_names == ["clips"] and onnx_model.output_names == ["out"]
    assert set(_batch_axis(path)) == {"batch"}
    graph_in = onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in graph_in[1:]] == [3, 4, 64, 64]  # [B, 3, T, H, W]
    for b in (1, 2):
        clips = torch.randn(b, 3, 4, 64, 64)
        with torch.no_grad():
            _assert_close(onnx_model(clips), yowo(clips))


def test_act_raw_outputs_match_at_batch_1_and_2(act: nn.Module, tmp_path: Path) -> None:
    path = export_action_model(act, _act_meta(), tmp_path / "act.onnx")
    onnx_model = OnnxModel(path, threads=1)
    assert onnx_model.input_names == ["frames"] and onnx_model.output_names == ["loc", "conf"]
    assert set(_batch_axis(path)) == {"batch"}
    for b in (1, 2):
        frames = torch.randn(b, 3, 3, 64, 64)  # [B, K, 3, S, S]
        with torch.no_grad():
            _assert_close(onnx_model(frames), act(frames))


class _StreamTrunk(nn.Module):
    """A two-map trunk with ACT's per-stream parts: an L2-normalised map (made per-stream by
    ACTDetector) and an fc6-like conv dilated 1, 6 and 36 on the three streams."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, stride=4, padding=1)
        self.l2norm = L2Norm(8)
        self.fc6 = StreamDilatedConv2d(8, 8, (1, 6, 36))
        self.down = nn.Conv2d(8, 8, 3, stride=2, padding=1)
        self.out_channels = [8, 8]

    def forward(self, x: Tensor) -> list[Tensor]:
        a = torch.relu(self.conv(x))
        b = self.down(torch.relu(self.fc6(a)))
        return [self.l2norm(a), b]


def test_act_per_stream_layers_export_with_dynamic_batch(tmp_path: Path) -> None:
    torch.manual_seed(0)
    spec = PriorSpec(64, [16, 8], [4.0, 8.0], [12.0, 24.0], [24.0, 48.0], [[2], [2]], clip="none")
    model = ACTDetector(_StreamTrunk(), 3, 2, spec).eval()
    with torch.no_grad():
        model.backbone.l2norm.weight.uniform_(5.0, 30.0)  # the three streams' scales differ
    path = export_action_model(model, {"architecture": "custom"}, tmp_path / "streams.onnx")
    onnx_model = OnnxModel(path, threads=1)
    for b in (1, 2):
        frames = torch.randn(b, 3, 3, 64, 64)
        with torch.no_grad():
            _assert_close(onnx_model(frames), model(frames))


@dataclass
class _Flat:
    """Tubelets as the shared matcher expects them (boxes [N, 4K])."""

    boxes: Tensor
    scores: Tensor
    labels: Tensor

    def __len__(self) -> int:
        return int(self.boxes.shape[0])


def test_export_action_weights_and_onnx_stands_in_for_yowo(
    yowo: nn.Module, tmp_path: Path, assert_same_detections
) -> None:
    from singleshot.postprocess.yowo import yowo_postprocess

    weights = tmp_path / "yowo.safetensors"
    save_weights(weights, yowo, _yowo_meta(yowo))
    result = export_action(weights)
    assert Path(result["dst"]) == tmp_path / "yowo.onnx" and result["input"] == [-1, 3, 4, 64, 64]
    model, meta = load_onnx_action_model(result["dst"], threads=1)
    assert meta["family"] == "yowo" and meta["classes"] == ["a", "b", "c"] and meta["source_weights"] == weights.name
    assert torch.equal(model.anchors, yowo.anchors) and model.num_classes == 3 and model.clip_len == 4
    clips = torch.randn(2, 3, 4, 64, 64)
    sizes = [(48, 64), (64, 80)]
    with torch.no_grad():
        ref = yowo_postprocess(yowo(clips), yowo.anchors, 3, (64, 64), sizes, conf_thresh=0.05)
    got = yowo_postprocess(model(clips), model.anchors, model.num_classes, (64, 64), sizes, conf_thresh=0.05)
    assert sum(len(d) for d in ref) > 0
    assert_same_detections(got, ref)


def test_export_action_weights_and_onnx_stands_in_for_act(
    act: nn.Module, tmp_path: Path, assert_same_detections
) -> None:
    from singleshot.postprocess.tubelet import postprocess_tubelets

    weights = tmp_path / "act.safetensors"
    save_weights(weights, act, _act_meta())
    result = export_action(weights, dst=tmp_path / "out" / "act.onnx")
    assert result["input"] == [-1, 3, 3, 64, 64] and result["outputs"] == ["loc", "conf"]
    model, meta = load_onnx_action_model(result["dst"], threads=1)
    assert torch.equal(model.priors, act.priors) and model.k == 3 and model.image_size == 64
    frames = torch.randn(2, 3, 3, 64, 64)
    with torch.no_grad():
        ref = postprocess_tubelets(act(frames), act.priors, [(64, 64), (90, 120)])
    got = postprocess_tubelets(model(frames), model.priors, [(64, 64), (90, 120)])
    flat = lambda ds: [_Flat(d.boxes.flatten(1), d.scores, d.labels) for d in ds]  # noqa: E731
    assert sum(len(d) for d in ref) > 0
    assert_same_detections(flat(got), flat(ref))


def _quantized(path: str | Path) -> bool:
    return any(n.op_type == "QuantizeLinear" for n in onnx.load(str(path)).graph.node)


def test_int8_yowo_with_random_and_file_calibration(yowo: nn.Module, tmp_path: Path) -> None:
    weights = tmp_path / "yowo.safetensors"
    save_weights(weights, yowo, _yowo_meta(yowo))
    with pytest.warns(UserWarning, match="random"):
        result = export_action(weights, int8=True, calib_samples=6)
    assert Path(result["dst"]).name == "yowo.int8.onnx" and result["calibration_samples"] == 6
    assert _quantized(result["dst"])
    model, meta = load_onnx_action_model(result["dst"], threads=1)
    assert meta["onnx"]["int8"]["format"] == "QDQ" and meta["family"] == "yowo"
    clips = torch.randn(2, 3, 4, 64, 64)
    with torch.no_grad():
        ref = yowo(clips)["out"]
    err = (model(clips)["out"] - ref).abs().mean() / ref.std()
    assert err < 0.2  # int8 noise, not a different network
    arrays = tmp_path / "calib.npy"
    np.save(arrays, np.random.default_rng(0).standard_normal((5, 3, 4, 64, 64)).astype(np.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = export_action(weights, tmp_path / "file.onnx", int8=True, calib=arrays, calib_samples=3)
    assert result["calibration_samples"] == 3 and _quantized(result["dst"])


def test_calibration_from_dataset_is_the_inference_preprocessing(act: nn.Module, tmp_path: Path) -> None:
    from singleshot.data.action.datasets import ActTubeletDataset
    from singleshot.data.action.readers import load_action_annotations
    from singleshot.data.action.synthetic import generate_action_dataset

    root = tmp_path / "data"
    generate_action_dataset(root, 1, 2, size=(48, 64), num_frames=(12, 12))
    meta = _act_meta()
    batches = list(calibration_batches(act, meta, root / "SynthAction-GT.pkl", count=4, batch=3))
    assert [b.shape for b in batches] == [(3, 3, 3, 64, 64), (1, 3, 3, 64, 64)]
    ann = load_action_annotations(root / "SynthAction-GT.pkl")
    dataset = ActTubeletDataset(ann, root, None, 3, 64, False, mean=MEAN, std=STD)  # its own normalisation
    assert np.allclose(batches[0][0], dataset[0][0].numpy(), atol=1e-5)
    assert np.allclose(batches[-1][0], dataset[len(dataset) - 1][0].numpy(), atol=1e-5)
    weights = tmp_path / "act.safetensors"
    save_weights(weights, act, meta)
    result = export_action(weights, int8=True, calib=root / "SynthAction-GT.pkl", calib_samples=4)
    assert result["calibration_samples"] == 4 and _quantized(result["dst"])


def test_yowo_predictor_takes_the_export(yowo: nn.Module, tmp_path: Path, assert_same_detections) -> None:
    from singleshot.tasks.action.predictor import YowoPredictor

    path = export_action_model(yowo, _yowo_meta(yowo), tmp_path / "yowo.onnx")
    model, meta = load_onnx_action_model(path, threads=1)
    settings = {"conf_thresh": 0.05, "nms_thresh": 0.4, "max_det": 50, "mode": "yowo"}
    frames = torch.randint(0, 256, (6, 3, 48, 64), dtype=torch.uint8)
    ref_pred, onnx_pred = YowoPredictor(yowo, meta, settings), YowoPredictor(model, meta, settings)
    ref = ref_pred.detect_video(ref_pred.prepare(frames), (48, 64), batch=4)
    got = onnx_pred.detect_video(onnx_pred.prepare(frames), (48, 64), batch=4)
    assert len(ref) == 6 and sum(len(d) for d in ref) > 0
    assert_same_detections(got, ref)


def _two_stream_weights(tmp_path: Path, modality: str, n: int) -> tuple[TwoStreamACT, Path]:
    """A two-stream ACT (motion stream of ``n`` flow images per frame, 3n channels) saved as one file."""
    torch.manual_seed(0)
    flow_kw = dict(ACT_KW, in_channels=3 * n) if n > 1 else ACT_KW
    model = TwoStreamACT(
        _randomise_bn(create_model("act_tiny", 3, **ACT_KW)), _randomise_bn(create_model("act_tiny", 3, **flow_kw))
    ).eval()
    flow_meta = dict(_act_meta(), modality=modality, fusion_weight=0.75, arch_kwargs=flow_kw, flow_stack=n)
    weights = tmp_path / "two.safetensors"
    save_weights(weights, model, two_stream_meta(_act_meta(), flow_meta))
    return model, weights


@pytest.mark.parametrize("modality, n", [("diff", 1), ("flow", 5)])
def test_two_stream_act_exports_one_graph_of_the_fused_outputs(tmp_path: Path, modality: str, n: int) -> None:
    """Both streams and ACT's late fusion in one graph: onnxruntime equals PyTorch's fused outputs
    (the RGB stream's boxes, log of the 0.25 / 0.75 mixed class probabilities)."""
    model, weights = _two_stream_weights(tmp_path, modality, n)
    result = export_action(weights)
    assert result["input"] == [-1, 3, 3, 64, 64] and result["motion_input"] == [-1, 3, 3 * n, 64, 64]
    onnx_model, meta = load_onnx_action_model(result["dst"], threads=1)
    assert onnx_model.input_names == ["frames", "motion"] and onnx_model.output_names == ["loc", "conf"]
    assert set(_batch_axis(Path(result["dst"]))) == {"batch"} and meta["two_stream"]["fusion_weight"] == 0.75
    assert torch.equal(onnx_model.priors, model.rgb.priors) and onnx_model.k == 3
    for b in (1, 2):
        frames, motion = torch.randn(b, 3, 3, 64, 64), torch.randn(b, 3, 3 * n, 64, 64)
        with torch.no_grad():
            ref = fuse_streams(model.rgb(frames), model.flow(motion), 0.75)
        _assert_close(onnx_model(frames, motion), ref)
    with pytest.raises(ConfigError, match="int8 export of a two-stream ACT"):
        export_action(weights, tmp_path / "q.onnx", int8=True)


def test_the_two_stream_graph_stands_in_for_both_streams_in_the_predictor(
    tmp_path: Path, assert_same_detections
) -> None:
    model, weights = _two_stream_weights(tmp_path, "diff", 1)
    onnx_model, meta = load_onnx_action_model(export_action(weights)["dst"], threads=1)
    flow_meta = stream_metas(meta)[1]
    ref = ACTPredictor(model.rgb, meta, flow_model=model.flow, flow_meta=flow_meta)
    got = ACTPredictor(onnx_model, meta, flow_model=onnx_model, flow_meta=flow_meta)
    assert got.fused and not ref.fused and got.fusion_weight == ref.fusion_weight == 0.75
    g = torch.Generator().manual_seed(2)
    windows = torch.randint(0, 256, (2, 3, 6, 64, 64), dtype=torch.uint8, generator=g)  # [B, K, 3 + 3, S, S]
    exp_dets, _ = ref.detect_windows(windows, [1, 2], (48, 64))
    got_dets, _ = got.detect_windows(windows, [1, 2], (48, 64))
    flat = lambda ds: [_Flat(d.boxes.flatten(1), d.scores, d.labels) for d in ds]  # noqa: E731
    assert sum(len(d) for d in exp_dets) > 0
    assert_same_detections(flat(got_dets), flat(exp_dets))
