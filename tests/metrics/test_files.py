"""Prediction files (VOC devkit results, COCO results JSON) and ``score``."""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import torch

from singleshot.data.voc import VOC_CLASSES
from singleshot.errors import ConfigError, DataError
from singleshot.metrics import (
    STAT_KEYS,
    VOCEvaluator,
    coco_eval_files,
    coco_json_targets,
    read_coco_results,
    read_voc_results,
    score,
    write_coco_results,
    write_voc_results,
)
from singleshot.structures import BoxTarget, Detections

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
VOC07 = DATA / "voc" / "VOCdevkit" / "VOC2007"
COCO_GT = DATA / "coco" / "test_coco.json"
COCO_DT = DATA / "coco" / "test_coco_det_AP_H_56.json"


def _read_voc_xml(root: Path) -> tuple[list[BoxTarget], dict[str, list[list[int]]]]:
    """Minimal private VOC reader for these tests: boxes = XML values - 1 (0-based), as ssd.pytorch."""
    targets, raw = [], {}
    for xml in sorted((root / "Annotations").glob("*.xml")):
        tree = ET.parse(xml).getroot()
        boxes, labels, diff, ints = [], [], [], []
        for obj in tree.iter("object"):
            bb = obj.find("bndbox")
            v = [int(float(bb.find(k).text)) for k in ("xmin", "ymin", "xmax", "ymax")]
            ints.append(v)
            boxes.append([x - 1 for x in v])
            labels.append(VOC_CLASSES.index(obj.find("name").text.strip()))
            diff.append(obj.find("difficult") is not None and obj.find("difficult").text.strip() == "1")
        size = tree.find("size")
        hw = (int(size.find("height").text), int(size.find("width").text))
        targets.append(
            BoxTarget(
                torch.tensor(boxes, dtype=torch.float32), torch.tensor(labels), torch.tensor(diff), xml.stem, hw, hw
            )
        )
        raw[xml.stem] = ints
    return targets, raw


def _need_voc() -> None:
    if not (VOC07 / "Annotations").is_dir():
        pytest.skip(f"VOC sample not found: {VOC07}")


def _noisy_preds(targets: list[BoxTarget], seed: int, n_cls: int = 20) -> list[Detections]:
    rng = np.random.default_rng(seed)
    preds = []
    for t in targets:
        n = len(t)
        extra = int(rng.integers(1, 4))
        boxes = np.concatenate([t.boxes.numpy() + rng.normal(0, 8, (n, 4)), rng.uniform(0, 300, (extra, 4))])
        boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 5)
        labels = np.concatenate([t.labels.numpy(), rng.integers(0, n_cls, extra)])
        scores = rng.random(n + extra)
        order = np.argsort(-scores)
        preds.append(
            Detections(
                torch.tensor(np.round(boxes[order], 2), dtype=torch.float64).float(),
                torch.tensor(np.round(scores[order], 6), dtype=torch.float32),
                torch.tensor(labels[order]),
                t.image_id,
            )
        )
    return preds


def test_voc_writer_writes_devkit_coordinates(tmp_path: Path) -> None:
    _need_voc()
    targets, raw = _read_voc_xml(VOC07)
    assert any(t.difficult.any() for t in targets)
    preds = [Detections(t.boxes, torch.linspace(0.9, 0.5, len(t)), t.labels, t.image_id) for t in targets]
    paths = write_voc_results(tmp_path, preds, VOC_CLASSES, split="test")
    assert [p.name for p in paths] == [f"comp4_det_test_{c}.txt" for c in VOC_CLASSES]
    # every written box is exactly the XML's 1-based integer box
    written = {}
    for p in paths:
        for line in p.read_text().splitlines():
            img, _, *xyxy = line.split()
            written.setdefault(img, []).append([float(v) for v in xyxy])
    for img, boxes in raw.items():
        assert sorted(written[img]) == sorted([[float(v) for v in b] for b in boxes])
    out = score(targets, tmp_path, "voc07", VOC_CLASSES)
    present = {VOC_CLASSES[int(lab)] for t in targets for lab, d in zip(t.labels, t.difficult) if not d}
    for name, ap in out["per_class"].items():
        assert (ap == pytest.approx(1.0)) if name in present else math.isnan(ap)
    assert out["map50"] == pytest.approx(1.0) and out["n_images"] == 5 and out["metric"] == "voc07"


@pytest.mark.parametrize("metric", ["voc07", "voc12"])
def test_score_from_files_equals_evaluator(tmp_path: Path, metric: str) -> None:
    _need_voc()
    targets, _ = _read_voc_xml(VOC07)
    preds = _noisy_preds(targets, 0)
    ev = VOCEvaluator(VOC_CLASSES, use_07=metric == "voc07")
    ev.process(preds, targets)
    direct = ev.compute()
    write_voc_results(tmp_path / "comp4", preds, VOC_CLASSES)
    write_coco_results(tmp_path / "res.json", preds)
    for pred in (tmp_path / "comp4", tmp_path / "res.json", preds):
        out = score(targets, pred, metric, VOC_CLASSES)
        assert out["map50"] == pytest.approx(direct["map50"], abs=1e-9)
        np.testing.assert_allclose(list(out["per_class"].values()), list(direct["per_class"].values()), atol=1e-9)
    assert 0.05 < direct["map50"] < 1.0


def test_voc_reader_roundtrip(tmp_path: Path) -> None:
    t = [BoxTarget(image_id=f"{i:06d}") for i in range(3)]
    one = (torch.tensor([[10.0, 20, 50, 60]]), torch.tensor([1]), torch.tensor([False]))
    preds = _noisy_preds([BoxTarget(*one, x.image_id) for x in t], 1, n_cls=3)
    write_voc_results(tmp_path, preds, ["a", "b", "c"])
    back = read_voc_results(tmp_path, ["a", "b", "c"])
    assert [d.image_id for d in back] == [p.image_id for p in preds]
    for p, b in zip(preds, back):
        order = torch.argsort(p.scores, descending=True, stable=True)
        torch.testing.assert_close(b.boxes, p.boxes[order], atol=5e-3, rtol=0)
        torch.testing.assert_close(b.scores, p.scores[order], atol=1e-6, rtol=0)
        assert torch.equal(b.labels, p.labels[order])


def test_voc_reader_errors(tmp_path: Path) -> None:
    (tmp_path / "comp4_det_test_a.txt").write_text("000001 0.5 1 2 3 4\n000002 0.4 1 2 3\n")
    with pytest.raises(DataError, match=r"comp4_det_test_a\.txt:2: expected"):
        read_voc_results(tmp_path, ["a"])
    (tmp_path / "comp4_det_test_a.txt").write_text("000001 0.5 1 2 3 4\n")
    with pytest.warns(UserWarning, match="class\\(es\\) b"):
        dets = read_voc_results(tmp_path, ["a", "b"])
    assert len(dets) == 1 and dets[0].boxes.tolist() == [[0.0, 1.0, 2.0, 3.0]]  # 1-based -> 0-based
    (tmp_path / "comp4_det_val_a.txt").write_text("000001 0.5 1 2 3 4\n")
    with pytest.raises(DataError, match="several results files"):
        read_voc_results(tmp_path, ["a"])
    assert len(read_voc_results(tmp_path, ["a"], split="val")) == 1
    (tmp_path / "comp4_det_test_zebra.txt").write_text("")
    with pytest.raises(DataError, match="zebra"):
        read_voc_results(tmp_path, ["a"])
    with pytest.raises(DataError, match="not a folder"):
        read_voc_results(tmp_path / "nope", ["a"])


def test_coco_results_voc_convention(tmp_path: Path) -> None:
    preds = [Detections(torch.tensor([[1.0, 2.0, 11.0, 22.0]]), torch.tensor([0.75]), torch.tensor([2]), "000005")]
    path = write_coco_results(tmp_path / "r.json", preds)
    data = json.loads(path.read_text())
    assert data == [{"image_id": "000005", "category_id": 3, "bbox": [1.0, 2.0, 10.0, 20.0], "score": 0.75}]
    # an integer image id matches the zero-padded VOC id
    data[0]["image_id"] = 5
    path.write_text(json.dumps(data))
    t = BoxTarget(torch.tensor([[1.0, 2.0, 11.0, 22.0]]), torch.tensor([2]), torch.tensor([False]), "000005")
    assert score([t], path, "voc12", ["a", "b", "c"])["map50"] == pytest.approx(1.0)
    data[0]["category_id"] = 9
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match="r.json.*category_id 9"):
        score([t], path, "voc12", ["a", "b", "c"])
    data[0]["category_id"], data[0]["image_id"] = 1, "000777"
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match="r.json.*'000777' is not in the ground truth"):
        score([t], path, "voc12", ["a", "b", "c"])
    path.write_text('{"image_id": 1}')
    with pytest.raises(DataError, match="r.json.*JSON list"):
        read_coco_results(path)
    with pytest.raises(ConfigError, match="voc2007"):
        score([t], path, "voc2007", ["a"])


def test_score_coco_routes_agree(tmp_path: Path) -> None:
    if not COCO_GT.is_file():
        pytest.skip(f"COCO sample not found: {COCO_GT}")
    ref = coco_eval_files(COCO_GT, COCO_DT)
    out = score(COCO_GT, COCO_DT, "coco")
    assert [out[k] for k in STAT_KEYS] == [ref[k] for k in STAT_KEYS] and out["metric"] == "coco"
    # the same detections as a devkit folder (values rounded to what the folder holds) against the JSON
    dts = json.loads(COCO_DT.read_text())
    for d in dts:
        x, y, w, h = d["bbox"]
        x1, y1, x2, y2 = (round(v, 2) for v in (x, y, x + w, y + h))
        d["bbox"], d["score"] = [x1, y1, x2 - x1, y2 - y1], round(d["score"], 6)
    (tmp_path / "r.json").write_text(json.dumps(dts))
    targets, names, cat_ids, _ = coco_json_targets(COCO_GT)
    assert names == ["person"] and cat_ids == [1] and sum(len(t) for t in targets) == 14
    from singleshot.metrics import coco_results_to_detections

    dets = coco_results_to_detections(dts, cat_ids)
    write_voc_results(tmp_path / "comp4", dets, names)
    via_json = score(COCO_GT, tmp_path / "r.json", "coco")
    via_folder = score(COCO_GT, tmp_path / "comp4", "coco")
    np.testing.assert_allclose([via_folder[k] for k in STAT_KEYS], [via_json[k] for k in STAT_KEYS], atol=1e-6)
    voc = score(COCO_GT, tmp_path / "comp4", "voc12")
    assert 0.5 < voc["map50"] <= 1.0 and set(voc["per_class"]) == {"person"}


def _ten_images_ranked() -> tuple[list[BoxTarget], list[Detections]]:
    """Ten images with one box of class ``a`` each; nine detections ranked TP TP TP FP TP TP TP FP TP
    (recall .1 .2 .3 .3 .4 .5 .6 .6 .7, precision 1 1 1 3/4 4/5 5/6 6/7 3/4 7/9)."""
    box = torch.tensor([[10.0, 10.0, 50.0, 50.0]])
    targets = [
        BoxTarget(box, torch.zeros(1, dtype=torch.int64), torch.zeros(1, dtype=torch.bool), f"im{i}") for i in range(10)
    ]
    far = torch.tensor([[100.0, 100.0, 140.0, 140.0]])
    ranked = [(0, box), (1, box), (2, box), (0, far), (3, box), (4, box), (5, box), (1, far), (6, box)]
    preds = [
        Detections(b, torch.tensor([0.9 - 0.05 * k]), torch.zeros(1, dtype=torch.int64), f"im{i}")
        for k, (i, b) in enumerate(ranked)
    ]
    return targets, preds


def test_score_voc07_thresholds(tmp_path: Path) -> None:
    targets, preds = _ten_images_ranked()
    write_voc_results(tmp_path / "comp4", preds, ["a"])
    # exact k/10: t = 0..0.3 -> 1, t = .4, .5, .6 -> 6/7, t = .7 -> 7/9, t = .8..1 -> 0.
    exact = (4 + 3 * 6 / 7 + 7 / 9) / 11
    # arange: recall .3, .6, .7 miss 0.30000000000000004, 0.6000000000000001, 0.7000000000000001, so
    # t = 0..0.2 -> 1, t = .3+, .4, .5 -> 6/7, t = .6+ -> 7/9, t = .7+ .. 1 -> 0.
    arange = (3 + 3 * 6 / 7 + 7 / 9) / 11
    for pred in (tmp_path / "comp4", preds):
        assert score(targets, pred, "voc07", ["a"])["map50"] == pytest.approx(exact, abs=1e-9)
        out = score(targets, pred, "voc07", ["a"], voc07_thresholds="exact")
        assert out["map50"] == pytest.approx(exact, abs=1e-9)
        out = score(targets, pred, "voc07", ["a"], voc07_thresholds="arange")
        assert out["map50"] == pytest.approx(arange, abs=1e-9)
        # voc12 has no thresholds: the switch leaves it alone.
        v12 = score(targets, pred, "voc12", ["a"])["map50"]
        assert score(targets, pred, "voc12", ["a"], voc07_thresholds="arange")["map50"] == v12
    with pytest.raises(ConfigError, match="voc07_thresholds='np.arange'"):
        score(targets, preds, "voc07", ["a"], voc07_thresholds="np.arange")
