"""COCO instances reader (JSON annotations + an image folder).

COCO ``bbox`` is ``[x, y, w, h]`` in continuous 0-based pixels (the image spans [0, W] x [0, H]);
the reader returns ``[x, y, x + w, y + h]`` with no pixel shift. Category ids, which need not be
contiguous, map to 0-based labels in increasing id order. ``iscrowd`` (and a non-zero ``ignore``, as
some converted datasets carry) become ``difficult = True``. Given a class list, labels follow it and
categories are matched to it by name.
"""

from __future__ import annotations

import json
import logging
import math
import warnings
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset

from singleshot.data.boxcheck import check_boxes
from singleshot.data.image_io import read_image_rgb
from singleshot.errors import DataError
from singleshot.structures import BoxTarget

logger = logging.getLogger(__name__)

__all__ = ["COCODetection", "coco_bbox_ok", "coco_category_names", "coco_image_size", "load_coco_json"]

Transforms = Callable[[Tensor, BoxTarget], tuple[Tensor, BoxTarget]]


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def coco_bbox_ok(bbox: Any) -> bool:
    """``bbox`` is a list of four finite numbers (the reader's rule; a NaN or huge value fails)."""
    if not (isinstance(bbox, list) and len(bbox) == 4 and all(_number(v) for v in bbox)):
        return False
    try:
        return all(math.isfinite(float(v)) and abs(float(v)) < 1e12 for v in bbox)
    except OverflowError:
        return False


def coco_image_size(info: dict[str, Any]) -> tuple[int, int] | None:
    """(height, width) of an ``images`` entry when both are finite positive numbers, else None."""
    h, w = info.get("height"), info.get("width")
    if not (_number(h) and _number(w)):
        return None
    try:
        hw = (int(h), int(w))
    except (ValueError, OverflowError):
        return None
    return hw if hw[0] > 0 and hw[1] > 0 else None


def coco_category_names(path: Path) -> list[str]:
    """The category names of a COCO file in increasing id order (the reader's labels), read without
    checking the rest of the file.

    Raises:
        DataError: unreadable file or malformed ``categories``.
    """
    cats = load_coco_json(path).get("categories")
    if not isinstance(cats, list) or not all(isinstance(c, dict) and _key(c.get("id")) and "name" in c for c in cats):
        raise DataError(f"{path}: 'categories' must be a list of objects with an integer 'id' and a 'name'")
    if not cats:
        raise DataError(f"{path}: 'categories' is empty")
    return [str(c["name"]) for c in sorted(cats, key=lambda c: c["id"])]


def _key(value: Any) -> bool:
    """A usable id: an int (bool excluded), hashable and comparable."""
    return isinstance(value, int) and not isinstance(value, bool)


def load_coco_json(path: Path) -> dict[str, Any]:
    """The top-level object of a COCO JSON file.

    Raises:
        DataError: missing, unreadable or malformed file, or a top level that is not an object.
    """
    try:
        with path.open("r", encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError as exc:
        raise DataError(f"{path}: annotation file not found") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: malformed JSON ({exc})") from exc
    except (OSError, ValueError, RecursionError) as exc:
        raise DataError(f"{path}: cannot read the JSON ({type(exc).__name__}: {exc})") from exc
    if not isinstance(data, dict):
        raise DataError(f"{path}: top level must be a JSON object, got {type(data).__name__}")
    return data


class COCODetection(Dataset):
    """COCO-format detection dataset.

    Args:
        image_dir: folder holding the images (``file_name`` is relative to it).
        ann_file: COCO instances JSON (``images``, ``annotations``, ``categories``).
        transforms: optional ``transforms(image, target) -> (image, target)``.
        skip_unknown: drop annotations whose ``category_id`` is not in ``categories`` (or whose
            category is not in ``class_names``) with a warning instead of raising DataError.
        class_names: the class list labels index (default: the categories in increasing id order);
            categories are matched to it by name.
        exclude: image ids (as strings) to leave out with their annotations (the faulty items of a
            ``bad=skip`` check).

    Attributes:
        class_names: category names (or the given list), label i = ``class_names[i]``.
        cat_ids: COCO category id of each label (``cat_ids[label]``; ascending without ``class_names``;
            -1 for a listed class the JSON lacks).
        image_ids: COCO image ids in the JSON's ``images`` order; sample i is ``image_ids[i]``.

    ``dataset[i]`` returns ``(image Tensor[3, H, W] uint8 RGB, BoxTarget)`` with boxes xyxy pixels
    float32, ``image_id = str(coco id)``. Images without annotations are valid samples (0 boxes).
    """

    def __init__(
        self,
        image_dir: str | Path,
        ann_file: str | Path,
        transforms: Transforms | None = None,
        *,
        skip_unknown: bool = False,
        class_names: Sequence[str] | None = None,
        exclude: Collection[str] = (),
    ) -> None:
        self.image_dir = Path(image_dir)
        self.ann_file = Path(ann_file)
        self.transforms = transforms
        data = load_coco_json(self.ann_file)
        f = self.ann_file
        excluded = set(exclude)

        categories = data.get("categories")
        if not isinstance(categories, list) or not categories:
            raise DataError(f"{f}: 'categories' must be a non-empty list")
        by_id: dict[int, str] = {}
        for k, cat in enumerate(categories):
            if not isinstance(cat, dict) or not _key(cat.get("id")) or "name" not in cat:
                raise DataError(f"{f}: categories[{k}] needs an integer 'id' and a 'name'")
            if cat["id"] in by_id:
                raise DataError(f"{f}: category id {cat['id']} appears twice")
            by_id[cat["id"]] = str(cat["name"])
        self.cat_ids: list[int] = sorted(by_id)
        self.class_names: tuple[str, ...] = tuple(by_id[c] for c in self.cat_ids)
        self.cat_id_to_label: dict[int, int] = {c: i for i, c in enumerate(self.cat_ids)}
        if class_names and tuple(class_names) != self.class_names:
            if len(set(by_id.values())) != len(by_id):
                raise DataError(f"{f}: category names repeat, so they cannot be matched to the class list by name")
            index = {name: i for i, name in enumerate(class_names)}
            self.class_names = tuple(class_names)
            self.cat_id_to_label = {c: index[n] for c, n in by_id.items() if n in index}
            label_to_cat = {lab: c for c, lab in self.cat_id_to_label.items()}
            self.cat_ids = [label_to_cat.get(i, -1) for i in range(len(self.class_names))]

        images = data.get("images")
        if not isinstance(images, list):
            raise DataError(f"{f}: 'images' must be a list")
        self.image_ids: list[int] = []
        self._images: dict[int, dict[str, Any]] = {}
        skipped: set[Any] = set()
        for k, img in enumerate(images):
            if not (isinstance(img, dict) and _key(img.get("id")) and isinstance(img.get("file_name"), str)):
                raise DataError(f"{f}: images[{k}] needs an integer 'id' and a string 'file_name'")
            if str(img["id"]) in excluded:
                skipped.add(img["id"])
                continue
            if img["id"] in self._images:
                raise DataError(f"{f}: image id {img['id']} appears twice")
            self._images[img["id"]] = img
            self.image_ids.append(img["id"])

        annotations = data.get("annotations", [])
        if not isinstance(annotations, list):
            raise DataError(f"{f}: 'annotations' must be a list")
        self._anns: dict[int, list[dict[str, Any]]] = {i: [] for i in self.image_ids}
        unknown = 0
        for k, ann in enumerate(annotations):
            if not isinstance(ann, dict):
                raise DataError(f"{f}: annotations[{k}] is not an object")
            if _key(ann.get("image_id")) and ann["image_id"] in skipped:
                continue
            bbox = ann.get("bbox")
            if not coco_bbox_ok(bbox):
                raise DataError(
                    f"{f}: annotations[{k}] (id {ann.get('id')!r}) has bbox {bbox!r:.80}, expected [x, y, w, h]"
                )
            if not _key(ann.get("image_id")) or ann["image_id"] not in self._anns:
                raise DataError(
                    f"{f}: annotations[{k}] (id {ann.get('id')}) refers to unknown image_id {ann.get('image_id')!r}"
                )
            if not _key(ann.get("category_id")) or ann["category_id"] not in self.cat_id_to_label:
                if not skip_unknown:
                    known = _key(ann.get("category_id")) and ann["category_id"] in by_id
                    where = "in the class list" if known else "among the categories"
                    raise DataError(
                        f"{f}: annotations[{k}] (id {ann.get('id')!r}) has category_id {ann.get('category_id')!r:.40}, "
                        f"not {where} ({', '.join(self.class_names)}); set the class list with classes=NAME,NAME,..."
                    )
                unknown += 1
                continue
            self._anns[ann["image_id"]].append(ann)
        if unknown:
            warnings.warn(f"{f}: dropped {unknown} annotations of unknown categories", stacklevel=2)
        logger.info("COCO %s: %d images, %d classes", f, len(self.image_ids), len(self.class_names))

    def __len__(self) -> int:
        return len(self.image_ids)

    def image_path(self, index: int) -> Path:
        return self.image_dir / self._images[self.image_ids[index]]["file_name"]

    def load_target(self, index: int, image_size: tuple[int, int] | None = None) -> BoxTarget:
        """Target of sample ``index`` without decoding the image.

        Args:
            image_size: (height, width) to clip against; default the JSON's ``height``/``width``.
        """
        image_id = self.image_ids[index]
        info = self._images[image_id]
        if image_size is None:
            image_size = coco_image_size(info)
        anns = self._anns[image_id]
        xywh = torch.tensor([a["bbox"] for a in anns], dtype=torch.float64).reshape(-1, 4)
        boxes = torch.cat((xywh[:, :2], xywh[:, :2] + xywh[:, 2:]), dim=1).to(torch.float32)
        labels = torch.tensor([self.cat_id_to_label[a["category_id"]] for a in anns], dtype=torch.int64)
        crowd = [bool(a.get("iscrowd", 0)) or bool(a.get("ignore", 0)) for a in anns]
        difficult = torch.tensor(crowd, dtype=torch.bool)
        names = [
            f"annotation id {a.get('id')} (image {image_id}, '{self.class_names[int(lab)]}')"
            for a, lab in zip(anns, labels)
        ]
        keep, boxes = check_boxes(boxes, image_size, self.ann_file, names)
        hw = image_size if image_size is not None else (0, 0)
        return BoxTarget(
            boxes=boxes[keep].contiguous(),
            labels=labels[keep],
            difficult=difficult[keep],
            image_id=str(image_id),
            size=hw,
            orig_size=hw,
        )

    def __getitem__(self, index: int) -> tuple[Tensor, BoxTarget]:
        info = self._images[self.image_ids[index]]
        path = self.image_path(index)
        image = read_image_rgb(path)
        real = (int(image.shape[1]), int(image.shape[2]))
        written = coco_image_size(info)
        if written is not None and written != real:
            warnings.warn(
                f"{self.ann_file}: image {info['id']} is {written[1]}x{written[0]} in the JSON but {path} is "
                f"{real[1]}x{real[0]}; using the image's size",
                stacklevel=2,
            )
        target = self.load_target(index, image_size=real)
        if self.transforms is not None:
            image, target = self.transforms(image, target)
        return image, target
