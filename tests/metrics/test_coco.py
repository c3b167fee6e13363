"""COCO AP: our evaluators against pycocotools' COCOeval run directly on the same data."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from singleshot.errors import DataError
from singleshot.metrics.coco import STAT_KEYS, COCOEvaluator, _backend, coco_eval_files
from singleshot.structures import BoxTarget, Detections

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
GT_JSON = DATA / "coco" / "test_coco.json"
DT_JSON = DATA / "coco" / "test_coco_det_AP_H_56.json"


def _pycoco(gt: dict | Path, results: list | Path) -> COCOeval:
    with contextlib.redirect_stdout(io.StringIO()):
        if isinstance(gt, dict):
            cg = COCO()
            cg.dataset = copy.deepcopy(gt)
            cg.createIndex()
        else:
            cg = COCO(str(gt))
        cd = cg.loadRes(copy.deepcopy(results) if isinstance(results, list) else str(results))
        ev = COCOeval(cg, cd, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


def _per_class(ev: COCOeval) -> list[float]:
    p = ev.eval["precision"][:, :, :, 0, -1]
    return [
        float(p[:, :, k][p[:, :, k] > -1].mean()) if (p[:, :, k] > -1).any() else math.nan for k in range(p.shape[2])
    ]


def _f32_xyxy(bb: list[float]) -> list[float]:
    """[x, y, w, h] -> xyxy rounded through float32, as a Detections / BoxTarget holds it."""
    return np.float32([bb[0], bb[1], bb[0] + bb[2], bb[1] + bb[3]]).astype(float).tolist()


def _need_real() -> None:
    if not GT_JSON.is_file() or not DT_JSON.is_file():
        pytest.skip(f"COCO sample files not found: {GT_JSON.parent}")


def test_files_match_pycocotools_on_real_data(capsys: pytest.CaptureFixture) -> None:
    _need_real()
    out = coco_eval_files(GT_JSON, DT_JSON)
    assert capsys.readouterr().out == ""  # the libraries' prints are silenced
    ref = _pycoco(GT_JSON, DT_JSON)
    np.testing.assert_allclose([out[k] for k in STAT_KEYS], ref.stats, atol=1e-6)
    assert out["per_class"]["person"] == pytest.approx(ref.stats[0], abs=1e-6)
    assert out["n_images"] == 4 and 0.5 < out["map"] < 1.0


def test_evaluator_matches_pycocotools_on_real_data() -> None:
    _need_real()
    gt = json.loads(GT_JSON.read_text())
    dts = json.loads(DT_JSON.read_text())
    targets, preds = [], []
    for img in gt["images"]:
        anns = [a for a in gt["annotations"] if a["image_id"] == img["id"]]
        dd = [d for d in dts if d["image_id"] == img["id"]]
        xyxy = lambda bb: [bb[0], bb[1], bb[0] + bb[2], bb[1] + bb[3]]  # noqa: E731
        targets.append(
            BoxTarget(
                boxes=torch.tensor([xyxy(a["bbox"]) for a in anns], dtype=torch.float64).float(),
                labels=torch.zeros(len(anns), dtype=torch.int64),
                difficult=torch.tensor([bool(a["iscrowd"]) for a in anns]),
                image_id=str(img["id"]),
                size=(img["height"], img["width"]),
                orig_size=(img["height"], img["width"]),
            )
        )
        preds.append(
            Detections(
                boxes=torch.tensor([xyxy(d["bbox"]) for d in dd], dtype=torch.float32),
                scores=torch.tensor([d["score"] for d in dd], dtype=torch.float32),
                labels=torch.zeros(len(dd), dtype=torch.int64),
                image_id=str(img["id"]),
            )
        )
    ev = COCOEvaluator(["person"])
    ev.process(preds[:2], targets[:2])
    ev.process(preds[2:], targets[2:])
    out = ev.compute()
    # The evaluator has boxes only: its gt area is w * h (the file's is the segmentation area), and
    # its boxes went through float32. Give pycocotools the same inputs.
    ref_gt = copy.deepcopy(gt)
    for a in ref_gt["annotations"]:
        x1, y1, x2, y2 = _f32_xyxy(a["bbox"])
        a["bbox"] = [x1, y1, x2 - x1, y2 - y1]
        a["area"] = (x2 - x1) * (y2 - y1)
    ref_dt = []
    for d in dts:
        x1, y1, x2, y2 = _f32_xyxy(d["bbox"])
        ref_dt.append({**d, "bbox": [x1, y1, x2 - x1, y2 - y1], "score": float(np.float32(d["score"]))})
    ref = _pycoco(ref_gt, ref_dt)
    np.testing.assert_allclose([out[k] for k in STAT_KEYS], ref.stats, atol=1e-6)
    assert out["n_images"] == 4


def _generated(seed: int, n_img: int = 30, n_cls: int = 3):
    rng = np.random.default_rng(seed)
    names = ["cat", "dog", "bird"][:n_cls]
    gt = {"images": [], "annotations": [], "categories": [{"id": i + 1, "name": n} for i, n in enumerate(names)]}
    res, targets, preds = [], [], []
    for i in range(n_img):
        h, w = 480, 640
        gt["images"].append({"id": i + 1, "height": h, "width": w})
        ng = int(rng.integers(0, 7))
        xy = rng.uniform(0, 400, (ng, 2))
        wh = np.exp(rng.uniform(np.log(8), np.log(200), (ng, 2)))  # small, medium and large
        gb = np.concatenate([xy, xy + wh], 1).astype(np.float32)
        gl = rng.integers(0, n_cls, ng)
        crowd = rng.random(ng) < 0.15
        for b, lab, c in zip(gb.astype(float), gl, crowd):
            gt["annotations"].append(
                {
                    "id": len(gt["annotations"]) + 1,
                    "image_id": i + 1,
                    "category_id": int(lab) + 1,
                    "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]],
                    "area": (b[2] - b[0]) * (b[3] - b[1]),
                    "iscrowd": int(c),
                }
            )
        nd = int(rng.integers(0, 12))
        pick = rng.integers(0, max(ng, 1), nd)
        db = (gb[pick] if ng else np.zeros((nd, 4), np.float32)) + rng.normal(0, 6, (nd, 4)).astype(np.float32)
        db[:, 2:] = np.maximum(db[:, 2:], db[:, :2] + 1)
        dl = gl[pick] if ng else rng.integers(0, n_cls, nd)
        dl = np.where(rng.random(nd) < 0.1, rng.integers(0, n_cls, nd), dl)
        ds = rng.random(nd).astype(np.float32)
        for b, lab, s in zip(db.astype(float), dl, ds):
            bbox = [b[0], b[1], b[2] - b[0], b[3] - b[1]]
            res.append({"image_id": i + 1, "category_id": int(lab) + 1, "bbox": bbox, "score": float(s)})
        targets.append(
            BoxTarget(torch.from_numpy(gb), torch.from_numpy(gl), torch.from_numpy(crowd), f"img{i}", (h, w), (h, w))
        )
        preds.append(Detections(torch.from_numpy(db), torch.from_numpy(ds), torch.from_numpy(dl), f"img{i}"))
    return names, gt, res, targets, preds


@pytest.mark.parametrize("seed", [0, 1])
def test_evaluator_matches_pycocotools_on_generated_data(seed: int) -> None:
    names, gt, res, targets, preds = _generated(seed)
    assert any(a["iscrowd"] for a in gt["annotations"])
    ev = COCOEvaluator(names)
    ev.process(preds, targets)
    out = ev.compute()
    ref = _pycoco(gt, res)
    np.testing.assert_allclose([out[k] for k in STAT_KEYS], ref.stats, atol=1e-6)
    np.testing.assert_allclose([out["per_class"][n] for n in names], _per_class(ref), atol=1e-6)
    assert min(ref.stats) > -1  # every area range is populated, so every stat was compared


def test_pycocotools_fallback_gives_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    names, gt, res, targets, preds = _generated(3)
    ev = COCOEvaluator(names)
    ev.process(preds, targets)
    fast = ev.compute()
    monkeypatch.setitem(sys.modules, "faster_coco_eval", None)  # import now fails
    assert _backend()[2] == "pycocotools"
    slow = ev.compute()
    np.testing.assert_allclose([fast[k] for k in STAT_KEYS], [slow[k] for k in STAT_KEYS], atol=1e-6)


def test_no_detections_gives_zero_and_missing_class_nan() -> None:
    t = BoxTarget(
        torch.tensor([[0.0, 0.0, 50.0, 50.0]]), torch.tensor([0]), torch.tensor([False]), "a", (100, 100), (100, 100)
    )
    ev = COCOEvaluator(["x", "y"])
    ev.process([Detections(image_id="a")], [t])
    out = ev.compute()
    assert out["map"] == 0.0 and out["mar_100"] == 0.0 and out["map_small"] == -1.0  # no small gt
    assert out["per_class"]["x"] == 0.0 and math.isnan(out["per_class"]["y"])


def test_bad_files_name_the_file(tmp_path: Path) -> None:
    _need_real()
    bad = tmp_path / "res.json"
    bad.write_text('[{"image_id": 785, "category_id": 1, "bbox": [1, 2, 3], "score": 0.5}]')
    with pytest.raises(DataError, match="res.json.*bbox"):
        coco_eval_files(GT_JSON, bad)
    bad.write_text('[{"image_id": 12345, "category_id": 1, "bbox": [1, 2, 3, 4], "score": 0.5}]')
    with pytest.raises(DataError, match="res.json.*12345"):
        coco_eval_files(GT_JSON, bad)
    bad.write_text("[{")
    with pytest.raises(DataError, match="res.json.*not valid JSON"):
        coco_eval_files(GT_JSON, bad)
