"""Property-based tests of the detection annotation parsers (VOC XML, COCO JSON, YOLO txt and
data.yaml): a valid file with random mutations (truncated at a random byte, characters replaced,
inserted or deleted, lines dropped or repeated, numbers swapped for text, NaN, huge or negative
values) is either parsed or refused with a DataError naming the file, never another exception;
and the dataset check reports a refused file as a fault instead of crashing."""

from __future__ import annotations

import json
import re
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from singleshot.data.coco import COCODetection
from singleshot.data.detect_check import check_coco, check_voc, check_yolo
from singleshot.data.voc import VOCDetection, parse_voc_xml
from singleshot.data.yolo import YOLODetection, load_yolo_yaml, read_yolo_labels
from singleshot.errors import DataError

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CLASSES = ("cat", "dog")
NUMBER = re.compile(r"-?\d+(\.\d+)?")
ODD_NUMBERS = ["nan", "NaN", "inf", "-inf", "1e400", "-1e400", "-5", "abc", "", "9" * 30, "0x1A", "1e-400", "-0", "1,5"]

VOC_XML = """<annotation>
  <filename>x.jpg</filename>
  <size><width>64</width><height>48</height><depth>3</depth></size>
  <object><name>cat</name><truncated>0</truncated><difficult>0</difficult>
    <bndbox><xmin>5</xmin><ymin>6</ymin><xmax>40</xmax><ymax>30</ymax></bndbox></object>
  <object><name>dog</name><difficult>1</difficult>
    <bndbox><xmin>20</xmin><ymin>10</ymin><xmax>60</xmax><ymax>47</ymax></bndbox></object>
</annotation>
"""
COCO = {
    "images": [{"id": 1, "file_name": "x.jpg", "height": 48, "width": 64}, {"id": 2, "file_name": "x.jpg"}],
    "annotations": [
        {"id": 1, "image_id": 1, "category_id": 3, "bbox": [4.5, 5.0, 30.0, 20.0], "iscrowd": 0},
        {"id": 2, "image_id": 2, "category_id": 7, "bbox": [10, 10, 20, 30], "iscrowd": 1},
    ],
    "categories": [{"id": 3, "name": "cat"}, {"id": 7, "name": "dog"}],
}
YOLO_TXT = "0 0.5 0.5 0.25 0.5\n1 0.2 0.3 0.1 0.1\n1 0.1 0.1 0.3 0.1 0.2 0.3\n"
YOLO_YAML = "path: .\ntrain: images/train\nval: [images/train]\nnc: 2\nnames:\n  0: cat\n  1: dog\n"


@st.composite
def mutated(draw: st.DrawFn, base: str) -> bytes:
    """``base`` after 1-4 random edits, as bytes (possibly cut inside a UTF-8 character)."""
    text = base
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["truncate", "replace", "insert", "delete", "drop", "repeat", "number"]))
        at = draw(st.integers(0, max(0, len(text) - 1)))
        lines = text.splitlines(keepends=True)
        k = draw(st.integers(0, max(0, len(lines) - 1)))
        if op == "truncate":
            text = text[:at]
        elif op == "replace":
            text = text[:at] + draw(st.characters(blacklist_categories=("Cs",))) + text[at + 1 :]
        elif op == "insert":
            text = text[:at] + draw(st.text(max_size=6)) + text[at:]
        elif op == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 8)) :]
        elif op == "drop" and lines:
            text = "".join(lines[:k] + lines[k + 1 :])
        elif op == "repeat" and lines:
            text = "".join(lines[: k + 1] + lines[k:])
        elif op == "number":
            spots = list(NUMBER.finditer(text))
            if spots:
                m = spots[draw(st.integers(0, len(spots) - 1))]
                new = draw(
                    st.sampled_from(ODD_NUMBERS) | st.floats().map(repr) | st.integers(-(10**20), 10**20).map(str)
                )
                text = text[: m.start()] + new + text[m.end() :]
    data = text.encode("utf-8", "surrogatepass")
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return data


@contextmanager
def _quiet_tmp() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield Path(tmp)


def _image(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (64, 48), (30, 60, 90)).save(path)


def _refused(call: Any, file: Path) -> bool:
    """Run ``call``; True when it raised a DataError naming ``file`` (any other exception fails)."""
    try:
        call()
    except DataError as e:
        assert file.name in str(e), f"DataError does not name {file}: {e}"
        return True
    return False


@FUZZ
@given(mutated(VOC_XML))
def test_voc_xml(data: bytes) -> None:
    with _quiet_tmp() as root:
        xml = root / "Annotations" / "x.xml"
        xml.parent.mkdir()
        xml.write_bytes(data)
        (root / "ImageSets" / "Main").mkdir(parents=True)
        (root / "ImageSets" / "Main" / "train.txt").write_text("x\n")
        _image(root / "JPEGImages" / "x.jpg")
        refused = _refused(lambda: parse_voc_xml(xml, CLASSES), xml)
        refused |= _refused(lambda: VOCDetection(root, "train", class_names=CLASSES)[0], xml)
        report = check_voc(root, "train", class_names=CLASSES, use_cache=False)
        assert not refused or not report.ok


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**30), 10**30) | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)
PLACES = [
    ("images", 0, "id"),
    ("images", 0, "file_name"),
    ("images", 0, "height"),
    ("images", 1, "width"),
    ("annotations", 0, "bbox"),
    ("annotations", 0, "bbox", 2),
    ("annotations", 1, "image_id"),
    ("annotations", 1, "category_id"),
    ("annotations", 0, "iscrowd"),
    ("annotations", 0),
    ("categories", 0, "id"),
    ("categories", 1),
    ("images",),
]


@st.composite
def coco_files(draw: st.DrawFn) -> bytes:
    """A COCO file with one value swapped for any JSON value, then maybe mutated as text."""
    data = json.loads(json.dumps(COCO))
    place = draw(st.sampled_from(PLACES))
    parent = data
    for key in place[:-1]:
        parent = parent[key]
    parent[place[-1]] = draw(JSON_VALUES)
    text = json.dumps(data)
    return draw(mutated(text)) if draw(st.booleans()) else text.encode()


@FUZZ
@given(coco_files())
def test_coco_json(data: bytes) -> None:
    with _quiet_tmp() as root:
        ann = root / "ann.json"
        ann.write_bytes(data)
        _image(root / "x.jpg")

        def read() -> None:
            ds = COCODetection(root, ann)
            for i in range(len(ds)):
                ds.load_target(i)
                ds[i]

        refused = _refused(read, ann)
        report = check_coco(root, ann, use_cache=False)
        assert not refused or not report.ok


def _yolo_root(root: Path, labels: bytes, yaml_text: bytes) -> Path:
    _image(root / "images" / "train" / "x.jpg")
    (root / "labels" / "train").mkdir(parents=True)
    (root / "labels" / "train" / "x.txt").write_bytes(labels)
    (root / "data.yaml").write_bytes(yaml_text)
    return root / "data.yaml"


@FUZZ
@given(mutated(YOLO_TXT))
def test_yolo_txt(data: bytes) -> None:
    with _quiet_tmp() as root:
        path = _yolo_root(root, data, YOLO_YAML.encode())
        label = root / "labels" / "train" / "x.txt"
        refused = _refused(lambda: read_yolo_labels(label), label)
        refused |= _refused(lambda: YOLODetection(path, "train")[0], label)
        report = check_yolo(path, "train", use_cache=False)
        assert not refused or not report.ok


@FUZZ
@given(mutated(YOLO_YAML))
def test_yolo_yaml(data: bytes) -> None:
    with _quiet_tmp() as root:
        path = _yolo_root(root, YOLO_TXT.encode(), data)
        refused = _refused(lambda: load_yolo_yaml(path), path)
        if not refused:
            split = next(iter(load_yolo_yaml(path).splits))
            refused = _refused(lambda: YOLODetection(path, split)[0], path)
        report = check_yolo(path, "train", use_cache=False)
        assert report.n_items >= 0 and (not refused or not report.ok)
