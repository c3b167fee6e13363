from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from singleshot.cli import main
from singleshot.data.voc import VOCDetection
from singleshot.metrics.files import write_voc_results
from singleshot.metrics.voc import VOCEvaluator
from singleshot.structures import Detections


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
