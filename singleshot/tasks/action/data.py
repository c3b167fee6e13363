"""The ``action`` family's data: ground truth and frames of ``data=``, the videos of an evaluation,
the key frames of training, and the generated demo dataset.

Readers of the formats (YOWO layout, ACT ``*-GT.pkl``, UCF101-24's ``finalAnnots.mat`` /
``pyannot.pkl``) are :func:`~singleshot.data.action.readers.load_action_annotations`'s; the training
datasets are :mod:`singleshot.data.action.datasets`' (and the two-stream one of
:mod:`singleshot.tasks.action.act_two_stream`).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Collection, Sequence
from pathlib import Path

from torch import Tensor
from torch.utils.data import Dataset

from singleshot.data.action import synthetic
from singleshot.data.action.frames import read_clip_frames
from singleshot.data.action.readers import load_action_annotations
from singleshot.errors import ConfigError, DataError
from singleshot.metrics.frame_ap import evaluation_videos
from singleshot.metrics.mismatch import same_items
from singleshot.structures import ActionAnnotations
from singleshot.tasks.action.config import ActionOptions
from singleshot.tasks.common import ensure_dataset, require

logger = logging.getLogger(__name__)

__all__ = [
    "VideoFrames",
    "demo_dataset_key",
    "ensure_demo_dataset",
    "load_data",
    "train_keyframes",
    "training_videos",
]


def load_data(cfg: ActionOptions, skip: Collection[str] = ()) -> tuple[ActionAnnotations, Path]:
    """(ground truth of ``data`` without the videos of ``skip``, the folder holding its ``rgb-images/``)."""
    require(cfg, "data")
    path = Path(cfg.data)
    ann = load_action_annotations(
        path, split_list=cfg.split_list or None, split=cfg.split, classes=list(cfg.classes) or None, skip=skip
    )
    root = Path(cfg.frames) if cfg.frames else (path if path.is_dir() else path.parent)
    if not (root / "rgb-images").is_dir():
        raise DataError(f"{root / 'rgb-images'}: frame folder not found; pass frames=<folder holding rgb-images/>")
    return ann, root


class VideoFrames(Dataset):
    """Item ``i``: ``(i, prepared frames of video i (all of them, 1 … num_frames), frame size on disk (h, w))``.

    ``prepare`` maps Tensor[N, 3, H, W] uint8 to the predictor's stored form (e.g. resized uint8).
    """

    def __init__(
        self, ann: ActionAnnotations, frame_root: str | Path, videos: Sequence[str], prepare: Callable[[Tensor], Tensor]
    ) -> None:
        self.ann, self.root, self.videos, self.prepare = ann, Path(frame_root), list(videos), prepare

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, i: int) -> tuple[int, Tensor, tuple[int, int]]:
        va = self.ann.videos[self.videos[i]]
        frames = read_clip_frames(self.root, va.video, range(1, va.num_frames + 1))
        return i, self.prepare(frames), (int(frames.shape[-2]), int(frames.shape[-1]))


def training_videos(ann: ActionAnnotations) -> tuple[list[str], str | None]:
    """The videos training reads (the training split, else every video, warned about) and the
    warning (logged once, before training; None: none) when the evaluated videos (the test split,
    else every video) are training videos too: the metrics then measure fit. Nothing is held out in
    their stead."""
    videos = ann.train_videos or sorted(ann.videos)
    if not ann.train_videos:
        warnings.warn(f"{ann.source}: no training split; training on every video", stacklevel=3)
    hint = "give the annotations train/test split lists (split_list=, split=)"
    return videos, same_items(videos, evaluation_videos(ann), "videos", hint=hint)


def train_keyframes(ann: ActionAnnotations, videos: Sequence[str], step: int = 1) -> dict[str, list[int]]:
    """Every ``step``-th key frame of each video: its listed key frames (``ann.keyframes``), else its
    frames that carry a box."""
    if step < 1:
        raise ConfigError(f"keyframe_step: must be >= 1, got {step}")
    out = {}
    for v in videos:
        listed = ann.keyframes.get(v) if ann.keyframes is not None else None
        frames = (
            sorted(listed) if listed is not None else sorted({int(f) for t in ann.videos[v].tubes for f in t.frames})
        )
        out[v] = frames[::step]
    return out


def demo_dataset_key(
    num_train_videos: int, num_test_videos: int, size: Sequence[int], num_frames: Sequence[int], seed: int
) -> str:
    """``<train>-<test>-<h>x<w>-<lo>-<hi>-<seed>``: what makes one generated demo dataset."""
    h, w = (int(v) for v in size)
    lo, hi = (int(v) for v in num_frames)
    return f"{num_train_videos}-{num_test_videos}-{h}x{w}-{lo}-{hi}-{int(seed)}"


def ensure_demo_dataset(
    root: str | Path,
    num_train_videos: int,
    num_test_videos: int,
    size: Sequence[int] = (120, 160),
    num_frames: Sequence[int] = (24, 40),
    seed: int = 0,
) -> Path:
    """The synthetic action dataset of these arguments under ``root``
    (:func:`~singleshot.data.action.synthetic.generate_action_dataset`), written only when it is not
    already there (:func:`~singleshot.tasks.common.ensure_dataset`; its marker key is
    ``<train>-<test>-<h>x<w>-<lo>-<hi>-<seed>``). Returns ``root`` as a Path.
    """
    h, w = (int(v) for v in size)
    lo, hi = (int(v) for v in num_frames)
    key = demo_dataset_key(num_train_videos, num_test_videos, size, num_frames, seed)

    def write(folder: Path) -> None:
        synthetic.generate_action_dataset(
            folder, num_train_videos, num_test_videos, (h, w), (lo, hi), seed, overwrite=True
        )

    return ensure_dataset(root, key, write)
