"""COCO reader against pycocotools on the real sample, category mapping, crowd flags, bad input."""

from __future__ import annotations

import contextlib
import io
import json
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

from singleshot.data.coco import COCODetection
from singleshot.errors import DataError

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
COCO_DIR = DATA / "coco"


def test_real_sample_matches_pycocotools() -> None:
    ann_file = COCO_DIR / "test_coco.json"
    if not ann_file.is_file():
        pytest.skip(f"real COCO sample not found: {ann_file}")
    from pycocotools.coco import COCO

    with contextlib.redirect_stdout(io.StringIO()):
        ref = COCO(str(ann_file))
    ds = COCODetection(COCO_DIR, ann_file)
    cat_ids = sorted(ref.getCatIds())
    assert ds.cat_ids == cat_ids
    assert list(ds.class_names) == [c["name"] for c in ref.loadCats(cat_ids)]
    assert sorted(ds.image_ids) == sorted(ref.getImgIds())
    assert len(ds) == 4
    total = 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for i in range(len(ds)):
            image, target = ds[i]
            image_id = ds.image_ids[i]
            info = ref.loadImgs(image_id)[0]
            assert target.image_id == str(image_id)
            assert tuple(image.shape) == (3, info["height"], info["width"]) and image.dtype == torch.uint8
            assert target.size == (info["height"], info["width"])
            anns = ref.loadAnns(ref.getAnnIds(imgIds=image_id))
            expected = torch.tensor(
                [[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]] for a in anns],
                dtype=torch.float32,
            )
            torch.testing.assert_close(target.boxes, expected)
            assert target.labels.tolist() == [cat_ids.index(a["category_id"]) for a in anns]
            assert target.difficult.tolist() == [bool(a["iscrowd"]) for a in anns]
            total += len(target)
    assert total == len(ref.getAnnIds()) == 14


def _write(tmp_path: Path, data: dict[str, Any], sizes: dict[str, tuple[int, int]] | None = None) -> Path:
    for img in data.get("images", []):
        w, h = (sizes or {}).get(img["file_name"], (img["width"], img["height"]))
        Image.new("RGB", (w, h), (50, 60, 70)).save(tmp_path / img["file_name"])
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(data))
    return path


def _base() -> dict[str, Any]:
    return {
        "images": [
            {"id": 10, "file_name": "a.jpg", "width": 40, "height": 30},
            {"id": 3, "file_name": "b.jpg", "width": 20, "height": 20},
        ],
        "categories": [{"id": 7, "name": "seven"}, {"id": 2, "name": "two"}, {"id": 90, "name": "ninety"}],
        "annotations": [
            {"id": 1, "image_id": 10, "category_id": 90, "bbox": [1.5, 2.0, 10.0, 5.25], "iscrowd": 0},
            {"id": 2, "image_id": 10, "category_id": 2, "bbox": [0, 0, 40, 30], "iscrowd": 1},
            {"id": 3, "image_id": 10, "category_id": 7, "bbox": [5, 5, 3, 3]},
        ],
    }


def test_category_mapping_crowd_and_empty_images(tmp_path: Path) -> None:
    ds = COCODetection(tmp_path, _write(tmp_path, _base()))
    assert ds.cat_ids == [2, 7, 90] and ds.class_names == ("two", "seven", "ninety")
    assert ds.image_ids == [10, 3]
    _, target = ds[0]
    assert target.labels.tolist() == [2, 0, 1]
    assert target.boxes.tolist() == [[1.5, 2.0, 11.5, 7.25], [0.0, 0.0, 40.0, 30.0], [5.0, 5.0, 8.0, 8.0]]
    assert target.difficult.tolist() == [False, True, False]
    image, empty = ds[1]
    assert tuple(image.shape) == (3, 20, 20) and empty.image_id == "3"
    assert empty.boxes.shape == (0, 4) and empty.labels.dtype == torch.int64 and empty.difficult.dtype == torch.bool


def test_bad_boxes_are_dropped_or_clipped_with_warnings(tmp_path: Path) -> None:
    data = _base()
    data["annotations"] = [
        {"id": 11, "image_id": 10, "category_id": 2, "bbox": [5, 5, 0, 4]},  # zero width
        {"id": 12, "image_id": 10, "category_id": 2, "bbox": [30, -5, 20, 10]},  # partly outside
        {"id": 13, "image_id": 10, "category_id": 2, "bbox": [50, 5, 5, 5]},  # wholly outside
    ]
    ds = COCODetection(tmp_path, _write(tmp_path, data))
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        _, target = ds[0]
    messages = [str(w.message) for w in record]
    assert any("ann.json" in m and "annotation id 11" in m and "x2 <= x1" in m for m in messages)
    assert any("ann.json" in m and "annotation id 12" in m and "clipped" in m for m in messages)
    assert any("ann.json" in m and "annotation id 13" in m and "wholly outside" in m for m in messages)
    assert target.boxes.tolist() == [[30.0, 0.0, 40.0, 5.0]]


def test_unknown_category(tmp_path: Path) -> None:
    data = _base()
    data["annotations"].append({"id": 20, "image_id": 3, "category_id": 5, "bbox": [1, 1, 4, 4]})
    ann = _write(tmp_path, data)
    with pytest.raises(DataError, match=r"ann\.json.*category_id 5"):
        COCODetection(tmp_path, ann)
    with pytest.warns(UserWarning, match=r"ann\.json.*1 annotations of unknown categories"):
        ds = COCODetection(tmp_path, ann, skip_unknown=True)
    assert len(ds[1][1]) == 0


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.pop("categories"), "categories"),
        (lambda d: d["images"][0].pop("file_name"), r"images\[0\]"),
        (lambda d: d["annotations"][0].update(bbox=[1, 2, 3]), r"annotations\[0\].*bbox"),
        (lambda d: d["annotations"][0].update(image_id=999), "unknown image_id 999"),
        (lambda d: d["images"].append(dict(d["images"][0])), "image id 10 appears twice"),
    ],
)
def test_malformed_structure(tmp_path: Path, mutate: Any, message: str) -> None:
    data = _base()
    mutate(data)
    (tmp_path / "ann.json").write_text(json.dumps(data))
    with pytest.raises(DataError, match=rf"ann\.json.*{message}"):
        COCODetection(tmp_path, tmp_path / "ann.json")


def test_malformed_or_missing_json(tmp_path: Path) -> None:
    (tmp_path / "ann.json").write_text('{"images": [')
    with pytest.raises(DataError, match=r"ann\.json.*malformed JSON"):
        COCODetection(tmp_path, tmp_path / "ann.json")
    with pytest.raises(DataError, match=r"nope\.json.*not found"):
        COCODetection(tmp_path, tmp_path / "nope.json")


def test_missing_corrupt_and_resized_images(tmp_path: Path) -> None:
    ds = COCODetection(tmp_path, _write(tmp_path, _base(), sizes={"b.jpg": (25, 20)}))
    with pytest.warns(UserWarning, match=r"ann\.json: image 3 is 20x20 in the JSON but .*b\.jpg is 25x20"):
        assert ds[1][1].size == (20, 25)
    (tmp_path / "a.jpg").write_bytes(b"\x89PNG garbage" * 20)
    with pytest.raises(DataError, match=r"a\.jpg.*cannot decode"):
        ds[0]
    (tmp_path / "a.jpg").unlink()
    with pytest.raises(DataError, match=r"a\.jpg.*not found"):
        ds[0]
