"""Conversion of detection datasets between Pascal VOC, COCO and YOLO txt.

What travels. Each split is read with the format's own reader (:class:`~singleshot.data.voc.VOCDetection`,
:class:`~singleshot.data.coco.COCODetection`, :class:`~singleshot.data.yolo.YOLODetection`), and
the boxes it gives (xyxy pixels) are written so that the destination's reader gives the same boxes
back: a conversion changes the file format, never what training or evaluation sees. So a VOC box
``xmin..xmax`` (1-based, read as ``[xmin - 1, xmax - 1]``, see :mod:`singleshot.data.voc`) becomes
the COCO ``bbox`` ``[xmin - 1, ymin - 1, xmax - xmin, ymax - ymin]``, as ultralytics' VOC converter
does. The class list keeps its order (``classes=`` when given, else the source's: VOC the sorted
object names of the converted splits, COCO its categories by id, YOLO its ``names``); labels are
written as indices into it (COCO category ids ``1..C``). Images are hard-linked into the destination
(copied where a link is impossible); their ids (VOC id, COCO ``file_name`` without its suffix, YOLO
path below the split folder) are kept.

Splits. Up to three travel, named ``train``, ``val`` and ``test``:

* from VOC: ``train`` is the ``train_set`` list (default ``trainval``, else ``train``), ``val`` the
  ``val_set`` list (default ``test``, else ``val``; years ``val_years``), ``test`` the ``test``
  list when it is not the ``val`` one: what ``detect train`` would read;
* from COCO: a folder's ``annotations/instances_<s>.json`` files by their names (``train*``,
  ``val*``, ``test*``); a single json is both ``train`` and ``val``, as ``detect train`` reads it;
* from YOLO: the yaml's ``train``, ``val`` and ``test``.

Layouts written (``dst`` must be new or empty):

* VOC: one VOC-layout folder, ``Annotations/<id>.xml``, ``JPEGImages/<id><suffix>``,
  ``ImageSets/Main/<split>.txt`` (VOC's split names are the ones above; reading it back, the defaults
  fall back to ``train``/``val``). Coordinates are written as integers when within 0.005 px of one
  (exactly what VOC sources hold), else with three decimals. An id must name one image across splits.
* COCO: ``annotations/instances_<split>.json`` and ``images/<split>/<id><suffix>``; ``difficult``
  becomes ``"ignore": 1`` (the reader reads it back; ``iscrowd`` stays 0), boxes have three decimals.
* YOLO: ``data.yaml`` (no ``path:``: the yaml's folder is the root), ``images/<split>/<id><suffix>``,
  ``labels/<split>/<id>.txt`` with six decimals (an error below 1e-6 of the image side: 1e-3 px up
  to 1000 px wide images). YOLO has no ``difficult`` flag: difficult objects become plain objects
  (counted in the log), so VOC -> YOLO -> VOC keeps every box but not that flag.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from singleshot.atomic import write_bytes, write_text
from singleshot.data.coco import COCODetection
from singleshot.data.detect_formats import DETECT_FORMATS, coco_folder_splits, default_split, detect_format
from singleshot.data.image_io import image_size
from singleshot.data.voc import VOCDetection, find_voc_folders, voc_class_names
from singleshot.data.yolo import YOLODetection, load_yolo_yaml
from singleshot.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

__all__ = ["DetectionSet", "ImageRecord", "convert_dataset", "read_detection_set", "write_detection_set"]


@dataclass
class ImageRecord:
    """One image: its file, id, (height, width) and objects (boxes [N, 4] float64 xyxy pixels as
    the readers give them, labels [N] int64, difficult [N] bool)."""

    image: Path
    image_id: str
    size: tuple[int, int]
    boxes: np.ndarray
    labels: np.ndarray
    difficult: np.ndarray


@dataclass
class DetectionSet:
    """A dataset in no format: the class list and the records of each split (``train``/``val``/``test``)."""

    classes: list[str]
    splits: dict[str, list[ImageRecord]] = field(default_factory=dict)


def _records(ds: VOCDetection | COCODetection | YOLODetection, ids: list[str], paths: list[Path]) -> list[ImageRecord]:
    out = []
    for i in range(len(ds)):
        target = ds.load_target(i)  # the annotation's image size (YOLO: the header's)
        size = target.size if target.size[0] > 0 else image_size(paths[i])
        boxes = target.boxes.double().numpy()
        out.append(ImageRecord(paths[i], ids[i], size, boxes, target.labels.numpy(), target.difficult.numpy()))
    return out


def _voc(
    src: Path, classes: Sequence[str], years: Sequence[str], val_years: Sequence[str], train_set: str, val_set: str
) -> DetectionSet:
    vy = val_years or years
    train = train_set or default_split(src, "train", years)
    val = val_set or default_split(src, "val", vy)
    wanted = {"train": (train, years), "val": (val, vy)}
    if "test" not in (train, val) and all(
        (f / "ImageSets" / "Main" / "test.txt").is_file() for f in find_voc_folders(src, vy)
    ):
        wanted["test"] = ("test", vy)
    names = list(classes) or sorted({n for s, y in wanted.values() for n in voc_class_names(src, s, y)})
    out = DetectionSet(names)
    for split, (image_set, ys) in wanted.items():
        ds = VOCDetection(src, image_set, years=ys, class_names=names)
        paths = [ds.image_path(i) for i in range(len(ds))]
        out.splits[split] = _records(ds, [i for _, i in ds.ids], paths)
    return out


def _coco_role(name: str) -> str | None:
    return next((r for r in ("train", "val", "test") if name.startswith(r)), None)


def _coco(src: Path, classes: Sequence[str], images: str) -> DetectionSet:
    if detect_format(src) == "coco":
        files = {"train": (src, Path(images) if images else src.parent)}
    else:
        files = {}
        for name, pair in coco_folder_splits(src).items():
            role = _coco_role(name)
            if role is None or role in files:
                raise DataError(
                    f"{src}: cannot tell which split annotations/instances_{name}.json is (train, val, test)"
                )
            files[role] = pair
    out = DetectionSet(list(classes))
    for split, (ann, folder) in files.items():
        ds = COCODetection(folder, ann, class_names=classes or None)
        if not out.classes:
            out.classes = list(ds.class_names)
        paths = [ds.image_path(i) for i in range(len(ds))]
        ids = [p.relative_to(folder).with_suffix("").as_posix() for p in paths]
        out.splits[split] = _records(ds, ids, paths)
    if "val" not in out.splits and detect_format(src) == "coco":
        out.splits["val"] = out.splits["train"]
    return out


def _yolo(src: Path, classes: Sequence[str]) -> DetectionSet:
    data = load_yolo_yaml(src)
    out = DetectionSet(list(classes) or list(data.names))
    for split in data.splits:
        ds = YOLODetection(data, split, class_names=out.classes)
        out.splits[split] = _records(ds, ds.ids, [ds.image_path(i) for i in range(len(ds))])
    return out


def read_detection_set(
    fmt: str,
    src: str | Path,
    classes: Sequence[str] = (),
    *,
    years: Sequence[str] = ("2007",),
    val_years: Sequence[str] = (),
    train_set: str = "",
    val_set: str = "",
    images: str = "",
) -> DetectionSet:
    """The splits of the dataset ``src`` in format ``fmt`` (see the module docstring)."""
    src = Path(src)
    if not src.exists():
        raise DataError(f"{src}: dataset not found")
    if fmt == "voc":
        return _voc(src, classes, years, val_years, train_set, val_set)
    if fmt == "coco":
        return _coco(src, classes, images)
    if fmt == "yolo":
        return _yolo(src, classes)
    raise ConfigError(f"unknown dataset format {fmt!r}; expected one of {', '.join(DETECT_FORMATS)}")


# ---------------------------------------------------------------- writers
def _place(src: Path, dst: Path) -> None:
    """``dst`` as a hard link to ``src``, or a copy where linking fails."""
    if not src.is_file():
        raise DataError(f"{src}: image file not found")
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists():
        return
    try:
        os.link(src, dst)
    except OSError:
        try:
            shutil.copy2(src, dst)
        except OSError as exc:
            raise DataError(f"{src}: cannot copy the image to {dst} ({exc})") from exc


def _unique(records: list[ImageRecord], where: str) -> list[ImageRecord]:
    """The records with distinct ids (an id twice must be the same image file)."""
    seen: dict[str, ImageRecord] = {}
    for r in records:
        other = seen.setdefault(r.image_id, r)
        if other.image != r.image and not other.image.samefile(r.image):
            raise DataError(f"image id '{r.image_id}' names two images ({other.image} and {r.image}) in {where}")
    return list(seen.values())


def _voc_number(v: float) -> str:
    return str(round(v)) if abs(v - round(v)) < 0.005 else f"{v:.3f}".rstrip("0").rstrip(".")


def _voc_xml(r: ImageRecord, classes: Sequence[str]) -> bytes:
    root = ET.Element("annotation")
    ET.SubElement(root, "filename").text = r.image_id + r.image.suffix
    size = ET.SubElement(root, "size")
    for tag, value in (("width", r.size[1]), ("height", r.size[0]), ("depth", 3)):
        ET.SubElement(size, tag).text = str(value)
    for box, label, diff in zip(r.boxes.tolist(), r.labels.tolist(), r.difficult.tolist()):
        obj = ET.SubElement(root, "object")
        for tag, text in (("name", classes[label]), ("pose", "Unspecified"), ("truncated", "0")):
            ET.SubElement(obj, tag).text = text
        ET.SubElement(obj, "difficult").text = "1" if diff else "0"
        bndbox = ET.SubElement(obj, "bndbox")
        for tag, v in zip(("xmin", "ymin", "xmax", "ymax"), box):
            ET.SubElement(bndbox, tag).text = _voc_number(v + 1.0)  # 0-based edge -> VOC's 1-based pixel
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8")


def _write_voc(data: DetectionSet, dst: Path) -> None:
    everything = _unique([r for records in data.splits.values() for r in records], f"the VOC folder {dst}")
    for r in everything:
        _place(r.image, dst / "JPEGImages" / (r.image_id + r.image.suffix))
        xml = dst / "Annotations" / f"{r.image_id}.xml"
        xml.parent.mkdir(parents=True, exist_ok=True)
        write_bytes(xml, _voc_xml(r, data.classes))
    (dst / "ImageSets" / "Main").mkdir(parents=True, exist_ok=True)
    for split, records in data.splits.items():
        ids = [r.image_id for r in _unique(records, f"split {split}")]
        write_text(dst / "ImageSets" / "Main" / f"{split}.txt", "".join(f"{i}\n" for i in ids))


def _write_coco(data: DetectionSet, dst: Path) -> None:
    categories = [{"id": i + 1, "name": n, "supercategory": ""} for i, n in enumerate(data.classes)]
    for split, records in data.splits.items():
        images, annotations = [], []
        for k, r in enumerate(_unique(records, f"split {split}"), start=1):
            name = r.image_id + r.image.suffix
            _place(r.image, dst / "images" / split / name)
            images.append({"id": k, "file_name": name, "height": r.size[0], "width": r.size[1]})
            for box, label, diff in zip(r.boxes.tolist(), r.labels.tolist(), r.difficult.tolist()):
                x, y, w, h = box[0], box[1], box[2] - box[0], box[3] - box[1]
                ann = {"id": len(annotations) + 1, "image_id": k, "category_id": label + 1}
                ann.update(bbox=[round(v, 3) for v in (x, y, w, h)], area=round(w * h, 3), iscrowd=0)
                if diff:
                    ann["ignore"] = 1
                annotations.append(ann)
        path = dst / "annotations" / f"instances_{split}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text(path, json.dumps({"images": images, "annotations": annotations, "categories": categories}))


def _write_yolo(data: DetectionSet, dst: Path) -> None:
    import yaml

    dropped = 0
    for split, records in data.splits.items():
        for r in _unique(records, f"split {split}"):
            _place(r.image, dst / "images" / split / (r.image_id + r.image.suffix))
            h, w = r.size
            lines = []
            for (x1, y1, x2, y2), label in zip(r.boxes.tolist(), r.labels.tolist()):
                cx, cy, bw, bh = (x1 + x2) / 2 / w, (y1 + y2) / 2 / h, (x2 - x1) / w, (y2 - y1) / h
                lines.append(f"{label} {cx:.6f} {cy:.6f} {bw:.6f} {bh:.6f}\n")
            dropped += int(r.difficult.sum())
            label_file = dst / "labels" / split / f"{r.image_id}.txt"
            label_file.parent.mkdir(parents=True, exist_ok=True)
            write_text(label_file, "".join(lines))
    spec = {split: f"images/{split}" for split in data.splits}
    spec["names"] = dict(enumerate(data.classes))
    write_text(dst / "data.yaml", yaml.safe_dump(spec, sort_keys=False, allow_unicode=True))
    if dropped:
        logger.warning("YOLO txt has no 'difficult' flag: %d difficult objects are written as plain objects", dropped)


def write_detection_set(data: DetectionSet, fmt: str, dst: str | Path) -> Path:
    """Write ``data`` as a ``fmt`` dataset under ``dst`` (see the module docstring); returns the
    path to give as ``data=`` (the folder, or the ``data.yaml``)."""
    dst = Path(dst)
    if dst.exists() and (not dst.is_dir() or any(dst.iterdir())):
        raise ConfigError(f"dst={dst}: exists and is not an empty folder")
    writers = {"voc": _write_voc, "coco": _write_coco, "yolo": _write_yolo}
    if fmt not in writers:
        raise ConfigError(f"unknown dataset format {fmt!r}; expected one of {', '.join(DETECT_FORMATS)}")
    dst.mkdir(parents=True, exist_ok=True)
    writers[fmt](data, dst)
    return dst / "data.yaml" if fmt == "yolo" else dst


def convert_dataset(src_fmt: str, src: str | Path, dst_fmt: str, dst: str | Path, **read: object) -> dict[str, object]:
    """Read ``src`` as ``src_fmt`` and write it as ``dst_fmt`` under ``dst``; ``read`` goes to
    :func:`read_detection_set`. Returns a summary (``data`` to train on, images and boxes per split)."""
    data = read_detection_set(src_fmt, src, **read)  # type: ignore[arg-type]
    out = write_detection_set(data, dst_fmt, dst)
    summary = {
        split: {"images": len(records), "boxes": int(sum(len(r.labels) for r in records))}
        for split, records in data.splits.items()
    }
    logger.info("converted %s (%s) -> %s (%s): %s", src, src_fmt, out, dst_fmt, summary)
    return {"data": str(out), "classes": data.classes, "splits": summary}
