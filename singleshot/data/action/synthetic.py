"""Synthetic action dataset ("SynthAction") written in the real YOWO layout plus an ACT pickle.

``generate_action_dataset(root, num_train_videos, num_test_videos)`` writes::

    root/rgb-images/<Class>/<video>/00001.jpg ...  the frames (JPEG quality 90, 4:4:4)
    root/labels/<Class>/<video>/00009.txt         ``cls x1 y1 x2 y2`` per actor (class 1-based) on
                                                  every frame that has a box
    root/trainlist.txt, root/testlist.txt         every annotated frame of the split's videos,
                                                  ``Class/video/00009.txt``
    root/SynthAction-GT.pkl                       the same tubes as an ACT ``*-GT.pkl``

so :func:`~singleshot.data.action.readers.load_action_annotations` reads either the root or the
pickle and the dataset classes read the frames. Videos show shapes whose motion is the class
(``Bounce``, ``Pulse``, ``Slide``, ``Spin``; see :mod:`.synthetic_render`). Video ``i`` of the train
(test) split has class ``i % 4`` and is drawn from ``np.random.default_rng(np.random.SeedSequence(
[seed, 0 (1), i, height, width]))``: a function of the seed, split, index and frame size only, so
the same arguments give byte-identical files.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from singleshot.data.action.readers import write_act_pickle, write_yowo_labels
from singleshot.data.action.synthetic_render import SYNTH_ACTION_CLASSES, render_action_video
from singleshot.errors import DataError
from singleshot.structures import ActionAnnotations, Tube, VideoAnnotation

logger = logging.getLogger(__name__)

__all__ = ["SYNTH_ACTION_CLASSES", "SYNTH_PICKLE", "generate_action_dataset"]

#: File name of the ACT pickle written beside the YOWO layout.
SYNTH_PICKLE = "SynthAction-GT.pkl"

_OUTPUTS = ("rgb-images", "labels", "trainlist.txt", "testlist.txt", SYNTH_PICKLE)


def _prepare(root: Path, overwrite: bool) -> None:
    """Make ``root`` ready: refuse (or, with ``overwrite``, remove) the outputs of an earlier run."""
    present = [root / name for name in _OUTPUTS if (root / name).exists()]
    if present and not overwrite:
        raise DataError(
            f"{root}: already holds {', '.join(p.name for p in present)}; pass overwrite=True or choose a fresh folder"
        )
    for path in present:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    if present:
        logger.warning("%s: removed the earlier synthetic dataset (%s)", root, ", ".join(p.name for p in present))
    root.mkdir(parents=True, exist_ok=True)


def generate_action_dataset(
    root: str | Path,
    num_train_videos: int = 40,
    num_test_videos: int = 16,
    size: Sequence[int] = (120, 160),
    num_frames: Sequence[int] = (24, 40),
    seed: int = 0,
    *,
    overwrite: bool = False,
) -> ActionAnnotations:
    """Write the synthetic action dataset under ``root`` (see the module docstring).

    Args:
        root: output folder (created).
        num_train_videos, num_test_videos: videos per split (classes in turn).
        size: (height, width) of the frames, each >= 48.
        num_frames: inclusive range (lo, hi) of the frames per video, lo >= 12.
        seed: random seed.
        overwrite: remove the outputs of an earlier run in ``root`` first (else that is an error).

    Returns:
        The ground truth written: classes ``SYNTH_ACTION_CLASSES``, one tube per actor (frames
        1-based, boxes xyxy integer pixel edges), the train/test videos, and as ``keyframes``
        every annotated frame (the frames listed in ``trainlist.txt``/``testlist.txt``).

    Raises:
        DataError: ``root`` already holds a dataset and ``overwrite`` is False.
        ValueError: bad sizes or counts.
    """
    h, w = (int(v) for v in size)
    lo, hi = (int(v) for v in num_frames)
    if h < 48 or w < 48:
        raise ValueError(f"size must be at least 48x48 pixels, got {h}x{w}")
    if not 12 <= lo <= hi:
        raise ValueError(f"num_frames must be a range (lo, hi) with 12 <= lo <= hi, got {(lo, hi)}")
    if num_train_videos < 0 or num_test_videos < 0:
        raise ValueError(f"video counts must be >= 0, got {num_train_videos}, {num_test_videos}")
    root = Path(root)
    _prepare(root, overwrite)
    classes = list(SYNTH_ACTION_CLASSES)
    for name in classes:  # every class folder exists, so the YOWO reader finds the full class list
        (root / "rgb-images" / name).mkdir(parents=True, exist_ok=True)
    videos: dict[str, VideoAnnotation] = {}
    splits: dict[str, list[str]] = {"train": [], "test": []}
    index = 0
    for split, code, count in (("train", 0, num_train_videos), ("test", 1, num_test_videos)):
        for i in range(count):
            rng = np.random.default_rng(np.random.SeedSequence([int(seed), code, i, h, w]))
            label = i % len(classes)
            index += 1
            name = f"{classes[label]}/v_{classes[label]}_{index:04d}"
            length = int(rng.integers(lo, hi + 1))
            frames, actors = render_action_video(rng, (h, w), length, label)
            folder = root / "rgb-images" / name
            folder.mkdir(parents=True, exist_ok=True)
            for f, frame in enumerate(frames, start=1):
                Image.fromarray(frame).save(folder / f"{f:05d}.jpg", quality=90, subsampling=0)
            tubes = [
                Tube(
                    video=name,
                    label=a.label,
                    frames=np.arange(a.start, a.end + 1, dtype=np.int64),
                    boxes=a.boxes.astype(np.float32),
                    score=1.0,
                    frame_scores=np.ones(len(a.boxes), np.float32),
                )
                for a in actors
            ]
            tubes.sort(key=lambda t: (t.label, t.start))
            videos[name] = VideoAnnotation(video=name, num_frames=length, size=(h, w), tubes=tubes)
            splits[split].append(name)
    keyframes = {v: sorted({int(f) for t in va.tubes for f in t.frames.tolist()}) for v, va in videos.items()}
    ann = ActionAnnotations(
        classes=classes,
        videos=videos,
        train_videos=splits["train"],
        test_videos=splits["test"],
        keyframes=keyframes,
        source=str(root),
    )
    write_yowo_labels(ann, root)
    write_act_pickle(ann, root / SYNTH_PICKLE)
    logger.info("wrote %d + %d synthetic action videos under %s", num_train_videos, num_test_videos, root)
    return ann
