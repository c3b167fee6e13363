"""The ACT tubelet cache of ``action val``: one ``<cache_dir>/<video>.npz`` per video, reused only
while everything its tubelets were computed from is unchanged.

Each file carries two stamps in its header:

* ``key`` (:func:`cache_key`): the model's tensors (or an exported graph's bytes) and every setting
  that changes a video's tubelets (K, input size, normalisation, motion stream, fusion, flow root,
  post-processing, linking candidates);
* ``data`` (:func:`video_data_key`): the video's own input files, by path, size and modification
  time (:func:`~singleshot.data.check.files_fingerprint`: its frame images under
  ``<root>/rgb-images/<video>``, and its flow images for a flow stream), with the frame count and
  frame size the annotations give it.

A file is reused only when both stamps equal the current ones, so a second dataset evaluated into the
same project (other paths), a re-extracted video (other sizes or times) or other weights recompute the
videos concerned; :func:`load_cached_tubelets` says how many were reused and why each other one was not.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from singleshot.atomic import atomic_write
from singleshot.data.action.frames import list_frame_files
from singleshot.data.check import files_fingerprint
from singleshot.export.onnx_runtime import OnnxModel
from singleshot.structures import ActionAnnotations
from singleshot.tasks.action.act_predictor import ACTPredictor
from singleshot.tasks.action.act_tubelets import VideoTubelets

logger = logging.getLogger(__name__)

__all__ = [
    "cache_key",
    "cache_path",
    "load_cached_tubelets",
    "load_tubelets",
    "onnx_path",
    "save_tubelets",
    "video_data_key",
]

_FORMAT = "singleshot-act-tubelets-1"

#: Why a cached file was not reused (the reasons :func:`load_tubelets` gives).
_STALE_MODEL = "made by other weights or settings"
_STALE_DATA = "made from other input files (another dataset, or frames changed since)"
_NO_DATA_STAMP = "written by an older singleshot, without a stamp of its input files"
_UNREADABLE = "unreadable"


def cache_key(predictor: ACTPredictor) -> str:
    """SHA-1 of the model's tensors and of every setting that changes a video's tubelets."""
    h = hashlib.sha1(_FORMAT.encode())
    for i, stream in enumerate(predictor.streams):
        onnx = onnx_path(stream.model)
        if onnx is not None:  # an exported graph: its file's bytes are its weights
            h.update(f"{i}.onnx".encode())
            h.update(Path(onnx).read_bytes())
            continue
        for name, t in sorted(stream.model.state_dict().items()):
            h.update(f"{i}.{name}".encode())
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
    norms = [(s.mean.flatten().tolist(), s.std.flatten().tolist(), s.bgr, s.antialias) for s in predictor.streams]
    settings = {
        "k": predictor.k,
        "size": predictor.size,
        "norms": norms,
        "motion": predictor.motion,
        "fusion": predictor.fusion_weight,
        "flow_root": str(predictor.flow_root),
        "post": repr(predictor.settings),
        "cand": repr(predictor.candidates),
    }
    h.update(json.dumps(settings, sort_keys=True).encode())
    return h.hexdigest()


def video_data_key(predictor: ACTPredictor, ann: ActionAnnotations, root: str | Path, video: str) -> str:
    """Fingerprint of what ``video``'s tubelets are computed from: its frame images under
    ``<root>/rgb-images/<video>`` (and its flow images under the flow root for a flow stream) by
    resolved path, size and modification time, plus the frame count and size of its annotation."""
    va = ann.videos[video]
    folders = [Path(root).resolve() / "rgb-images" / video]
    if predictor.motion == "flow" and predictor.flow_root is not None:
        folders.append(Path(predictor.flow_root).resolve() / video)
    files = [p for folder in folders for p in list_frame_files(folder).values()]
    extra = json.dumps(
        {"folders": [str(f) for f in folders], "num_frames": int(va.num_frames), "size": [int(v) for v in va.size]}
    )
    return files_fingerprint(files, extra)


def onnx_path(model: Any) -> str | None:
    """The file of a model run by onnxruntime (:class:`~singleshot.export.onnx_runtime.OnnxModel`), else None."""
    return str(model.path) if isinstance(model, OnnxModel) else None


def cache_path(cache_dir: Path, video: str) -> Path:
    """``<cache_dir>/<video>.npz`` (``video`` is ``Class/name``, so one folder per class)."""
    return cache_dir / f"{video}.npz"


def save_tubelets(path: Path, vt: VideoTubelets, key: str, data: str) -> None:
    """Write ``vt`` to ``path`` (npz) atomically, stamped with the model ``key`` and the ``data`` key."""
    arrays = {name: getattr(vt, name) for name in VideoTubelets.ARRAYS}
    header = json.dumps(
        {"key": key, "data": data, "video": vt.video, "num_frames": vt.num_frames, "size": list(vt.size), "k": vt.k}
    )

    def write(f: Any) -> None:
        buf = io.BytesIO()
        np.savez(buf, header=np.array(header), **arrays)
        f.write(buf.getvalue())

    atomic_write(path, write)


def _load(path: Path, key: str, data: str) -> tuple[VideoTubelets | None, str]:
    """(the cached tubelets, "") when ``path`` holds both stamps; else (None, why not; "" when absent)."""
    if not path.is_file():
        return None, ""
    try:
        with np.load(path, allow_pickle=False) as npz:
            header = json.loads(str(npz["header"]))
            if header.get("key") != key:
                return None, _STALE_MODEL
            if "data" not in header:
                return None, _NO_DATA_STAMP
            if header["data"] != data:
                return None, _STALE_DATA
            vt = VideoTubelets(header["video"], int(header["num_frames"]), tuple(header["size"]), int(header["k"]))
            for name in VideoTubelets.ARRAYS:
                setattr(vt, name, npz[name])
    except (OSError, ValueError, KeyError, TypeError) as e:
        logger.warning("%s: unreadable tubelet cache (%s); recomputing", path, e)
        return None, _UNREADABLE
    return vt, ""


def load_tubelets(path: Path, key: str, data: str) -> VideoTubelets | None:
    """The cached tubelets at ``path`` when its stamps are ``key`` (model and settings) and ``data``
    (:func:`video_data_key`); None when absent, stale or unreadable (the reason logged at debug level)."""
    vt, why = _load(path, key, data)
    if why:
        logger.debug("%s: %s; recomputing", path, why)
    return vt


def load_cached_tubelets(
    cache_dir: Path, key: str, data: dict[str, str], videos: Sequence[str]
) -> dict[str, VideoTubelets]:
    """The tubelets of those of ``videos`` the cache holds with both stamps current (``data``: video ->
    :func:`video_data_key`); logs how many were reused, on what grounds, and why the others were not."""
    out: dict[str, VideoTubelets] = {}
    why_not: Counter[str] = Counter()
    for v in videos:
        vt, why = _load(cache_path(cache_dir, v), key, data[v])
        if vt is not None:
            out[v] = vt
        else:
            why_not[why or "not cached yet"] += 1
    if out:
        logger.info(
            "tubelet cache %s: reusing %d of %d videos (same weights and settings; each video's frame files "
            "and annotated frame count unchanged since it was cached: same paths, sizes and times)",
            cache_dir,
            len(out),
            len(videos),
        )
    if why_not:
        reasons = "; ".join(f"{n} {why}" for why, n in why_not.most_common())
        logger.info(
            "tubelet cache %s: computing %d of %d videos (%s)", cache_dir, sum(why_not.values()), len(videos), reasons
        )
    return out
