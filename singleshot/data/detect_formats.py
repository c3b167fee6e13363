"""Which detection format a ``data=`` path is, and the default split names of each format.

* ``voc``: a folder holding ``ImageSets/Main`` or ``VOC<year>`` folders (see :mod:`singleshot.data.voc`);
  splits are the image lists, by default ``trainval`` (else ``train``) for training and ``test``
  (else ``val``) for evaluation, VOC07's protocol.
* ``coco``: one instances ``*.json`` (its split names ``train``/``val`` are nominal: training and
  evaluation both read the file, unless the evaluation names its own), or a ``coco-folder`` holding ``annotations/instances_<split>.json``
  with the images of split ``s`` in ``images/<s>/`` (as :mod:`singleshot.data.detect_convert` writes),
  else ``<s>/`` (COCO 2017's ``train2017/``), else ``images/``; default splits ``train`` and ``val``
  (or the one split whose name starts so, ``train2017``).
* ``yolo``: a ``data.yaml`` (see :mod:`singleshot.data.yolo`); splits are its keys, ``train`` and ``val``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from singleshot.data.voc import find_voc_folders
from singleshot.errors import DataError

__all__ = ["DETECT_FORMATS", "coco_folder_splits", "default_split", "detect_format"]

#: The dataset formats ``data=`` and ``detect convert`` know.
DETECT_FORMATS = ("voc", "coco", "yolo")
_ROLES = ("train", "val")


def detect_format(path: str | Path) -> str:
    """``voc``, ``coco`` (a json file), ``coco-folder`` or ``yolo`` for a ``data=`` path (by its
    suffix, or a folder's contents; a folder that is not a COCO folder is read as VOC)."""
    p = Path(path)
    if p.suffix.lower() == ".json":
        return "coco"
    if p.suffix.lower() in (".yaml", ".yml"):
        return "yolo"
    if p.is_dir() and any((p / "annotations").glob("instances_*.json")):
        return "coco-folder"
    return "voc"


def coco_folder_splits(folder: str | Path) -> dict[str, tuple[Path, Path]]:
    """Split name -> (annotation file, image folder) of a COCO folder (see the module docstring).

    Raises:
        DataError: the folder holds no ``annotations/instances_*.json``.
    """
    folder = Path(folder)
    out: dict[str, tuple[Path, Path]] = {}
    for ann in sorted((folder / "annotations").glob("instances_*.json")):
        name = ann.stem.removeprefix("instances_")
        for images in (folder / "images" / name, folder / name, folder / "images", folder):
            if images.is_dir():
                out[name] = (ann, images)
                break
    if not out:
        raise DataError(f"{folder}: no annotations/instances_<split>.json files")
    return out


def default_split(path: str | Path, role: str, years: Sequence[str | int] = ("2007",)) -> str:
    """The split of ``role`` (``train`` or ``val``) when ``train_set``/``val_set`` is not given.

    VOC: ``trainval`` / ``test`` where every year folder has that list, else ``train`` / ``val``;
    YOLO: the yaml keys ``train`` / ``val``; a COCO json: ``train`` / ``val`` (nominal); a COCO folder:
    the split named ``role``, else the only one whose name starts with it.

    Raises:
        DataError: a COCO folder with no or several candidate splits (they are listed).
    """
    if role not in _ROLES:
        raise ValueError(f"role must be one of {_ROLES}, got {role!r}")
    fmt = detect_format(path)
    if fmt in ("yolo", "coco"):
        return role
    if fmt == "coco-folder":
        names = list(coco_folder_splits(path))
        if role in names:
            return role
        starts = [n for n in names if n.startswith(role)]
        if len(starts) != 1:
            raise DataError(
                f"{path}: which split is '{role}'? annotation files: {', '.join(names)}; name it with {role}_set=..."
            )
        return starts[0]
    first, second = ("trainval", "train") if role == "train" else ("test", "val")
    folders = find_voc_folders(path, years)
    return first if all((f / "ImageSets" / "Main" / f"{first}.txt").is_file() for f in folders) else second
