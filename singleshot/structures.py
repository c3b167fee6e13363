"""Plain containers for targets and predictions.

Coordinates are absolute pixels, ``xyxy`` (x1, y1, x2, y2), float32, in the frame of the image the
container belongs to (``size``). Labels are 0-based indices into the dataset's class list: the
background class exists only inside matchers, losses and model heads (index 0 there).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np
import torch
from torch import Tensor


def _empty_boxes() -> Tensor:
    return torch.zeros((0, 4), dtype=torch.float32)


def _empty_long() -> Tensor:
    return torch.zeros((0,), dtype=torch.int64)


def _empty_bool() -> Tensor:
    return torch.zeros((0,), dtype=torch.bool)


def _rebuild(cls: type, values: dict[str, Any]) -> Any:
    """Inverse of :meth:`_PickledByValue.__reduce__`: NumPy arrays marked as tensors become tensors again."""
    out = {k: torch.from_numpy(v[1]) if isinstance(v, tuple) and v[:1] == ("tensor",) else v for k, v in values.items()}
    return cls(**out)


class _PickledByValue:
    """Pickles the container's CPU tensors by value (as NumPy arrays) instead of through shared memory.

    A DataLoader worker hands every tensor of a batch to the main process as its own shared-memory
    file descriptor, about 1 ms each on the receiving side; a batch of 8 ACT targets is 25 tensors
    (~34 ms, on the training loop's critical path). Targets are a few hundred bytes, so sending them
    inside the message is much cheaper. Tensors on other devices, and the big image batch (not a
    container), still go the usual way.
    """

    def __reduce__(self) -> tuple[Any, ...]:
        values: dict[str, Any] = {}
        for f in fields(self):  # type: ignore[arg-type]
            v = getattr(self, f.name)
            if isinstance(v, Tensor) and v.device.type == "cpu" and not v.requires_grad:
                v = ("tensor", v.contiguous().numpy())
            values[f.name] = v
        return (_rebuild, (type(self), values))


@dataclass
class BoxTarget(_PickledByValue):
    """Ground truth of one image.

    Attributes:
        boxes: Tensor[N, 4] float32, xyxy pixels in an image of ``size``.
        labels: Tensor[N] int64, 0-based class indices.
        difficult: Tensor[N] bool, VOC ``difficult`` flags (or COCO ``iscrowd``): such boxes are
            neither counted as positives nor punished by the evaluators.
        image_id: the image's identifier (VOC file stem, or str of the COCO image id).
        size: (height, width) of the image the boxes refer to.
        orig_size: (height, width) of the image as stored on disk.
    """

    boxes: Tensor = field(default_factory=_empty_boxes)
    labels: Tensor = field(default_factory=_empty_long)
    difficult: Tensor = field(default_factory=_empty_bool)
    image_id: str = ""
    size: tuple[int, int] = (0, 0)
    orig_size: tuple[int, int] = (0, 0)

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    def to(self, device: torch.device | str) -> BoxTarget:
        return replace(
            self,
            boxes=self.boxes.to(device),
            labels=self.labels.to(device),
            difficult=self.difficult.to(device),
        )


@dataclass
class Detections(_PickledByValue):
    """Detections of one image, sorted by descending score.

    Attributes:
        boxes: Tensor[N, 4] float32, xyxy pixels in the original image.
        scores: Tensor[N] float32 in [0, 1].
        labels: Tensor[N] int64, 0-based class indices.
        image_id: identifier of the image.
    """

    boxes: Tensor = field(default_factory=_empty_boxes)
    scores: Tensor = field(default_factory=lambda: torch.zeros((0,), dtype=torch.float32))
    labels: Tensor = field(default_factory=_empty_long)
    image_id: str = ""

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    def to(self, device: torch.device | str) -> Detections:
        return replace(self, boxes=self.boxes.to(device), scores=self.scores.to(device), labels=self.labels.to(device))


# --- action family -------------------------------------------------------------------------------
# Ground truth and linked tubes are held in NumPy: they come from files, feed the evaluators and are
# never differentiated. Frame numbers are 1-based, as in every dataset of the family.


@dataclass
class Tube:
    """A tube: one box per frame of a video, for one action instance (ground truth or detected).

    Attributes:
        video: the video's name, ``"Class/video"``.
        label: 0-based class index.
        frames: ndarray[T] int64, 1-based frame numbers, strictly increasing.
        boxes: ndarray[T, 4] float32, xyxy pixels in the video's frame size.
        score: the tube's score (1.0 for ground truth).
        frame_scores: ndarray[T] float32 per-frame scores (ones for ground truth).
    """

    video: str
    label: int
    frames: np.ndarray
    boxes: np.ndarray
    score: float = 1.0
    frame_scores: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.frames.shape[0])

    @property
    def start(self) -> int:
        """First frame (1-based)."""
        return int(self.frames[0])

    @property
    def end(self) -> int:
        """Last frame (1-based, inclusive)."""
        return int(self.frames[-1])


@dataclass
class VideoAnnotation:
    """Ground truth of one video.

    Attributes:
        video: ``"Class/video"``.
        num_frames: number of frames on disk (frames are 1 … num_frames).
        size: (height, width) of the frames the boxes refer to.
        tubes: the ground-truth tubes (a video may hold several actors).
    """

    video: str
    num_frames: int
    size: tuple[int, int]
    tubes: list[Tube] = field(default_factory=list)

    def boxes_at(self, frame: int) -> tuple[np.ndarray, np.ndarray]:
        """Ground truth on one frame: (boxes ndarray[N, 4] float32 xyxy pixels, labels ndarray[N] int64)."""
        boxes, labels = [], []
        for tube in self.tubes:
            hit = np.nonzero(tube.frames == frame)[0]
            if hit.size:
                boxes.append(tube.boxes[hit[0]])
                labels.append(tube.label)
        if not boxes:
            return np.zeros((0, 4), np.float32), np.zeros((0,), np.int64)
        return np.stack(boxes).astype(np.float32), np.asarray(labels, np.int64)


@dataclass
class ActionAnnotations:
    """Ground truth of an action dataset, whatever its on-disk format (ACT pickle, YOWO layout,
    UCF101-24 ``finalAnnots.mat`` / ``pyannot.pkl``).

    Attributes:
        classes: class names; labels index this list.
        videos: ``{"Class/video": VideoAnnotation}``.
        train_videos / test_videos: the split's video names (empty when the source has none).
        keyframes: optional ``{"Class/video": [1-based frame, ...]}`` of the annotated key frames
            listed by a YOWO ``testlist.txt``/``trainlist.txt`` (None when the source has no list).
        source: the file or folder read, for messages.
    """

    classes: list[str]
    videos: dict[str, VideoAnnotation]
    train_videos: list[str] = field(default_factory=list)
    test_videos: list[str] = field(default_factory=list)
    keyframes: dict[str, list[int]] | None = None
    source: str = ""


@dataclass
class FrameDets:
    """Per-frame detections of many videos as flat arrays, one row per detection.

    Attributes:
        videos: video names (``"Class/video"``); ``video`` indexes this list.
        video: int64 [M] index into ``videos``.
        frame: int64 [M] 1-based frame numbers.
        label: int64 [M] 0-based class indices.
        score: float64 [M].
        boxes: float64 [M, 4] xyxy pixels in the video's own frame size.
    """

    videos: list[str]
    video: np.ndarray
    frame: np.ndarray
    label: np.ndarray
    score: np.ndarray
    boxes: np.ndarray

    def __post_init__(self) -> None:
        self.videos = list(self.videos)
        self.video = np.asarray(self.video, dtype=np.int64).reshape(-1)
        self.frame = np.asarray(self.frame, dtype=np.int64).reshape(-1)
        self.label = np.asarray(self.label, dtype=np.int64).reshape(-1)
        self.score = np.asarray(self.score, dtype=np.float64).reshape(-1)
        self.boxes = np.asarray(self.boxes, dtype=np.float64).reshape(-1, 4)
        n = self.video.shape[0]
        if not (self.frame.shape[0] == self.label.shape[0] == self.score.shape[0] == self.boxes.shape[0] == n):
            raise ValueError("FrameDets arrays differ in length")
        if n and (self.video.min() < 0 or self.video.max() >= len(self.videos)):
            raise ValueError(f"FrameDets video index outside 0..{len(self.videos) - 1}")

    def __len__(self) -> int:
        return int(self.video.shape[0])

    @classmethod
    def from_array(cls, rows: np.ndarray, videos: Sequence[str]) -> FrameDets:
        """From ACT's ``[M, 8]`` rows ``(video_idx, frame, label, score, x1, y1, x2, y2)``,
        ``video_idx`` indexing ``videos``."""
        rows = np.asarray(rows, dtype=np.float64)
        if rows.ndim != 2 or rows.shape[1] != 8:
            raise ValueError(f"detection rows must have shape [M, 8], not {list(rows.shape)}")
        return cls(
            list(videos),
            rows[:, 0].astype(np.int64),
            rows[:, 1].astype(np.int64),
            rows[:, 2].astype(np.int64),
            rows[:, 3],
            rows[:, 4:8],
        )

    def to_array(self) -> np.ndarray:
        """float64 [M, 8] rows ``(video_idx, frame, label, score, x1, y1, x2, y2)``."""
        cols = (self.video[:, None], self.frame[:, None], self.label[:, None], self.score[:, None], self.boxes)
        return np.concatenate(cols, axis=1).astype(np.float64)

    def select(self, mask: np.ndarray) -> FrameDets:
        """The rows where ``mask`` (bool [M] or int indices) holds, same video list."""
        return FrameDets(
            self.videos, self.video[mask], self.frame[mask], self.label[mask], self.score[mask], self.boxes[mask]
        )

    def reindex(self, videos: Sequence[str]) -> tuple[FrameDets, np.ndarray]:
        """Re-express onto another video list.

        Returns:
            (detections whose video is in ``videos``, indexed into it; bool [M] mask of the rows kept).
        """
        position = {v: i for i, v in enumerate(videos)}
        lut = np.array([position.get(v, -1) for v in self.videos], dtype=np.int64)
        new = lut[self.video] if len(self) else np.zeros(0, dtype=np.int64)
        keep = new >= 0
        out = self.select(keep)
        return replace(out, videos=list(videos), video=new[keep]), keep


def as_frame_dets(detections: Any, videos: Sequence[str]) -> FrameDets:
    """Normalise the accepted detection forms to :class:`FrameDets`.

    Args:
        detections: a FrameDets; an array [M, 8] of ACT rows whose first column indexes ``videos``;
            a mapping ``{(video, frame): Detections | (boxes [N, 4], scores [N], labels [N])}``; or
            a list of records ``{"video", "frame", "label", "score", "box"}`` (the frames JSON form).
        videos: the video list that array rows index.
    """
    if isinstance(detections, FrameDets):
        return detections
    if isinstance(detections, Mapping):
        names: dict[str, int] = {}
        parts: list[tuple[np.ndarray, ...]] = []
        for (video, frame), value in detections.items():
            if isinstance(value, Detections):
                boxes, scores, labels = (t.detach().cpu().numpy() for t in (value.boxes, value.scores, value.labels))
            else:
                boxes, scores, labels = (np.asarray(x) for x in value)
            n = np.asarray(scores).reshape(-1).shape[0]
            vi = names.setdefault(str(video), len(names))
            boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
            parts.append(
                (
                    np.full(n, vi),
                    np.full(n, int(frame)),
                    np.asarray(labels).reshape(-1),
                    np.asarray(scores).reshape(-1),
                    boxes,
                )
            )
        if not parts:
            return FrameDets(list(names), *(np.zeros(0),) * 4, np.zeros((0, 4)))
        return FrameDets(list(names), *(np.concatenate([p[i] for p in parts]) for i in range(5)))
    if isinstance(detections, list) and detections and isinstance(detections[0], dict):
        index: dict[str, int] = {}
        vid = [index.setdefault(str(d["video"]), len(index)) for d in detections]
        return FrameDets(
            list(index),
            vid,
            [d["frame"] for d in detections],
            [d["label"] for d in detections],
            [d["score"] for d in detections],
            [d["box"] for d in detections],
        )
    return FrameDets.from_array(np.asarray(detections), videos)


@dataclass
class TubeletTarget(_PickledByValue):
    """Ground truth of one K-frame training sample (ACT) or one clip's key frame (YOWO, K = 1).

    Attributes:
        boxes: Tensor[N, K, 4] float32, xyxy pixels per frame of the sample.
        labels: Tensor[N] int64, 0-based class indices.
        video: the video's name; frames: Tensor[K] int64, the sample's 1-based frame numbers.
        size: (height, width) of the network input the boxes refer to.
        orig_size: (height, width) of the frames on disk.
    """

    boxes: Tensor = field(default_factory=lambda: torch.zeros((0, 1, 4), dtype=torch.float32))
    labels: Tensor = field(default_factory=_empty_long)
    video: str = ""
    frames: Tensor = field(default_factory=_empty_long)
    size: tuple[int, int] = (0, 0)
    orig_size: tuple[int, int] = (0, 0)

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    def to(self, device: torch.device | str) -> TubeletTarget:
        return replace(self, boxes=self.boxes.to(device), labels=self.labels.to(device))


# --- grasp family --------------------------------------------------------------------------------


#: Input channels of each grasp input kind: ``depth`` 1, ``rgb`` 3, ``rgbd`` 4 (depth first, then RGB).
GRASP_INPUT_CHANNELS: dict[str, int] = {"depth": 1, "rgb": 3, "rgbd": 4}


@dataclass
class Grasps(_PickledByValue):
    """Grasp rectangles of one depth image (ground truth or predictions).

    Attributes:
        grasps: Tensor[N, 5] float32 ``(cx, cy, angle, opening, jaw)`` in pixels of an image of
            ``size``; ``angle`` in radians, counter-clockwise on screen: the opening runs along
            (cos θ, −sin θ) in (x right, y down) pixels. ``opening`` is the extent along that
            direction (the gripper's opening), ``jaw`` the extent across it.
        scores: Tensor[N] float32 quality (ones for ground truth), predictions sorted descending.
        image_id: the file stem (e.g. ``"pcd0100"``).
        size: (height, width) of the image the grasps refer to.
    """

    grasps: Tensor = field(default_factory=lambda: torch.zeros((0, 5), dtype=torch.float32))
    scores: Tensor = field(default_factory=lambda: torch.zeros((0,), dtype=torch.float32))
    image_id: str = ""
    size: tuple[int, int] = (0, 0)

    def __len__(self) -> int:
        return int(self.grasps.shape[0])

    def to(self, device: torch.device | str) -> Grasps:
        return replace(self, grasps=self.grasps.to(device), scores=self.scores.to(device))
