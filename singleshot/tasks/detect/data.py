"""``detect`` data: Pascal VOC, COCO and YOLO txt splits, class lists, the dataset check, raw-image
batches and image sources.

``data=`` is a VOC root (``VOCdevkit`` with ``VOC<year>`` folders; splits from ``ImageSets/Main``),
a COCO annotation ``*.json`` (images under ``images=``, default: the file's folder), a COCO folder
(``annotations/instances_<split>.json``) or a YOLO ``data.yaml`` (see
:mod:`singleshot.data.detect_formats`). ``train_set``/``val_set`` name the splits; left empty they
are the format's own defaults: VOC ``trainval``/``test`` (else ``train``/``val``), YOLO's yaml keys
``train``/``val``, a COCO folder's ``train*``/``val*`` files.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

from torch import Tensor
from torch.utils.data import Dataset

from singleshot.data import detect_check
from singleshot.data.check import CheckReport, Fault
from singleshot.data.coco import COCODetection, coco_category_names
from singleshot.data.detect_formats import coco_folder_splits, default_split, detect_format
from singleshot.data.voc import VOCDetection, voc_class_names
from singleshot.data.yolo import YOLODetection, load_yolo_yaml
from singleshot.errors import DataError
from singleshot.structures import BoxTarget
from singleshot.tasks.common import require, screen_dataset
from singleshot.tasks.detect.config import DetectConfig

logger = logging.getLogger(__name__)

__all__ = [
    "IMAGE_SUFFIXES",
    "build_dataset",
    "check_split",
    "class_names_for",
    "collate_raw",
    "image_files",
    "list_images",
    "screened_dataset",
    "split_for",
]

#: File suffixes read as images (prediction sources, calibration folders).
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


def _years(cfg: DetectConfig, role: str) -> tuple[str, ...]:
    return tuple(cfg.val_years or cfg.years) if role == "val" else tuple(cfg.years)


def _split_years(cfg: DetectConfig, split: str) -> tuple[str, ...]:
    """The VOC years of ``split``: the evaluation years when it is the evaluation split."""
    return _years(cfg, "val" if split == split_for(cfg, "val") else "train")


def split_for(cfg: DetectConfig, role: str, data: str | None = None) -> str:
    """The split ``role`` (``train`` or ``val``) reads: ``train_set``/``val_set`` when given, else
    the default of ``data`` (default ``cfg.data``)'s format."""
    given = cfg.train_set if role == "train" else cfg.val_set
    return given or default_split(data or cfg.data, role, _years(cfg, role))


def _coco_files(cfg: DetectConfig, split: str) -> tuple[Path, Path]:
    """(annotation file, image folder) of a COCO ``split``."""
    path = Path(cfg.data)
    if detect_format(path) == "coco-folder":
        splits = coco_folder_splits(path)
        if split not in splits:
            raise DataError(f"{path}: no annotations/instances_{split}.json (splits: {', '.join(splits)})")
        return splits[split]
    val_only = split == split_for(cfg, "val") and split != split_for(cfg, "train")
    ann = Path(cfg.gt) if cfg.gt and val_only else path
    return ann, Path(cfg.images) if cfg.images else ann.parent


def class_names_for(cfg: DetectConfig, data: str | None = None, role: str = "train") -> list[str]:
    """``classes=`` when given, else the data's own: a COCO file's categories (by id), a YOLO
    yaml's ``names``, or the sorted object names of VOC annotations (logged): those of the training
    and the evaluation split for ``role="train"`` (a class seen only in the evaluation split is
    warned about, not a fault), of the evaluation split for ``role="val"``. ``data`` replaces
    ``cfg.data`` (``score`` reads ``gt=``)."""
    if cfg.classes:
        return list(cfg.classes)
    root = data or cfg.data
    if not root:
        require(cfg, "data")
    fmt = detect_format(root)
    if fmt in ("coco", "coco-folder"):
        sub = dataclasses.replace(cfg, data=root)
        return coco_category_names(_coco_files(sub, split_for(sub, role))[0])
    if fmt == "yolo":
        return list(load_yolo_yaml(root).names)
    split = split_for(cfg, role, root)
    names = voc_class_names(root, split, _years(cfg, role))
    splits, extra, val_split = split, [], split
    if role == "train":
        try:
            val_split = split_for(cfg, "val", root)
            if val_split != split:
                extra = sorted(set(voc_class_names(root, val_split, _years(cfg, "val"))) - set(names))
        except DataError:  # no evaluation split: training says so when it needs it
            pass
        if extra:
            logger.warning(
                "classes with objects only in the '%s' split (none to train on): %s", val_split, ", ".join(extra)
            )
            names = sorted([*names, *extra])
            splits += f", {val_split}"
    logger.info("classes from the annotations of %s [%s]: %s", root, splits, ", ".join(names))
    return names


def build_dataset(
    cfg: DetectConfig, split: str, classes: list[str], transforms: Any = None, *, exclude: Collection[str] = ()
) -> Dataset:
    """The ``split`` of ``cfg.data`` (``""``: the training split) with labels indexing ``classes``;
    the image ids in ``exclude`` are left out."""
    require(cfg, "data")
    split = split or split_for(cfg, "train")
    fmt = detect_format(cfg.data)
    if fmt in ("coco", "coco-folder"):
        ann, images = _coco_files(cfg, split)
        return COCODetection(images, ann, transforms=transforms, class_names=classes, exclude=exclude)
    if fmt == "yolo":
        return YOLODetection(cfg.data, split, class_names=classes, transforms=transforms, exclude=exclude)
    return VOCDetection(
        cfg.data,
        image_set=split,
        years=_split_years(cfg, split),
        class_names=classes,
        transforms=transforms,
        exclude=exclude,
    )


def check_split(cfg: DetectConfig, split: str, classes: Sequence[str] | None) -> CheckReport:
    """The dataset check of ``split`` of ``cfg.data`` (see :mod:`singleshot.data.detect_check`);
    names outside ``classes`` are faults."""
    require(cfg, "data")
    fmt = detect_format(cfg.data)
    if fmt in ("coco", "coco-folder"):
        ann, images = _coco_files(cfg, split)
        return detect_check.check_coco(images, ann, classes, cfg.workers)
    if fmt == "yolo":
        return detect_check.check_yolo(cfg.data, split, classes, cfg.workers)
    return detect_check.check_voc(cfg.data, split, _split_years(cfg, split), classes, cfg.workers)


def screened_dataset(
    cfg: DetectConfig, role: str, classes: list[str], transforms: Any = None
) -> tuple[Dataset, list[Fault]]:
    """The ``role`` (``train``/``val``) split, checked first when ``cfg.check``: with ``bad=stop``
    a fault stops with the table of every fault, with ``bad=skip`` the faulty images are left out.
    Returns the dataset and the faults of the images left out."""
    split = split_for(cfg, role)
    if not cfg.check:
        return build_dataset(cfg, split, classes, transforms), []
    report = check_split(cfg, split, classes)
    bad = screen_dataset(report, cfg.bad)
    dataset = build_dataset(cfg, split, classes, transforms, exclude=bad)
    if bad and len(dataset) == 0:
        raise DataError(f"{cfg.data}: bad=skip leaves no images in the '{split}' split:\n{report.table()}")
    return dataset, [f for f in report.faults if f.item in bad]


def image_files(dataset: Dataset) -> list[str] | None:
    """The absolute image paths of a VOC, COCO or YOLO dataset, in its order (None for a dataset
    without ``image_path``); compares a training and a validation set without reading an image."""
    path_of = getattr(dataset, "image_path", None)
    if path_of is None:
        return None
    return [os.path.abspath(path_of(i)) for i in range(len(dataset))]  # type: ignore[arg-type]


def collate_raw(batch: Sequence[tuple[Tensor, BoxTarget]]) -> tuple[list[Tensor], list[BoxTarget]]:
    """Keep raw images of different sizes as a list (evaluation and prediction)."""
    return [b[0] for b in batch], [b[1] for b in batch]


def list_images(source: Path) -> list[Path]:
    """The image files of a folder (sorted by name), or ``[source]`` for one file.

    Raises:
        DataError: ``source`` does not exist, or is a folder without images.
    """
    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise DataError(f"{source}: folder holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        return files
    if not source.exists():
        raise DataError(f"{source}: source not found")
    return [source]
