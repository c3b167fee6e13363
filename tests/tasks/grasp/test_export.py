"""ONNX export of the grasp nets: onnxruntime against PyTorch, auxiliary head dropped, int8 calibration."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

pytest.importorskip("onnxruntime")
import onnx  # noqa: E402

from singleshot.engine.weights import save_weights  # noqa: E402
from singleshot.export.onnx_runtime import OnnxModel  # noqa: E402
from singleshot.models.ggcnn import MAP_KEYS, ggcnn, ggcnn2  # noqa: E402
from singleshot.models.psp_grasp import psp_grasp_resnet18  # noqa: E402
from singleshot.tasks.grasp.export import (  # noqa: E402
    StaticAdaptiveAvgPool2d,
    calibration_batches,
    export_grasp,
    export_grasp_model,
    load_onnx_grasp_model,
)


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def _meta(arch: str, kind: str, size: int) -> dict:
    return {
        "task": "grasp",
        "architecture": arch,
        "input": kind,
        "in_channels": {"depth": 1, "rgb": 3, "rgbd": 4}[kind],
        "input_size": [size, size],
        "crop": "center",
        "crop_size": None,
        "width_scale": 150.0,
    }


def _assert_close(onnx_out: dict[str, Tensor], torch_out: dict[str, Tensor], atol: float = 1e-4) -> None:
    assert sorted(onnx_out) == sorted(torch_out)
    for key, ref in torch_out.items():
        assert onnx_out[key].shape == ref.shape, key
        assert (onnx_out[key] - ref).abs().max().item() <= atol, key


def _randomise_bn(model: nn.Module) -> nn.Module:
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.rand(m.running_mean.shape, generator=g) * 0.4 - 0.2)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
    return model.eval()


@pytest.mark.parametrize(("n", "out"), [(10, 3), (10, 6), (38, 6), (7, (3, None)), (12, 4), (5, 1)])
def test_static_adaptive_pool_equals_torch(n: int, out: int | tuple) -> None:
    x = torch.randn(2, 3, n, n + 1)
    ref = F.adaptive_avg_pool2d(x, out)
    assert (StaticAdaptiveAvgPool2d(out)(x) - ref).abs().max() < 1e-6


@pytest.mark.parametrize(("arch", "kind"), [("ggcnn", "depth"), ("ggcnn2", "rgbd")])
def test_ggcnn_raw_outputs_match_at_batch_1_and_2(arch: str, kind: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    channels = 1 if kind == "depth" else 4
    model = (ggcnn if arch == "ggcnn" else ggcnn2)(channels).eval()
    path = export_grasp_model(model, _meta(arch, kind, 48), tmp_path / f"{arch}.onnx")
    onnx_model = OnnxModel(path, threads=1)
    assert onnx_model.input_names == ["images"] and onnx_model.output_names == list(MAP_KEYS)
    dims = onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and [d.dim_value for d in dims[1:]] == [channels, 48, 48]
    for b in (1, 2):
        x = torch.randn(b, channels, 48, 48)
        with torch.no_grad():
            _assert_close(onnx_model(x), model(x))


def test_psp_with_aux_head_exports_the_four_maps_only(tmp_path: Path) -> None:
    """80 x 80 input: a 10 x 10 layer4 map, so the 3 x 3 and 6 x 6 pyramid bins do not tile it."""
    torch.manual_seed(0)
    model = _randomise_bn(psp_grasp_resnet18(1, aux=True))
    weights = tmp_path / "psp.safetensors"
    save_weights(weights, model, _meta("psp_resnet18", "depth", 80))  # aux_head.* tensors included
    result = export_grasp(weights)
    onnx_model, meta = load_onnx_grasp_model(result["dst"], threads=1)
    assert onnx_model.output_names == list(MAP_KEYS) and meta["source_weights"] == "psp.safetensors"
    assert model.aux_head is not None  # the exported copy lost its head, not the caller's model
    initializers = [i.name for i in onnx.load(result["dst"]).graph.initializer]
    assert not any("aux" in name for name in initializers)
    for b in (1, 2):
        x = torch.randn(b, 1, 80, 80)
        with torch.no_grad():
            ref = {k: v for k, v in model(x).items() if not k.startswith("aux_")}
        assert len(ref) == 4
        _assert_close(onnx_model(x), ref)


@pytest.fixture(scope="module")
def ggcnn_weights(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, nn.Module]:
    torch.manual_seed(0)
    model = ggcnn(1).eval()
    path = tmp_path_factory.mktemp("grasp") / "ggcnn.safetensors"
    save_weights(path, model, _meta("ggcnn", "depth", 48))
    return path, model


def test_onnx_stands_in_for_the_torch_net(ggcnn_weights: tuple[Path, nn.Module]) -> None:
    from singleshot.postprocess.grasp import GraspPostprocess

    weights, model = ggcnn_weights
    result = export_grasp(weights)
    assert Path(result["dst"]).name == "ggcnn.onnx" and result["input"] == [-1, 1, 48, 48]
    onnx_model, meta = load_onnx_grasp_model(result["dst"], threads=1)
    assert meta["task"] == "grasp" and meta["input_size"] == [48, 48]
    post = GraspPostprocess(num_grasps=3, min_distance=4, threshold=-10.0)  # keep peaks of an untrained net
    x = torch.randn(2, 1, 48, 48)
    with torch.no_grad():
        ref = post(model(x), ["a", "b"])
    got = post(onnx_model(x), ["a", "b"])
    assert [len(g.grasps) for g in ref] == [len(g.grasps) for g in got] and len(ref[0].grasps) > 0
    for r, g in zip(ref, got):
        assert g.image_id == r.image_id
        assert torch.allclose(g.grasps, r.grasps, atol=1e-3) and torch.allclose(g.scores, r.scores, atol=1e-4)


def _quantized(path: str | Path) -> bool:
    return any(n.op_type == "QuantizeLinear" for n in onnx.load(str(path)).graph.node)


def test_int8_with_random_and_file_calibration(ggcnn_weights: tuple[Path, nn.Module], tmp_path: Path) -> None:
    weights, model = ggcnn_weights
    with pytest.warns(UserWarning, match="random"):
        result = export_grasp(weights, tmp_path / "r.onnx", int8=True, calib_samples=5)
    assert result["calibration_samples"] == 5 and _quantized(result["dst"])
    onnx_model, meta = load_onnx_grasp_model(result["dst"], threads=1)
    assert meta["onnx"]["int8"]["calibration_samples"] == 5
    x = torch.randn(2, 1, 48, 48)
    with torch.no_grad():
        ref = model(x)
    out = onnx_model(x)
    for key in MAP_KEYS:
        assert (out[key] - ref[key]).abs().mean() / ref[key].std() < 0.2, key
    arrays = tmp_path / "calib.npz"
    np.savez(arrays, a=np.zeros((2, 1, 48, 48), np.float32), b=np.ones((3, 1, 48, 48), np.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = export_grasp(weights, tmp_path / "f.onnx", int8=True, calib=arrays, calib_samples=10)
    assert result["calibration_samples"] == 5  # all of the file's samples
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((2, 3, 48, 48), np.float32))
    with pytest.raises(ValueError, match="shape"):
        export_grasp(weights, tmp_path / "b.onnx", int8=True, calib=bad)


@pytest.mark.filterwarnings("ignore:.*inpainted")
def test_calibration_from_a_cornell_root_is_the_inference_view(tmp_path: Path) -> None:
    from singleshot.data.grasp.dataset import GraspDataset, find_grasp_samples
    from singleshot.data.grasp.synthetic import generate_grasp_dataset

    root = tmp_path / "cornell"
    generate_grasp_dataset(root, num_images=3, size=(60, 80))
    batches = list(calibration_batches(_meta("ggcnn", "depth", 48), (1, 48, 48), root, count=3, batch=2))
    assert [b.shape for b in batches] == [(2, 1, 48, 48), (1, 1, 48, 48)]
    dataset = GraspDataset(find_grasp_samples(root), "depth", 48, "center")
    expected = np.stack([dataset[i][0].numpy() for i in range(3)])
    assert np.allclose(np.concatenate(batches), expected)
    assert np.abs(expected).max() <= 1.0 and expected.std() > 0  # normalised depth, not noise


def test_grasp_predictor_and_cli_mode_take_the_export(ggcnn_weights: tuple[Path, nn.Module], tmp_path: Path) -> None:
    from singleshot.errors import ConfigError
    from singleshot.postprocess.grasp import GraspPostprocess
    from singleshot.tasks.grasp.export import export_mode
    from singleshot.tasks.grasp.predictor import GraspPredictor

    weights, model = ggcnn_weights
    result = export_mode({"weights": str(weights), "dst": str(tmp_path / "cli.onnx"), "opset": "17"})
    assert result["dst"] == str(tmp_path / "cli.onnx") and result["int8"] is False
    with pytest.raises(ConfigError, match="calib_sample"):
        export_mode({"weights": str(weights), "calib_sample": "3"})
    onnx_model, meta = load_onnx_grasp_model(result["dst"], threads=1)
    post = GraspPostprocess(num_grasps=2, min_distance=4, threshold=-10.0)
    x = torch.randn(3, 1, 48, 48)
    ref = GraspPredictor(model, meta, post).predict_views(x)
    got = GraspPredictor(onnx_model, meta, post).predict_views(x)
    for r, g in zip(ref, got, strict=True):
        assert torch.allclose(g.grasps, r.grasps, atol=1e-3) and torch.allclose(g.scores, r.scores, atol=1e-4)
