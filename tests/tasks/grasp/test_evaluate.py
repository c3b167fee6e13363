"""``grasp score``: hand-made prediction files on the real Cornell samples, top-1 by quality,
missing images, the Wilson interval by hand, splits; the prediction file's errors."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import pytest

from singleshot.cli import main
from singleshot.data.grasp.cornell import read_cornell_rectangles
from singleshot.data.grasp.rects import corners_to_grasps
from singleshot.errors import DataError
from singleshot.metrics.grasp_files import read_grasp_predictions


def _last_json(capsys: pytest.CaptureFixture[str]) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def _wilson(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


def _first_rect(root: Path, stem: str) -> list[float]:
    """The first positive rectangle of an image as (cx, cy, angle, opening, jaw), from its corners."""
    return [float(v) for v in corners_to_grasps(read_cornell_rectangles(root / f"{stem}cpos.txt"))[0]]


def test_score_cornell_top1_missing_and_interval(
    shared_data: Callable[..., Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    root = shared_data("cornell")
    g0, g1 = _first_rect(root, "pcd0100"), _first_rect(root, "pcd0101")
    far = [5.0, 5.0, 0.0, 4.0, 2.0]  # a tiny rectangle in the corner: IoU 0 with every label
    turned = g1[:2] + [g1[2] + math.radians(60)] + g1[3:]  # right place, 60 degrees off: fails
    preds = [
        {"image": "pcd0100", "grasps": [far + [0.4], g0 + [0.9]]},  # the best-quality grasp is the label
        {"image": "pcd0101", "grasps": [g1 + [0.3], turned + [0.8]]},  # the best-quality grasp is turned
        # pcd0102 missing: a failure
    ]
    pred = tmp_path / "preds.json"
    pred.write_text(json.dumps(preds))
    assert main(["grasp", "score", f"gt={root}", f"pred={pred}", "split=all"]) == 0
    got = _last_json(capsys)
    assert got["n"] == 3 and got["n_success"] == 1 and got["success_rate"] == pytest.approx(1 / 3)
    assert got["ci95"] == pytest.approx(list(_wilson(1, 3)), abs=1e-9)
    assert got["missing"] == 1 and got["iou"] == "polygon" and "all 3 images" in got["split"]
    # the image without predictions is named, in the result and in a warning
    assert got["mismatches"] == {"gt_without_predictions": {"count": 1, "first": ["pcd0102"]}}
    assert any(
        "1 of the 3 evaluated ground-truth images have no predictions (first: 'pcd0102')" in r.getMessage()
        for r in caplog.records
        if r.levelname == "WARNING"
    )
    # swap the qualities of pcd0101: now its top-1 is the label and it succeeds; raster IoU agrees
    preds[1]["grasps"] = [g1 + [0.8], turned + [0.3]]
    pred.write_text(json.dumps(preds))
    assert main(["grasp", "score", f"gt={root}", f"pred={pred}", "split=all", "iou=raster"]) == 0
    got = _last_json(capsys)
    assert got["n_success"] == 2 and got["iou"] == "raster"


def test_score_uses_the_test_side_of_the_split(
    shared_data: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = shared_data("cornell")
    preds = [{"image": s, "grasps": [_first_rect(root, s) + [1.0]]} for s in ("pcd0100", "pcd0101", "pcd0102")]
    pred = tmp_path / "preds.json"
    pred.write_text(json.dumps(preds))
    # reference split by order, test_fraction 1/3: the last image tests
    assert main(["grasp", "score", f"gt={root}", f"pred={pred}", "split=reference", "test_fraction=0.3"]) == 0
    got = _last_json(capsys)
    assert got["n"] == 1 and got["success_rate"] == 1.0 and got["ignored"] == 2 and "reference" in got["split"]
    assert got["mismatches"] == {"predictions_not_in_gt": {"count": 2, "first": ["pcd0100", "pcd0101"]}}
    # 3-fold cross-validation: one image per fold
    assert main(["grasp", "score", f"gt={root}", f"pred={pred}", "split=kfold", "k=3", "fold=2"]) == 0
    got = _last_json(capsys)
    assert got["n"] == 1 and "fold 3/3" in got["split"]


def test_prediction_file_errors_name_the_entry(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"image": "pcd0100", "grasps": [[1, 2, 3]]}]))
    with pytest.raises(DataError, match=r"bad.json: entry 0 \(pcd0100\), grasp 0: expected 5 or 6 numbers"):
        read_grasp_predictions(bad)
    bad.write_text("{not json")
    with pytest.raises(DataError, match="bad.json: cannot read grasp predictions"):
        read_grasp_predictions(bad)
    assert main(["grasp", "score", f"gt={tmp_path}", f"pred={bad}", "spilt=all"]) == 2
    assert "did you mean split" in capsys.readouterr().err


def test_rows_of_five_are_ranked_by_position(tmp_path: Path) -> None:
    f = tmp_path / "p.json"
    f.write_text(
        json.dumps([{"image": "a", "grasps": [[1, 1, 0, 10, 5], [2, 2, 0, 10, 5]]}, {"image": "b", "grasps": []}])
    )
    got = read_grasp_predictions(f)
    assert got["a"].grasps[0, 0] == 1 and got["a"].scores[0] > got["a"].scores[1]
    assert len(got["b"]) == 0
