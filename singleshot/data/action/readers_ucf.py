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
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from singleshot.data.action.readers_common import apply_split_list, make_tube, read_classes
from singleshot.data.action.safe_pickle import safe_load_pickle
from singleshot.errors import DataError
from singleshot.structures import ActionAnnotations, Tube, VideoAnnotation

logger = logging.getLogger(__name__)

__all__ = ["UCF24_SIZE", "is_pyannot_dict", "read_ucf24_mat", "read_ucf24_pyannot", "xywh1_to_xyxy"]

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
        apply_split_list(ann, split_list)
    return ann


def _field(record: Any, name: str, source: Path, video: str) -> np.ndarray:
    try:
        return np.asarray(record[name])
    except (ValueError, KeyError, IndexError):
        raise DataError(f"{source}: video {video!r} has no field {name!r}") from None


def _scalar(value: np.ndarray, source: Path, what: str) -> int:
    flat = np.asarray(value).ravel()
    if flat.size != 1:
        raise DataError(f"{source}: {what} should hold one number, got {flat.size}")
    return int(flat[0])


def read_ucf24_mat(
    path: str | Path,
    split_list: str | Path | None = None,
    split: int = 1,
    classes: Sequence[str] | str | Path | None = None,
) -> ActionAnnotations:
    """Read ``finalAnnots.mat`` (struct array ``annot`` with ``name``, ``num_imgs``, ``tubes``).

    Args:
        path: the .mat file. split_list: a test list (see module docstring). split: which
            ``testlistNN.txt`` to look for beside the file when split_list is None.
        classes: class names (list or file); default: the sorted class folders of the videos.

    Returns:
        ActionAnnotations, frames 1-based, boxes xyxy float32 in 320x240 pixels.

    Raises:
        DataError: not a MATLAB file, no ``annot`` struct, a tube whose box count is not
            ``ef - sf + 1``, or a class id outside [1, C].
    """
    import scipy.io

    source = Path(path)
    try:
        mat = scipy.io.loadmat(str(source))
    except FileNotFoundError:
        raise DataError(f"{source}: annotation file not found") from None
    except (ValueError, TypeError, OSError, NotImplementedError) as exc:
        raise DataError(f"{source}: cannot read as a MATLAB file ({exc})") from exc
    if "annot" not in mat:
        raise DataError(f"{source}: no 'annot' struct (keys: {sorted(k for k in mat if not k.startswith('__'))})")
    records = np.asarray(mat["annot"]).ravel()
    names = [str(np.asarray(r["name"]).ravel()[0]) for r in records]
    class_names = _class_list(names, classes)
    num_classes = len(class_names)
    # First pass: validate and collect; the box conversion then runs once over all boxes.
    pending: list[tuple[str, int, list[tuple[int, int, int]]]] = []
    raws: list[np.ndarray] = []
    mismatch: list[str] = []
    for record, video in zip(records, names):
        num_frames = _scalar(_field(record, "num_imgs", source, video), source, f"{video} num_imgs")
        spans: list[tuple[int, int, int]] = []
        for k, t in enumerate(_field(record, "tubes", source, video).ravel()):
            sf = _scalar(t["sf"], source, f"{video} tube {k} sf")
            ef = _scalar(t["ef"], source, f"{video} tube {k} ef")
            cid = _scalar(t["class"], source, f"{video} tube {k} class")
            raw = np.asarray(t["boxes"]).reshape(-1, 4)
            if raw.shape[0] != ef - sf + 1:
                raise DataError(f"{source}: video {video!r} tube {k}: {raw.shape[0]} boxes for frames {sf}..{ef}")
            if not 1 <= cid <= num_classes:
                raise DataError(f"{source}: video {video!r} tube {k}: class id {cid} outside [1, {num_classes}]")
            if class_names[cid - 1] != video.split("/", 1)[0]:
                mismatch.append(f"{video} class id {cid}")
            spans.append((sf, ef, cid - 1))
            raws.append(raw)
        pending.append((video, num_frames, spans))
    xyxy = xywh1_to_xyxy(np.concatenate(raws)) if raws else np.zeros((0, 4), np.float32)
    videos: dict[str, VideoAnnotation] = {}
    offset = 0
    for video, num_frames, spans in pending:
        tubes: list[Tube] = []
        for sf, ef, label in spans:
            n = ef - sf + 1
            tubes.append(make_tube(video, label, np.arange(sf, ef + 1), xyxy[offset : offset + n]))
            offset += n
        videos[video] = VideoAnnotation(video=video, num_frames=num_frames, size=UCF24_SIZE, tubes=tubes)
    return _finish(source, class_names, videos, mismatch, split_list, split)


def is_pyannot_dict(obj: Any) -> bool:
    """True when ``obj`` looks like ``pyannot.pkl``: ``{video: {numf, label, annotations}}``."""
    if not isinstance(obj, Mapping) or not obj:
        return False
    first = next(iter(obj.values()))
    return isinstance(first, Mapping) and "annotations" in first and "numf" in first


def read_ucf24_pyannot(
    path: str | Path,
    split_list: str | Path | None = None,
    split: int = 1,
    classes: Sequence[str] | str | Path | None = None,
    data: Mapping[Any, Any] | None = None,
) -> ActionAnnotations:
    """Read ``pyannot.pkl`` (``{video: {numf, label, annotations: [{label, sf, ef, boxes}]}}``).

    Same arguments and result as :func:`read_ucf24_mat`; ``data`` is the already-unpickled dict
    when the caller has it. Tube frames are ``sf + 1 … ef`` (1-based).

    Raises:
        DataError: unsafe or malformed pickle, a box count other than ``ef - sf``, or a label
            outside [0, C - 1].
    """
    source = Path(path)
    if data is None:
        data = safe_load_pickle(source)
    if not is_pyannot_dict(data):
        raise DataError(f"{source}: not a UCF101-24 pyannot.pkl ({{video: {{numf, label, annotations}}}})")
    names = [str(v) for v in data]
    class_names = _class_list(names, classes)
    num_classes = len(class_names)
    videos: dict[str, VideoAnnotation] = {}
    mismatch: list[str] = []
    for key, video in zip(data, names):
        entry = data[key]
        try:
            num_frames = int(entry["numf"])
            annotations = list(entry["annotations"])
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"{source}: video {video!r} lacks numf/annotations ({exc})") from None
        tubes: list[Tube] = []
        for k, a in enumerate(annotations):
            try:
                sf, ef, label = int(a["sf"]), int(a["ef"]), int(a["label"])
                raw = np.asarray(a["boxes"]).reshape(-1, 4)
            except (KeyError, TypeError, ValueError) as exc:
                raise DataError(f"{source}: video {video!r} annotation {k} is malformed ({exc})") from None
            if raw.shape[0] != ef - sf:
                raise DataError(
                    f"{source}: video {video!r} annotation {k}: {raw.shape[0]} boxes for sf={sf}, ef={ef} "
                    "(expected ef - sf)"
                )
            if not 0 <= label < num_classes:
                raise DataError(
                    f"{source}: video {video!r} annotation {k}: label {label} outside [0, {num_classes - 1}]"
                )
            if class_names[label] != video.split("/", 1)[0]:
                mismatch.append(f"{video} label {label}")
            tubes.append(make_tube(video, label, np.arange(sf + 1, ef + 1), xywh1_to_xyxy(raw)))
        videos[video] = VideoAnnotation(video=video, num_frames=num_frames, size=UCF24_SIZE, tubes=tubes)
    return _finish(source, class_names, videos, mismatch, split_list, split)
