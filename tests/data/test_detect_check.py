"""The one-pass check of VOC, COCO and YOLO splits: planted faults are each reported with their
kind, file and image; unchanged files come from the cache, a touched file re-runs the check; the
real samples in ../shared/data check clean."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from singleshot.data.detect_check import check_coco, check_voc, check_yolo
from singleshot.data.detect_convert import convert_dataset
from singleshot.data.shapes import SHAPES_CLASSES, write_shapes_dataset


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SINGLESHOT_CACHE", str(tmp_path / "cache"))


def _shapes(root: Path) -> Path:
    return write_shapes_dataset(root, n_train=8, n_val=2, size=64, seed=3)


def _break_images(folder: Path, names: list[str]) -> None:
    """Three corrupt images: garbage bytes, a JPEG cut in half, an empty file."""
    (folder / names[0]).write_bytes(b"not an image at all" * 10)
    data = (folder / names[1]).read_bytes()
    (folder / names[1]).write_bytes(data[: len(data) // 2])
    (folder / names[2]).write_bytes(b"")


def _kinds(report) -> dict[str, str]:  # item -> kind (one fault per planted item)
    return {f.item: f.kind for f in report.faults}


def test_voc_planted_faults_cache_and_touch(tmp_path: Path) -> None:
    root = _shapes(tmp_path / "voc")
    voc = root / "VOC2007"
    _break_images(voc / "JPEGImages", ["000001.jpg", "000002.jpg", "000003.jpg"])
    xml4 = voc / "Annotations" / "000004.xml"
    xml4.write_text(xml4.read_text()[:150])
    xml5 = voc / "Annotations" / "000005.xml"
    xml5.write_text(re.sub(r"<xmax>\d+</xmax>", "<xmax>200</xmax>", xml5.read_text(), count=1))
    xml6 = voc / "Annotations" / "000006.xml"
    xml6.write_text(re.sub(r"<name>\w+</name>", "<name>zebra</name>", xml6.read_text(), count=1))
    (voc / "ImageSets" / "Main" / "train.txt").write_text(
        (voc / "ImageSets" / "Main" / "train.txt").read_text() + "000007\n"
    )

    report = check_voc(root, "train", class_names=SHAPES_CLASSES, workers=2)
    assert report.n_items == 8 and not report.from_cache
    assert _kinds(report) == {
        "000001": "unreadable image",
        "000002": "corrupt image",
        "000003": "unreadable image",
        "000004": "malformed annotation",
        "000005": "box outside image",
        "000006": "unknown class",
        "000007": "duplicate id",
    }
    table = report.table()
    for name in ("000001.jpg", "000002.jpg", "000004.xml", "000005.xml", "zebra", "train.txt"):
        assert name in table
    assert "7 fault(s) in 7 of 8 items" in table

    again = check_voc(root, "train", class_names=SHAPES_CLASSES)
    assert again.from_cache and again.faults == report.faults
    os.utime(xml6, ns=(xml6.stat().st_atime_ns, xml6.stat().st_mtime_ns + 10**9))
    assert not check_voc(root, "train", class_names=SHAPES_CLASSES).from_cache
    # a class list that knows zebra: that fault goes
    assert "000006" not in _kinds(check_voc(root, "train", class_names=[*SHAPES_CLASSES, "zebra"]))


def test_voc_missing_list_is_a_fault_of_the_whole_dataset(tmp_path: Path) -> None:
    report = check_voc(_shapes(tmp_path / "voc"), "nope")
    assert len(report.fatal) == 1 and "nope.txt" in report.faults[0].message


def test_coco_planted_faults(tmp_path: Path) -> None:
    root = _shapes(tmp_path / "voc")
    convert_dataset("voc", root, "coco", tmp_path / "coco", train_set="train", val_set="val")
    ann_file = tmp_path / "coco" / "annotations" / "instances_train.json"
    images = tmp_path / "coco" / "images" / "train"
    data = json.loads(ann_file.read_text())
    by_image = {img["id"]: img["file_name"] for img in data["images"]}
    _break_images(images, [by_image[1], by_image[2], by_image[3]])
    anns = {a["image_id"]: a for a in data["annotations"]}  # one annotation of each image
    anns[4]["bbox"] = [1, 2, 3]
    anns[5]["bbox"] = [10, 10, 100, 5]
    anns[6]["category_id"] = 99
    data["images"][6]["width"] = 65
    ann_file.write_text(json.dumps(data))

    report = check_coco(images, ann_file, workers=2)
    assert report.n_items == 8
    assert _kinds(report) == {
        "1": "unreadable image",
        "2": "corrupt image",
        "3": "unreadable image",
        "4": "malformed annotation",
        "5": "box outside image",
        "6": "unknown class",
        "7": "size mismatch",
    }
    assert check_coco(images, ann_file).from_cache
    data["annotations"].append({"id": 999, "image_id": 12345, "category_id": 1, "bbox": [1, 1, 2, 2]})
    ann_file.write_text(json.dumps(data))
    report = check_coco(images, ann_file)
    assert not report.from_cache and len(report.fatal) == 1 and "unknown image_id 12345" in report.fatal[0].message


def test_yolo_planted_faults(tmp_path: Path) -> None:
    root = _shapes(tmp_path / "voc")
    convert_dataset("voc", root, "yolo", tmp_path / "yolo", train_set="train", val_set="val")
    yolo = tmp_path / "yolo"
    images, labels = yolo / "images" / "train", yolo / "labels" / "train"
    _break_images(images, ["000001.jpg", "000002.jpg", "000003.jpg"])
    (labels / "000004.txt").write_text("0 0.5 0.5 0.1\n")
    (labels / "000005.txt").write_text("0 1.4 0.5 0.4 0.2\n")
    (labels / "000006.txt").write_text("9 0.5 0.5 0.2 0.2\n")
    (labels / "000007.txt").write_text("1 0.5 0.5 0.0 0.2\n")
    (labels / "000008.txt").unlink()  # a background image: no fault
    (yolo / "extra.txt").write_text("images/train/000008.jpg\nimages/train/gone.jpg\n")
    (yolo / "data.yaml").write_text(
        (yolo / "data.yaml").read_text().replace("train: images/train", "train: [images/train, extra.txt]")
    )
    report = check_yolo(yolo / "data.yaml", "train", workers=2)
    assert _kinds(report) == {
        "000001": "unreadable image",
        "000002": "corrupt image",
        "000003": "unreadable image",
        "000004": "malformed annotation",
        "000005": "box outside image",
        "000006": "unknown class",
        "000007": "degenerate box",
        "images/train/gone": "missing image",
    }
    assert check_yolo(yolo / "data.yaml", "train").from_cache
    assert check_yolo(yolo / "data.yaml", "val").ok


def test_real_samples_check_clean(shared_data: Callable[..., Path]) -> None:
    devkit = shared_data("voc", "VOCdevkit")
    assert check_voc(devkit, "trainval", years=("2007", "2012")).ok
    assert check_voc(devkit, "test", years=("2007",)).ok
    coco = shared_data("coco", "test_coco.json")
    report = check_coco(coco.parent, coco)
    assert report.ok and report.n_items == 4
