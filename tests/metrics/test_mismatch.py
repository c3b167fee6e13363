"""Mismatches named, not absorbed: ground truth without predictions and predictions outside it
(``detect score`` both routes, ``score_action``), class names of weights against the data's, and
validation sets that are training sets; the warnings and the ``mismatches`` / ``warnings`` entries."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from singleshot.errors import DataError
from singleshot.metrics.action_files import write_frame_detections, write_tubes
from singleshot.metrics.action_score import score_action
from singleshot.metrics.coco import coco_eval_files
from singleshot.metrics.mismatch import class_name_differences, prediction_mismatches, same_items, with_warnings
from singleshot.metrics.scoring import score
from singleshot.postprocess.tube_link_viterbi import link_viterbi
from singleshot.structures import ActionAnnotations, BoxTarget, Detections, FrameDets, Tube, VideoAnnotation

COCO_GT = Path("/work/shared/data/coco/test_coco.json")
COCO_DT = Path("/work/shared/data/coco/test_coco_det_AP_H_56.json")


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


# ---------------------------------------------------------------- the shared functions
def test_prediction_mismatches_counts_and_names_both_sides(caplog: pytest.LogCaptureFixture) -> None:
    gt = [f"v{i}" for i in range(10)]
    with caplog.at_level(logging.WARNING):
        got = prediction_mismatches(gt, ["v3", "x1", "v3", "x2"], "p.json", "videos")
    assert got == {
        "gt_without_predictions": {"count": 9, "first": ["v0", "v1", "v2", "v4", "v5"]},
        "predictions_not_in_gt": {"count": 2, "first": ["x1", "x2"]},
    }
    text = " | ".join(_warnings(caplog))
    assert "p.json: 9 of the 10 evaluated ground-truth videos have no predictions" in text
    assert "'v0', 'v1', 'v2', 'v4', 'v5', ..." in text and "count as misses" in text
    assert "predictions for 2 videos outside the 10 evaluated" in text and "'x1', 'x2'" in text
    caplog.clear()
    assert prediction_mismatches(gt, gt, "p.json") == {} and not _warnings(caplog)


def test_class_name_differences_by_index_and_by_name(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        text = class_name_differences(["a", "b", "c"], ["a", "x", "y"], "w.safetensors", "gt.pkl")
    assert text is not None and "at 2 of 3 labels (matched by index)" in text
    assert "1: 'b' (weights) vs 'x' (data)" in text and "2: 'c' (weights) vs 'y' (data)" in text
    assert "the weights' classes: a, b, c; the data's: a, x, y" in text and _warnings(caplog) == [text]
    assert class_name_differences(["a", "b"], ["a", "b"], "w", "d") is None
    # by name: a permutation or a subset is no difference; a class the weights lack is
    assert class_name_differences(["a", "b", "c"], ["c", "a"], "w", "d", by="name") is None
    text = class_name_differences(["circle", "square"], ["person"], "w", "d.json", by="name")
    assert text is not None and "d.json has 1 class the weights lack: 'person'" in text
    assert "the weights' classes: circle, square; the data's: person" in text


def test_same_items_identical_inside_and_partial(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        text = same_items(["a", "b", "c"], ["c", "b", "a"], "images", hint="use val_set=")
    assert text == (
        "validation reads the same 3 images as training: the metrics measure fit, not generalisation; use val_set="
    )
    assert _warnings(caplog) == [text]
    inside = same_items(["a", "b", "c"], ["b"], "videos")
    assert inside is not None and "the 1 validation videos are all among the 3 training videos" in inside
    partial = same_items(["a", "b"], ["b", "z"], "images")
    assert partial is not None and "1 of the 2 validation images are training images too (first: 'b')" in partial
    assert same_items(["a"], ["b"]) is None


def test_with_warnings_adds_the_list_only_when_there_is_one() -> None:
    report = with_warnings(None, [None, "same files"])
    assert report is not None and report({"map50": 0.5}) == {"map50": 0.5, "warnings": ["same files"]}
    inner = with_warnings(lambda best: dict(best, n=3), ["x"])
    assert inner is not None and inner({"m": 1.0}) == {"m": 1.0, "n": 3, "warnings": ["x"]}
    assert with_warnings(None, [None]) is None


# ---------------------------------------------------------------- detect score
def _target(image_id: str) -> BoxTarget:
    return BoxTarget(torch.tensor([[10.0, 10.0, 50.0, 50.0]]), torch.tensor([0]), torch.tensor([False]), image_id)


def test_detect_score_names_images_without_detections(caplog: pytest.LogCaptureFixture) -> None:
    targets = [_target(f"{i:06d}") for i in range(6)]
    preds = [Detections(t.boxes, torch.tensor([0.9]), t.labels, t.image_id) for t in targets[:2]]
    with caplog.at_level(logging.WARNING):
        got = score(targets, preds, "voc12", ["a"])
    assert got["mismatches"] == {
        "gt_without_predictions": {"count": 4, "first": ["000002", "000003", "000004", "000005"]}
    }
    assert got["map50"] == pytest.approx(2 / 6)  # the protocol: the four images' objects are misses
    assert any("4 of the 6 evaluated ground-truth images have no predictions" in w for w in _warnings(caplog))
    assert (
        score(
            targets, [Detections(t.boxes, torch.tensor([0.9]), t.labels, t.image_id) for t in targets], "voc12", ["a"]
        )["mismatches"]
        == {}
    )
    # predictions outside the ground truth stay an error, now counted and named
    stray = [Detections(targets[0].boxes, torch.tensor([0.5]), targets[0].labels, f"9{i}") for i in range(3)]
    with pytest.raises(
        DataError,
        match=r"'90' is not in the ground truth \(6 images\); predicted ids not in it: 3 \('90', '91', '92'\)",
    ):
        score(targets, preds + stray, "voc12", ["a"])


def test_detect_score_coco_files_name_images_without_results(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    if not COCO_GT.is_file():
        pytest.skip(f"COCO sample not found: {COCO_GT}")
    images = [img["id"] for img in json.loads(COCO_GT.read_text())["images"]]
    results = [r for r in json.loads(COCO_DT.read_text()) if r["image_id"] != images[0]]
    (tmp_path / "r.json").write_text(json.dumps(results))
    with caplog.at_level(logging.WARNING):
        got = score(COCO_GT, tmp_path / "r.json", "coco")
    assert got["mismatches"] == {"gt_without_predictions": {"count": 1, "first": [str(images[0])]}}
    assert any("r.json: 1 of the 4 evaluated ground-truth images" in w for w in _warnings(caplog))
    assert coco_eval_files(COCO_GT, COCO_DT)["mismatches"] == {}


# ---------------------------------------------------------------- action score
def _gt(tmp_path: Path) -> tuple[Path, ActionAnnotations]:
    """Four 10-frame videos, one tube each; A/a, B/b and C/c are tested, D/d trains."""
    from singleshot.data.action.readers_act import write_act_pickle

    names = ["A/a", "B/b", "C/c", "D/d"]
    videos = {
        v: VideoAnnotation(
            v, 10, (100, 120), [Tube(v, i % 2, np.arange(1, 11), np.tile(np.float32([10, 10, 40, 50]), (10, 1)))]
        )
        for i, v in enumerate(names)
    }
    gt = ActionAnnotations(["run", "jump"], videos, train_videos=["D/d"], test_videos=names[:3])
    path = tmp_path / "toy-GT.pkl"
    write_act_pickle(gt, path)
    return path, gt


def _dets(gt: ActionAnnotations, videos: list[str]) -> FrameDets:
    rows = [
        (v, f, t.label, 0.9, b)
        for v in videos
        for t in gt.videos[v].tubes
        for f, b in zip(t.frames.tolist(), t.boxes.tolist())
    ]
    return FrameDets(
        videos,
        [videos.index(r[0]) for r in rows],
        [r[1] for r in rows],
        [r[2] for r in rows],
        [r[3] for r in rows],
        [r[4] for r in rows],
    )


def test_action_score_names_videos_without_predictions(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    gt_path, gt = _gt(tmp_path)
    dets = _dets(gt, ["A/a", "D/d"])  # one tested video, and one of the training split
    write_frame_detections(tmp_path / "frames.json", dets)
    with caplog.at_level(logging.WARNING):
        got = score_action(gt_path, tmp_path / "frames.json", None, "yowo", link=link_viterbi)
    assert got["mismatches"] == {
        "gt_without_predictions": {"count": 2, "first": ["B/b", "C/c"]},
        "predictions_not_in_gt": {"count": 1, "first": ["D/d"]},
    }
    text = " | ".join(_warnings(caplog))
    assert "frames.json: 2 of the 3 evaluated ground-truth videos have no predictions (first: 'B/b', 'C/c')" in text
    assert "predictions for 1 videos outside the 3 evaluated ground-truth videos (first: 'D/d'); ignored" in text
    # the protocol is kept: the untouched videos are misses, as with the same detections in memory
    same = score_action(gt, dets, None, "yowo", link=link_viterbi)
    assert got["frame_map"] == pytest.approx(same["frame_map"]) and 0 < got["frame_map"] < 1
    assert same["mismatches"] == {}
    # tubes from a file are compared too
    write_tubes(tmp_path / "tubes.json", [t for v in ("A/a", "B/b", "C/c") for t in gt.videos[v].tubes])
    got = score_action(gt_path, tmp_path / "frames.json", tmp_path / "tubes.json", "yowo")
    assert "gt_without_tubes" not in got["mismatches"] and got["mismatches"]["gt_without_predictions"]["count"] == 2
