"""``singleshot detect export`` and ``.onnx`` weights in ``detect predict`` / ``detect val``, end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from singleshot.cli import main
from singleshot.data.shapes import SHAPES_CLASSES, write_shapes_dataset
from singleshot.engine.weights import load_weights, save_weights
from singleshot.export.onnx_export import read_onnx_metadata
from singleshot.models import create_model
from singleshot.tasks.detect.predictor import model_meta

SIZE = 96
_REFERENCE: dict[str, object] = {}  # PyTorch predictions and metrics, computed once per module


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """An ssd_tiny with spread-out class scores (a few confident priors) and a small shapes dataset."""
    root = tmp_path_factory.mktemp("export")
    data = write_shapes_dataset(root / "data", n_train=6, n_val=3, size=SIZE, seed=0)
    torch.manual_seed(0)
    model = create_model("ssd_tiny", len(SHAPES_CLASSES), image_size=SIZE)
    with torch.no_grad():
        for conv in model.head.conf:
            conv.weight.mul_(6.0)
    meta = model_meta(model, "ssd_tiny", {"image_size": SIZE}, SHAPES_CLASSES)
    meta["postprocess"]["score_thresh"] = 0.5
    save_weights(root / "tiny.safetensors", model, meta)
    return root, data


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> dict:
    assert main(["detect", *args]) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def _predictions(capsys: pytest.CaptureFixture[str], weights: Path, source: Path, project: Path) -> list[dict]:
    out = _run(capsys, "predict", f"weights={weights}", f"source={source}", f"project={project}")
    results = json.loads(Path(out["predictions"]).read_text())
    return results


def _assert_same_predictions(got: list[dict], ref: list[dict]) -> None:
    """Each reference result has its own partner (same image, class, score and box within tolerance)."""
    assert len(got) == len(ref) > 0
    free = list(got)
    for r in ref:
        partner = next(
            (
                g
                for g in free
                if (g["image_id"], g["category_id"]) == (r["image_id"], r["category_id"])
                and abs(g["score"] - r["score"]) <= 1e-4
                and max(abs(a - b) for a, b in zip(g["bbox"], r["bbox"])) <= 1e-2
            ),
            None,
        )
        assert partner is not None, f"no match for {r}"
        free.remove(partner)


@pytest.mark.parametrize("nms", [False, True])
def test_export_then_predict_and_val_match_pytorch(
    setup: tuple[Path, Path], capsys: pytest.CaptureFixture[str], nms: bool
) -> None:
    root, data = setup
    dst = root / ("tiny.nms.onnx" if nms else "tiny.onnx")
    out = _run(
        capsys, "export", f"weights={root / 'tiny.safetensors'}", "format=onnx", f"nms={str(nms).lower()}", f"dst={dst}"
    )
    assert out["dst"] == str(dst) and dst.is_file()
    assert out["outputs"] == (["detections"] if nms else ["cls_logits", "bbox_regression"])
    meta = read_onnx_metadata(dst)
    assert meta["classes"] == list(SHAPES_CLASSES) and meta["onnx"]["graph"] == ("nms" if nms else "raw")
    assert meta["resize"] == {"interpolation": "bilinear", "antialias": True}  # the policy the graph's input needs
    images = data / "VOC2007" / "JPEGImages"
    common = ("val", f"data={data}", "val_set=val", "workers=0", "batch=2")
    if not _REFERENCE:
        _REFERENCE["pred"] = _predictions(capsys, root / "tiny.safetensors", images, root / "pt")
        _REFERENCE["val"] = _run(capsys, *common, f"weights={root / 'tiny.safetensors'}", f"project={root / 'v_pt'}")
    _assert_same_predictions(_predictions(capsys, dst, images, root / f"onnx{nms}"), _REFERENCE["pred"])  # type: ignore[arg-type]
    m_onnx = _run(capsys, *common, f"weights={dst}", f"project={root / f'v_onnx{nms}'}")
    m_pt = _REFERENCE["val"]
    assert isinstance(m_pt, dict) and m_onnx["per_class"] == pytest.approx(m_pt["per_class"], abs=1e-6)
    assert m_onnx["map50"] == pytest.approx(m_pt["map50"], abs=1e-6)


def test_int8_export_with_calibration_images(setup: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    root, data = setup
    out = _run(capsys, "export", f"weights={root / 'tiny.safetensors'}", "int8=true", f"calib={data}", "calib_images=4")
    dst = root / "tiny.int8.onnx"  # the default name beside the weights
    assert out["dst"] == str(dst) and out["calibration_images"] == 4
    meta = read_onnx_metadata(dst)
    assert meta["onnx"]["int8"]["calibration_samples"] == 4 and meta["architecture"] == "ssd_tiny"
    preds = _predictions(capsys, dst, data / "VOC2007" / "JPEGImages" / "000007.jpg", root / "int8")
    assert all(0.5 < p["score"] <= 1.0 and 1 <= p["category_id"] <= len(SHAPES_CLASSES) for p in preds)


def test_export_writes_the_policy_of_weights_without_one(
    setup: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Weights that predate the ``resize`` key are read with plain bilinear resizing; the ONNX file says so."""
    root, _ = setup
    state, meta = load_weights(root / "tiny.safetensors")
    old = tmp_path / "old.safetensors"
    save_weights(old, state, {k: v for k, v in meta.items() if k != "resize"})
    _run(capsys, "export", f"weights={old}")
    assert read_onnx_metadata(tmp_path / "old.onnx")["resize"] == {"interpolation": "bilinear", "antialias": False}


def test_bad_requests_name_the_problem(setup: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    root, _ = setup
    w = f"weights={root / 'tiny.safetensors'}"
    assert main(["detect", "export", w, "int8=true"]) == 2
    assert "calib=" in capsys.readouterr().err
    assert main(["detect", "export", w, "format=tflite"]) == 2
    assert "format='tflite'" in capsys.readouterr().err
    assert main(["detect", "export", w, "nsm=true"]) == 2
    assert "nsm" in capsys.readouterr().err
