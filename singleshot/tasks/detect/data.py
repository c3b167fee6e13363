"""``detect`` data: Pascal VOC and COCO splits, class lists, raw-image batches and image sources.

``data=`` is a VOC root (``VOCdevkit`` with ``VOC<year>`` folders; splits from ``ImageSets/Main``)
or a COCO annotation ``*.json`` (images under ``images=``, default: the file's folder).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import Tensor
from torch.utils.data import Dataset

from singleshot.errors import DataError
from singleshot.structures import BoxTarget
from singleshot.tasks.common import require
from singleshot.tasks.detect.config import DetectConfig

__all__ = ["IMAGE_SUFFIXES", "build_dataset", "class_names_for", "collate_raw", "list_images"]

#: File suffixes read as images (prediction sources, calibration folders).
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


def class_names_for(cfg: DetectConfig) -> list[str]:
    """``classes=`` when given, else the COCO file's categories (``data=*.json``), else VOC's 20."""
    from singleshot.data.voc import VOC_CLASSES

    if cfg.classes:
        return list(cfg.classes)
    if cfg.data.endswith(".json"):
        from singleshot.data.coco import COCODetection

        return list(COCODetection(cfg.images or Path(cfg.data).parent, cfg.data).class_names)
    return list(VOC_CLASSES)


def build_dataset(cfg: DetectConfig, split: str, classes: list[str], transforms: Any = None) -> Dataset:
    """A VOC image set (``data`` = VOC root) or a COCO annotation file (``data`` = ``*.json``)."""
    require(cfg, "data")
    path = Path(cfg.data)
    if path.suffix == ".json":
        from singleshot.data.coco import COCODetection

        ann = path if split != cfg.val_set or not cfg.gt else Path(cfg.gt)
        return COCODetection(cfg.images or ann.parent, ann, transforms=transforms)
    from singleshot.data.voc import VOCDetection

    years = cfg.val_years or cfg.years if split == cfg.val_set else cfg.years
    return VOCDetection(path, image_set=split, years=years, class_names=classes, transforms=transforms)


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
