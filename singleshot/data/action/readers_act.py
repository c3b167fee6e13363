"""ACT / MOC ground-truth pickles (``UCF101v2-GT.pkl``, ``JHMDB-GT.pkl``): reader and writer.

The file is a dict: ``labels`` (class names), ``gttubes`` ``{video: {label (0-based): [ndarray[n, 5]
rows (frame 1-based, x1, y1, x2, y2)]}}``, ``nframes`` ``{video: int}``, ``resolution``
``{video: (h, w)}``, ``train_videos`` / ``test_videos`` (one list of videos per split). ACT wrote
it with Python 2, so it is read with ``encoding="latin1"`` (through :mod:`safe_pickle`).
"""

from __future__ import annotations

import io
import logging
import pickle
import warnings
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from singleshot.atomic import write_bytes
from singleshot.data.action.readers_common import as_int, make_tube, summarize
from singleshot.data.action.safe_pickle import numpy_core_modules, safe_load_pickle
from singleshot.errors import DataError
from singleshot.structures import ActionAnnotations, Tube, VideoAnnotation

logger = logging.getLogger(__name__)

__all__ = ["act_dict_to_annotations", "act_header", "act_video", "is_act_dict", "read_act_pickle", "write_act_pickle"]

_REQUIRED = ("labels", "gttubes", "nframes", "resolution")


def is_act_dict(obj: Any) -> bool:
    """True when ``obj`` looks like an ACT ground-truth dict (has labels, gttubes, nframes)."""
    return isinstance(obj, Mapping) and all(k in obj for k in ("labels", "gttubes", "nframes"))


def split_videos(value: Any, split: int, key: str, source: str) -> list[str]:
    """The videos of split ``split`` (1-based) from ``train_videos``/``test_videos``."""
    if value is None:
        return []
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise DataError(f"{source}: '{key}' should be a list of video lists, got a {type(value).__name__}")
    splits = list(value)
    if splits and all(isinstance(v, str) for v in splits):  # a flat list: one split only
        splits = [splits]
    if not 1 <= split <= len(splits):
        raise DataError(f"{source}: '{key}' has {len(splits)} split(s); split={split} does not exist")
    chosen = splits[split - 1]
    if isinstance(chosen, (str, bytes)) or not isinstance(chosen, Sequence):
        raise DataError(f"{source}: '{key}' split {split} should be a list of videos, got {type(chosen).__name__}")
    return [str(v) for v in chosen]


def _mapping(data: Mapping[str, Any], key: str, source: str) -> Mapping[Any, Any]:
    value = data[key]
    if not isinstance(value, Mapping):
        raise DataError(f"{source}: '{key}' should be a dict keyed by video, got a {type(value).__name__}")
    return value


def act_video(
    video_key: Any,
    num: Any,
    resolution: Mapping[Any, Any],
    gttubes: Mapping[Any, Any],
    classes: Sequence[str],
    source: str,
) -> VideoAnnotation:
    """One video of an ACT dict: ``nframes`` entry ``num``, its ``resolution`` and ``gttubes`` entries.

    Returns:
        VideoAnnotation with tubes (frames 1-based, boxes xyxy float32 pixels).

    Raises:
        DataError: naming ``source`` and the video: no resolution, a frame count or resolution that
            is not an integer (pair), a tube array not shaped [n, 5] or holding a non-finite value,
            a label outside the class list, or frames not >= 1 and strictly increasing. A tube
            reaching past ``nframes`` is kept with a warning.
    """
    video = str(video_key)
    where = f"{source}: video {video!r}"
    if video_key not in resolution:
        raise DataError(f"{where} has no 'resolution' entry")
    res = resolution[video_key]
    try:
        h, w = (as_int(v, f"{where} resolution") for v in res)
    except (TypeError, ValueError) as exc:  # not iterable, or not two values
        if isinstance(exc, DataError):
            raise
        raise DataError(f"{where}: resolution should be (height, width), got {res!r}") from None
    num_frames = as_int(num, f"{where} nframes")
    if num_frames < 1 or h < 1 or w < 1:
        raise DataError(f"{where}: nframes {num_frames} and resolution {(h, w)} should be >= 1")
    per_label = gttubes.get(video_key, {})
    if not isinstance(per_label, Mapping):
        raise DataError(f"{where}: gttubes entry should be {{label: [tube arrays]}}, got {type(per_label).__name__}")
    tubes: list[Tube] = []
    labelled = sorted(((as_int(k, f"{where} label"), arrays) for k, arrays in per_label.items()), key=lambda kv: kv[0])
    for label, arrays in labelled:
        if not 0 <= label < len(classes):
            raise DataError(f"{where} has tubes of label {label} outside [0, {len(classes) - 1}]")
        if isinstance(arrays, np.ndarray) and arrays.ndim == 2:
            arrays = [arrays]
        if isinstance(arrays, (str, bytes)) or not isinstance(arrays, (Sequence, np.ndarray)):
            raise DataError(f"{where} label {label}: expected a list of tube arrays, got {type(arrays).__name__}")
        for k, arr in enumerate(arrays):
            try:
                a = np.asarray(arr, dtype=np.float64)
            except (TypeError, ValueError, OverflowError):
                raise DataError(f"{where} label {label} tube {k}: not an array of numbers") from None
            if a.ndim != 2 or a.shape[1] != 5 or a.shape[0] == 0:
                raise DataError(
                    f"{where} label {label} tube {k}: expected an array [n, 5] (frame x1 y1 x2 y2), got shape {a.shape}"
                )
            if not np.isfinite(a).all():
                raise DataError(f"{where} label {label} tube {k}: holds a non-finite value (NaN or infinity)")
            if np.any(np.abs(a[:, 0]) >= 2**31):
                raise DataError(f"{where} label {label} tube {k}: frame numbers out of range")
            frames = np.rint(a[:, 0]).astype(np.int64)
            if np.any(np.diff(frames) <= 0) or frames[0] < 1:
                raise DataError(
                    f"{where} label {label} tube {k}: frames must be >= 1 and strictly increasing, "
                    f"got {frames.tolist()[:8]}..."
                )
            if frames[-1] > num_frames:
                warnings.warn(
                    f"{where} label {label} tube {k} reaches frame {frames[-1]} beyond nframes = {num_frames}; kept as is",
                    stacklevel=3,
                )
            tubes.append(make_tube(video, label, frames, a[:, 1:5]))
    return VideoAnnotation(video=video, num_frames=num_frames, size=(h, w), tubes=tubes)


def act_header(data: Any, source: str) -> tuple[list[str], Mapping[Any, Any], Mapping[Any, Any], Mapping[Any, Any]]:
    """``(classes, nframes, resolution, gttubes)`` of an unpickled ACT dict, checked for shape.

    Raises:
        DataError: not a dict, a missing key, a field of the wrong type, or gttubes naming videos
            without nframes.
    """
    if not isinstance(data, Mapping):
        raise DataError(f"{source}: not an ACT ground-truth pickle (holds a {type(data).__name__})")
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        raise DataError(f"{source}: not an ACT ground-truth pickle, missing key(s) {missing}")
    labels = data["labels"]
    if isinstance(labels, (str, bytes)) or not isinstance(labels, (Sequence, np.ndarray)):
        raise DataError(f"{source}: 'labels' should be a list of class names, got a {type(labels).__name__}")
    classes = [str(c) for c in labels]
    nframes, resolution, gttubes = (_mapping(data, k, source) for k in ("nframes", "resolution", "gttubes"))
    unknown = [str(v) for v in gttubes if v not in nframes]
    if unknown:
        raise DataError(f"{source}: gttubes has videos without nframes: {summarize(unknown)}")
    return classes, nframes, resolution, gttubes


def act_dict_to_annotations(
    data: Mapping[str, Any], source: str, split: int = 1, skip: Collection[str] = ()
) -> ActionAnnotations:
    """Convert an unpickled ACT dict into ActionAnnotations (see the module docstring).

    Args:
        skip: videos to leave out (not read; dropped from the splits too), e.g. those a dataset
            check found faulty.

    Raises:
        DataError: a missing key, a field of the wrong type, a tube array not shaped [n, 5] or
            holding NaN, a label outside the class list, frames not strictly increasing or below 1,
            or a video without nframes or resolution (see :func:`act_video`).
    """
    classes, nframes, resolution, gttubes = act_header(data, source)
    skip = set(skip)
    videos: dict[str, VideoAnnotation] = {}
    for video_key, num in nframes.items():
        if str(video_key) in skip:
            continue
        videos[str(video_key)] = act_video(video_key, num, resolution, gttubes, classes, source)
    train = split_videos(data.get("train_videos"), split, "train_videos", source)
    test = split_videos(data.get("test_videos"), split, "test_videos", source)
    absent = [v for v in train + test if v not in videos and v not in skip]
    if absent:
        warnings.warn(
            f"{source}: {len(absent)} split videos have no annotation and were dropped: {summarize(absent)}",
            stacklevel=3,
        )
    train = [v for v in train if v in videos]
    test = [v for v in test if v in videos]
    return ActionAnnotations(
        classes=classes, videos=videos, train_videos=train, test_videos=test, keyframes=None, source=source
    )


def read_act_pickle(path: str | Path, split: int = 1, skip: Collection[str] = ()) -> ActionAnnotations:
    """Read an ACT ``*-GT.pkl``; ``split`` (1-based) picks the train/test lists (default split 1);
    the videos of ``skip`` are left out.

    Returns:
        ActionAnnotations with tubes (frames 1-based, boxes xyxy float32 pixels) per video.

    Raises:
        DataError: unreadable or unsafe pickle, or a malformed ACT dict (names the file).
    """
    return act_dict_to_annotations(safe_load_pickle(path), str(path), split, skip)


class _Py2CompatiblePickler(pickle._Pickler):  # type: ignore[name-defined,misc]
    """Protocol-2 pickler that names NumPy's reconstruction functions by their ``numpy.core``
    path, which both NumPy 1 and NumPy 2 resolve (NumPy 2 writes ``numpy._core``, which NumPy 1
    cannot load)."""

    def __init__(self, file: io.BytesIO) -> None:
        super().__init__(file, protocol=2)
        multiarray, _ = numpy_core_modules()
        self._renamed = {
            id(multiarray._reconstruct): b"numpy.core.multiarray\n_reconstruct\n",
            id(multiarray.scalar): b"numpy.core.multiarray\nscalar\n",
        }

    def save_global(self, obj: Any, name: str | None = None) -> None:
        ref = self._renamed.get(id(obj))
        if ref is None:
            super().save_global(obj, name)
            return
        self.write(pickle.GLOBAL + ref)
        self.memoize(obj)


def write_act_pickle(ann: ActionAnnotations, path: str | Path) -> None:
    """Write ``ann`` as an ACT ``*-GT.pkl`` (pickle protocol 2, tube arrays float32 [n, 5]).

    ``train_videos`` and ``test_videos`` are written as one split (a list holding one list).
    Python ints and strings only, apart from the tube arrays, so ACT's and MOC's own loaders read it.

    Raises:
        DataError: a tube label outside the class list or a tube whose frames and boxes disagree.
    """
    path = Path(path)
    gttubes: dict[str, dict[int, list[np.ndarray]]] = {}
    for video, va in ann.videos.items():
        per_label: dict[int, list[np.ndarray]] = {}
        for tube in va.tubes:
            if not 0 <= tube.label < len(ann.classes):
                raise DataError(f"{path}: video {video!r} has a tube of label {tube.label} outside the class list")
            if tube.frames.shape[0] != tube.boxes.shape[0]:
                raise DataError(
                    f"{path}: video {video!r} has a tube with {tube.frames.shape[0]} frames "
                    f"but {tube.boxes.shape[0]} boxes"
                )
            rows = np.concatenate(
                [np.asarray(tube.frames, np.float32)[:, None], np.asarray(tube.boxes, np.float32).reshape(-1, 4)],
                axis=1,
            )
            per_label.setdefault(int(tube.label), []).append(np.ascontiguousarray(rows, dtype=np.float32))
        gttubes[str(video)] = per_label
    data = {
        "labels": [str(c) for c in ann.classes],
        "gttubes": gttubes,
        "nframes": {str(v): int(va.num_frames) for v, va in ann.videos.items()},
        "train_videos": [[str(v) for v in ann.train_videos]],
        "test_videos": [[str(v) for v in ann.test_videos]],
        "resolution": {str(v): (int(va.size[0]), int(va.size[1])) for v, va in ann.videos.items()},
    }
    buffer = io.BytesIO()
    _Py2CompatiblePickler(buffer).dump(data)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes(path, buffer.getvalue())
    logger.info("wrote ACT ground truth for %d videos to %s", len(gttubes), path)
