"""UCF101-24 corrected annotations (gurkirt/corrected-UCF101-Annots): ``finalAnnots.mat`` and
``pyannot.pkl``.

Both hold, per video ``Class/video``, the frame count and the tubes with boxes ``[x, y, w, h]`` in
1-based MATLAB pixels, converted here to xyxy (continuous, 0-based) as ACT's ``UCF101v2-GT.pkl`` has
them: ``x1 = x - 1, y1 = y - 1, x2 = x + w - 1, y2 = y + h - 1``. Frame conventions differ:

- ``finalAnnots.mat``: ``sf``/``ef`` are the 1-based first and last frames (inclusive); ``class``
  is 1-based.
- ``pyannot.pkl``: ``sf`` is the 0-based first frame and ``ef`` the 0-based end (exclusive), so the
  tube covers 1-based frames ``sf + 1 … ef``; ``label`` is 0-based. (Checked against
  ``finalAnnots.mat`` on all 4458 tubes: same boxes, ``sf_mat = sf_py + 1``, ``ef_mat = ef_py``.)

Integer fields are stored as uint8/uint16 and are cast to int64 before any arithmetic. Classes are
the sorted class folders of the video names (the 24 names, in ACT's order). The files hold no
split: a list file (``testlist01.txt``: ``Class/video`` per line) gives the test videos; when none
is passed, ``testlist{split:02d}.txt`` beside the annotation file is used if present. Frames are
320x240 (``size = (240, 320)``).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from singleshot.data.action.readers_common import apply_split_list, as_int, make_tube, number_array, read_classes
from singleshot.data.action.safe_pickle import safe_load_pickle
from singleshot.errors import DataError
from singleshot.structures import ActionAnnotations, Tube, VideoAnnotation

logger = logging.getLogger(__name__)

__all__ = [
    "UCF24_SIZE",
    "is_pyannot_dict",
    "load_mat_records",
    "mat_video",
    "mat_video_name",
    "pyannot_video",
    "read_ucf24_mat",
    "read_ucf24_pyannot",
    "xywh1_to_xyxy",
]

UCF24_SIZE = (240, 320)
"""(height, width) of every UCF101-24 frame."""


def xywh1_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    """1-based ``[x, y, w, h]`` (any integer dtype) -> ndarray[N, 4] float32 xyxy pixels."""
    b = np.asarray(boxes).astype(np.int64).reshape(-1, 4)  # uint8/uint16 would wrap on x + w
    out = np.empty(b.shape, dtype=np.float32)
    out[:, 0] = b[:, 0] - 1
    out[:, 1] = b[:, 1] - 1
    out[:, 2] = b[:, 0] + b[:, 2] - 1
    out[:, 3] = b[:, 1] + b[:, 3] - 1
    return out


def _class_list(names: Sequence[str], classes: Sequence[str] | str | Path | None) -> list[str]:
    if classes is not None:
        return read_classes(classes)
    return sorted({n.split("/", 1)[0] for n in names})


def _finish(
    source: Path,
    classes: list[str],
    videos: dict[str, VideoAnnotation],
    folder_mismatch: list[str],
    split_list: str | Path | None,
    split: int,
    skip: Collection[str] = (),
) -> ActionAnnotations:
    if folder_mismatch:
        warnings.warn(
            f"{source}: {len(folder_mismatch)} tubes have a class id whose name differs from their "
            f"video's class folder (first: {folder_mismatch[0]}); is the class list in the right order?",
            stacklevel=3,
        )
    ann = ActionAnnotations(classes=classes, videos=videos, source=str(source))
    if split_list is None:
        guess = source.parent / f"testlist{split:02d}.txt"
        if guess.is_file():
            logger.info("%s: using the test split in %s", source, guess)
            split_list = guess
    if split_list is not None:
        apply_split_list(ann, split_list, skip)
    return ann


def _get(record: Any, name: str, where: str) -> Any:
    """Field ``name`` of a MATLAB struct element or a dict (DataError naming ``where`` when absent)."""
    try:
        return record[name]
    except (ValueError, KeyError, IndexError, TypeError):
        raise DataError(f"{where} has no field {name!r}") from None


def load_mat_records(path: str | Path) -> list[Any]:
    """The elements of the ``annot`` struct array of ``finalAnnots.mat``.

    Raises:
        DataError: a missing or unreadable file, not a MATLAB file, or no ``annot`` struct.
    """
    import scipy.io

    source = Path(path)
    if not source.is_file():
        raise DataError(f"{source}: annotation file not found")
    try:
        mat = scipy.io.loadmat(str(source))
    except Exception as exc:  # scipy's parser raises many types on a corrupt file; all mean "unreadable"
        raise DataError(f"{source}: cannot read as a MATLAB file ({type(exc).__name__}: {exc})") from exc
    if "annot" not in mat:
        raise DataError(f"{source}: no 'annot' struct (keys: {sorted(k for k in mat if not k.startswith('__'))})")
    records = np.asarray(mat["annot"]).ravel()
    if records.dtype.names is None or "name" not in records.dtype.names:
        raise DataError(f"{source}: 'annot' is not a struct array with a 'name' field")
    return list(records)


def mat_video_name(record: Any, index: int, source: Path) -> str:
    """The ``name`` (``Class/video``) of element ``index`` of ``annot``."""
    try:
        name = np.asarray(record["name"]).ravel()[0]
    except (ValueError, KeyError, IndexError, TypeError):
        raise DataError(f"{source}: annot({index + 1}) has no name") from None
    if not isinstance(name, str) or not name:
        raise DataError(f"{source}: annot({index + 1}) has no name (got {name!r})")
    return name


def mat_video(record: Any, video: str, class_names: Sequence[str], source: Path) -> tuple[VideoAnnotation, list[str]]:
    """One element of ``annot``: (its VideoAnnotation, its tubes whose class differs from the folder).

    Raises:
        DataError: naming the file and video: a field missing or not an integer, ``sf < 1`` or
            ``ef < sf``, a box count other than ``ef - sf + 1``, a non-numeric or non-finite box, or
            a class id outside [1, C].
    """
    where = f"{source}: video {video!r}"
    num_frames = as_int(_get(record, "num_imgs", where), f"{where} num_imgs")
    if num_frames < 1:
        raise DataError(f"{where}: num_imgs {num_frames} should be >= 1")
    tubes: list[Tube] = []
    mismatch: list[str] = []
    try:
        elements = list(np.asarray(_get(record, "tubes", where)).ravel())
    except (TypeError, ValueError):
        raise DataError(f"{where}: 'tubes' is not a struct array") from None
    for k, t in enumerate(elements):
        sf = as_int(_get(t, "sf", f"{where} tube {k}"), f"{where} tube {k} sf")
        ef = as_int(_get(t, "ef", f"{where} tube {k}"), f"{where} tube {k} ef")
        cid = as_int(_get(t, "class", f"{where} tube {k}"), f"{where} tube {k} class")
        raw = number_array(_get(t, "boxes", f"{where} tube {k}"), f"{where} tube {k} boxes", 4)
        if sf < 1 or ef < sf:
            raise DataError(f"{where} tube {k}: frames sf={sf}..ef={ef} (expected 1 <= sf <= ef)")
        if raw.shape[0] != ef - sf + 1:
            raise DataError(f"{where} tube {k}: {raw.shape[0]} boxes for frames {sf}..{ef}")
        if not 1 <= cid <= len(class_names):
            raise DataError(f"{where} tube {k}: class id {cid} outside [1, {len(class_names)}]")
        if class_names[cid - 1] != video.split("/", 1)[0]:
            mismatch.append(f"{video} class id {cid}")
        tubes.append(make_tube(video, cid - 1, np.arange(sf, ef + 1), xywh1_to_xyxy(raw)))
    return VideoAnnotation(video=video, num_frames=num_frames, size=UCF24_SIZE, tubes=tubes), mismatch


def read_ucf24_mat(
    path: str | Path,
    split_list: str | Path | None = None,
    split: int = 1,
    classes: Sequence[str] | str | Path | None = None,
    skip: Collection[str] = (),
) -> ActionAnnotations:
    """Read ``finalAnnots.mat`` (struct array ``annot`` with ``name``, ``num_imgs``, ``tubes``).

    Args:
        path: the .mat file. split_list: a test list (see module docstring). split: which
            ``testlistNN.txt`` to look for beside the file when split_list is None.
        classes: class names (list or file); default: the sorted class folders of the videos.
        skip: videos to leave out (e.g. those a dataset check found faulty).

    Returns:
        ActionAnnotations, frames 1-based, boxes xyxy float32 in 320x240 pixels.

    Raises:
        DataError: not a MATLAB file, no ``annot`` struct, or a malformed video (see :func:`mat_video`).
    """
    source = Path(path)
    records = load_mat_records(source)
    names = [mat_video_name(r, i, source) for i, r in enumerate(records)]
    class_names = _class_list(names, classes)
    videos: dict[str, VideoAnnotation] = {}
    mismatch: list[str] = []
    skip = set(skip)
    for record, video in zip(records, names):
        if video in skip:
            continue
        videos[video], bad = mat_video(record, video, class_names, source)
        mismatch += bad
    return _finish(source, class_names, videos, mismatch, split_list, split, skip)


def is_pyannot_dict(obj: Any) -> bool:
    """True when ``obj`` looks like ``pyannot.pkl``: ``{video: {numf, label, annotations}}``."""
    if not isinstance(obj, Mapping) or not obj:
        return False
    first = next(iter(obj.values()))
    return isinstance(first, Mapping) and "annotations" in first and "numf" in first


def pyannot_video(
    entry: Any, video: str, class_names: Sequence[str], source: Path
) -> tuple[VideoAnnotation, list[str]]:
    """One video of ``pyannot.pkl``: (its VideoAnnotation, its tubes whose label differs from the folder).

    Raises:
        DataError: naming the file and video: no ``numf``/``annotations``, a field that is not an
            integer, ``sf < 0`` or ``ef <= sf``, a box count other than ``ef - sf``, a non-numeric
            or non-finite box, or a label outside [0, C - 1].
    """
    where = f"{source}: video {video!r}"
    if not isinstance(entry, Mapping) or "numf" not in entry or "annotations" not in entry:
        raise DataError(f"{where} lacks numf/annotations")
    num_frames = as_int(entry["numf"], f"{where} numf")
    if num_frames < 1:
        raise DataError(f"{where}: numf {num_frames} should be >= 1")
    annotations = entry["annotations"]
    if isinstance(annotations, (str, bytes, Mapping)) or not isinstance(annotations, (Sequence, np.ndarray)):
        raise DataError(f"{where}: 'annotations' should be a list, got {type(annotations).__name__}")
    tubes: list[Tube] = []
    mismatch: list[str] = []
    for k, a in enumerate(annotations):
        what = f"{where} annotation {k}"
        if not isinstance(a, Mapping) or any(f not in a for f in ("sf", "ef", "label", "boxes")):
            raise DataError(f"{what} is malformed (expected a dict with sf, ef, label, boxes)")
        sf, ef, label = (as_int(a[f], f"{what} {f}") for f in ("sf", "ef", "label"))
        raw = number_array(a["boxes"], f"{what} boxes", 4)
        if sf < 0 or ef <= sf:
            raise DataError(f"{what}: sf={sf}, ef={ef} (expected 0 <= sf < ef)")
        if raw.shape[0] != ef - sf:
            raise DataError(f"{what}: {raw.shape[0]} boxes for sf={sf}, ef={ef} (expected ef - sf)")
        if not 0 <= label < len(class_names):
            raise DataError(f"{what}: label {label} outside [0, {len(class_names) - 1}]")
        if class_names[label] != video.split("/", 1)[0]:
            mismatch.append(f"{video} label {label}")
        tubes.append(make_tube(video, label, np.arange(sf + 1, ef + 1), xywh1_to_xyxy(raw)))
    return VideoAnnotation(video=video, num_frames=num_frames, size=UCF24_SIZE, tubes=tubes), mismatch


def read_ucf24_pyannot(
    path: str | Path,
    split_list: str | Path | None = None,
    split: int = 1,
    classes: Sequence[str] | str | Path | None = None,
    data: Mapping[Any, Any] | None = None,
    skip: Collection[str] = (),
) -> ActionAnnotations:
    """Read ``pyannot.pkl`` (``{video: {numf, label, annotations: [{label, sf, ef, boxes}]}}``).

    Same arguments and result as :func:`read_ucf24_mat`; ``data`` is the already-unpickled dict
    when the caller has it. Tube frames are ``sf + 1 … ef`` (1-based).

    Raises:
        DataError: unsafe or malformed pickle, or a malformed video (see :func:`pyannot_video`).
    """
    source = Path(path)
    if data is None:
        data = safe_load_pickle(source)
    if not is_pyannot_dict(data):
        raise DataError(f"{source}: not a UCF101-24 pyannot.pkl ({{video: {{numf, label, annotations}}}})")
    names = [str(v) for v in data]
    class_names = _class_list(names, classes)
    videos: dict[str, VideoAnnotation] = {}
    mismatch: list[str] = []
    skip = set(skip)
    for key, video in zip(data, names):
        if video in skip:
            continue
        videos[video], bad = pyannot_video(data[key], video, class_names, source)
        mismatch += bad
    return _finish(source, class_names, videos, mismatch, split_list, split, skip)
