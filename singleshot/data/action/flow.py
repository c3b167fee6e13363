"""Optical-flow images in ACT's format: dense flow computed with OpenCV, encoded as 8-bit 3-channel
images, and the FLOW5 stacks ACT's flow stream reads.

**Encoding.** ACT and MOC-Detector read 3-channel flow JPEGs (their ``FlowBrox04`` / ``brox-images``
folders: x, y and magnitude around 128; MOC's sampler negates x on a flip as ``255 - x``). The
scale of those files is not documented; the one written here is that of the action-tube work ACT
builds on, Gkioxari & Malik's ``compute_flow.m`` (gkioxari/ActionTubes, ``compute_OF/``), which maps a
flow (x, y) in pixels per frame to a uint8 image with ``max_flow = 8``, ``scale = 128 / max_flow = 16``:

* channel 0: ``x * 16 + 128``, channel 1: ``y * 16 + 128``, channel 2: ``|(x, y)| * 16 + 128``,
* each clipped to [0, 255] and rounded to the nearest integer (MATLAB's ``uint8``),

so flows beyond ±8 px/frame saturate and the magnitude channel lies in [128, 255]. The channels are
written in that order as an RGB JPEG; read back as RGB (as :func:`~singleshot.data.action.frames.read_frame`
does) channel 0 is x, the one a horizontal flip negates (``255 - x``; MOC-Detector's sampler does
the same on its BGR-read channel 2).

**Direction.** Flow image ``t`` (1-based) is the flow from frame ``t`` to frame ``t + 1``: a point at
``p`` in frame t is at ``p + flow(p)`` in frame t + 1, x to the right and y down. The last frame has
no successor and repeats its predecessor's flow image; a one-frame video gets a zero flow (128 in
every channel).

**Stacks (FLOW5).** ACT's flow stream sees, for frame t of a tubelet, the ``n = 5`` flow images
``t … t + 4`` concatenated along channels (15 channels), indices clamped at the video's last frame
(ACT's ``extract_tubelets``: ``min(nframes, i + j + iflow)``; MOC-Detector's sampler reads flow
images ``min(frame + i, nframes)`` for ``i < K + ninput - 1`` and gives frame ``i`` of the window the
``ninput`` images from ``i``). A K-frame window starting at ``s`` thus needs the ``K + n - 1`` flow
images :func:`flow_stack_indices` lists, and :func:`stack_flow` turns them into K stacks.

**Methods** (``method=``): ``dis`` — OpenCV's DIS flow (Kroeger et al. 2016), preset ``medium``, the
default; ``tvl1`` — OpenCV-contrib's dual TV-L1 (Zach et al. 2007; the flow of TSN and I3D).
Measured with ``benchmarks/bench_flow.py`` on this project's 2-core CPU (one thread, median per
frame pair, three runs on a machine shared with other jobs): DIS 2.3–2.7 ms at 160x120 and
8.6–16 ms at 320x240 (UCF101's size), TV-L1 232–589 ms and 0.69–1.9 s, 80 to 200 times slower;
after encoding, both recover a (3, -2) px translation to within 1/8 px. Brox et al. 2004 (ACT's
flow) has no CPU implementation in OpenCV.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

import numpy as np
import torch
from torch import Tensor

from singleshot.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

__all__ = [
    "FLOW_CENTRE",
    "FLOW_METHODS",
    "FLOW_SCALE",
    "check_flow_stack",
    "decode_flow",
    "encode_flow",
    "flow_estimator",
    "flow_stack_indices",
    "stack_ahead",
    "stack_flow",
    "video_flow_images",
]

#: ``128 / max_flow`` with ``max_flow = 8`` px/frame (ActionTubes' compute_flow.m).
FLOW_SCALE = 16.0
#: The value of a zero flow component.
FLOW_CENTRE = 128.0
#: ``method=`` values: OpenCV's DIS (default, fast) and OpenCV-contrib's dual TV-L1.
FLOW_METHODS = ("dis", "tvl1")

T = TypeVar("T")
FlowFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


def encode_flow(flow: np.ndarray) -> np.ndarray:
    """Flow ``float [H, W, 2]`` (x, y in pixels) -> ACT's flow image ``uint8 [H, W, 3]`` (x, y,
    magnitude), each ``clip(v * 16 + 128, 0, 255)`` rounded to nearest (see the module doc)."""
    flow = np.asarray(flow, dtype=np.float32)
    if flow.ndim != 3 or flow.shape[2] != 2:
        raise ValueError(f"flow must be [H, W, 2], got shape {flow.shape}")
    mag = np.sqrt(np.square(flow).sum(axis=2, keepdims=True))
    scaled = np.concatenate([flow, mag], axis=2) * FLOW_SCALE + FLOW_CENTRE
    # values are >= 0 after clipping, where floor(v + 0.5) is MATLAB's round-half-away-from-zero
    return np.floor(np.clip(scaled, 0.0, 255.0) + 0.5).astype(np.uint8)


def decode_flow(image: np.ndarray | Tensor) -> np.ndarray:
    """ACT flow image ``uint8 [H, W, 3]`` (or a Tensor[3, H, W]) -> flow ``float32 [H, W, 2]`` in
    pixels; saturated values stay at ±8 (±127/16 and +127/16 at the clipping bounds)."""
    arr = image.permute(1, 2, 0).numpy() if isinstance(image, Tensor) else np.asarray(image)
    return (arr[..., :2].astype(np.float32) - FLOW_CENTRE) / FLOW_SCALE


def flow_estimator(method: str = "dis") -> FlowFn:
    """``fn(gray0 uint8 [H, W], gray1 uint8 [H, W]) -> flow float32 [H, W, 2]`` from frame 0 to 1.

    Raises:
        ConfigError: an unknown method (the message lists them).
    """
    import cv2  # OpenCV is loaded only where flow is computed

    if method == "dis":
        algo = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    elif method == "tvl1":
        algo = cv2.optflow.DualTVL1OpticalFlow_create()
    else:
        raise ConfigError(f"method={method!r}: optical flow methods are {', '.join(FLOW_METHODS)}")

    def run(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return algo.calc(np.ascontiguousarray(a), np.ascontiguousarray(b), None)

    return run


def _gray(frame: np.ndarray) -> np.ndarray:
    """uint8 RGB [H, W, 3] -> uint8 luma [H, W] (ITU-R 601 weights, as OpenCV's RGB2GRAY)."""
    rgb = np.asarray(frame, dtype=np.float32)
    return np.clip(rgb @ np.array([0.299, 0.587, 0.114], np.float32) + 0.5, 0, 255).astype(np.uint8)


def video_flow_images(
    frames: Iterable[np.ndarray], method: str | FlowFn = "dis", source: str = "video"
) -> Iterator[np.ndarray]:
    """Flow image of every frame of a video, in order: frames uint8 RGB [H, W, 3] -> uint8 [H, W, 3].

    Image t is ``encode_flow(flow(t -> t + 1))``; the last one repeats its predecessor (a single
    frame gives 128s). Each image is yielded as soon as its successor frame has arrived.

    Raises:
        DataError: frames of different sizes (``source`` names the video in the message).
    """
    estimate = flow_estimator(method) if isinstance(method, str) else method
    prev: np.ndarray | None = None
    last: np.ndarray | None = None
    shape: tuple[int, ...] = ()
    for t, frame in enumerate(frames, start=1):
        if frame.ndim != 3 or frame.shape[2] != 3:
            raise DataError(f"{source}: frame {t} has shape {frame.shape}, expected [H, W, 3] RGB")
        if prev is not None and frame.shape != shape:
            raise DataError(f"{source}: frame {t} is {frame.shape[1]}x{frame.shape[0]}, frame 1 {shape[1]}x{shape[0]}")
        gray = _gray(frame)
        if prev is not None:
            last = encode_flow(estimate(prev, gray))
            yield last
        else:
            shape = frame.shape
        prev = gray
    if prev is not None:
        yield last if last is not None else np.full((*prev.shape, 3), int(FLOW_CENTRE), np.uint8)


def flow_stack_indices(start: int, k: int, n: int, num_frames: int) -> list[int]:
    """1-based flow images a K-frame window starting at ``start`` reads with ``n`` images per frame:
    ``min(start + i, num_frames)`` for ``i = 0 … K + n - 2`` (ACT's and MOC's clamping)."""
    if k < 1 or n < 1 or num_frames < 1:
        raise ValueError(f"k, n and num_frames must be >= 1, got {k}, {n}, {num_frames}")
    return [min(start + i, num_frames) for i in range(k + n - 1)]


def stack_flow(images: Tensor, k: int) -> Tensor:
    """``K + n - 1`` consecutive flow images Tensor[B, K + n - 1, C, H, W] -> K stacks
    Tensor[B, K, n * C, H, W]: stack i holds images ``i … i + n - 1`` along channels, oldest first."""
    if images.dim() != 5 or images.shape[1] < k:
        raise ValueError(f"stack_flow: expected [B, >= {k}, C, H, W] flow images, got {tuple(images.shape)}")
    n = images.shape[1] - k + 1
    if n == 1:
        return images
    return torch.stack([images[:, i : i + n].flatten(1, 2) for i in range(k)], dim=1)


def stack_ahead(items: Iterable[T], n: int) -> Iterator[list[T]]:
    """For each item, the list of it and its ``n - 1`` successors, the last item repeated past the
    end (the online form of :func:`flow_stack_indices`): ``[a, b, c]``, n = 2 -> ``[a, b], [b, c], [c, c]``."""
    if n < 1:
        raise ValueError(f"stack_ahead: n must be >= 1, got {n}")
    window: deque[T] = deque()
    for item in items:
        window.append(item)
        if len(window) == n:
            yield list(window)
            window.popleft()
    while window:
        yield list(window) + [window[-1]] * (n - len(window))
        window.popleft()


def check_flow_stack(n: int, where: str = "flow_stack") -> int:
    """``n`` as an int >= 1 (flow images per frame), else ConfigError naming ``where``."""
    if int(n) < 1:
        raise ConfigError(f"{where}={n}: flow images per frame must be >= 1 (ACT's FLOW5: 5)")
    return int(n)
