"""Prediction files for ``singleshot detect score``: VOC devkit results and COCO results JSON.

VOC devkit results (``<comp>_det_<split>_<class>.txt``, e.g. ``comp4_det_test_car.txt``), one line per
detection: ``image_id score x1 y1 x2 y2``. The devkit reads 1-based inclusive pixel coordinates (the
XML convention). singleshot's boxes are 0-based xyxy pixels, so the writer adds 1 to every
coordinate (as ssd.pytorch's writer does) and the reader subtracts 1. Scores are written with 6
decimals, coordinates with 2.

COCO results JSON: ``[{"image_id", "category_id", "bbox": [x, y, w, h], "score"}]`` with boxes in
0-based pixels, ``w = x2 - x1``. For a VOC-style dataset (classes given by name), ``category_id`` is
the 0-based class index + 1 and ``image_id`` the image's id string (an integer id also matches an
all-digit image id of the same value, e.g. ``5`` matches ``"000005"``).
"""

from __future__ import annotations

import json
import logging
import math
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from singleshot.atomic import write_text
from singleshot.errors import DataError
from singleshot.metrics._common import to_numpy
from singleshot.metrics.coco import load_json
from singleshot.structures import Detections

logger = logging.getLogger(__name__)

__all__ = [
    "coco_results_to_detections",
    "detections_to_coco_results",
    "read_coco_results",
    "read_voc_results",
    "write_coco_results",
    "write_voc_results",
]


def voc_results_name(class_name: str, split: str = "test", comp: str = "comp4") -> str:
    """File name the devkit expects for one class: ``<comp>_det_<split>_<class>.txt``."""
    return f"{comp}_det_{split}_{class_name}.txt"


def write_voc_results(
    folder: Path,
    preds: Sequence[Detections],
    class_names: Sequence[str],
    split: str = "test",
    comp: str = "comp4",
) -> list[Path]:
    """Write one devkit results file per class (empty when the class has no detection).

    Args:
        folder: output folder (created).
        preds: Detections per image; ``image_id`` must be set; boxes 0-based xyxy pixels.
        class_names: label ``i`` goes to ``class_names[i]``'s file.
        split: the image set name in the file names (``test``, ``val``...).
        comp: the devkit competition id (``comp4``: trained on any data).

    Returns:
        The written paths, in class order.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lines: list[list[str]] = [[] for _ in class_names]
    for det in preds:
        if not det.image_id:
            raise ValueError("write_voc_results needs Detections with an image_id")
        boxes = to_numpy(det.boxes).astype(np.float64).reshape(-1, 4) + 1.0
        scores = to_numpy(det.scores).astype(np.float64).reshape(-1)
        labels = to_numpy(det.labels).astype(np.int64).reshape(-1)
        for (x1, y1, x2, y2), s, lab in zip(boxes.tolist(), scores.tolist(), labels.tolist()):
            if not 0 <= lab < len(class_names):
                raise ValueError(f"image {det.image_id!r}: label {lab} outside 0..{len(class_names) - 1}")
            lines[lab].append(f"{det.image_id} {s:.6f} {x1:.2f} {y1:.2f} {x2:.2f} {y2:.2f}\n")
    paths = []
    for name, cls_lines in zip(class_names, lines):
        path = folder / voc_results_name(name, split, comp)
        write_text(path, "".join(cls_lines))
        paths.append(path)
    return paths


def _find_voc_files(folder: Path, class_names: Sequence[str], split: str | None) -> dict[int, Path]:
    """Map class index -> its results file in ``folder``; errors name the folder or the file."""
    found: dict[int, list[Path]] = {}
    by_length = sorted(range(len(class_names)), key=lambda c: -len(class_names[c]))
    for path in sorted(folder.glob("*_det_*.txt")):
        rest = path.name[path.name.index("_det_") + 5 : -4]
        cls = next((c for c in by_length if rest.endswith("_" + class_names[c])), None)
        if cls is None:
            raise DataError(f"{path}: its class is none of the {len(class_names)} classes ({', '.join(class_names)})")
        file_split = rest[: -len(class_names[cls]) - 1]
        if split is not None and file_split != split:
            continue
        found.setdefault(cls, []).append(path)
    if not found:
        where = f" for split {split!r}" if split is not None else ""
        raise DataError(f"{folder}: no VOC results files '<comp>_det_<split>_<class>.txt'{where}")
    out: dict[int, Path] = {}
    for cls, paths in found.items():
        if len(paths) > 1:
            raise DataError(
                f"{folder}: several results files for class {class_names[cls]!r} "
                f"({', '.join(p.name for p in paths)}); keep one set or choose the split"
            )
        out[cls] = paths[0]
    missing = [class_names[c] for c in range(len(class_names)) if c not in out]
    if missing:
        msg = f"{folder}: no results file for class(es) {', '.join(missing)}; counted as no detections"
        warnings.warn(msg, stacklevel=3)
        logger.warning(msg)
    return out


def _parse_voc_file(path: Path) -> tuple[list[str], np.ndarray]:
    """Lines of one results file -> (image ids, float64 array [D, 5] score x1 y1 x2 y2 as written)."""
    ids: list[str] = []
    values: list[list[float]] = []
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DataError(f"{path}: cannot read VOC results file: {exc}") from exc
    for lineno, line in enumerate(text.splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        try:
            if len(parts) != 6:
                raise ValueError
            nums = [float(v) for v in parts[1:]]
        except ValueError:
            raise DataError(f"{path}:{lineno}: expected 'image_id score x1 y1 x2 y2', got {line.strip()!r}") from None
        if not all(math.isfinite(v) for v in nums):
            raise DataError(f"{path}:{lineno}: non-finite number in {line.strip()!r}")
        ids.append(parts[0])
        values.append(nums)
    return ids, np.asarray(values, dtype=np.float64).reshape(-1, 5)


def read_voc_results(folder: Path, class_names: Sequence[str], split: str | None = None) -> list[Detections]:
    """Read a folder of devkit results files into Detections.

    Args:
        folder: folder holding ``<comp>_det_<split>_<class>.txt`` files (one per class; a missing
            class counts as no detections, with a warning).
        class_names: the classes; the file of ``class_names[i]`` gives label ``i``.
        split: keep only files of this split (needed when the folder holds several).

    Returns:
        One Detections per image id, in order of first appearance (file by file in class order),
        boxes 0-based xyxy pixels (the file's values minus 1), sorted by descending score (stable).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder of VOC results files")
    files = _find_voc_files(folder, class_names, split)
    all_ids: list[str] = []
    chunks: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    for cls in sorted(files):
        ids, vals = _parse_voc_file(files[cls])
        all_ids.extend(ids)
        chunks.append(vals)
        labels.append(np.full(len(ids), cls, dtype=np.int64))
    vals = np.concatenate(chunks) if chunks else np.zeros((0, 5))
    labs = np.concatenate(labels) if labels else np.zeros((0,), dtype=np.int64)
    return _group_by_image(all_ids, vals[:, 0], vals[:, 1:] - 1.0, labs)


def _group_by_image(ids: list[str], scores: np.ndarray, boxes: np.ndarray, labels: np.ndarray) -> list[Detections]:
    """Flat detections -> one Detections per image id (first-appearance order, stable score sort)."""
    if not ids:
        return []
    uniq, first, inv = np.unique(np.asarray(ids, dtype=object).astype(str), return_index=True, return_inverse=True)
    rank = np.argsort(first, kind="stable")  # unique ids in first-appearance order
    pos = np.empty_like(rank)
    pos[rank] = np.arange(rank.size)
    img = pos[inv]
    order = np.lexsort((-scores, img))  # by image, then descending score; lexsort is stable
    bounds = np.searchsorted(img[order], np.arange(rank.size + 1))
    out = []
    for k in range(rank.size):
        sel = order[bounds[k] : bounds[k + 1]]
        out.append(
            Detections(
                boxes=torch.from_numpy(boxes[sel].astype(np.float32)),
                scores=torch.from_numpy(scores[sel].astype(np.float32)),
                labels=torch.from_numpy(labels[sel].astype(np.int64)),
                image_id=str(uniq[rank[k]]),
            )
        )
    return out


def detections_to_coco_results(
    preds: Sequence[Detections], category_ids: Sequence[int] | None = None, numeric_image_ids: bool = False
) -> list[dict]:
    """Detections -> COCO results entries.

    Args:
        preds: Detections per image (0-based xyxy pixels, 0-based labels, ``image_id`` set).
        category_ids: ``category_ids[label]`` is written; default ``label + 1``.
        numeric_image_ids: write ``int(image_id)`` (COCO datasets) instead of the id string.
    """
    out: list[dict] = []
    for det in preds:
        image_id: Any = int(det.image_id) if numeric_image_ids else det.image_id
        boxes = to_numpy(det.boxes).astype(np.float64).reshape(-1, 4)
        scores = to_numpy(det.scores).astype(np.float64).reshape(-1)
        labels = to_numpy(det.labels).astype(np.int64).reshape(-1)
        for (x1, y1, x2, y2), s, lab in zip(boxes.tolist(), scores.tolist(), labels.tolist()):
            cat = int(category_ids[lab]) if category_ids is not None else lab + 1
            bbox = [round(x1, 3), round(y1, 3), round(x2 - x1, 3), round(y2 - y1, 3)]
            out.append({"image_id": image_id, "category_id": cat, "bbox": bbox, "score": round(s, 6)})
    return out


def write_coco_results(
    path: Path,
    preds: Sequence[Detections],
    category_ids: Sequence[int] | None = None,
    numeric_image_ids: bool = False,
) -> Path:
    """Write a COCO results JSON (see :func:`detections_to_coco_results`); returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, json.dumps(detections_to_coco_results(preds, category_ids, numeric_image_ids)))
    return path


def read_coco_results(path: Path) -> list[dict]:
    """Read a COCO results JSON, checking each entry's fields (errors name the file and entry)."""
    path = Path(path)
    data = load_json(path, "COCO results")
    if not isinstance(data, list):
        raise DataError(f"{path}: a COCO results file must hold a JSON list, not {type(data).__name__}")
    for i, r in enumerate(data):
        if not isinstance(r, dict) or not all(k in r for k in ("image_id", "category_id", "bbox", "score")):
            raise DataError(f"{path}: result #{i} lacks one of image_id, category_id, bbox, score")
        bb = r["bbox"]
        if not (isinstance(bb, list) and len(bb) == 4 and all(isinstance(v, (int, float)) for v in bb)):
            raise DataError(f"{path}: result #{i} has bbox {bb!r}; expected [x, y, w, h] numbers")
        if not isinstance(r["score"], (int, float)) or not isinstance(r["category_id"], int):
            raise DataError(f"{path}: result #{i} needs a numeric score and an integer category_id")
        if not isinstance(r["image_id"], (int, str)):
            raise DataError(f"{path}: result #{i} has image_id {r['image_id']!r}; expected an integer or string")
    return data


def coco_results_to_detections(
    results: list[dict], category_ids: Sequence[int], source: Path | str = "<results>"
) -> list[Detections]:
    """COCO results entries -> one Detections per image id (string ids; boxes 0-based xyxy).

    Args:
        results: entries as returned by :func:`read_coco_results`.
        category_ids: ``category_ids[i]`` is the category id of class index ``i`` (for VOC:
            ``range(1, C + 1)``); another id is a DataError naming ``source``.
        source: the file the entries came from, for error messages.
    """
    to_label = {int(c): i for i, c in enumerate(category_ids)}
    n = len(results)
    ids: list[str] = []
    scores = np.zeros(n, dtype=np.float64)
    boxes = np.zeros((n, 4), dtype=np.float64)
    labels = np.zeros(n, dtype=np.int64)
    for i, r in enumerate(results):
        lab = to_label.get(int(r["category_id"]))
        if lab is None:
            raise DataError(
                f"{source}: result #{i} has category_id {r['category_id']}; expected one of "
                f"{min(to_label)}..{max(to_label)}"
                if to_label
                else f"{source}: no categories to match"
            )
        x, y, w, h = (float(v) for v in r["bbox"])
        ids.append(str(r["image_id"]))
        scores[i] = float(r["score"])
        boxes[i] = (x, y, x + w, y + h)
        labels[i] = lab
    return _group_by_image(ids, scores, boxes, labels)
