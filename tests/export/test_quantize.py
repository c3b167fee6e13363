"""int8 static quantization (onnxruntime QDQ) of an exported model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from singleshot.errors import ConfigError, WeightsError
from singleshot.export.onnx_export import export_onnx, read_onnx_metadata
from singleshot.export.onnx_runtime import OnnxModel
from singleshot.export.quantize import ArrayCalibrationReader, quantize_static_onnx


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, stride=2, padding=1), nn.ReLU()
        )
        self.out = nn.Conv2d(16, 4, 1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"y": self.out(self.body(x)).flatten(1)}


@pytest.fixture()
def float_model(tmp_path: Path) -> tuple[nn.Module, Path]:
    torch.manual_seed(0)
    net = _Net().eval()
    return net, export_onnx(net, torch.randn(1, 3, 32, 32), tmp_path / "f32.onnx", ["y"], metadata={"task": "t"})


def _calibration(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((4, 3, 32, 32)).astype(np.float32) for _ in range(n)]


def test_int8_model_is_qdq_and_close_to_float(float_model: tuple[nn.Module, Path], tmp_path: Path) -> None:
    net, src = float_model
    dst = quantize_static_onnx(src, tmp_path / "int8.onnx", _calibration(4))
    proto = onnx.load(str(dst))
    ops = [n.op_type for n in proto.graph.node]
    assert ops.count("QuantizeLinear") >= 3 and ops.count("DequantizeLinear") >= 6
    int8_weights = [i for i in proto.graph.initializer if i.data_type == onnx.TensorProto.INT8 and len(i.dims) == 4]
    assert len(int8_weights) == 3  # the three conv weights
    per_channel = [
        i for i in proto.graph.initializer if i.name.endswith("_scale") and len(i.dims) == 1 and i.dims[0] == 16
    ]
    assert per_channel  # one scale per output channel
    meta = read_onnx_metadata(dst)
    assert meta["task"] == "t" and meta["onnx"]["int8"]["calibration_samples"] == 16
    x = torch.from_numpy(_calibration(1, seed=5)[0])
    with torch.no_grad():
        ref = net(x)["y"]
    got = OnnxModel(dst)(x)["y"]
    err = (got - ref).abs()
    assert err.max().item() > 0  # really quantized ...
    assert (
        err.mean().item() < 0.01 * ref.abs().max().item()
    )  # ... and close (a few values clip at the calibrated range)
    assert np.corrcoef(got.flatten().numpy(), ref.flatten().numpy())[0, 1] > 0.999


def test_reader_adds_the_batch_axis() -> None:
    reader = ArrayCalibrationReader("images", [np.zeros((3, 8, 8)), np.zeros((2, 3, 8, 8))], ndim=4)
    shapes = [reader.get_next()["images"].shape, reader.get_next()["images"].shape]
    assert shapes == [(1, 3, 8, 8), (2, 3, 8, 8)] and reader.get_next() is None and reader.count == 3
    from onnxruntime.quantization import CalibrationDataReader

    assert isinstance(ArrayCalibrationReader.make("images", []), CalibrationDataReader)


def test_errors(float_model: tuple[nn.Module, Path], tmp_path: Path) -> None:
    _, src = float_model
    with pytest.raises(WeightsError, match="no calibration data"):
        quantize_static_onnx(src, tmp_path / "q.onnx", [])
    with pytest.raises(ConfigError, match="activation_type"):
        quantize_static_onnx(src, tmp_path / "q.onnx", _calibration(1), activation_type="int4")
    with pytest.raises(WeightsError, match="not found"):
        quantize_static_onnx(tmp_path / "missing.onnx", tmp_path / "q.onnx", _calibration(1))


def test_reduce_range_follows_the_cpu() -> None:
    from singleshot.export.quantize import needs_reduce_range

    assert needs_reduce_range("processor : 0\nflags : fpu sse avx2 fma\n") is True  # AVX2, no VNNI: saturates
    assert needs_reduce_range("flags : fpu avx2 avx512f avx512_vnni\n") is False
    assert needs_reduce_range("flags : fpu avx2 avx_vnni\n") is False
    assert needs_reduce_range("Features : fp asimd\n") is False  # ARM
