"""Synthetic shapes dataset: real VOC layout, round trip through VOCDetection, tight boxes, spec."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import torch

from singleshot.data.shapes import SHAPE_COLORS, SHAPES_CLASSES, render_shapes_image, write_shapes_dataset
from singleshot.data.voc import VOCDetection, parse_voc_xml
from singleshot.structures import BoxTarget


@pytest.fixture(scope="module")
def shapes_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_shapes_dataset(tmp_path_factory.mktemp("shapes"), n_train=60, n_val=20, size=128, seed=3)


def test_voc_layout_and_splits(shapes_root: Path) -> None:
    voc = shapes_root / "VOC2007"
    main = voc / "ImageSets" / "Main"
    train = main.joinpath("train.txt").read_text().split()
    val = main.joinpath("val.txt").read_text().split()
    assert len(train) == 60 and len(val) == 20 and not set(train) & set(val)
    assert main.joinpath("trainval.txt").read_text().split() == train
    assert main.joinpath("test.txt").read_text().split() == val
    assert len(list((voc / "JPEGImages").glob("*.jpg"))) == 80
    assert len(list((voc / "Annotations").glob("*.xml"))) == 80
    # the XML is real VOC: integer 1-based bndbox values, size, difficult and truncated tags
    root = ET.parse(voc / "Annotations" / f"{train[0]}.xml").getroot()
    assert root.findtext("size/width") == "128" and root.findtext("size/height") == "128"
    for obj in root.findall("object"):
        assert obj.findtext("name") in SHAPES_CLASSES
        assert obj.findtext("difficult") in ("0", "1") and obj.findtext("truncated") in ("0", "1")
        values = [int(obj.findtext(f"bndbox/{k}") or "") for k in ("xmin", "ymin", "xmax", "ymax")]
        assert 1 <= values[0] <= values[2] <= 128 and 1 <= values[1] <= values[3] <= 128


def _all_targets(root: Path, split: str) -> list[tuple[torch.Tensor, BoxTarget]]:
    ds = VOCDetection(root, split, class_names=SHAPES_CLASSES)
    return [ds[i] for i in range(len(ds))]


def test_round_trip_and_spec(shapes_root: Path) -> None:
    samples = _all_targets(shapes_root, "train") + _all_targets(shapes_root, "val")
    counts = torch.tensor([int((~t.difficult).sum()) for _, t in samples])
    assert counts.min() >= 1 and counts.max() <= 5
    labels = torch.cat([t.labels for _, t in samples])
    assert set(labels.tolist()) == set(range(len(SHAPES_CLASSES)))
    difficult = torch.cat([t.difficult for _, t in samples])
    boxes = torch.cat([t.boxes for _, t in samples])
    # VOC reader convention: x2 = last covered column, so the extent is x2 - x1 + 1 pixels
    sides = (boxes[:, 2:] - boxes[:, :2] + 1).amin(dim=1)
    assert (sides[~difficult] >= 16).all() and (sides[~difficult].amax() >= 0.4 * 128)
    assert difficult.any() and (sides[difficult] <= 12).all()
    for image, t in samples:
        assert tuple(image.shape) == (3, 128, 128) and t.size == (128, 128)
        b = t.boxes
        lo, hi = torch.maximum(b[:, None, :2], b[None, :, :2]), torch.minimum(b[:, None, 2:], b[None, :, 2:])
        inter_w, inter_h = (hi - lo + 1).clamp(min=0).unbind(dim=-1)
        area = (b[:, 2] - b[:, 0] + 1) * (b[:, 3] - b[:, 1] + 1)
        cover = inter_w * inter_h / torch.minimum(area[:, None], area[None, :])
        cover.fill_diagonal_(0)
        assert (cover <= 0.35 + 1e-6).all(), "an object is hidden too much by another"


def test_reader_returns_the_rendered_pixel_extent(shapes_root: Path) -> None:
    """Writer (+1, VOC 1-based) and reader (-1) round trip to the drawn shape's first/last pixel exactly."""
    ds = VOCDetection(shapes_root, "val", class_names=SHAPES_CLASSES)
    for i in range(5):  # val image i is drawn from SeedSequence([seed, 1, i, size])
        rng = np.random.default_rng(np.random.SeedSequence([3, 1, i, 128]))
        _, objects = render_shapes_image(rng, 128, SHAPES_CLASSES)
        target = ds[i][1]
        assert target.boxes.tolist() == [[float(v) for v in o["box"]] for o in objects]  # type: ignore[union-attr]
        assert target.labels.tolist() == [SHAPES_CLASSES.index(str(o["name"])) for o in objects]
        assert target.difficult.tolist() == [bool(o["difficult"]) for o in objects]


def _saturated(image: torch.Tensor) -> torch.Tensor:
    """Bool [H, W]: strongly coloured pixels (objects), as opposed to the grey-ish background."""
    x = image.int()
    return (x.amax(dim=0) - x.amin(dim=0)) > 70


def test_boxes_are_tight_around_the_drawn_shapes(shapes_root: Path) -> None:
    """Each isolated object's shape touches all four box edges, and nothing coloured lies just outside."""
    checked = 0
    for image, t in _all_targets(shapes_root, "train")[:40]:
        sat = _saturated(image)
        for k in range(len(t)):
            if t.difficult[k]:
                continue
            x1, y1, x2, y2 = (int(v) for v in t.boxes[k].tolist())
            others = torch.cat((t.boxes[:k], t.boxes[k + 1 :]))
            grown = torch.tensor([x1 - 4, y1 - 4, x2 + 4, y2 + 4])
            near = (others[:, 0] <= grown[2]) & (others[:, 2] >= grown[0])
            near &= (others[:, 1] <= grown[3]) & (others[:, 3] >= grown[1])
            if near.any():
                continue
            inside = sat[y1 : y2 + 1, x1 : x2 + 1]
            assert inside.float().mean() > 0.3
            assert inside[:, :2].any() and inside[:, -2:].any() and inside[:2, :].any() and inside[-2:, :].any()
            ring = torch.zeros_like(sat)
            ring[max(y1 - 4, 0) : y2 + 5, max(x1 - 4, 0) : x2 + 5] = True
            ring[max(y1 - 2, 0) : y2 + 3, max(x1 - 2, 0) : x2 + 3] = False
            if ring.any():
                assert sat[ring].float().mean() < 0.1, "coloured pixels outside the box: box not tight"
            checked += 1
    assert checked >= 30


def test_classes_differ_by_colour(shapes_root: Path) -> None:
    """Mean colour over an object's box is nearest to its own class colour (non-trivial but learnable)."""
    hits = total = 0
    palette = torch.tensor([SHAPE_COLORS[c] for c in SHAPES_CLASSES], dtype=torch.float32)
    for image, t in _all_targets(shapes_root, "val"):
        sat = _saturated(image)
        for box, label, diff in zip(t.boxes, t.labels, t.difficult):
            if diff:
                continue
            x1, y1, x2, y2 = (int(v) for v in box.tolist())
            mask = sat[y1 : y2 + 1, x1 : x2 + 1]
            pixels = image[:, y1 : y2 + 1, x1 : x2 + 1][:, mask].float()
            if pixels.shape[1] == 0:
                continue
            mean = pixels.mean(dim=1)
            mean_dir = mean / mean.norm()
            pal_dir = palette / palette.norm(dim=1, keepdim=True)
            hits += int((pal_dir @ mean_dir).argmax() == label)
            total += 1
    assert total > 20 and hits / total > 0.8


def test_deterministic_given_seed(tmp_path: Path) -> None:
    a = write_shapes_dataset(tmp_path / "a", 4, 2, size=96, seed=7)
    b = write_shapes_dataset(tmp_path / "b", 4, 2, size=96, seed=7)
    c = write_shapes_dataset(tmp_path / "c", 4, 2, size=96, seed=8)
    for name in ("JPEGImages/000001.jpg", "JPEGImages/000006.jpg", "Annotations/000003.xml"):
        assert (a / "VOC2007" / name).read_bytes() == (b / "VOC2007" / name).read_bytes()
    assert (a / "VOC2007/JPEGImages/000001.jpg").read_bytes() != (c / "VOC2007/JPEGImages/000001.jpg").read_bytes()
    target = parse_voc_xml(a / "VOC2007/Annotations/000001.xml", SHAPES_CLASSES)
    assert target.size == (96, 96) and len(target) >= 1


def test_invalid_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="hexagon"):
        write_shapes_dataset(tmp_path, 1, 1, classes=("circle", "hexagon"))
    with pytest.raises(ValueError, match="size"):
        write_shapes_dataset(tmp_path, 1, 1, size=32)
    root = write_shapes_dataset(tmp_path / "sub", 3, 1, size=64, classes=("star", "circle"))
    targets = [t for _, t in _all_targets_named(root, ("star", "circle"))]
    assert all(set(t.labels.tolist()) <= {0, 1} for t in targets)


def _all_targets_named(root: Path, classes: tuple[str, ...]) -> list[tuple[torch.Tensor, BoxTarget]]:
    ds = VOCDetection(root, "trainval", class_names=classes)
    return [ds[i] for i in range(len(ds))]
