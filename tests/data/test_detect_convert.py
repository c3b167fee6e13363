"""Dataset conversion between VOC, COCO and YOLO: every reader gives the same boxes, labels and
classes back; splits, difficult flags (where the format has them) and image ids survive.

Tolerance: YOLO writes normalised values with six decimals, an error of at most 0.75e-6 of the
image side per corner (half a unit of the centre plus half of half the size): 1e-4 px for these
64 px images, below 1e-3 px up to ~1300 px wide images; VOC snaps values within 0.005 px of an
integer, so the round trip back to VOC is exact."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from singleshot.data.coco import COCODetection
from singleshot.data.detect_convert import convert_dataset, read_detection_set
from singleshot.data.shapes import write_shapes_dataset
from singleshot.data.voc import VOCDetection
from singleshot.data.yolo import YOLODetection
from singleshot.errors import ConfigError, DataError
from singleshot.structures import BoxTarget

YOLO_ATOL = 1e-3  # px, see the module docstring


def _targets(ds: VOCDetection | COCODetection | YOLODetection, ids: list[str]) -> dict[str, BoxTarget]:
    return {i: ds.load_target(k) for k, i in enumerate(ids)}


def _voc_targets(root: Path, split: str) -> dict[str, BoxTarget]:
    ds = VOCDetection(root, split, class_names=CLASSES)
    return _targets(ds, [i for _, i in ds.ids])


CLASSES = ["circle", "cross", "ring", "square", "triangle"]  # sorted: what VOC sources give


def _same(a: dict[str, BoxTarget], b: dict[str, BoxTarget], atol: float, difficult: bool = True) -> None:
    assert list(a) == list(b)
    for i in a:
        torch.testing.assert_close(a[i].boxes, b[i].boxes, rtol=0, atol=atol)
        assert a[i].labels.tolist() == b[i].labels.tolist()
        if difficult:
            assert a[i].difficult.tolist() == b[i].difficult.tolist()


def test_voc_yolo_coco_voc_round_trip(tmp_path: Path) -> None:
    voc = write_shapes_dataset(tmp_path / "voc", n_train=6, n_val=3, size=64, seed=5)
    out = convert_dataset("voc", voc, "yolo", tmp_path / "yolo")
    assert out["classes"] == CLASSES and out["splits"]["train"]["images"] == 6
    yaml = Path(out["data"])
    # VOC's trainval/test (the defaults) became YOLO's train/val
    orig = {"train": _voc_targets(voc, "trainval"), "val": _voc_targets(voc, "test")}
    assert any(t.difficult.any() for t in orig["train"].values())  # the flag YOLO cannot carry
    for split in ("train", "val"):
        ds = YOLODetection(yaml, split)
        assert ds.class_names == tuple(CLASSES)
        _same(orig[split], _targets(ds, ds.ids), YOLO_ATOL, difficult=False)

    convert_dataset("yolo", yaml, "coco", tmp_path / "coco")
    for split in ("train", "val"):
        ds = COCODetection(
            tmp_path / "coco" / "images" / split, tmp_path / "coco" / "annotations" / f"instances_{split}.json"
        )
        assert ds.class_names == tuple(CLASSES) and ds.cat_ids == [1, 2, 3, 4, 5]
        ids = [ds.image_path(k).stem for k in range(len(ds))]
        _same(orig[split], _targets(ds, ids), YOLO_ATOL, difficult=False)

    convert_dataset("coco", tmp_path / "coco", "voc", tmp_path / "back")
    for split in ("train", "val"):
        back = _voc_targets(tmp_path / "back", split)
        for t in orig[split].values():
            t.difficult[:] = False
        _same(orig[split], back, atol=0.0)
    xml = (tmp_path / "back" / "Annotations" / "000001.xml").read_text()
    assert re.search(r"<xmin>\d+</xmin>", xml)  # integers again, as VOC tools expect


def test_difficult_travels_between_voc_and_coco(tmp_path: Path) -> None:
    voc = write_shapes_dataset(tmp_path / "voc", n_train=6, n_val=2, size=64, seed=5)
    convert_dataset("voc", voc, "coco", tmp_path / "coco", train_set="train", val_set="val")
    ds = COCODetection(
        tmp_path / "coco" / "images" / "train", tmp_path / "coco" / "annotations" / "instances_train.json"
    )
    ids = [ds.image_path(k).stem for k in range(len(ds))]
    _same(_voc_targets(voc, "train"), _targets(ds, ids), atol=1e-3)
    convert_dataset("coco", tmp_path / "coco", "voc", tmp_path / "back")
    _same(_voc_targets(voc, "train"), _voc_targets(tmp_path / "back", "train"), atol=0.0)


def test_single_coco_json_is_train_and_val(shared_data: Callable[..., Path], tmp_path: Path) -> None:
    ann = shared_data("coco", "test_coco.json")
    data = read_detection_set("coco", ann)
    assert data.classes == ["person"] and list(data.splits) == ["train", "val"]
    out = convert_dataset("coco", ann, "yolo", tmp_path / "yolo")
    ref = COCODetection(ann.parent, ann)
    ours = YOLODetection(out["data"], "val")
    ref_ids = [ref.image_path(k).stem for k in range(len(ref))]
    assert ours.ids == ref_ids
    _same(_targets(ref, ref_ids), _targets(ours, ours.ids), atol=1e-3, difficult=False)


def test_refusals(tmp_path: Path) -> None:
    voc = write_shapes_dataset(tmp_path / "voc", n_train=2, n_val=1, size=64)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    with pytest.raises(ConfigError, match="dst=.*full: exists and is not an empty folder"):
        convert_dataset("voc", voc, "yolo", tmp_path / "full")
    with pytest.raises(ConfigError, match="unknown dataset format 'kitti'"):
        convert_dataset("voc", voc, "kitti", tmp_path / "k")
    # YOLO splits whose different images share an id cannot become one VOC folder
    convert_dataset("voc", voc, "yolo", tmp_path / "yolo", train_set="train", val_set="val")
    val = tmp_path / "yolo" / "images" / "val"
    (val / "000003.jpg").rename(val / "000001.jpg")
    (tmp_path / "yolo" / "labels" / "val" / "000003.txt").rename(tmp_path / "yolo" / "labels" / "val" / "000001.txt")
    with pytest.raises(DataError, match="image id '000001' names two images"):
        convert_dataset("yolo", tmp_path / "yolo" / "data.yaml", "voc", tmp_path / "v2")
