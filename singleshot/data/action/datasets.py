"""Training and test datasets of the action family, over frames stored in the YOWO layout.

``frame_root`` is the folder holding ``rgb-images/<Class>/<video>/<frame:05d>.jpg`` (or ``.png``);
the ground truth comes from any :class:`~singleshot.structures.ActionAnnotations` (ACT pickle, YOWO
labels, UCF101-24 ``finalAnnots.mat``...). Boxes in the annotations refer to the video's ``size``;
when the frames on disk have another size the boxes are scaled to them (with a warning).

- :class:`YowoClipDataset`: one item per key frame, ``(clip Tensor[3, T, H, W] float32 normalised,
  TubeletTarget)`` with the key frame's boxes as ``[N, 1, 4]`` in network-input pixels. The clip
  ends at the key frame (:func:`~singleshot.data.action.clips.yowo_clip_frames`).
- :class:`ActTubeletDataset`: one item per K-frame window, ``(frames Tensor[K, 3, H, W] float32
  normalised, TubeletTarget)`` with ``[N, K, 4]`` boxes: the training windows are ACT's valid starts
  (:func:`~singleshot.data.action.clips.act_valid_starts`), the test windows every start.

Normalisation: ``(x / 255 - mean) / std`` per RGB channel (ImageNet's by default).

A key may be an ``int`` or an ``(index, sample_seed)`` pair as yielded by
:class:`~singleshot.engine.sampler.ResumableSampler`; with a pair, torch's CPU generator is seeded
with ``sample_seed`` for the read (and restored after), so the augmentation of a sample depends on
the seed only. Wrapping the dataset in :class:`~singleshot.engine.sampler.SeededDataset` has the
same effect.
"""

from __future__ import annotations

import abc
import logging
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from singleshot.data.action.clip_transforms import ActClipAugment, ClipResize, YowoClipAugment
from singleshot.data.action.clips import (
    act_all_starts,
    act_valid_starts,
    sample_clip_stride,
    tubelet_boxes,
    yowo_clip_frames,
)
from singleshot.data.action.frames import read_clip_frames
from singleshot.errors import DataError
from singleshot.structures import ActionAnnotations, TubeletTarget, VideoAnnotation

logger = logging.getLogger(__name__)

__all__ = [
    "FRAME_CACHE_BYTES",
    "frames_fit_in_memory",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "ActTubeletDataset",
    "YowoClipDataset",
    "collate_act",
    "collate_yowo",
]

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

ClipTransform = Callable[[Tensor, Tensor, Tensor], tuple[Tensor, Tensor, Tensor]]


#: Decoded training frames are kept in memory (per loader process) when they fit in this many bytes.
FRAME_CACHE_BYTES = 1 << 30


def frames_fit_in_memory(ann: ActionAnnotations, videos: Sequence[str], copies: int = 1) -> bool:
    """Whether ``copies`` uint8 RGB images per frame of ``videos`` fit in :data:`FRAME_CACHE_BYTES`
    (sizes from the annotations)."""
    total = sum(
        ann.videos[v].num_frames * 3 * max(1, ann.videos[v].size[0]) * max(1, ann.videos[v].size[1]) for v in videos
    )
    return total * copies <= FRAME_CACHE_BYTES


class _ActionFrames(Dataset, abc.ABC):
    """What both datasets share: video selection, seeded reads, frame reading, box scaling."""

    def __init__(
        self,
        ann: ActionAnnotations,
        frame_root: str | Path,
        videos: Sequence[str] | None,
        size: int | Sequence[int],
        train: bool,
        mean: Sequence[float],
        std: Sequence[float],
    ) -> None:
        if videos is None:
            videos = ann.train_videos if train else ann.test_videos
            if not videos:
                videos = list(ann.videos)
        unknown = [v for v in videos if v not in ann.videos]
        if unknown:
            raise DataError(f"{ann.source or 'annotations'}: videos not in the annotations: {unknown[:5]}")
        if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
            raise ValueError(f"mean and std need 3 values (std > 0), got {mean!r}, {std!r}")
        self.ann = ann
        self.classes = list(ann.classes)
        self.frame_root = Path(frame_root)
        self.videos = list(videos)
        self.size = (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))
        self.train = train
        self.mean = torch.tensor([float(m) for m in mean]).view(3, 1, 1)
        self.std = torch.tensor([float(s) for s in std]).view(3, 1, 1)
        self.samples: list[tuple[str, int]] = []
        self._warned: set[str] = set()

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[Tensor, TubeletTarget]:
        if not isinstance(key, tuple):
            return self._load(int(key))
        index, seed = key
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(int(seed))
            return self._load(int(index))

    @abc.abstractmethod
    def _load(self, index: int) -> tuple[Tensor, TubeletTarget]:
        """Item ``index`` (each dataset builds its own)."""

    #: Keep each decoded frame in memory (uint8, per loader process) after its first read: clips and
    #: windows overlap, so a frame is otherwise decoded many times an epoch. Off by default; training
    #: turns it on when :func:`frames_fit_in_memory`.
    cache_frames = False

    def _read(self, video: str, frames: Sequence[int]) -> Tensor:
        """Frames of a video as Tensor[T, 3, H, W] uint8; DataError naming a missing or bad file."""
        if not self.cache_frames:
            return read_clip_frames(self.frame_root, video, frames)
        cache: dict[tuple[str, int], Tensor] = self.__dict__.setdefault("_frames", {})
        missing = sorted({int(f) for f in frames if (video, int(f)) not in cache})
        if missing:
            for f, image in zip(missing, read_clip_frames(self.frame_root, video, missing)):
                cache[(video, f)] = image
        return torch.stack([cache[(video, int(f))] for f in frames])

    def _to_disk(self, va: VideoAnnotation, boxes: np.ndarray, disk: tuple[int, int]) -> Tensor:
        """Boxes of the annotation's frame size scaled to the frames read from disk."""
        out = torch.from_numpy(np.ascontiguousarray(boxes, dtype=np.float32))
        h, w = va.size
        if (h, w) == disk or h <= 0 or w <= 0:
            return out
        if va.video not in self._warned:
            self._warned.add(va.video)
            warnings.warn(
                f"{self.frame_root / 'rgb-images' / va.video}: frames are {disk[0]}x{disk[1]} but the "
                f"annotations of {self.ann.source or 'the dataset'} say {h}x{w}; boxes were scaled to the frames",
                stacklevel=3,
            )
        sy, sx = disk[0] / h, disk[1] / w
        return out * out.new_tensor([sx, sy, sx, sy])

    def _normalise(self, clip: Tensor) -> Tensor:
        """float [T, 3, H, W] in [0, 1] -> (x - mean) / std."""
        return (clip - self.mean) / self.std


class YowoClipDataset(_ActionFrames):
    """Key-frame clips for YOWO (see the module docstring).

    Args:
        ann: the ground truth.
        frame_root: folder holding ``rgb-images/``.
        videos: the videos to use (``None``: the split's videos, ``ann.train_videos`` or
            ``ann.test_videos``, or every video when that list is empty).
        clip_len: T, frames per clip.
        size: network input, ``int`` (square) or ``(height, width)``.
        train: training mode: augmentation (:class:`YowoClipAugment`) and a random stride in
            {1, 2}; else resize only and ``stride``.
        keyframes: ``{video: [1-based frame, ...]}`` the key frames to use (e.g. ``ann.keyframes``
            from a YOWO ``testlist.txt``); ``None``: every frame with at least one box.
        stride: temporal stride at test time (1).
        mean, std: normalisation (RGB, [0, 1] units).
        transform: replaces the default augmentation / resize; called as ``(clip uint8 [T, 3, H, W],
            boxes [N, 4], labels [N]) -> (float [T, 3, h, w] in [0, 1], boxes, labels)``.
        wrap: out-of-range clip frames wrap around the video (original YOWO code) instead of clamping.

    Item: ``(clip Tensor[3, T, h, w] float32, TubeletTarget(boxes [N, 1, 4] xyxy network-input
    pixels, labels [N], video, frames Tensor[1] = the key frame, size (h, w), orig_size = the frame
    size on disk))``. ``samples[i]`` is item ``i``'s ``(video, key frame)``.
    """

    def __init__(
        self,
        ann: ActionAnnotations,
        frame_root: str | Path,
        videos: Sequence[str] | None,
        clip_len: int,
        size: int | Sequence[int],
        train: bool,
        keyframes: dict[str, list[int]] | None = None,
        *,
        stride: int = 1,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        transform: ClipTransform | None = None,
        wrap: bool = False,
    ) -> None:
        super().__init__(ann, frame_root, videos, size, train, mean, std)
        if clip_len < 1 or stride < 1:
            raise ValueError(f"clip_len and stride must be >= 1, got {clip_len}, {stride}")
        self.clip_len, self.stride, self.wrap = int(clip_len), int(stride), wrap
        self.transform: ClipTransform = transform or (YowoClipAugment(self.size) if train else ClipResize(self.size))
        for video in self.videos:
            va = ann.videos[video]
            if keyframes is not None:
                frames = sorted({int(f) for f in keyframes.get(video, []) if 1 <= int(f) <= va.num_frames})
            else:
                annotated: set[int] = set()
                for tube in va.tubes:
                    annotated.update(int(f) for f in tube.frames if 1 <= f <= va.num_frames)
                frames = sorted(annotated)
            self.samples.extend((video, f) for f in frames)

    def _load(self, index: int) -> tuple[Tensor, TubeletTarget]:
        video, key = self.samples[index]
        va = self.ann.videos[video]
        stride = sample_clip_stride() if self.train else self.stride
        frames = yowo_clip_frames(key, self.clip_len, stride, va.num_frames, wrap=self.wrap)
        clip = self._read(video, frames)
        disk = (int(clip.shape[-2]), int(clip.shape[-1]))
        boxes_np, labels_np = va.boxes_at(key)
        boxes = self._to_disk(va, boxes_np, disk)
        clip, boxes, labels = self.transform(clip, boxes, torch.from_numpy(labels_np))
        out = self._normalise(clip).permute(1, 0, 2, 3).contiguous()
        target = TubeletTarget(
            boxes=boxes.reshape(-1, 1, 4).to(torch.float32),
            labels=labels.to(torch.int64),
            video=video,
            frames=torch.tensor([key], dtype=torch.int64),
            size=(int(out.shape[-2]), int(out.shape[-1])),
            orig_size=disk,
        )
        return out, target


class ActTubeletDataset(_ActionFrames):
    """K-frame windows for ACT (see the module docstring).

    Args:
        ann, frame_root, videos, size, mean, std: as in :class:`YowoClipDataset`.
        K: frames per tubelet.
        train: training mode: ACT's valid starts only and augmentation (:class:`ActClipAugment`);
            else every start ``1 ... num_frames - K + 1`` and resize only.
        transform: replaces the default; called as ``(clip uint8 [K, 3, H, W], boxes [N, K, 4],
            labels [N]) -> (float [K, 3, h, w] in [0, 1], boxes, labels)``.

    Item: ``(Tensor[K, 3, h, w] float32, TubeletTarget(boxes [N, K, 4] xyxy network-input pixels of
    the tubes covering all K frames, labels [N], video, frames Tensor[K], size, orig_size))``.
    """

    def __init__(
        self,
        ann: ActionAnnotations,
        frame_root: str | Path,
        videos: Sequence[str] | None,
        K: int,
        size: int | Sequence[int],
        train: bool,
        *,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        transform: ClipTransform | None = None,
    ) -> None:
        super().__init__(ann, frame_root, videos, size, train, mean, std)
        if K < 1:
            raise ValueError(f"K must be >= 1, got {K}")
        self.K = int(K)
        self.transform: ClipTransform = transform or (
            ActClipAugment(self.size, self.K, mean=mean) if train else ClipResize(self.size)
        )
        for video in self.videos:
            va = ann.videos[video]
            starts = act_valid_starts(va, self.K) if train else act_all_starts(va, self.K)
            self.samples.extend((video, s) for s in starts)

    def _load(self, index: int) -> tuple[Tensor, TubeletTarget]:
        video, start = self.samples[index]
        va = self.ann.videos[video]
        frames = list(range(start, start + self.K))
        clip = self._read(video, frames)
        disk = (int(clip.shape[-2]), int(clip.shape[-1]))
        boxes_np, labels_np = tubelet_boxes(va, start, self.K)
        boxes = self._to_disk(va, boxes_np, disk)
        clip, boxes, labels = self.transform(clip, boxes, torch.from_numpy(labels_np))
        out = self._normalise(clip)
        target = TubeletTarget(
            boxes=boxes.reshape(-1, self.K, 4).to(torch.float32),
            labels=labels.to(torch.int64),
            video=video,
            frames=torch.tensor(frames, dtype=torch.int64),
            size=(int(out.shape[-2]), int(out.shape[-1])),
            orig_size=disk,
        )
        return out, target


def _stack(name: str, batch: Sequence[tuple[Tensor, TubeletTarget]], dims: int) -> tuple[Tensor, list[TubeletTarget]]:
    if len(batch) == 0:
        raise ValueError(f"{name}: empty batch")
    clips = [item[0] for item in batch]
    targets = [item[1] for item in batch]
    shapes = {tuple(c.shape) for c in clips}
    if len(shapes) != 1 or clips[0].dim() != dims:
        listing = ", ".join(f"{t.video}@{t.frames[:1].tolist()}: {tuple(c.shape)}" for c, t in zip(clips, targets))
        raise ValueError(f"{name}: samples must share one {dims}-d shape to be stacked ({listing})")
    return torch.stack(clips, dim=0), targets


def collate_yowo(batch: Sequence[tuple[Tensor, TubeletTarget]]) -> tuple[Tensor, list[TubeletTarget]]:
    """``B`` YOWO items -> ``(clips Tensor[B, 3, T, H, W], list of B TubeletTarget)``."""
    return _stack("collate_yowo", batch, 4)


def collate_act(batch: Sequence[tuple[Tensor, TubeletTarget]]) -> tuple[Tensor, list[TubeletTarget]]:
    """``B`` ACT items -> ``(frames Tensor[B, K, 3, H, W], list of B TubeletTarget)``."""
    return _stack("collate_act", batch, 4)
