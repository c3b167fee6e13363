"""YOLO txt detection datasets in the ultralytics layout: a ``data.yaml``, image folders or image
lists, and one ``.txt`` label file per image.

``data.yaml``::

    path: ../datasets/shapes   # the dataset root; relative to the yaml's folder (default: that folder)
    train: images/train        # a folder of images, a .txt list of image paths, or a list of either,
    val: images/val            #   relative to ``path``
    test: images/test          # optional
    names: [circle, square]    # or {0: circle, 1: square}; ``nc:`` may be given too and must agree

A folder source holds its images at any depth. A list file holds one image path a line, relative
to the list file's folder when not absolute (ultralytics' ``./images/x.jpg`` lines).

Labels: the image ``.../images/.../x.jpg`` has its labels in ``.../labels/.../x.txt`` (the last
``/images/`` part of the path replaced by ``/labels/``, as ultralytics does; an image path without
such a part has its ``.txt`` beside it). One line per object: ``cls cx cy w h`` with ``cls`` the
0-based index into ``names`` and the box centre and size divided by the image's width and height
(the continuous frame: the image spans [0, 1] x [0, 1]). A line ``cls x1 y1 x2 y2 x3 y3 ...``
(ultralytics' segment labels, three or more points) stands for its polygon's bounding box. A
missing or empty label file is an image without objects (a background image).

In pixels a box is ``[(cx - w/2) W, (cy - h/2) H, (cx + w/2) W, (cy + h/2) H]``, COCO's frame with
no pixel shift. Image ids are the image paths relative to their source folder (or the list file's
folder) without the suffix, ``/``-separated (``a/x`` and ``b/x`` stay apart).
"""

from __future__ import annotations

import logging
import math
import os
import warnings
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from singleshot.data.boxcheck import check_boxes
from singleshot.data.image_io import image_size, read_image_rgb
from singleshot.errors import DataError
from singleshot.structures import BoxTarget

logger = logging.getLogger(__name__)

__all__ = [
    "YOLO_IMAGE_SUFFIXES",
    "YOLO_SPLITS",
    "YoloData",
    "YOLODetection",
    "label_path",
    "load_yolo_yaml",
    "read_yolo_labels",
    "split_images",
    "split_list_files",
    "yolo_to_xyxy",
]

#: Image file suffixes found in folder sources.
YOLO_IMAGE_SUFFIXES = frozenset({".bmp", ".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp"})
#: The split keys of a data.yaml.
YOLO_SPLITS = ("train", "val", "test")

Transforms = Callable[[Tensor, BoxTarget], tuple[Tensor, BoxTarget]]


@dataclass(frozen=True)
class YoloData:
    """A parsed ``data.yaml``.

    Attributes:
        yaml: the file.
        root: the dataset root (``path:`` resolved).
        splits: split key -> its sources as written (folders or list files, relative to ``root``).
        names: class names, label i = ``names[i]``.
    """

    yaml: Path
    root: Path
    splits: dict[str, tuple[str, ...]]
    names: tuple[str, ...]


def _names(raw: object, nc: object, path: Path) -> tuple[str, ...]:
    if isinstance(raw, dict):
        keys = list(raw)
        if not all(isinstance(k, int) and not isinstance(k, bool) for k in keys) or sorted(keys) != list(
            range(len(keys))
        ):
            raise DataError(f"{path}: 'names' as a mapping needs the keys 0..{len(keys) - 1}, got {keys[:10]}")
        names = [raw[k] for k in range(len(keys))]
    elif isinstance(raw, list):
        names = list(raw)
    elif raw is None and isinstance(nc, int) and not isinstance(nc, bool) and nc > 0:
        names = [f"class{i}" for i in range(nc)]
    else:
        raise DataError(f"{path}: 'names' must be a list or a mapping {{index: name}} (got {type(raw).__name__})")
    if not names or not all(isinstance(n, (str, int, float)) and not isinstance(n, bool) for n in names):
        raise DataError(f"{path}: 'names' must be a non-empty list of class names")
    out = tuple(str(n).strip() for n in names)
    if any(not n for n in out) or len(set(out)) != len(out):
        raise DataError(f"{path}: 'names' has empty or duplicate names: {list(out)}")
    if nc is not None and nc != len(out):
        raise DataError(f"{path}: nc is {nc!r} but 'names' lists {len(out)} classes")
    return out


def load_yolo_yaml(path: str | Path) -> YoloData:
    """Read a ``data.yaml`` (see the module docstring).

    Raises:
        DataError: missing or malformed file, no ``train``/``val`` key, bad ``names``/``nc``.
    """
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        raw = yaml.safe_load(text)
    except FileNotFoundError as exc:
        raise DataError(f"{path}: data.yaml not found") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read the file ({exc})") from exc
    except yaml.YAMLError as exc:
        raise DataError(f"{path}: malformed YAML ({str(exc).splitlines()[0] if str(exc) else exc})") from exc
    except (ValueError, RecursionError) as exc:  # PyYAML's own converters on odd scalars
        raise DataError(f"{path}: malformed YAML ({exc})") from exc
    if not isinstance(raw, dict):
        raise DataError(f"{path}: expected a mapping with path, train, val and names")
    base = raw.get("path")
    if base is not None and not isinstance(base, str):
        raise DataError(f"{path}: 'path' must be a folder name, got {base!r}")
    root = path.parent if not base else (Path(base) if Path(base).is_absolute() else path.parent / base)
    splits: dict[str, tuple[str, ...]] = {}
    for key in YOLO_SPLITS:
        value = raw.get(key)
        if value is None or value == "" or value == []:
            continue
        items = value if isinstance(value, list) else [value]
        if not all(isinstance(v, str) and v.strip() for v in items):
            raise DataError(f"{path}: '{key}' must be a path or a list of paths, got {value!r}")
        splits[key] = tuple(v.strip() for v in items)
    if "train" not in splits and "val" not in splits:
        raise DataError(f"{path}: no 'train' or 'val' key naming the images")
    return YoloData(path, root, splits, _names(raw.get("names"), raw.get("nc"), path))


def _source_path(data: YoloData, source: str) -> Path:
    p = Path(source)
    return p if p.is_absolute() else data.root / p


def split_list_files(data: YoloData, split: str) -> list[Path]:
    """The ``.txt`` list files among the sources of ``split`` (they are read, so they are fingerprinted)."""
    return [p for p in (_source_path(data, s) for s in data.splits.get(split, ())) if p.suffix == ".txt"]


def split_images(data: YoloData, split: str) -> list[tuple[Path, str]]:
    """``(image path, image id)`` of every image of ``split``, in source order (folders sorted by
    path). Images a list file names are returned whether or not they exist.

    Raises:
        DataError: ``split`` is not in the yaml, or one of its sources is missing or unreadable.
    """
    if split not in data.splits:
        raise DataError(f"{data.yaml}: no '{split}' split (splits: {', '.join(data.splits) or 'none'})")
    out: list[tuple[Path, str]] = []
    for source in data.splits[split]:
        path = _source_path(data, source)
        if path.is_dir():
            files = sorted(
                p for p in path.rglob("*") if p.suffix.lower() in YOLO_IMAGE_SUFFIXES and not p.name.startswith(".")
            )
            out += [(p, p.relative_to(path).with_suffix("").as_posix()) for p in files]
        elif path.is_file() and path.suffix == ".txt":
            try:
                lines = path.read_text(encoding="utf-8").splitlines()
            except (OSError, UnicodeDecodeError) as exc:
                raise DataError(f"{path}: cannot read the image list ({exc})") from exc
            for line in lines:
                name = line.strip()
                if not name or name.startswith("#"):
                    continue
                image = Path(name) if Path(name).is_absolute() else path.parent / name
                image = Path(os.path.normpath(image))
                try:
                    image_id = image.relative_to(os.path.normpath(path.parent)).with_suffix("").as_posix()
                except ValueError:
                    image_id = image.with_suffix("").as_posix().lstrip("/")
                out.append((image, image_id))
        elif path.is_file():
            raise DataError(f"{data.yaml}: {split} source {path} is neither a folder nor a .txt image list")
        else:
            raise DataError(f"{data.yaml}: {split} source {path} not found")
    return out


def label_path(image: str | Path) -> Path:
    """The label file of an image: the last ``/images/`` part of its path replaced by ``/labels/``,
    the suffix by ``.txt`` (ultralytics' rule)."""
    text = str(image)
    sa, sb = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
    if sa in text:
        head, tail = text.rsplit(sa, 1)
        text = head + sb + tail
    return Path(text).with_suffix(".txt")


def _number(field: str, path: Path, k: int) -> float:
    try:
        value = float(field)
    except ValueError:
        raise DataError(f"{path}: line {k} has {field[:20]!r}, not a number") from None
    if not math.isfinite(value):
        raise DataError(f"{path}: line {k} has the non-finite value {field[:20]!r}")
    return value


def read_yolo_labels(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """The objects of one label file.

    Returns:
        (classes int64[N], boxes float64[N, 4] normalised cx, cy, w, h as written; a polygon line
        gives its bounding box). A missing or empty file gives N = 0.

    Raises:
        DataError: unreadable file, or a line without 5 fields (or 1 + 2k, k >= 3, for a polygon),
            with a non-number, a non-finite value, or a class that is not a non-negative integer.
    """
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        return np.zeros(0, dtype=np.int64), np.zeros((0, 4))
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read the label file ({exc})") from exc
    classes: list[int] = []
    boxes: list[tuple[float, float, float, float]] = []
    for k, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        n = len(fields)
        if n != 5 and (n < 7 or n % 2 == 0):
            raise DataError(f"{path}: line {k} has {n} fields, expected 5 (cls cx cy w h) or a polygon")
        values = [_number(f, path, k) for f in fields]
        cls = values[0]
        if cls < 0 or cls != int(cls) or cls > 2**31:
            raise DataError(f"{path}: line {k} has the class {fields[0][:20]!r}, not a non-negative integer")
        if n == 5:
            boxes.append((values[1], values[2], values[3], values[4]))
        else:
            xs, ys = values[1::2], values[2::2]
            x1, x2, y1, y2 = min(xs), max(xs), min(ys), max(ys)
            boxes.append(((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1))
        classes.append(int(cls))
    return np.asarray(classes, dtype=np.int64), np.asarray(boxes, dtype=np.float64).reshape(-1, 4)


#: A corner at most this far outside the image (a fraction of its side) is the rounding of the
#: written text (six decimals in most files) and is moved onto the border.
ROUNDING = 1e-5


def yolo_to_xyxy(boxes: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Normalised ``cx, cy, w, h`` [N, 4] -> xyxy pixels [N, 4] float64 of a (height, width) image
    (a corner within :data:`ROUNDING` outside the image is put on its border)."""
    h, w = float(size[0]), float(size[1])
    cx, cy, bw, bh = (np.asarray(boxes, dtype=np.float64).reshape(-1, 4)[:, i] for i in range(4))
    unit = np.stack((cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2), axis=1)
    unit = np.where((unit < 0) & (unit >= -ROUNDING), 0.0, unit)
    unit = np.where((unit > 1) & (unit <= 1 + ROUNDING), 1.0, unit)
    return unit * np.array([w, h, w, h])


def _header_size(path: Path) -> tuple[int, int]:
    """(height, width) from the image header; DataError for any unreadable file."""
    try:
        return image_size(path)
    except DataError:
        raise
    except Exception as exc:  # PIL's other errors on damaged headers
        raise DataError(f"{path}: cannot read image header ({type(exc).__name__}: {exc})") from exc


class YOLODetection(Dataset):
    """One split of a YOLO txt dataset.

    Args:
        data: the ``data.yaml`` (or its parsed :class:`YoloData`).
        split: ``train``, ``val`` or ``test``.
        class_names: the class list labels index (default: the yaml's ``names``); a yaml class is
            mapped to it by name.
        transforms: optional ``transforms(image, target) -> (image, target)``.
        skip_unknown: drop objects of classes outside ``class_names`` (warning) instead of raising.
        exclude: image ids to leave out (the faulty items of a ``bad=skip`` check).

    ``dataset[i]`` returns ``(image Tensor[3, H, W] uint8 RGB, BoxTarget)``: boxes xyxy pixels
    float32 (see the module docstring), ``image_id`` the image's id, ``difficult`` all False.
    """

    def __init__(
        self,
        data: str | Path | YoloData,
        split: str = "train",
        class_names: Sequence[str] | None = None,
        transforms: Transforms | None = None,
        *,
        skip_unknown: bool = False,
        exclude: Collection[str] = (),
    ) -> None:
        self.data = data if isinstance(data, YoloData) else load_yolo_yaml(data)
        self.split = split
        self.class_names: tuple[str, ...] = tuple(class_names) if class_names else self.data.names
        if len(set(self.class_names)) != len(self.class_names):
            raise DataError(f"{self.data.yaml}: the class list has duplicates: {list(self.class_names)}")
        index = {name: i for i, name in enumerate(self.class_names)}
        #: yaml class index -> label (-1: not in ``class_names``)
        self._label_of = [index.get(name, -1) for name in self.data.names]
        self.transforms = transforms
        self.skip_unknown = skip_unknown
        excluded = set(exclude)
        self.items = [(p, i) for p, i in split_images(self.data, split) if i not in excluded]
        logger.info("YOLO %s: %d images from %s", split, len(self.items), self.data.yaml)

    def __len__(self) -> int:
        return len(self.items)

    @property
    def ids(self) -> list[str]:
        return [i for _, i in self.items]

    def image_path(self, index: int) -> Path:
        return self.items[index][0]

    def label_path(self, index: int) -> Path:
        return label_path(self.items[index][0])

    def _labels(self, classes: np.ndarray, path: Path) -> tuple[np.ndarray, np.ndarray]:
        """(labels int64[N], keep bool[N]) of the file's class indices."""
        labels = np.full(len(classes), -1, dtype=np.int64)
        for k, c in enumerate(classes.tolist()):
            if c >= len(self._label_of):
                raise DataError(
                    f"{path}: object {k} has class index {c}, but {self.data.yaml} names only "
                    f"{len(self._label_of)} classes (0..{len(self._label_of) - 1})"
                )
            labels[k] = self._label_of[c]
            if labels[k] < 0 and not self.skip_unknown:
                raise DataError(
                    f"{path}: object {k} has class '{self.data.names[c]}', which is not in the class list "
                    f"({', '.join(self.class_names)}); set the class list with classes=NAME,NAME,..."
                )
        keep = labels >= 0
        if not keep.all():
            warnings.warn(f"{path}: dropped {int((~keep).sum())} object(s) of classes outside the list", stacklevel=3)
        return labels, keep

    def load_target(self, index: int, image_size_hw: tuple[int, int] | None = None) -> BoxTarget:
        """Target of sample ``index``; the image's (height, width) from its header unless given."""
        image, image_id = self.items[index]
        size = image_size_hw if image_size_hw is not None else _header_size(image)
        path = label_path(image)
        classes, boxes = read_yolo_labels(path)
        labels, known = self._labels(classes, path)
        xyxy = torch.from_numpy(yolo_to_xyxy(boxes[known], size)).to(torch.float32)
        names = [f"object {k} ('{self.data.names[c]}')" for k, c in enumerate(classes[known].tolist())]
        keep, xyxy = check_boxes(xyxy, size, path, names)
        return BoxTarget(
            boxes=xyxy[keep].contiguous(),
            labels=torch.from_numpy(labels[known])[keep],
            difficult=torch.zeros(int(keep.sum()), dtype=torch.bool),
            image_id=image_id,
            size=size,
            orig_size=size,
        )

    def __getitem__(self, index: int) -> tuple[Tensor, BoxTarget]:
        image = read_image_rgb(self.items[index][0])
        target = self.load_target(index, (int(image.shape[1]), int(image.shape[2])))
        if self.transforms is not None:
            image, target = self.transforms(image, target)
        return image, target
