"""Pascal VOC reader (XML annotations + JPEG images in the devkit layout).

Layout: ``<root>/VOC2007/{Annotations,JPEGImages,ImageSets/Main}`` for a ``VOCdevkit`` root, or the
same three folders directly under a single ``VOC20xx`` (or custom) root.

Coordinate convention. VOC ``<bndbox>`` values are 1-based pixel indices, inclusive on both ends:
``xmin = 1`` is the leftmost pixel column. Like ssd.pytorch (``VOCAnnotationTransform``), this reader
subtracts 1 from all four values, so a box becomes ``[xmin - 1, ymin - 1, xmax - 1, ymax - 1]`` in
0-based pixel ``xyxy`` floats. (The covered pixel columns are ``xmin - 1 .. xmax - 1``; treating
``x2`` as an edge makes boxes one pixel narrower than the devkit's ``xmax - xmin + 1`` width, exactly
as in ssd.pytorch.) Writers of VOC XML (see :mod:`singleshot.data.shapes`) add the 1 back.
"""

from __future__ import annotations

import logging
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import Dataset

from singleshot.data.boxcheck import check_boxes
from singleshot.data.image_io import read_image_rgb
from singleshot.errors import DataError
from singleshot.structures import BoxTarget

logger = logging.getLogger(__name__)

__all__ = [
    "VOC_CLASSES",
    "VOCDetection",
    "find_voc_folders",
    "parse_voc_xml",
    "read_split_ids",
    "read_voc_xml",
    "voc_class_names",
]

#: The 20 Pascal VOC classes in the devkit's (alphabetical) order; label i is ``VOC_CLASSES[i]``.
VOC_CLASSES: tuple[str, ...] = (
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
)

Transforms = Callable[[Tensor, BoxTarget], tuple[Tensor, BoxTarget]]


@dataclass
class _VOCObject:
    name: str
    box: tuple[float, float, float, float]  # xmin, ymin, xmax, ymax as written (1-based)
    difficult: bool
    truncated: bool


@dataclass
class _VOCAnnotation:
    filename: str | None
    size: tuple[int, int] | None  # (height, width) from <size>, None when absent or zero
    objects: list[_VOCObject] = field(default_factory=list)


def _flag(text: str | None, tag: str, path: Path, k: int, strict: bool) -> bool:
    """Parse a 0/1 tag; missing means 0. Invalid: DataError when strict, else warning and 0."""
    if text is None or not text.strip():
        return False
    value = text.strip().lower()
    if value in ("0", "1", "0.0", "1.0", "false", "true"):
        return value in ("1", "1.0", "true")
    msg = f"{path}: object {k} has <{tag}>{text.strip()}</{tag}>, expected 0 or 1"
    if strict:
        raise DataError(msg)
    warnings.warn(msg + "; read as 0", stacklevel=4)
    return False


def _read_xml(path: Path) -> _VOCAnnotation:
    """Parse one annotation file into raw values (no class or geometry checks)."""
    try:
        root = ET.parse(path).getroot()
    except FileNotFoundError as exc:
        raise DataError(f"{path}: annotation file not found") from exc
    except ET.ParseError as exc:
        raise DataError(f"{path}: malformed XML ({exc})") from exc
    except OSError as exc:
        raise DataError(f"{path}: cannot read annotation file ({exc})") from exc
    if root.tag != "annotation":
        raise DataError(f"{path}: root element is <{root.tag}>, expected <annotation>")

    size: tuple[int, int] | None = None
    size_el = root.find("size")
    if size_el is not None:
        try:
            width = int(float(size_el.findtext("width", "0")))
            height = int(float(size_el.findtext("height", "0")))
        except (ValueError, OverflowError) as exc:
            raise DataError(f"{path}: <size> has a non-numeric width or height ({exc})") from exc
        if width > 0 and height > 0:
            size = (height, width)
        else:
            warnings.warn(f"{path}: <size> is {width}x{height}; the image's own size is used", stacklevel=3)

    ann = _VOCAnnotation(filename=(root.findtext("filename") or "").strip() or None, size=size)
    for k, obj in enumerate(root.findall("object")):
        name = (obj.findtext("name") or "").strip()
        if not name:
            raise DataError(f"{path}: object {k} has no <name>")
        bndbox = obj.find("bndbox")
        if bndbox is None:
            raise DataError(f"{path}: object {k} ('{name}') has no <bndbox>")
        coords = []
        for tag in ("xmin", "ymin", "xmax", "ymax"):
            text = bndbox.findtext(tag)
            if text is None:
                raise DataError(f"{path}: object {k} ('{name}') has no <{tag}> in <bndbox>")
            try:
                coords.append(float(text.strip()))
            except ValueError as exc:
                raise DataError(
                    f"{path}: object {k} ('{name}') has <{tag}>{text.strip()}</{tag}>, not a number"
                ) from exc
        difficult = _flag(obj.findtext("difficult"), "difficult", path, k, strict=True)
        truncated = _flag(obj.findtext("truncated"), "truncated", path, k, strict=False)
        ann.objects.append(_VOCObject(name, (coords[0], coords[1], coords[2], coords[3]), difficult, truncated))
    return ann


def read_voc_xml(path: str | Path) -> _VOCAnnotation:
    """The raw values of one annotation file: ``filename``, ``size`` (height, width) or None, and
    ``objects`` (``name``, ``box`` 1-based xmin, ymin, xmax, ymax as written, ``difficult``,
    ``truncated``), with no class or geometry checks.

    Raises:
        DataError: missing or malformed file, missing or non-numeric box values, invalid ``difficult``.
    """
    return _read_xml(Path(path))


def _build_target(
    ann: _VOCAnnotation,
    path: Path,
    class_names: Sequence[str],
    *,
    keep_difficult: bool,
    skip_unknown: bool,
    image_size: tuple[int, int] | None,
) -> BoxTarget:
    index = {name: i for i, name in enumerate(class_names)}
    size = image_size if image_size is not None else ann.size
    rows: list[tuple[float, float, float, float]] = []
    labels: list[int] = []
    difficult: list[bool] = []
    names: list[str] = []
    for k, obj in enumerate(ann.objects):
        if obj.name not in index:
            if not skip_unknown:
                raise DataError(
                    f"{path}: object {k} has class '{obj.name}', which is not in the class list "
                    f"({', '.join(class_names)}); set the class list with classes=NAME,NAME,..."
                )
            warnings.warn(f"{path}: object {k} has unknown class '{obj.name}'; dropped", stacklevel=3)
            continue
        if obj.difficult and not keep_difficult:
            continue
        rows.append(tuple(v - 1.0 for v in obj.box))  # type: ignore[arg-type]  # 1-based -> 0-based
        labels.append(index[obj.name])
        difficult.append(obj.difficult)
        names.append(f"object {k} ('{obj.name}')")
    boxes = torch.tensor(rows, dtype=torch.float32).reshape(-1, 4)
    keep, boxes = check_boxes(boxes, size, path, names)
    hw = size if size is not None else (0, 0)
    return BoxTarget(
        boxes=boxes[keep].contiguous(),
        labels=torch.tensor(labels, dtype=torch.int64)[keep],
        difficult=torch.tensor(difficult, dtype=torch.bool)[keep],
        image_id=path.stem,
        size=hw,
        orig_size=hw,
    )


def parse_voc_xml(
    path: str | Path,
    class_names: Sequence[str] = VOC_CLASSES,
    *,
    keep_difficult: bool = True,
    skip_unknown: bool = False,
    image_size: tuple[int, int] | None = None,
) -> BoxTarget:
    """Read one VOC annotation file.

    Args:
        path: the ``.xml`` file.
        class_names: class list; label i is ``class_names[i]``.
        keep_difficult: keep objects flagged ``<difficult>1`` (they stay flagged in ``difficult``).
        skip_unknown: drop objects whose class is not in ``class_names`` with a warning instead of
            raising.
        image_size: (height, width) of the real image; when None the XML ``<size>`` is used.

    Returns:
        BoxTarget with boxes Tensor[N, 4] float32, 0-based xyxy pixels ``[xmin-1, ymin-1, xmax-1,
        ymax-1]``; labels Tensor[N] int64; difficult Tensor[N] bool (missing tag = 0);
        image_id = file stem; size = orig_size = (height, width) (0, 0 if unknown).
        Boxes with x2 <= x1 or wholly outside the image are dropped, boxes partly outside are
        clipped, each with a warning naming the file and object.

    Raises:
        DataError: missing or malformed file, missing or non-numeric box values, invalid
            ``<difficult>``, or (without ``skip_unknown``) a class not in ``class_names``.
    """
    path = Path(path)
    return _build_target(
        _read_xml(path),
        path,
        class_names,
        keep_difficult=keep_difficult,
        skip_unknown=skip_unknown,
        image_size=image_size,
    )


def find_voc_folders(root: str | Path, years: Sequence[str | int] = ("2007",)) -> list[Path]:
    """Resolve a VOC root into the year folders to read.

    ``root`` is either one folder holding ``ImageSets/Main`` (a ``VOC20xx`` folder or a custom
    dataset in that layout; ``years`` is then ignored) or a ``VOCdevkit`` folder holding one
    ``VOC<year>`` folder per requested year.

    Raises:
        DataError: root missing, or a requested ``VOC<year>`` folder missing.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: VOC root folder not found")
    if (root / "ImageSets" / "Main").is_dir():
        return [root]
    folders = []
    for year in years:
        folder = root / f"VOC{year}"
        if not (folder / "ImageSets" / "Main").is_dir():
            found = sorted(p.name for p in root.iterdir() if p.is_dir())
            raise DataError(
                f"{root}: no VOC{year}/ImageSets/Main folder (sub-folders found: {found or 'none'}); "
                "pass a VOCdevkit folder or a single VOC20xx folder"
            )
        folders.append(folder)
    return folders


def read_split_ids(folder: Path, image_set: str) -> list[str]:
    """The image ids of ``folder/ImageSets/Main/<image_set>.txt`` in file order (first field of
    each non-blank line; repeats kept).

    Raises:
        DataError: the list file is missing or unreadable.
    """
    list_file = folder / "ImageSets" / "Main" / f"{image_set}.txt"
    try:
        lines = list_file.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError as exc:
        raise DataError(f"{list_file}: image list not found (image_set='{image_set}')") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{list_file}: cannot read the image list ({exc})") from exc
    return [line.split()[0] for line in lines if line.split()]


def voc_class_names(root: str | Path, image_set: str, years: Sequence[str | int] = ("2007",)) -> list[str]:
    """The sorted set of object names in the annotations of ``image_set`` (for a dataset whose
    class list is not given). Files that cannot be read are passed over: the dataset check reports them.

    Raises:
        DataError: the root or the list file is missing, or no annotation names an object.
    """
    names: set[str] = set()
    for folder in find_voc_folders(root, years):
        for image_id in read_split_ids(folder, image_set):
            try:
                tree = ET.parse(folder / "Annotations" / f"{image_id}.xml")
            except (ET.ParseError, OSError, ValueError):
                continue
            names.update(
                n.strip() for n in (o.findtext("name") for o in tree.getroot().iter("object")) if n and n.strip()
            )
    if not names:
        raise DataError(f"{root}: no object names in the '{image_set}' annotations; give the classes with classes=...")
    return sorted(names)


class VOCDetection(Dataset):
    """Pascal VOC detection dataset.

    Args:
        root: a ``VOCdevkit`` folder holding ``VOC2007``/``VOC2012``, or a single VOC-layout folder.
        image_set: list name in ``ImageSets/Main`` (``"train"``, ``"val"``, ``"trainval"``, ``"test"``).
        years: years to combine when ``root`` is a ``VOCdevkit`` (e.g. ``("2007", "2012")``).
        class_names: class list (default the 20 VOC classes).
        keep_difficult: keep ``difficult`` objects (flagged in the target); evaluators need them.
        transforms: optional ``transforms(image, target) -> (image, target)``.
        skip_unknown: drop objects of classes outside ``class_names`` with a warning instead of
            raising DataError.
        exclude: image ids to leave out (the faulty items of a ``bad=skip`` check).

    ``dataset[i]`` returns ``(image, target)``: image Tensor[3, H, W] uint8 RGB, target a
    :class:`BoxTarget` (boxes 0-based xyxy pixels, see the module docstring) unless ``transforms``
    changes them. ``ids`` lists ``(folder, image id)`` pairs in list-file order.
    """

    def __init__(
        self,
        root: str | Path,
        image_set: str = "trainval",
        years: Sequence[str | int] = ("2007",),
        class_names: Sequence[str] = VOC_CLASSES,
        keep_difficult: bool = True,
        transforms: Transforms | None = None,
        *,
        skip_unknown: bool = False,
        exclude: Collection[str] = (),
    ) -> None:
        self.root = Path(root)
        self.image_set = image_set
        self.class_names: tuple[str, ...] = tuple(class_names)
        if len(set(self.class_names)) != len(self.class_names):
            raise DataError(f"{self.root}: class_names has duplicates: {list(self.class_names)}")
        self.keep_difficult = keep_difficult
        self.transforms = transforms
        self.skip_unknown = skip_unknown
        self.ids: list[tuple[Path, str]] = []
        seen: set[str] = set()
        excluded = set(exclude)
        for folder in find_voc_folders(self.root, years):
            for image_id in read_split_ids(folder, image_set):
                if image_id in excluded:
                    continue
                if image_id in seen:
                    warnings.warn(f"{folder}: image id '{image_id}' is listed twice in '{image_set}'", stacklevel=2)
                seen.add(image_id)
                self.ids.append((folder, image_id))
        logger.info("VOC %s %s: %d images from %s", image_set, list(years), len(self.ids), self.root)

    def __len__(self) -> int:
        return len(self.ids)

    def annotation_path(self, index: int) -> Path:
        folder, image_id = self.ids[index]
        return folder / "Annotations" / f"{image_id}.xml"

    def _image_path(self, index: int, ann: _VOCAnnotation) -> Path:
        folder, image_id = self.ids[index]
        path = folder / "JPEGImages" / f"{image_id}.jpg"
        if not path.exists() and ann.filename:
            alt = folder / "JPEGImages" / ann.filename
            if alt.exists():
                return alt
        return path

    def image_path(self, index: int) -> Path:
        """Path of the image file of sample ``index`` (``JPEGImages/<id>.jpg``, else the XML filename)."""
        return self._image_path(index, _read_xml(self.annotation_path(index)))

    def load_target(self, index: int) -> BoxTarget:
        """Target of sample ``index`` from the XML alone (no image decoding; size from ``<size>``)."""
        path = self.annotation_path(index)
        return _build_target(
            _read_xml(path),
            path,
            self.class_names,
            keep_difficult=self.keep_difficult,
            skip_unknown=self.skip_unknown,
            image_size=None,
        )

    def __getitem__(self, index: int) -> tuple[Tensor, BoxTarget]:
        xml_path = self.annotation_path(index)
        ann = _read_xml(xml_path)
        image_path = self._image_path(index, ann)
        image = read_image_rgb(image_path)
        real = (int(image.shape[1]), int(image.shape[2]))
        if ann.size is not None and ann.size != real:
            hint = " (swapped: EXIF rotation?)" if ann.size == real[::-1] else ""
            warnings.warn(
                f"{xml_path}: <size> says {ann.size[1]}x{ann.size[0]} but {image_path} is "
                f"{real[1]}x{real[0]}{hint}; using the image's size",
                stacklevel=2,
            )
        target = _build_target(
            ann,
            xml_path,
            self.class_names,
            keep_difficult=self.keep_difficult,
            skip_unknown=self.skip_unknown,
            image_size=real,
        )
        target.image_id = self.ids[index][1]
        if self.transforms is not None:
            image, target = self.transforms(image, target)
        return image, target
