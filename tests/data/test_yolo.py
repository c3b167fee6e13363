"""YOLO txt reader: the data.yaml forms, image sources, ultralytics' label-path rule, background
images, ids below the source folder, class mapping by name, and bad input named by file."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from singleshot.data.yolo import YOLODetection, label_path, load_yolo_yaml, read_yolo_labels, yolo_to_xyxy
from singleshot.errors import DataError


def _image(path: Path, w: int = 40, h: int = 20) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (w, h), (90, 120, 30)).save(path)
    return path


def _labels(image: Path, text: str) -> Path:
    path = label_path(image)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _dataset(root: Path, yaml_text: str = "") -> Path:
    """images/train/{a/x, b/x, y}.jpg (40x20), images/val/z.png; labels for a/x and y only."""
    ax = _image(root / "images" / "train" / "a" / "x.jpg")
    _image(root / "images" / "train" / "b" / "x.jpg")
    y = _image(root / "images" / "train" / "y.jpg")
    _image(root / "images" / "val" / "z.png")
    _labels(ax, "0 0.5 0.5 0.5 0.5\n1 0.25 0.75 0.1 0.2\n")
    _labels(y, "\n")  # empty: background
    path = root / "data.yaml"
    path.write_text(yaml_text or "train: images/train\nval: images/val\nnames: [cat, dog]\n")
    return path


def test_label_path_replaces_the_last_images_part() -> None:
    sep = os.sep
    got = label_path(Path(f"{sep}d{sep}images{sep}set{sep}images{sep}x.JPG"))
    assert str(got) == f"{sep}d{sep}images{sep}set{sep}labels{sep}x.txt"
    assert label_path(Path("flat/x.png")) == Path("flat/x.txt")


def test_boxes_in_pixels_ids_and_background_images(tmp_path: Path) -> None:
    ds = YOLODetection(_dataset(tmp_path), "train")
    assert ds.ids == ["a/x", "b/x", "y"] and ds.class_names == ("cat", "dog")
    image, target = ds[0]
    assert tuple(image.shape) == (3, 20, 40) and target.size == (20, 40)
    expected = torch.tensor([[10.0, 5.0, 30.0, 15.0], [8.0, 13.0, 12.0, 17.0]])
    torch.testing.assert_close(target.boxes, expected, rtol=0, atol=1e-5)
    assert target.labels.tolist() == [0, 1] and not target.difficult.any() and target.image_id == "a/x"
    assert len(ds[1][1]) == 0 and len(ds[2][1]) == 0  # no label file / an empty one
    torch.testing.assert_close(ds.load_target(0).boxes, target.boxes)


def test_yaml_forms_path_lists_and_names_mapping(tmp_path: Path) -> None:
    root = tmp_path / "root"
    _dataset(root)
    (root / "train.txt").write_text("./images/train/a/x.jpg\nimages/train/y.jpg\n\n")
    cfg = tmp_path / "cfg" / "d.yaml"
    cfg.parent.mkdir()
    cfg.write_text("path: ../root\ntrain: [train.txt, images/val]\nval: images/val\nnames: {0: cat, 1: dog}\nnc: 2\n")
    data = load_yolo_yaml(cfg)
    assert data.root == cfg.parent / "../root" and data.names == ("cat", "dog")
    ds = YOLODetection(cfg, "train")
    assert ds.ids == ["images/train/a/x", "images/train/y", "z"]
    assert ds[0][1].labels.tolist() == [0, 1]
    # labels follow the class list given, matched by name
    assert YOLODetection(cfg, "train", class_names=["dog", "cat"])[0][1].labels.tolist() == [1, 0]
    with pytest.raises(DataError, match=r"x\.txt.*'dog'.*not in the class list.*classes="):
        YOLODetection(cfg, "train", class_names=["cat"])[0]
    assert YOLODetection(cfg, "train", exclude={"images/train/a/x"}).ids == ["images/train/y", "z"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("train: a\nval: b\nnames: [x, x]\n", "duplicate"),
        ("train: a\nnames: [x]\nnc: 3\n", "nc is 3"),
        ("train: a\nnames: {1: x}\n", "keys 0..0"),
        ("names: [x]\n", "no 'train' or 'val'"),
        ("train: [a, 3]\nnames: [x]\n", "'train' must be a path"),
        ("train: a\nnames: [x\n", "malformed YAML"),
        ("- a\n- b\n", "expected a mapping"),
    ],
)
def test_bad_yaml_is_named(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "d.yaml").write_text(text)
    with pytest.raises(DataError, match=rf"d\.yaml.*{message}"):
        load_yolo_yaml(tmp_path / "d.yaml")


def test_missing_split_source_and_yaml(tmp_path: Path) -> None:
    path = _dataset(tmp_path)
    with pytest.raises(DataError, match="no 'test' split"):
        YOLODetection(path, "test")
    path.write_text("train: images/nope\nval: images/val\nnames: [cat]\n")
    with pytest.raises(DataError, match=r"data\.yaml: train source .*nope not found"):
        YOLODetection(path, "train")
    with pytest.raises(DataError, match=r"other\.yaml: data\.yaml not found"):
        load_yolo_yaml(tmp_path / "other.yaml")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("0 0.5 0.5 0.5", "4 fields"),
        ("0 0.5 0.5 0.5 0.5 0.5", "6 fields"),
        ("0 0.5 abc 0.5 0.5", "'abc', not a number"),
        ("0 0.5 nan 0.5 0.5", "non-finite"),
        ("1.5 0.5 0.5 0.5 0.5", "not a non-negative integer"),
        ("-1 0.5 0.5 0.5 0.5", "not a non-negative integer"),
    ],
)
def test_malformed_label_lines_are_named(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "labels" / "x.txt"
    path.parent.mkdir()
    path.write_text("0 0.5 0.5 0.2 0.2\n" + line + "\n")
    with pytest.raises(DataError, match=rf"x\.txt: line 2 .*{message}"):
        read_yolo_labels(path)


def test_polygon_lines_give_their_extent_and_class_beyond_names_fails(tmp_path: Path) -> None:
    path = tmp_path / "x.txt"
    path.write_text("2 0.1 0.2 0.5 0.2 0.3 0.6\n")
    classes, boxes = read_yolo_labels(path)
    assert classes.tolist() == [2]
    np.testing.assert_allclose(boxes, [[0.3, 0.4, 0.4, 0.4]])
    root = tmp_path / "d"
    image = _image(root / "images" / "train" / "x.jpg")
    _labels(image, "5 0.5 0.5 0.1 0.1\n")
    (root / "data.yaml").write_text("train: images/train\nnames: [a, b]\n")
    with pytest.raises(DataError, match=r"x\.txt: object 0 has class index 5.*names only 2"):
        YOLODetection(root / "data.yaml", "train")[0]


def test_rounding_outside_the_border_is_snapped_and_real_overflow_clipped() -> None:
    got = yolo_to_xyxy(np.array([[0.1, 0.5, 0.2000004, 0.2], [0.95, 0.5, 0.2, 0.2]]), (100, 200))
    assert got[0, 0] == 0.0  # -4e-7 of the side: the text's rounding
    assert got[1, 2] == pytest.approx(210.0)  # a real overflow stays for the check to see
