from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torchvision.models.detection import ssd300_vgg16

from singleshot.cli import main
from singleshot.data.image_io import read_image_rgb
from singleshot.data.voc import VOCDetection
from singleshot.engine.weights import load_weights, save_weights
from singleshot.metrics.files import write_voc_results
from singleshot.metrics.voc import VOCEvaluator
from singleshot.models import build_model
from singleshot.structures import Detections
from singleshot.tasks.detect import DetectPredictor, model_from_meta, model_meta, settings_from_meta



def _last_json(capsys: pytest.CaptureFixture[str]) -> dict:
    out = capsys.readouterr().out.strip().splitlines()
    return json.loads(out[-1])


def test_unknown_key_suggests_the_right_one(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["detect", "score", "metrik=voc07"]) == 2
    err = capsys.readouterr().err
    assert "metrik" in err and "did you mean metric" in err


def test_score_voc_folder_matches_evaluator(shared_data: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = shared_data("voc", "VOCdevkit")
    ds = VOCDetection(root, image_set="test", years=("2007",))
    targets = [ds.load_target(i) for i in range(len(ds))]
    g = torch.Generator().manual_seed(0)
    preds = []
    for t in targets:  # jittered ground truth plus one false positive per image
        n = len(t)
        boxes = torch.cat((t.boxes + torch.randn(n, 4, generator=g) * 6, torch.tensor([[0.0, 0.0, 40.0, 40.0]])))
        preds.append(Detections(boxes, torch.rand(n + 1, generator=g), torch.cat((t.labels, torch.tensor([0]))), t.image_id))
    write_voc_results(tmp_path / "res", preds, ds.class_names, split="test")
    for metric in ("voc07", "voc12"):
        assert main(["detect", "score", f"gt={root}", f"pred={tmp_path / 'res'}", f"metric={metric}", "val_set=test"]) == 0
        got = _last_json(capsys)
        ev = VOCEvaluator(list(ds.class_names), use_07=metric == "voc07")
        ev.process(preds, targets)
        assert got["map50"] == pytest.approx(ev.compute()["map50"], abs=1e-4)
        assert 0 < got["map50"] < 1 and "per_class" in got


def test_score_coco_prints_the_twelve_stats(shared_data: Callable[..., Path], capsys: pytest.CaptureFixture[str]) -> None:
    gt = shared_data("coco", "test_coco.json")
    pred = shared_data("coco", "test_coco_det_AP_H_56.json")
    assert main(["detect", "score", f"gt={gt}", f"pred={pred}", "metric=coco"]) == 0
    got = _last_json(capsys)
    for key in ("map", "map50", "map75", "map_small", "map_medium", "map_large", "mar_1", "mar_10", "mar_100"):
        assert key in got
    assert 0 < got["map"] <= got["map50"] <= 1


def _order(d: Detections) -> torch.Tensor:
    by_label = torch.argsort(d.labels, stable=True)
    return by_label[torch.argsort(d.scores[by_label], descending=True, stable=True)]


def test_convert_torchvision_then_predict_equals_torchvision(shared_data: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    image_path = shared_data("voc", "VOCdevkit", "VOC2007", "JPEGImages", "000005.jpg")
    torch.manual_seed(0)
    tv = ssd300_vgg16(weights=None, weights_backbone=None, num_classes=91).eval()
    with torch.no_grad():  # shrink the class logits: random VGG features saturate the softmax and make exact ties
        for conv in tv.head.classification_head.module_list:
            conv.weight.mul_(0.1)
    torch.save(tv.state_dict(), tmp_path / "tv.pth")
    dst = tmp_path / "ssd300_coco.safetensors"
    assert main(["detect", "convert", "from=torchvision", f"src={tmp_path / 'tv.pth'}", f"dst={dst}"]) == 0
    assert _last_json(capsys)["num_classes"] == 90
    state, meta = load_weights(dst)
    model = model_from_meta(meta)
    model.load_state_dict(state)
    predictor = DetectPredictor(model, meta, settings_from_meta(meta))
    image = read_image_rgb(image_path)
    ours = predictor([image])[0]
    with torch.no_grad():
        theirs = tv([image.float() / 255])[0]
    assert len(ours) == len(theirs["scores"]) > 0
    oi, ti = _order(ours), torch.argsort(theirs["scores"], descending=True, stable=True)
    ti = ti[_order(Detections(theirs["boxes"][ti], theirs["scores"][ti], theirs["labels"][ti]))]
    torch.testing.assert_close(ours.scores[oi], theirs["scores"][ti], atol=1e-4, rtol=0)
    assert torch.equal(ours.labels[oi] + 1, theirs["labels"][ti])
    torch.testing.assert_close(ours.boxes[oi], theirs["boxes"][ti], atol=1e-3, rtol=1e-5)  # pixels


@pytest.fixture()
def slim_weights(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    model = build_model("ssd_slim", 3, image_size=160)
    path = tmp_path / "slim.safetensors"
    save_weights(path, model, model_meta(model, "ssd_slim", {"image_size": 160}, ["a", "b", "c"]))
    return path


def test_predict_folder_and_video(shared_data: Callable[..., Path], tmp_path: Path, slim_weights: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = shared_data("voc", "VOCdevkit", "VOC2007", "JPEGImages")
    assert main(["detect", "predict", f"weights={slim_weights}", f"source={folder}", f"project={tmp_path}", "conf=0.2"]) == 0
    got = _last_json(capsys)
    out = Path(got["out"])
    n_images = len(list(folder.glob("*.jpg")))
    assert got["images"] == n_images and len(list(out.glob("*.jpg"))) == n_images
    results = json.loads((out / "predictions.json").read_text())
    assert len(results) == got["detections"]
    assert all(r["score"] > 0.2 and len(r["bbox"]) == 4 for r in results)
    video = shared_data("video", "v_Basketball_g01_c01.avi")
    assert main(["detect", "predict", f"weights={slim_weights}", f"source={video}", f"project={tmp_path}", "batch=16"]) == 0
    got = _last_json(capsys)
    assert got["images"] == 141
    assert (Path(got["out"]) / "v_Basketball_g01_c01.mp4").stat().st_size > 10_000


def test_predict_missing_source_names_it(tmp_path: Path, slim_weights: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.jpg"
    assert main(["detect", "predict", f"weights={slim_weights}", f"source={missing}", f"project={tmp_path}"]) == 2
    assert str(missing) in capsys.readouterr().err


def test_demo_pipeline_smoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A tiny demo run writes every artefact the real one does (the metric itself is the demo's job)."""
    args = ["detect", "demo", f"project={tmp_path}", "epochs=1", "n_train=24", "n_val=8", "batch=8", "workers=0"]
    assert main(args) == 0
    got = _last_json(capsys)
    assert 0.0 <= got["map50"] <= 1.0
    out = tmp_path / "demo"
    assert (out / "metrics.json").is_file() and (out / "results.png").is_file() and (out / "results.csv").is_file()
    assert len(list((out / "predictions").glob("*.jpg"))) == 8
    _, meta = load_weights(out / "best.safetensors")
    assert meta["classes"] == ["circle", "square", "triangle", "cross", "ring"]
    # `val` on the same split reproduces the demo's metric from the saved weights alone
    data = tmp_path / "demo_data"
    assert main(["detect", "val", f"weights={out / 'best.safetensors'}", f"data={data}", "val_set=val", f"project={tmp_path}"]) == 0
    assert _last_json(capsys)["map50"] == pytest.approx(got["map50"], abs=1e-6)
