"""SSD decode + NMS inside the ONNX graph against singleshot's PyTorch post-processing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import onnx
import pytest
import torch
from onnx import TensorProto, helper

from singleshot.export.onnx_export import export_onnx
from singleshot.export.onnx_runtime import OnnxModel
from singleshot.models import create_model
from singleshot.ops.priors import generate_priors, prior_spec
from singleshot.postprocess.detect import DetectPostprocess, postprocess_detections
from singleshot.tasks.detect.export_graph import DETECTIONS_COLUMNS, append_ssd_postprocess, detections_from_rows


def _passthrough(p: int, c1: int) -> onnx.ModelProto:
    """A graph whose outputs cls_logits / bbox_regression are its inputs (to feed chosen raw outputs)."""
    inputs = [
        helper.make_tensor_value_info("logits_in", TensorProto.FLOAT, ["batch", p, c1]),
        helper.make_tensor_value_info("reg_in", TensorProto.FLOAT, ["batch", p, 4]),
    ]
    outputs = [
        helper.make_tensor_value_info("cls_logits", TensorProto.FLOAT, ["batch", p, c1]),
        helper.make_tensor_value_info("bbox_regression", TensorProto.FLOAT, ["batch", p, 4]),
    ]
    nodes = [
        helper.make_node("Identity", ["logits_in"], ["cls_logits"]),
        helper.make_node("Identity", ["reg_in"], ["bbox_regression"]),
    ]
    graph = helper.make_graph(nodes, "raw", inputs, outputs)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def _graph_file(tmp_path: Path, priors: torch.Tensor, c: int, settings: DetectPostprocess) -> Path:
    proto = append_ssd_postprocess(_passthrough(priors.shape[0], c + 1), priors, c, settings)
    onnx.checker.check_model(proto, full_check=True)
    path = tmp_path / "post.onnx"
    onnx.save(proto, str(path))
    return path


@pytest.mark.parametrize(
    "settings",
    [DetectPostprocess(), DetectPostprocess(score_thresh=0.3, nms_thresh=0.5, topk_candidates=50, max_detections=20)],
)
def test_graph_matches_pytorch_postprocess(
    tmp_path: Path, settings: DetectPostprocess, assert_same_detections: Callable[..., None]
) -> None:
    priors = generate_priors(prior_spec("voc300"))
    b, p, c = 3, priors.shape[0], 6
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(b, p, c + 1, generator=g)
    logits[..., 0] += 4.0  # mostly background ...
    hot = torch.randint(0, p, (b, 40), generator=g)  # ... and a few confident priors per image
    logits[torch.arange(b)[:, None], hot, torch.randint(1, c + 1, (b, 40), generator=g)] += 9.0
    outputs = {"cls_logits": logits, "bbox_regression": torch.randn(b, p, 4, generator=g) * 0.5}
    sizes = [(300, 300), (375, 500), (480, 240)]
    ref = postprocess_detections(outputs, priors, sizes, settings)
    model = OnnxModel(_graph_file(tmp_path, priors, c, settings))
    rows = model(outputs["cls_logits"], outputs["bbox_regression"])["detections"]
    assert rows.shape[1] == len(DETECTIONS_COLUMNS) == 7
    batch = rows[:, 0]
    assert torch.all(batch[1:] >= batch[:-1])  # sorted by image ...
    same = batch[1:] == batch[:-1]
    assert torch.all(rows[1:, 5][same] <= rows[:-1, 5][same])  # ... then by descending score
    assert torch.all((rows[:, 1:5] >= 0) & (rows[:, 1:5] <= 1))
    got = detections_from_rows(rows, sizes)
    assert sum(len(d) for d in ref) > 0
    assert max(len(d) for d in ref) <= settings.max_detections
    assert_same_detections(got, ref, box_atol=1e-3)


def test_nothing_above_threshold_gives_empty_rows(tmp_path: Path) -> None:
    priors = generate_priors(prior_spec("voc300"))
    logits = torch.zeros(2, priors.shape[0], 4)
    logits[..., 0] = 10.0
    model = OnnxModel(_graph_file(tmp_path, priors, 3, DetectPostprocess(score_thresh=0.05)))
    rows = model(logits, torch.zeros(2, priors.shape[0], 4))["detections"]
    assert rows.shape == (0, 7)
    assert [len(d) for d in detections_from_rows(rows, [(10, 10), (20, 20)])] == [0, 0]


def test_exported_tiny_ssd_with_nms(tmp_path: Path, assert_same_detections: Callable[..., None]) -> None:
    torch.manual_seed(0)
    model = create_model("ssd_tiny", 3, image_size=96).eval()
    with torch.no_grad():  # spread the class scores so that a few priors are confident
        for conv in model.head.conf:
            conv.weight.mul_(6.0)
    path = export_onnx(model, torch.zeros(1, 3, 96, 96), tmp_path / "raw.onnx", ["cls_logits", "bbox_regression"])
    settings = DetectPostprocess(score_thresh=0.7, max_detections=16)  # 18 and 15 pass: one image is capped
    proto = append_ssd_postprocess(onnx.load(str(path)), model.priors, 3, settings)
    onnx.save(proto, str(tmp_path / "nms.onnx"))
    x = torch.randn(2, 3, 96, 96, generator=torch.Generator().manual_seed(1))
    sizes = [(96, 96), (200, 150)]
    with torch.no_grad():
        ref = postprocess_detections(model(x), model.priors, sizes, settings)
    got = detections_from_rows(OnnxModel(tmp_path / "nms.onnx")(x)["detections"], sizes)
    assert max(len(d) for d in ref) == settings.max_detections and min(len(d) for d in ref) > 0
    assert_same_detections(got, ref, box_atol=1e-3)
