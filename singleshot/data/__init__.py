"""Detection data: dataset readers (VOC XML, COCO JSON), SSD transforms, collate, synthetic shapes."""

from __future__ import annotations

from singleshot.data.coco import COCODetection
from singleshot.data.collate import collate_detection
from singleshot.data.image_io import read_image_rgb
from singleshot.data.shapes import SHAPES_CLASSES, write_shapes_dataset
from singleshot.data.transforms import DetectionTransform, build_eval_transform, build_train_transform
from singleshot.data.voc import VOC_CLASSES, VOCDetection, parse_voc_xml

__all__ = [
    "COCODetection",
    "DetectionTransform",
    "SHAPES_CLASSES",
    "VOCDetection",
    "VOC_CLASSES",
    "build_eval_transform",
    "build_train_transform",
    "collate_detection",
    "parse_voc_xml",
    "read_image_rgb",
    "write_shapes_dataset",
]
