"""The one-pass check of a detection dataset split: :func:`check_voc`, :func:`check_coco` and
:func:`check_yolo` read every annotation and every image header once (in threads, see
:func:`singleshot.data.check.run_checks`) and report every fault as a
:class:`~singleshot.data.check.CheckReport`, cached while the files are unchanged.

Fault kinds (``Fault.kind``) and the item each makes unusable (the image id the reader gives:
the VOC id, the COCO image id as a string, the YOLO image id):

* ``missing image``, ``unreadable image`` (no image header), ``corrupt image`` (a JPEG that does not
  decode to its end, a PNG whose chunks do not verify), ``size mismatch`` (the annotation's image
  size is not the image's);
* ``missing annotation`` (VOC), ``malformed annotation`` (bad XML, JSON entry or label line: wrong
  number of fields, not a number, NaN, a bad ``difficult`` flag), ``unknown class`` (a name,
  category or class index outside the class list);
* ``degenerate box`` (``x2 <= x1`` or ``y2 <= y1``), ``box outside image`` (a side beyond the
  image by more than :data:`BOX_TOLERANCE` pixels; the readers clip or drop such boxes);
* ``duplicate id`` (an image listed twice);
* with no item (the whole dataset): a missing root, list file or annotation file, a malformed
  data.yaml or COCO file structure, an annotation naming no image.

Images are checked from their headers; a JPEG is decoded (at 1/8 scale) only when it does not end
with its end-of-image marker, the sign of a truncated file.
"""

from __future__ import annotations

import logging
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from singleshot.data.check import CheckReport, Fault, cached_check, files_fingerprint, run_checks
from singleshot.data.coco import coco_bbox_ok, coco_image_size, load_coco_json
from singleshot.data.voc import find_voc_folders, read_split_ids, read_voc_xml
from singleshot.data.yolo import (
    label_path,
    load_yolo_yaml,
    read_yolo_labels,
    split_images,
    split_list_files,
    yolo_to_xyxy,
)
from singleshot.errors import DataError

logger = logging.getLogger(__name__)

__all__ = ["BOX_TOLERANCE", "check_coco", "check_image", "check_voc", "check_yolo"]

#: Pixels a box may reach beyond the image before it is a fault (rounding in real annotations).
BOX_TOLERANCE = 1.0
_VERSION = "detect-check-1"
_HINT = " (the class list: classes=, else the data's or the weights')"


def check_image(
    path: Path, item: str, written: tuple[int, int] | None, ann: Path
) -> tuple[list[Fault], tuple[int, int] | None]:
    """Faults of one image file and its (height, width) from the header (None when unreadable).

    ``written`` is the (height, width) the annotation ``ann`` states (None: not stated)."""
    if not path.is_file():
        return [Fault(str(path), "missing image", "image file not found", item)], None
    kind = "unreadable image"
    try:
        with Image.open(path) as im:
            width, height = im.size
            kind = "corrupt image"
            fmt = im.format
            if fmt == "JPEG":
                with path.open("rb") as fh:
                    fh.seek(max(0, path.stat().st_size - 64))
                    tail = fh.read().rstrip(b"\x00\r\n ")
                if not tail.endswith(b"\xff\xd9"):  # no end marker: decode cheaply to be sure
                    im.draft("RGB", (max(1, width // 8), max(1, height // 8)))
                    im.load()
            else:
                im.verify()
    except FileNotFoundError:
        return [Fault(str(path), "missing image", "image file not found", item)], None
    except Exception as e:  # PIL raises many types on bad files
        return [Fault(str(path), kind, f"{type(e).__name__}: {str(e)[:120]}", item)], None
    real = (int(height), int(width))
    if written is not None and written != real:
        hint = " (swapped: EXIF rotation?)" if written == real[::-1] else ""
        msg = f"the annotation says {written[1]}x{written[0]} but {path.name} is {real[1]}x{real[0]}{hint}"
        return [Fault(str(ann), "size mismatch", msg, item)], real
    return [], real


def box_faults(
    boxes: np.ndarray, size: tuple[int, int] | None, file: Path, names: Sequence[str], item: str
) -> list[Fault]:
    """Faults of boxes [N, 4] xyxy pixels (float) in an image of (height, width) ``size``."""
    faults = []
    for k, (x1, y1, x2, y2) in enumerate(np.asarray(boxes, dtype=np.float64).reshape(-1, 4).tolist()):
        where = f"{names[k]} xyxy [{x1:.1f}, {y1:.1f}, {x2:.1f}, {y2:.1f}]"
        if not all(np.isfinite((x1, y1, x2, y2))):
            faults.append(Fault(str(file), "malformed annotation", f"{names[k]} has a non-finite coordinate", item))
        elif x2 <= x1 or y2 <= y1:
            faults.append(Fault(str(file), "degenerate box", f"{where}: x2 <= x1 or y2 <= y1", item))
        elif size is not None:
            t, (h, w) = BOX_TOLERANCE, size
            if x1 < -t or y1 < -t or x2 > w + t or y2 > h + t:
                faults.append(Fault(str(file), "box outside image", f"{where} leaves the {w}x{h} image", item))
    return faults


def _report(
    name: str,
    n_items: int,
    units: Sequence[Any],
    check: Callable[[Any], list[Fault]],
    describe: Callable[[Any], tuple[str, str]],
    extra: list[Fault],
    workers: int,
) -> CheckReport:
    with warnings.catch_warnings():  # the readers' repair warnings: the faults say it all
        warnings.simplefilter("ignore")
        faults = run_checks(units, check, describe, workers, desc="checking the dataset")
    faults = sorted(extra + faults, key=lambda f: (f.file, f.kind, f.message))
    return CheckReport(name, n_items, faults)


def _fatal(name: str, file: Path | str, kind: str, exc: Exception) -> CheckReport:
    return CheckReport(name, 0, [Fault(str(file), kind, str(exc))])


def _duplicates(ids: Sequence[str], file: Path) -> list[Fault]:
    return [
        Fault(str(file), "duplicate id", f"image id '{i}' is listed {n} times", i)
        for i, n in Counter(ids).items()
        if n > 1
    ]


def _unknown(name: str, classes: Sequence[str] | None) -> bool:
    return classes is not None and name not in classes


# ---------------------------------------------------------------- VOC
def check_voc(
    root: str | Path,
    image_set: str,
    years: Sequence[str | int] = ("2007",),
    class_names: Sequence[str] | None = None,
    workers: int = 0,
    use_cache: bool = True,
) -> CheckReport:
    """Check the ``image_set`` list of a VOC root (see :mod:`singleshot.data.voc`); object names
    outside ``class_names`` are faults (None: any name). The cache key covers the list files, the
    XML files and ``JPEGImages/<id>.jpg`` (an image found through ``<filename>`` instead is read
    but not part of the key)."""
    name = f"{root} [{image_set}]"
    try:
        folders = find_voc_folders(root, years)
        lists = {folder: read_split_ids(folder, image_set) for folder in folders}
    except DataError as e:
        return _fatal(name, root, "missing file", e)
    units = [(folder, i) for folder, ids in lists.items() for i in ids]
    extra = [
        f for folder, ids in lists.items() for f in _duplicates(ids, folder / "ImageSets" / "Main" / f"{image_set}.txt")
    ]
    files = [folder / "ImageSets" / "Main" / f"{image_set}.txt" for folder in folders]
    for folder, i in units:
        files += [folder / "Annotations" / f"{i}.xml", folder / "JPEGImages" / f"{i}.jpg"]
    classes = list(class_names) if class_names is not None else None

    def check(unit: tuple[Path, str]) -> list[Fault]:
        folder, image_id = unit
        xml = folder / "Annotations" / f"{image_id}.xml"
        if not xml.is_file():
            return [Fault(str(xml), "missing annotation", "annotation file not found", image_id)]
        try:
            ann = read_voc_xml(xml)
        except DataError as e:
            return [Fault(str(xml), "malformed annotation", str(e).removeprefix(f"{xml}: "), image_id)]
        image = folder / "JPEGImages" / f"{image_id}.jpg"
        if not image.exists() and ann.filename and (folder / "JPEGImages" / ann.filename).exists():
            image = folder / "JPEGImages" / ann.filename
        faults, real = check_image(image, image_id, ann.size, xml)
        names = [f"object {k} ('{o.name}')" for k, o in enumerate(ann.objects)]
        faults += [
            Fault(str(xml), "unknown class", f"{names[k]}: '{o.name}' is not in the class list{_HINT}", image_id)
            for k, o in enumerate(ann.objects)
            if _unknown(o.name, classes)
        ]
        boxes = np.asarray([o.box for o in ann.objects], dtype=np.float64).reshape(-1, 4) - 1.0
        return faults + box_faults(boxes, real or ann.size, xml, names, image_id)

    extra_key = f"{_VERSION} voc {image_set} {list(years)} {classes} {BOX_TOLERANCE}"
    return cached_check(
        files_fingerprint(files, extra_key),
        lambda: _report(
            name,
            len({i for _, i in units}),
            units,
            check,
            lambda u: (str(u[0] / "Annotations" / f"{u[1]}.xml"), u[1]),
            extra,
            workers,
        ),
        use_cache,
    )


# ---------------------------------------------------------------- COCO
def _coco_structure(data: dict[str, Any], f: Path) -> tuple[dict[int, str], dict[int, dict], list[Fault]]:
    """Categories (id -> name) and images (id -> entry) of a COCO file, and the faults of its
    structure. Raises DataError for a fault that leaves nothing to check."""
    cats = data.get("categories")
    if not isinstance(cats, list) or not cats:
        raise DataError(f"{f}: 'categories' must be a non-empty list")
    by_id: dict[int, str] = {}
    for k, cat in enumerate(cats):
        if (
            not isinstance(cat, dict)
            or not isinstance(cat.get("id"), int)
            or isinstance(cat.get("id"), bool)
            or "name" not in cat
        ):
            raise DataError(f"{f}: categories[{k}] needs an integer 'id' and a 'name'")
        if cat["id"] in by_id:
            raise DataError(f"{f}: category id {cat['id']} appears twice")
        by_id[cat["id"]] = str(cat["name"])
    images = data.get("images")
    if not isinstance(images, list):
        raise DataError(f"{f}: 'images' must be a list")
    faults: list[Fault] = []
    entries: dict[int, dict] = {}
    for k, img in enumerate(images):
        ok = isinstance(img, dict) and isinstance(img.get("id"), int) and not isinstance(img.get("id"), bool)
        if not (ok and isinstance(img.get("file_name"), str)):
            faults.append(
                Fault(str(f), "malformed annotation", f"images[{k}] needs an integer 'id' and a string 'file_name'")
            )
            continue
        if img["id"] in entries:
            faults.append(Fault(str(f), "duplicate id", f"image id {img['id']} appears twice", str(img["id"])))
        entries[img["id"]] = img
    return by_id, entries, faults


def check_coco(
    image_dir: str | Path,
    ann_file: str | Path,
    class_names: Sequence[str] | None = None,
    workers: int = 0,
    use_cache: bool = True,
) -> CheckReport:
    """Check a COCO instances file and its images under ``image_dir``; categories whose name is
    not in ``class_names`` are faults (None: every category is a class)."""
    image_dir, f = Path(image_dir), Path(ann_file)
    name = str(f)
    try:
        data = load_coco_json(f)
        by_id, entries, extra = _coco_structure(data, f)
    except DataError as e:
        return _fatal(name, f, "malformed annotation", e)
    anns: dict[int, list[tuple[int, dict]]] = {i: [] for i in entries}
    annotations = data.get("annotations", [])
    if not isinstance(annotations, list):
        return _fatal(name, f, "malformed annotation", DataError(f"{f}: 'annotations' must be a list"))
    for k, ann in enumerate(annotations):
        image_id = ann.get("image_id") if isinstance(ann, dict) else None
        if not isinstance(image_id, int) or isinstance(image_id, bool) or image_id not in anns:
            what = "is not an object" if not isinstance(ann, dict) else f"refers to unknown image_id {image_id!r:.40}"
            extra.append(Fault(str(f), "malformed annotation", f"annotations[{k}] {what}"))
            continue
        anns[image_id].append((k, ann))
    classes = list(class_names) if class_names is not None else None
    units = list(entries)

    def check(image_id: int) -> list[Fault]:
        info, item = entries[image_id], str(image_id)
        faults, real = check_image(image_dir / info["file_name"], item, coco_image_size(info), f)
        rows, names = [], []
        for k, ann in anns[image_id]:
            what = f"annotations[{k}] (id {ann.get('id')!r:.20})"
            cat = ann.get("category_id")
            if not coco_bbox_ok(ann.get("bbox")):
                faults.append(Fault(str(f), "malformed annotation", f"{what} has bbox {ann.get('bbox')!r:.60}", item))
            elif not isinstance(cat, int) or cat not in by_id or _unknown(by_id[cat], classes):
                faults.append(
                    Fault(
                        str(f), "unknown class", f"{what} has category_id {cat!r:.20}, not a known class{_HINT}", item
                    )
                )
            else:
                x, y, w, h = (float(v) for v in ann["bbox"])
                rows.append((x, y, x + w, y + h))
                names.append(f"{what} ('{by_id[cat]}')")
        return faults + box_faults(np.asarray(rows).reshape(-1, 4), real or coco_image_size(info), f, names, item)

    files = [f] + [image_dir / entries[i]["file_name"] for i in units]
    extra_key = f"{_VERSION} coco {image_dir} {classes} {BOX_TOLERANCE}"
    return cached_check(
        files_fingerprint(files, extra_key),
        lambda: _report(
            name, len(units), units, check, lambda i: (str(image_dir / entries[i]["file_name"]), str(i)), extra, workers
        ),
        use_cache,
    )


# ---------------------------------------------------------------- YOLO
def check_yolo(
    data_yaml: str | Path,
    split: str,
    class_names: Sequence[str] | None = None,
    workers: int = 0,
    use_cache: bool = True,
) -> CheckReport:
    """Check the ``split`` of a YOLO ``data.yaml``: images, label files (a missing or empty one is
    a background image, not a fault), class indices against ``names`` and, by name, ``class_names``."""
    name = f"{data_yaml} [{split}]"
    try:
        data = load_yolo_yaml(data_yaml)
        items = split_images(data, split)
    except DataError as e:
        return _fatal(name, data_yaml, "malformed annotation" if Path(data_yaml).is_file() else "missing file", e)
    classes = list(class_names) if class_names is not None else None
    extra = _duplicates([i for _, i in items], data.yaml)

    def check(unit: tuple[Path, str]) -> list[Fault]:
        image, image_id = unit
        faults, real = check_image(image, image_id, None, image)
        labels = label_path(image)
        try:
            cls, boxes = read_yolo_labels(labels)
        except DataError as e:
            return faults + [Fault(str(labels), "malformed annotation", str(e).removeprefix(f"{labels}: "), image_id)]
        known = np.ones(len(cls), dtype=bool)
        for k, c in enumerate(cls.tolist()):
            if c >= len(data.names) or _unknown(data.names[c], classes):
                what = (
                    f"index {c}, beyond the {len(data.names)} names" if c >= len(data.names) else f"'{data.names[c]}'"
                )
                faults.append(Fault(str(labels), "unknown class", f"object {k} has class {what}{_HINT}", image_id))
                known[k] = False
        if real is None:
            return faults
        names = [f"object {k}" for k in np.flatnonzero(known).tolist()]
        return faults + box_faults(yolo_to_xyxy(boxes[known], real), real, labels, names, image_id)

    files = [data.yaml, *split_list_files(data, split)]
    for image, _ in items:
        files += [image, label_path(image)]
    extra_key = f"{_VERSION} yolo {split} {classes} {BOX_TOLERANCE}"
    return cached_check(
        files_fingerprint(files, extra_key),
        lambda: _report(name, len({i for _, i in items}), items, check, lambda u: (str(u[0]), u[1]), extra, workers),
        use_cache,
    )
