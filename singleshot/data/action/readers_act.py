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
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from singleshot.data.action.readers_common import make_tube, summarize
from singleshot.data.action.safe_pickle import numpy_core_modules, safe_load_pickle
from singleshot.errors import DataError
from singleshot.structures import ActionAnnotations, Tube, VideoAnnotation

logger = logging.getLogger(__name__)

__all__ = ["is_act_dict", "read_act_pickle", "act_dict_to_annotations", "write_act_pickle"]

_REQUIRED = ("labels", "gttubes", "nframes", "resolution")


def is_act_dict(obj: Any) -> bool:
    """True when ``obj`` looks like an ACT ground-truth dict (has labels, gttubes, nframes)."""
    return isinstance(obj, Mapping) and all(k in obj for k in ("labels", "gttubes", "nframes"))


def _split_videos(value: Any, split: int, key: str, source: str) -> list[str]:
    """The videos of split ``split`` (1-based) from ``train_videos``/``test_videos``."""
    if value is None:
        return []
    splits = list(value)
    if splits and all(isinstance(v, str) for v in splits):  # a flat list: one split only
        splits = [splits]
    if not 1 <= split <= len(splits):
        raise DataError(f"{source}: '{key}' has {len(splits)} split(s); split={split} does not exist")
    return [str(v) for v in splits[split - 1]]


def act_dict_to_annotations(data: Mapping[str, Any], source: str, split: int = 1) -> ActionAnnotations:
    """Convert an unpickled ACT dict into ActionAnnotations (see the module docstring).

    Raises:
        DataError: a missing key, a tube array not shaped [n, 5], a label outside the class list,
            frames not strictly increasing or outside [1, nframes], or a video without nframes or
            resolution.
    """
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        raise DataError(f"{source}: not an ACT ground-truth pickle, missing key(s) {missing}")
    classes = [str(c) for c in data["labels"]]
    nframes: Mapping[Any, Any] = data["nframes"]
    resolution: Mapping[Any, Any] = data["resolution"]
    gttubes: Mapping[Any, Any] = data["gttubes"]
    unknown = [str(v) for v in gttubes if v not in nframes]
    if unknown:
        raise DataError(f"{source}: gttubes has videos without nframes: {summarize(unknown)}")
    videos: dict[str, VideoAnnotation] = {}
    for video_key, num in nframes.items():
        video = str(video_key)
        if video_key not in resolution:
            raise DataError(f"{source}: video {video!r} has no 'resolution' entry")
        h, w = (int(v) for v in resolution[video_key])
        num_frames = int(num)
        tubes: list[Tube] = []
        for label_key, arrays in sorted(gttubes.get(video_key, {}).items(), key=lambda kv: int(kv[0])):
            label = int(label_key)
            if not 0 <= label < len(classes):
                raise DataError(f"{source}: video {video!r} has tubes of label {label} outside [0, {len(classes) - 1}]")
            for k, arr in enumerate(arrays):
                a = np.asarray(arr, dtype=np.float64)
                if a.ndim != 2 or a.shape[1] != 5 or a.shape[0] == 0:
                    raise DataError(
                        f"{source}: video {video!r} label {label} tube {k}: expected an array [n, 5] "
                        f"(frame x1 y1 x2 y2), got shape {a.shape}"
                    )
                frames = np.rint(a[:, 0]).astype(np.int64)
                if np.any(np.diff(frames) <= 0) or frames[0] < 1:
                    raise DataError(
                        f"{source}: video {video!r} label {label} tube {k}: frames must be >= 1 and "
                        f"strictly increasing, got {frames.tolist()[:8]}..."
                    )
                if frames[-1] > num_frames:
                    warnings.warn(
                        f"{source}: video {video!r} label {label} tube {k} reaches frame "
                        f"{frames[-1]} beyond nframes = {num_frames}; kept as is",
                        stacklevel=3,
                    )
                tubes.append(make_tube(video, label, frames, a[:, 1:5]))
        videos[video] = VideoAnnotation(video=video, num_frames=num_frames, size=(h, w), tubes=tubes)
    train = _split_videos(data.get("train_videos"), split, "train_videos", source)
    test = _split_videos(data.get("test_videos"), split, "test_videos", source)
    absent = [v for v in train + test if v not in videos]
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


def read_act_pickle(path: str | Path, split: int = 1) -> ActionAnnotations:
    """Read an ACT ``*-GT.pkl``; ``split`` (1-based) picks the train/test lists (default split 1).

    Returns:
        ActionAnnotations with tubes (frames 1-based, boxes xyxy float32 pixels) per video.

    Raises:
        DataError: unreadable or unsafe pickle, or a malformed ACT dict (names the file).
    """
    data = safe_load_pickle(path)
    if not isinstance(data, Mapping):
        raise DataError(f"{path}: not an ACT ground-truth pickle (holds a {type(data).__name__})")
    return act_dict_to_annotations(data, str(path), split)


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
    path.write_bytes(buffer.getvalue())
    logger.info("wrote ACT ground truth for %d videos to %s", len(gttubes), path)
