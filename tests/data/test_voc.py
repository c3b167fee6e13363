"""Pascal VOC reader: real devkit samples, the 1-based convention, and every kind of bad input."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from PIL import Image

from singleshot.data.voc import VOC_CLASSES, VOCDetection, find_voc_folders, parse_voc_xml
from singleshot.errors import DataError
from singleshot.structures import BoxTarget

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
DEVKIT = DATA / "voc" / "VOCdevkit"


def _devkit() -> Path:
    if not (DEVKIT / "VOC2007").is_dir():
        pytest.skip(f"real VOC samples not found: {DEVKIT}")
    return DEVKIT


# ----------------------------------------------------------------------------- real samples


def test_class_list_is_the_devkit_order() -> None:
    assert len(VOC_CLASSES) == 20
    assert list(VOC_CLASSES) == sorted(VOC_CLASSES)
    assert VOC_CLASSES[0] == "aeroplane" and VOC_CLASSES[14] == "person" and VOC_CLASSES[19] == "tvmonitor"


def test_real_000005_boxes_and_difficult() -> None:
    """Values typed by hand from VOC2007/Annotations/000005.xml, minus 1 (ssd.pytorch convention)."""
    ds = VOCDetection(_devkit(), "trainval", years=("2007",))
    index = [image_id for _, image_id in ds.ids].index("000005")
    image, target = ds[index]
    assert image.dtype == torch.uint8 and tuple(image.shape) == (3, 375, 500)
    assert target.image_id == "000005" and target.size == (375, 500) and target.orig_size == (375, 500)
    xml_values = [  # xmin, ymin, xmax, ymax as written in the file
        (263, 211, 324, 339),
        (165, 264, 253, 372),
        (5, 244, 67, 374),
        (241, 194, 295, 299),
        (277, 186, 312, 220),
    ]
    expected = torch.tensor(xml_values, dtype=torch.float32) - 1
    torch.testing.assert_close(target.boxes, expected, rtol=0, atol=0)
    assert target.boxes.dtype == torch.float32
    assert target.labels.tolist() == [VOC_CLASSES.index("chair")] * 5
    assert target.difficult.tolist() == [False, False, True, False, True]

    no_difficult = VOCDetection(_devkit(), "trainval", years=("2007",), keep_difficult=False)[index][1]
    torch.testing.assert_close(no_difficult.boxes, expected[[0, 1, 3]], rtol=0, atol=0)
    assert not no_difficult.difficult.any()


def test_real_parts_are_not_objects() -> None:
    """2007_000027 has one person with head/hand/foot <part> boxes: only the person is an object."""
    target = parse_voc_xml(_devkit() / "VOC2012" / "Annotations" / "2007_000027.xml")
    assert target.labels.tolist() == [VOC_CLASSES.index("person")]
    assert target.boxes.tolist() == [[173.0, 100.0, 348.0, 350.0]]
    assert target.size == (500, 486)


def test_real_both_years_load_and_match_images() -> None:
    ds = VOCDetection(_devkit(), "trainval", years=("2007", "2012"))
    assert len(ds) == 10
    assert {f.name for f, _ in ds.ids} == {"VOC2007", "VOC2012"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the real samples need no repair
        for i in range(len(ds)):
            image, target = ds[i]
            assert isinstance(target, BoxTarget)
            assert target.size == (image.shape[1], image.shape[2])
            assert len(target) > 0 and len(target.labels) == len(target.difficult) == len(target)
            h, w = target.size
            assert (target.boxes[:, 2] > target.boxes[:, 0]).all() and (target.boxes[:, 3] > target.boxes[:, 1]).all()
            assert (target.boxes >= 0).all() and (target.boxes[:, 2] <= w).all() and (target.boxes[:, 3] <= h).all()


def test_real_pixels_match_torchvision_decoder() -> None:
    """An independent JPEG decoder (torchvision's libjpeg binding) gives the same pixels."""
    from torchvision.io import ImageReadMode, decode_jpeg

    ds = VOCDetection(_devkit(), "test", years=("2007",))
    image, _ = ds[0]
    data = torch.frombuffer(bytearray(ds.image_path(0).read_bytes()), dtype=torch.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ref = decode_jpeg(data, mode=ImageReadMode.RGB)
    assert image.shape == ref.shape
    assert (image.int() - ref.int()).abs().float().mean() < 1.0


def test_single_year_folder_as_root() -> None:
    ds = VOCDetection(_devkit() / "VOC2012", "test", years=("2007",))  # years ignored for a single folder
    assert len(ds) == 5 and all(i.startswith("2007_") for _, i in ds.ids)
    assert find_voc_folders(_devkit(), ("2007", "2012")) == [_devkit() / "VOC2007", _devkit() / "VOC2012"]


def test_load_target_without_image_matches_getitem() -> None:
    ds = VOCDetection(_devkit(), "test", years=("2012",))
    for i in range(len(ds)):
        a, b = ds.load_target(i), ds[i][1]
        assert torch.equal(a.boxes, b.boxes) and torch.equal(a.labels, b.labels) and a.size == b.size


# ----------------------------------------------------------------------------- synthetic VOC folders


def _obj(name: str, box: tuple[float, ...], difficult: str | None = "0", truncated: str | None = "0") -> str:
    d = f"<difficult>{difficult}</difficult>" if difficult is not None else ""
    t = f"<truncated>{truncated}</truncated>" if truncated is not None else ""
    b = "".join(f"<{k}>{v}</{k}>" for k, v in zip(("xmin", "ymin", "xmax", "ymax"), box))
    return f"<object><name>{name}</name>{t}{d}<bndbox>{b}</bndbox></object>"


def _xml(objects: list[str], w: int = 40, h: int = 30) -> str:
    return (
        f"<annotation><filename>x.jpg</filename><size><width>{w}</width><height>{h}</height>"
        f"<depth>3</depth></size>{''.join(objects)}</annotation>"
    )


def _make_voc(root: Path, xml: str, image_id: str = "img1", w: int = 40, h: int = 30, image: bool = True) -> Path:
    folder = root / "VOC2007"
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    (folder / "Annotations" / f"{image_id}.xml").write_text(xml)
    if image:
        Image.new("RGB", (w, h), (10, 20, 30)).save(folder / "JPEGImages" / f"{image_id}.jpg")
    (folder / "ImageSets" / "Main" / "train.txt").write_text(f"{image_id}\n")
    return root


def _load(root: Path, **kwargs: object) -> BoxTarget:
    return VOCDetection(root, "train", **kwargs)[0][1]  # type: ignore[arg-type]


def test_one_based_conversion_and_missing_difficult(tmp_path: Path) -> None:
    root = _make_voc(tmp_path, _xml([_obj("dog", (1, 2, 40, 30), difficult=None, truncated=None)]))
    target = _load(root)
    assert target.boxes.tolist() == [[0.0, 1.0, 39.0, 29.0]]
    assert target.labels.tolist() == [VOC_CLASSES.index("dog")] and target.difficult.tolist() == [False]


def test_empty_annotation_is_a_valid_sample(tmp_path: Path) -> None:
    target = _load(_make_voc(tmp_path, _xml([])))
    assert len(target) == 0
    assert target.boxes.shape == (0, 4) and target.boxes.dtype == torch.float32
    assert target.labels.dtype == torch.int64 and target.difficult.dtype == torch.bool
    assert target.size == (30, 40)


def test_degenerate_box_dropped_with_warning(tmp_path: Path) -> None:
    root = _make_voc(tmp_path, _xml([_obj("cat", (20, 5, 10, 15)), _obj("dog", (2, 2, 12, 12))]))
    with pytest.warns(UserWarning, match=r"img1\.xml: object 0 \('cat'\).*x2 <= x1.*dropped"):
        target = _load(root)
    assert target.labels.tolist() == [VOC_CLASSES.index("dog")]


def test_box_partly_outside_clipped_with_warning(tmp_path: Path) -> None:
    root = _make_voc(tmp_path, _xml([_obj("cat", (-4, 5, 60, 25))]))
    with pytest.warns(UserWarning, match=r"img1\.xml: object 0 \('cat'\) extends outside.*clipped"):
        target = _load(root)
    assert target.boxes.tolist() == [[0.0, 4.0, 40.0, 24.0]]


def test_box_wholly_outside_dropped_with_warning(tmp_path: Path) -> None:
    root = _make_voc(tmp_path, _xml([_obj("cat", (50, 5, 70, 25)), _obj("cat", (5, 5, 10, 10))]))
    with pytest.warns(UserWarning, match=r"img1\.xml: object 0 \('cat'\) lies wholly outside.*dropped"):
        target = _load(root)
    assert target.boxes.tolist() == [[4.0, 4.0, 9.0, 9.0]]


def test_unknown_class_is_an_error_or_skipped(tmp_path: Path) -> None:
    root = _make_voc(tmp_path, _xml([_obj("unicorn", (2, 2, 10, 10)), _obj("cat", (5, 5, 10, 10))]))
    with pytest.raises(DataError, match=r"img1\.xml.*'unicorn'"):
        _load(root)
    with pytest.warns(UserWarning, match=r"img1\.xml.*'unicorn'.*dropped"):
        target = _load(root, skip_unknown=True)
    assert target.labels.tolist() == [VOC_CLASSES.index("cat")]


def test_custom_class_names(tmp_path: Path) -> None:
    root = _make_voc(tmp_path, _xml([_obj("b", (2, 2, 10, 10)), _obj("a", (5, 5, 10, 10))]))
    assert _load(root, class_names=("a", "b")).labels.tolist() == [1, 0]


def test_malformed_xml(tmp_path: Path) -> None:
    root = _make_voc(tmp_path, "<annotation><object><name>cat</name></annotation")
    with pytest.raises(DataError, match=r"img1\.xml.*malformed XML"):
        _load(root)


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ("<object><name>cat</name></object>", "no <bndbox>"),
        ("<object><name>cat</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>5</xmax></bndbox></object>", "no <ymax>"),
        (_obj("cat", (1, 1, "five", 5)), "five"),
        (_obj("cat", (1, 1, 5, 5), difficult="maybe"), "difficult"),
        ("<object><bndbox/></object>", "no <name>"),
    ],
)
def test_malformed_objects(tmp_path: Path, obj: str, message: str) -> None:
    root = _make_voc(tmp_path, _xml([obj]))
    with pytest.raises(DataError, match=rf"img1\.xml.*{message}"):
        _load(root)


def test_invalid_truncated_only_warns(tmp_path: Path) -> None:
    root = _make_voc(tmp_path, _xml([_obj("cat", (1, 1, 5, 5), truncated="x")]))
    with pytest.warns(UserWarning, match=r"img1\.xml.*truncated"):
        assert len(_load(root)) == 1


def test_missing_and_corrupt_image(tmp_path: Path) -> None:
    root = _make_voc(tmp_path, _xml([_obj("cat", (1, 1, 5, 5))]), image=False)
    with pytest.raises(DataError, match=r"img1\.jpg.*not found"):
        _load(root)
    (root / "VOC2007" / "JPEGImages" / "img1.jpg").write_bytes(b"not an image at all" * 10)
    with pytest.raises(DataError, match=r"img1\.jpg.*cannot decode"):
        _load(root)


def test_missing_annotation_list_and_year(tmp_path: Path) -> None:
    root = _make_voc(tmp_path, _xml([]))
    (root / "VOC2007" / "Annotations" / "img1.xml").unlink()
    with pytest.raises(DataError, match=r"img1\.xml.*not found"):
        _load(root)
    with pytest.raises(DataError, match=r"val\.txt.*not found"):
        VOCDetection(root, "val")
    with pytest.raises(DataError, match="VOC2012"):
        VOCDetection(root, "train", years=("2007", "2012"))
    with pytest.raises(DataError, match="not found"):
        VOCDetection(tmp_path / "nowhere", "train")


def test_size_mismatch_warns_and_uses_real_image(tmp_path: Path) -> None:
    # XML says 40x30 but the image is 30x40 (swapped, as with an unapplied EXIF rotation)
    root = _make_voc(tmp_path, _xml([_obj("cat", (1, 1, 35, 35))]), w=30, h=40)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        image, target = VOCDetection(root, "train")[0]
    messages = [str(w.message) for w in record]
    assert any("img1.xml: <size> says 40x30 but" in m and "img1.jpg is 30x40" in m and "swapped" in m for m in messages)
    assert any("img1.xml: object 0 ('cat') extends outside" in m and "clipped" in m for m in messages)
    assert tuple(image.shape) == (3, 40, 30) and target.size == (40, 30)
    assert target.boxes.tolist() == [[0.0, 0.0, 30.0, 34.0]]  # clipped to the real 30-pixel width


def test_transforms_are_called(tmp_path: Path) -> None:
    root = _make_voc(tmp_path, _xml([_obj("cat", (1, 1, 5, 5))]))
    calls: list[str] = []

    def transforms(image: torch.Tensor, target: BoxTarget) -> tuple[torch.Tensor, BoxTarget]:
        calls.append(target.image_id)
        return image.float(), target

    image, _ = VOCDetection(root, "train", transforms=transforms)[0]
    assert calls == ["img1"] and image.dtype == torch.float32
