from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from singleshot.cli import main
from singleshot.data.voc import VOCDetection
from singleshot.errors import ConfigError
from singleshot.metrics.files import write_voc_results
from singleshot.metrics.voc import VOCEvaluator
from singleshot.structures import Detections
from singleshot.tasks.common import make_config
from singleshot.tasks.detect.config import DetectConfig
from singleshot.tasks.detect.evaluate import evaluate_dataset


def _last_json(capsys: pytest.CaptureFixture[str]) -> dict:
    out = capsys.readouterr().out.strip().splitlines()
    return json.loads(out[-1])


def test_unknown_key_suggests_the_right_one(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["detect", "score", "metrik=voc07"]) == 2
    err = capsys.readouterr().err
    assert "metrik" in err and "did you mean metric" in err


def test_score_voc_folder_matches_evaluator(
    shared_data: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = shared_data("voc", "VOCdevkit")
    ds = VOCDetection(root, image_set="test", years=("2007",))
    targets = [ds.load_target(i) for i in range(len(ds))]
    g = torch.Generator().manual_seed(0)
    preds = []
    for t in targets:  # jittered ground truth plus one false positive per image
        n = len(t)
        boxes = torch.cat((t.boxes + torch.randn(n, 4, generator=g) * 6, torch.tensor([[0.0, 0.0, 40.0, 40.0]])))
        preds.append(
            Detections(boxes, torch.rand(n + 1, generator=g), torch.cat((t.labels, torch.tensor([0]))), t.image_id)
        )
    write_voc_results(tmp_path / "res", preds, ds.class_names, split="test")
    for metric in ("voc07", "voc12"):
        assert (
            main(["detect", "score", f"gt={root}", f"pred={tmp_path / 'res'}", f"metric={metric}", "val_set=test"]) == 0
        )
        got = _last_json(capsys)
        ev = VOCEvaluator(list(ds.class_names), use_07=metric == "voc07")
        ev.process(preds, targets)
        assert got["map50"] == pytest.approx(ev.compute()["map50"], abs=1e-4)
        assert 0 < got["map50"] < 1 and "per_class" in got


def test_score_coco_prints_the_twelve_stats(
    shared_data: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    gt = shared_data("coco", "test_coco.json")
    pred = shared_data("coco", "test_coco_det_AP_H_56.json")
    assert main(["detect", "score", f"gt={gt}", f"pred={pred}", "metric=coco"]) == 0
    got = _last_json(capsys)
    for key in ("map", "map50", "map75", "map_small", "map_medium", "map_large", "mar_1", "mar_10", "mar_100"):
        assert key in got
    assert 0 < got["map"] <= got["map50"] <= 1


# --- voc07_thresholds: exact k/10 (default) or np.arange(0, 1.1, 0.1) as the Python ports ----------

# Ten images with one box of class "a" each; nine detections ranked TP TP TP FP TP TP TP FP TP:
# recall .1 .2 .3 .3 .4 .5 .6 .6 .7, precision 1 1 1 3/4 4/5 5/6 6/7 3/4 7/9.
# exact k/10: t = 0..0.3 -> 1 (4 points), t = .4, .5, .6 -> 6/7, t = .7 -> 7/9, t = .8..1 -> 0.
EXACT_07 = (4 + 3 * 6 / 7 + 7 / 9) / 11
# arange: recall .3 / .6 / .7 miss 0.30000000000000004 / 0.6000000000000001 / 0.7000000000000001:
# t = 0..0.2 -> 1 (3 points), t = .3+, .4, .5 -> 6/7, t = .6+ -> 7/9, t = .7+ .. 1 -> 0.
ARANGE_07 = (3 + 3 * 6 / 7 + 7 / 9) / 11
_BOX = [10.0, 10.0, 50.0, 50.0]
_FAR = [100.0, 100.0, 140.0, 140.0]
_RANKED = [(0, _BOX), (1, _BOX), (2, _BOX), (0, _FAR), (3, _BOX), (4, _BOX), (5, _BOX), (1, _FAR), (6, _BOX)]


def _tiny_voc(root: Path) -> Path:
    """A VOC-layout folder (XML only, split ``test``) of the ten one-box images."""
    (root / "ImageSets" / "Main").mkdir(parents=True)
    (root / "Annotations").mkdir()
    ids = [f"im{i}" for i in range(10)]
    (root / "ImageSets" / "Main" / "test.txt").write_text("\n".join(ids) + "\n")
    x1, y1, x2, y2 = (int(v) + 1 for v in _BOX)  # devkit 1-based pixel indices
    for image_id in ids:
        (root / "Annotations" / f"{image_id}.xml").write_text(
            f"<annotation><filename>{image_id}.jpg</filename>"
            "<size><width>200</width><height>200</height><depth>3</depth></size>"
            "<object><name>a</name><difficult>0</difficult>"
            f"<bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin><xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox>"
            "</object></annotation>"
        )
    return root


def _ranked_preds() -> list[Detections]:
    return [
        Detections(torch.tensor([b]), torch.tensor([0.9 - 0.05 * k]), torch.zeros(1, dtype=torch.int64), f"im{i}")
        for k, (i, b) in enumerate(_RANKED)
    ]


def test_score_cli_voc07_thresholds_reach_the_evaluator(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _tiny_voc(tmp_path / "voc")
    write_voc_results(tmp_path / "res", _ranked_preds(), ["a"], split="test")
    base = ["detect", "score", f"gt={root}", f"pred={tmp_path / 'res'}", "metric=voc07", "classes=a", "val_set=test"]
    expected = {None: EXACT_07, "exact": EXACT_07, "arange": ARANGE_07}
    for value, ap in expected.items():
        assert main(base + ([] if value is None else [f"voc07_thresholds={value}"])) == 0
        got = _last_json(capsys)
        assert got["map50"] == pytest.approx(ap, abs=1e-9) and got["metric"] == "voc07"
    assert main(base + ["voc07_thresholds=arang"]) == 2
    err = capsys.readouterr().err
    assert "voc07_thresholds='arang'" in err and "arange" in err


def test_evaluate_dataset_reads_voc07_thresholds(tmp_path: Path) -> None:
    """``detect val`` and ``detect train``'s evaluation both go through ``evaluate_dataset``."""
    root = _tiny_voc(tmp_path / "voc")
    ds = VOCDetection(root, image_set="test", class_names=["a"])
    dataset = [(torch.zeros(3, 200, 200, dtype=torch.uint8), ds.load_target(i)) for i in range(len(ds))]
    by_image: dict[str, list[Detections]] = {}
    for det in _ranked_preds():
        by_image.setdefault(det.image_id, []).append(det)

    def predictor(images: list[torch.Tensor], ids: list[str]) -> list[Detections]:
        out = []
        for image_id in ids:
            dets = by_image.get(image_id, [])
            if not dets:
                out.append(Detections(image_id=image_id))
                continue
            out.append(
                Detections(
                    torch.cat([d.boxes for d in dets]),
                    torch.cat([d.scores for d in dets]),
                    torch.cat([d.labels for d in dets]),
                    image_id,
                )
            )
        return out

    for value, ap in {None: EXACT_07, "exact": EXACT_07, "arange": ARANGE_07}.items():
        args = {"workers": "0"} if value is None else {"workers": "0", "voc07_thresholds": value}
        cfg = make_config(DetectConfig, args)
        got = evaluate_dataset(predictor, dataset, cfg, "voc07", ["a"])
        assert got["map50"] == pytest.approx(ap, abs=1e-9)
    with pytest.raises(ConfigError, match="voc07_thresholds='k/10'"):
        evaluate_dataset(predictor, dataset, make_config(DetectConfig, {"voc07_thresholds": "k/10"}), "voc07", ["a"])


def test_train_rejects_unknown_voc07_thresholds_before_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["detect", "train", f"data={tmp_path}", f"project={tmp_path / 'runs'}", "voc07_thresholds=arrange"]
    assert main(args) == 2
    assert "voc07_thresholds='arrange'" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


# --- val names the data's classes the weights lack ------------------------------------------------


def _shapes_weights(path: Path) -> Path:
    from singleshot.data.shapes import SHAPES_CLASSES
    from singleshot.engine.weights import save_weights
    from singleshot.models import create_model
    from singleshot.tasks.detect.predictor import model_meta

    torch.manual_seed(0)
    model = create_model("ssd_tiny", len(SHAPES_CLASSES), image_size=64)
    save_weights(path, model, model_meta(model, "ssd_tiny", {"image_size": 64}, list(SHAPES_CLASSES)))
    return path


def _class_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelname == "WARNING" and "weights lack" in r.getMessage()]


def test_val_of_shapes_weights_on_coco_names_both_class_lists(
    shared_data: Callable[..., Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """COCO's ``person`` is no class of the shapes weights: said in one line before the check stops."""
    weights = _shapes_weights(tmp_path / "shapes.safetensors")
    gt = shared_data("coco", "test_coco.json")
    args = ["detect", "val", f"weights={weights}", f"data={gt}", "workers=0", "plots=false", f"project={tmp_path}"]
    assert main(args) != 0
    (text,) = _class_warnings(caplog)
    assert "has 1 class the weights lack: 'person'" in text
    assert "the weights' classes: circle, square, triangle, cross, ring; the data's: person" in text


def test_val_lists_the_class_difference_in_its_result(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import re

    from singleshot.data.shapes import write_shapes_dataset
    from singleshot.tasks.detect.evaluate import val

    weights = _shapes_weights(tmp_path / "shapes.safetensors")
    root = write_shapes_dataset(tmp_path / "voc", n_train=2, n_val=3, size=64, seed=3)
    xml = root / "VOC2007" / "Annotations" / "000005.xml"  # a validation image
    xml.write_text(re.sub(r"<name>\w+</name>", "<name>zebra</name>", xml.read_text(), count=1))
    args = {"weights": str(weights), "data": str(root), "val_set": "val", "bad": "skip", "workers": "0"}
    got = val({**args, "plots": "false", "project": str(tmp_path / "runs")})
    (text,) = _class_warnings(caplog)
    assert "has 1 class the weights lack: 'zebra'" in text and got["warnings"] == [text]
    assert json.loads((Path(got["save_dir"]) / "metrics.json").read_text())["warnings"] == [text]
    # the same data without the stranger: nothing to say
    xml.write_text(xml.read_text().replace("<name>zebra</name>", "<name>circle</name>"))
    caplog.clear()
    assert "warnings" not in val({**args, "plots": "false", "project": str(tmp_path / "runs2")})
    assert not _class_warnings(caplog)
