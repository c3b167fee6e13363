"""export_onnx + OnnxModel: onnxruntime reproduces the PyTorch raw outputs and detections."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import onnx
import pytest
import torch
from torch import Tensor, nn

from singleshot.errors import ConfigError, WeightsError
from singleshot.export.onnx_export import export_onnx, read_onnx_metadata
from singleshot.export.onnx_runtime import OnnxModel
from singleshot.models import create_model
from singleshot.postprocess.detect import DetectPostprocess, postprocess_detections

OUTPUTS = ["cls_logits", "bbox_regression"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[nn.Module, Path]:
    torch.manual_seed(0)
    model = create_model("ssd_tiny", 4, image_size=96)
    with torch.no_grad():  # non-trivial BatchNorm statistics, so eval vs train mode differ
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    model.train()  # export must switch to eval by itself and restore this afterwards
    path = export_onnx(
        model,
        torch.randn(2, 3, 96, 96),
        tmp_path_factory.mktemp("onnx") / "tiny.onnx",
        OUTPUTS,
        metadata={"architecture": "ssd_tiny", "classes": ["a", "b", "c", "d"]},
    )
    assert model.training
    return model.eval(), path


@pytest.mark.parametrize("batch", [1, 3])
def test_raw_outputs_match_pytorch_at_any_batch(tiny: tuple[nn.Module, Path], batch: int) -> None:
    model, path = tiny
    x = torch.randn(batch, 3, 96, 96, generator=torch.Generator().manual_seed(batch))
    with torch.no_grad():
        ref = model(x)
    got = OnnxModel(path, threads=1)(x)
    assert set(got) == set(OUTPUTS)
    for k in OUTPUTS:
        assert got[k].shape == ref[k].shape and got[k].dtype == torch.float32
        assert (got[k] - ref[k]).abs().max().item() <= 1e-4


def test_detections_after_postprocess_are_identical(
    tiny: tuple[nn.Module, Path], assert_same_detections: Callable[..., None]
) -> None:
    model, path = tiny
    x = torch.randn(3, 3, 96, 96, generator=torch.Generator().manual_seed(7))
    sizes = [(96, 96), (120, 200), (64, 50)]
    settings = DetectPostprocess(score_thresh=0.2)
    with torch.no_grad():
        ref = postprocess_detections(model(x), model.priors, sizes, settings)
    got = postprocess_detections(OnnxModel(path)(x), model.priors, sizes, settings)
    assert sum(len(d) for d in ref) > 0
    assert_same_detections(got, ref, score_atol=1e-5, box_atol=1e-3)


def test_graph_has_dynamic_batch_and_metadata(tiny: tuple[nn.Module, Path]) -> None:
    _, path = tiny
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto)
    for value in (*proto.graph.input, *proto.graph.output):
        assert value.type.tensor_type.shape.dim[0].dim_param == "batch"
    meta = read_onnx_metadata(path)
    assert meta["classes"] == ["a", "b", "c", "d"] and meta["onnx"]["outputs"] == OUTPUTS
    om = OnnxModel(path)
    assert om.meta == meta and om.input_names == ["images"] and om.output_names == OUTPUTS
    assert om.eval().to("cpu") is om  # usable where a torch model is expected


class _TwoInputs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv3d(2, 3, 3, padding=1)

    def forward(self, clip: Tensor, depth: Tensor) -> dict[str, Tensor]:
        y = self.conv(clip)
        return {"pooled": y.mean(dim=(2, 3, 4)), "map": y[:, :, -1] * depth}


def test_multi_input_5d_model(tmp_path: Path) -> None:
    torch.manual_seed(1)
    model = _TwoInputs()
    example = (torch.randn(1, 2, 4, 8, 8), torch.randn(1, 1, 8, 8))
    path = export_onnx(model, example, tmp_path / "m.onnx", ["map", "pooled"], input_names=("clip", "depth"), opset=13)
    x = (torch.randn(5, 2, 4, 8, 8), torch.randn(5, 1, 8, 8))
    got, ref = OnnxModel(path)(*x), model(*x)
    for k in ("map", "pooled"):
        assert (got[k] - ref[k]).abs().max().item() <= 1e-5
    assert read_onnx_metadata(path)["onnx"]["opset"] == 13 and onnx.load(str(path)).opset_import[0].version == 13


def test_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not among the model outputs"):
        export_onnx(
            _TwoInputs(),
            (torch.randn(1, 2, 4, 8, 8), torch.randn(1, 1, 8, 8)),
            tmp_path / "x.onnx",
            ["nope"],
            input_names=("clip", "depth"),
        )
    with pytest.raises(WeightsError, match="not found"):
        OnnxModel(tmp_path / "missing.onnx")
    (tmp_path / "bad.onnx").write_bytes(b"not onnx")
    with pytest.raises(WeightsError, match="bad.onnx"):
        OnnxModel(tmp_path / "bad.onnx")


@pytest.mark.slow  # ~6 s on an idle 2-core machine (tracing + two forward passes of VGG16 at 300x300)
def test_ssd300_batch_two(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = create_model("ssd300", 3).eval()
    path = export_onnx(model, torch.randn(1, 3, 300, 300), tmp_path / "ssd300.onnx", OUTPUTS)
    x = torch.randn(2, 3, 300, 300)
    with torch.no_grad():
        ref = model(x)
    got = OnnxModel(path)(x)
    for k in OUTPUTS:
        assert got[k].shape == ref[k].shape == (2, 8732, 4)  # 3 classes + background = 4 logits
        assert (got[k] - ref[k]).abs().max().item() <= 1e-4
