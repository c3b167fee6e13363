"""Two-stream ACT: an RGB stream and a motion stream trained side by side, scores averaged at test.

ACT's published detector fuses an RGB and an optical-flow stream: two K-frame tubelet detectors
with the same anchor cuboids, whose per-cuboid class probabilities are averaged while the boxes
come from the RGB stream (``ACT.py``: ``0.5 * (rgb + flow)`` on ``mbox_conf_flatten``, ``mbox_loc``
from RGB). The streams see each frame independently and are fused only linearly, so motion that
defines a class (a shape that slides, spins or grows) is visible to them only through a motion
input. Here the motion stream's input per frame is either

* ``diff``: the RGB difference of the neighbouring frames, ``128 + (F[t+1] - F[t-1]) / 2`` per
  channel (clamped at the video's ends), computed from the frames themselves (TSN's "RGB
  difference" modality; no optical-flow tool is needed), or
* ``flow``: precomputed flow images ``<flow>/<Class>/<video>/<frame:05d>.jpg`` (ACT's Brox flow
  JPEGs, or those of ``singleshot action flow``: x, y, magnitude around 128, see
  :mod:`singleshot.data.action.flow`; x in the first channel, which a horizontal flip negates:
  ``255 - x``). Frame t sees ``flow_stack`` = n of them, ``t … t + n - 1`` clamped at the video's
  end, concatenated along channels: ACT's FLOW5 is n = 5 (15 channels; the flow detector's first
  convolution takes ``3n`` channels, ``in_channels`` in its ``arch_kwargs``); n = 1 is one flow
  image per frame.

Training (:class:`TwoStreamTubeletDataset`, :class:`TwoStreamACT`, :class:`TwoStreamLoss`): one
loader yields the K RGB frames then the motion images of a window — K RGB-difference images, or
the ``K + n - 1`` flow images the K stacks need — as one clip [K + M, 3, H, W], through the *same*
clip augmentation (one crop, zoom-out and flip for all; a flip negates x in every flow image); the
model builds the stacks after normalisation (:func:`~singleshot.data.action.flow.stack_flow`). The
two detectors are trained in one step on the sum of their tubelet losses and saved as two weights
files.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torchvision import tv_tensors
from torchvision.transforms import v2

from singleshot.data.action.clip_transforms import ActClipAugment
from singleshot.data.action.datasets import ActTubeletDataset
from singleshot.data.action.flow import (
    check_flow_stack,
    flow_stack_indices,
    stack_ahead,
    stack_flow,
    video_flow_images,
)
from singleshot.data.action.frames import read_frame
from singleshot.engine.branches import parallel_branches
from singleshot.errors import ConfigError, DataError
from singleshot.losses.tubelet import TubeletLoss
from singleshot.structures import TubeletTarget

logger = logging.getLogger(__name__)

__all__ = [
    "MOTION_MODALITIES",
    "motion_images",
    "flow_frame_path",
    "flow_arch_kwargs",
    "flow_stack_of",
    "online_flow_inputs",
    "FlowFlip",
    "TwoStreamTubeletDataset",
    "TwoStreamACT",
    "TwoStreamLoss",
    "fuse_streams",
    "two_stream_augment",
]

MOTION_MODALITIES = ("diff", "flow")


def motion_images(frames: Tensor) -> Tensor:
    """RGB difference images of a whole video: frames Tensor[N, 3, H, W] uint8 -> Tensor[N, 3, H, W]
    uint8 ``clamp(128 + floor((F[t+1] - F[t-1]) / 2))`` with F[0] = F[1] and F[N+1] = F[N]."""
    f = frames.to(torch.int16)
    return rgb_difference(torch.cat([f[1:], f[-1:]]), torch.cat([f[:1], f[:-1]]))


def rgb_difference(nxt: Tensor, prev: Tensor) -> Tensor:
    """``clamp(128 + floor((nxt - prev) / 2))`` as uint8, for int16 frames of any (matching) shape."""
    # ``>> 1`` on int16 is floor division by 2 (an arithmetic shift), many times faster than torch.div
    return (128 + ((nxt - prev) >> 1)).clamp_(0, 255).to(torch.uint8)


def flow_frame_path(flow_root: str | Path, video: str, frame: int) -> Path:
    """``<flow_root>/<video>/<frame:05d>.jpg`` (or ``.png``)."""
    base = Path(flow_root) / video / f"{int(frame):05d}"
    for suffix in (".jpg", ".png"):
        if base.with_suffix(suffix).is_file():
            return base.with_suffix(suffix)
    raise DataError(f"{base}.jpg: flow image not found (flow= must hold <Class>/<video>/<frame:05d>.jpg)")


def flow_arch_kwargs(kwargs: dict[str, Any], modality: str, flow_stack: int) -> dict[str, Any]:
    """Builder arguments of the motion stream: the RGB stream's, plus ``in_channels = 3 n`` for a
    ``flow`` stream of ``n = flow_stack`` images per frame (n = 1 and ``diff``: unchanged)."""
    n = check_flow_stack(flow_stack)
    return dict(kwargs, in_channels=3 * n) if modality == "flow" and n > 1 else dict(kwargs)


def flow_stack_of(model: nn.Module, meta: dict[str, Any] | None = None) -> int:
    """Flow images per frame of a motion stream: its ``in_channels`` / 3, else its metadata's
    ``flow_stack`` (an exported graph), else 1."""
    channels = getattr(model, "in_channels", None)
    if channels is not None:
        return max(1, int(channels) // 3)
    return check_flow_stack(int((meta or {}).get("flow_stack", 1)))


def online_flow_inputs(
    frames: Iterable[np.ndarray],
    prepare: Callable[[Tensor, Tensor], Tensor],
    flow_stack: int,
    method: str = "dis",
) -> Iterator[tuple[tuple[int, int], Tensor]]:
    """A two-stream input per frame of a raw video, the flow computed on the way: frames uint8
    [H, W, 3] RGB -> ``((H, W), Tensor[3 + 3n, h, w])`` (the prepared RGB frame, then its n flow
    images), each yielded once the n-th flow image is known (frame t + n has arrived; clamped at
    the end, as :func:`~singleshot.data.action.flow.flow_stack_indices`).

    ``prepare(frames Tensor[1, 3, H, W], flow Tensor[1, 3, H, W]) -> Tensor[1, 6, h, w]`` is the
    predictor's (resize, channel order); ``method`` the flow method (``dis`` | ``tvl1``).
    """
    pending: list[np.ndarray] = []

    def frames_kept() -> Iterator[np.ndarray]:
        for frame in frames:
            pending.append(frame)
            yield frame

    def pairs() -> Iterator[tuple[tuple[int, int], Tensor]]:
        for image in video_flow_images(frames_kept(), method, "video"):
            frame = pending.pop(0)
            rgb = torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1)
            flow = torch.from_numpy(image).permute(2, 0, 1)
            yield (int(frame.shape[0]), int(frame.shape[1])), prepare(rgb[None], flow[None])[0]

    for group in stack_ahead(pairs(), flow_stack):
        yield group[0][0], torch.cat([group[0][1][:3]] + [p[1][3:] for p in group])


class FlowFlip(v2.RandomHorizontalFlip):
    """Horizontal flip of a stacked [K + M, 3, H, W] clip whose last M frames are flow images (M = K,
    or K + n - 1 for stacks of n): the x component (channel ``x_channel``) of every flow image
    changes sign, ``255 - x`` on uint8 images."""

    def __init__(self, k: int, p: float = 0.5, x_channel: int = 0) -> None:
        super().__init__(p=p)
        self.k, self.x_channel = int(k), int(x_channel)

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        out = super().transform(inpt, params)
        if isinstance(inpt, tv_tensors.Image) and out.shape[0] > self.k:
            flow = out[self.k :, self.x_channel]
            out[self.k :, self.x_channel] = (255 - flow) if out.dtype == torch.uint8 else (1.0 - flow)
        return out


def two_stream_augment(
    size: int,
    k: int,
    mean: Sequence[float],
    max_zoom: float,
    photometric: bool,
    modality: str,
    antialias: bool = True,
) -> ActClipAugment:
    """ACT's clip augmentation for a stacked [K + M, 3, H, W] clip (one geometry for both streams).

    The photometric distortion, when on, also reaches the motion images (ACT distorts its flow
    images too); with ``flow`` the flip negates the x component of the flow images.
    """
    aug = ActClipAugment(size, k, mean, max_zoom, photometric, antialias=antialias)
    if modality == "flow":
        stages = aug.transform.transforms
        flips = [i for i, t in enumerate(stages) if isinstance(t, v2.RandomHorizontalFlip)]
        if len(flips) != 1:
            raise ConfigError("ActClipAugment has no single horizontal flip stage to adapt for flow images")
        stages[flips[0]] = FlowFlip(k)
    return aug


class TwoStreamTubeletDataset(ActTubeletDataset):
    """ACT training windows whose item is ``(Tensor[K + M, 3, h, w], TubeletTarget)``: the K RGB
    frames then the motion images (``modality`` diff: M = K; flow: the M = K + n - 1 flow images of
    :func:`~singleshot.data.action.flow.flow_stack_indices`, n = ``flow_stack``; see the module doc),
    augmented together.

    Args: as :class:`~singleshot.data.action.datasets.ActTubeletDataset`, plus ``modality``,
    ``flow_root`` (the folder of flow images for ``flow``) and ``flow_stack``. ``transform`` must
    accept K + M frames (:func:`two_stream_augment`). With ``cache_frames`` (training turns it on
    when they fit) the decoded frames and the motion images are kept per loader process.
    """

    def __init__(
        self,
        *args: Any,
        modality: str = "diff",
        flow_root: str | Path | None = None,
        flow_stack: int = 1,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        if modality not in MOTION_MODALITIES:
            raise ConfigError(f"motion modality {modality!r}; expected one of {MOTION_MODALITIES}")
        if modality == "flow" and not flow_root:
            raise ConfigError("modality rgb+flow needs flow=<folder of flow images>")
        self.modality, self.flow_root = modality, Path(flow_root) if flow_root else None
        self.flow_stack = check_flow_stack(flow_stack) if modality == "flow" else 1

    def _read(self, video: str, frames: Any) -> Tensor:
        frames = [int(f) for f in frames]
        if self.modality == "flow":
            n = self.ann.videos[video].num_frames
            wanted = flow_stack_indices(frames[0], len(frames), self.flow_stack, n)
            flow = torch.stack([self._flow(video, f) for f in wanted])
            return torch.cat([super()._read(video, frames), flow])
        n = self.ann.videos[video].num_frames
        if self.cache_frames:
            return torch.cat([super()._read(video, frames), torch.stack([self._diff(video, f, n) for f in frames])])
        span = list(range(max(1, frames[0] - 1), min(n, frames[-1] + 1) + 1))
        raw = super()._read(video, span)
        offset = frames[0] - span[0]
        # neighbours of frame t inside the span, clamped at the video's ends as motion_images does
        prev = torch.tensor([max(f - 1, 1) for f in frames]) - span[0]
        nxt = torch.tensor([min(f + 1, n) for f in frames]) - span[0]
        f16 = raw.to(torch.int16)
        diff = rgb_difference(f16[nxt], f16[prev])
        return torch.cat([raw[offset : offset + len(frames)], diff])

    def _flow(self, video: str, frame: int) -> Tensor:
        """Flow image of 1-based ``frame`` (kept in memory with ``cache_frames``)."""
        assert self.flow_root is not None
        if not self.cache_frames:
            return read_frame(flow_frame_path(self.flow_root, video, frame))
        cache: dict[tuple[str, int], Tensor] = self.__dict__.setdefault("_flows", {})
        key = (video, frame)
        if key not in cache:
            cache[key] = read_frame(flow_frame_path(self.flow_root, video, frame))
        return cache[key]

    def _diff(self, video: str, frame: int, n: int) -> Tensor:
        """Motion image of 1-based ``frame`` of an ``n``-frame video (cached like the frames)."""
        cache: dict[tuple[str, int], Tensor] = self.__dict__.setdefault("_diffs", {})
        key = (video, frame)
        if key not in cache:
            pair = super()._read(video, [min(frame + 1, n), max(frame - 1, 1)]).to(torch.int16)
            cache[key] = rgb_difference(pair[0], pair[1])
        return cache[key]


class TwoStreamACT(nn.Module):
    """Two ACT detectors with the same anchor cuboids: ``rgb`` and ``flow`` (the motion stream).

    ``forward(x Tensor[B, K + M, 3, S, S])`` (K RGB frames then M motion images: M = K, or
    K + n - 1 flow images stacked here n at a time for a flow stream of ``in_channels`` 3n) ->
    ``{"loc", "conf"}`` of the RGB stream and ``{"flow_loc", "flow_conf"}`` of the motion stream.

    ``parallel=True`` runs the two streams in two threads, forward and backward
    (:func:`~singleshot.engine.branches.parallel_branches`): the same numbers, about 1.5x faster on a
    CPU whose intra-op thread count leaves a core idle. Not under DDP.
    """

    def __init__(self, rgb: nn.Module, flow: nn.Module, parallel: bool = False) -> None:
        super().__init__()
        if rgb.priors.shape != flow.priors.shape or rgb.k != flow.k:
            raise ConfigError("the two ACT streams must share K and the anchor cuboids")
        self.rgb, self.flow = rgb, flow
        self.k = rgb.k
        self.parallel = bool(parallel)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        rgb, flow = partial(self.rgb, x[:, : self.k]), partial(self.flow, stack_flow(x[:, self.k :], self.k))
        if self.parallel:
            a, b = parallel_branches([rgb, flow], [list(self.rgb.parameters()), list(self.flow.parameters())])
        else:
            a, b = rgb(), flow()
        return {"loc": a["loc"], "conf": a["conf"], "flow_loc": b["loc"], "flow_conf": b["conf"]}


def fuse_streams(rgb: dict[str, Tensor], motion: dict[str, Tensor], weight: float) -> dict[str, Tensor]:
    """ACT's late fusion of the two streams' raw outputs (``loc`` [B, P, 4K], ``conf`` [B, P, C + 1]
    logits): ``{"loc": the RGB stream's, "conf": log((1 - w) softmax(rgb) + w softmax(motion))}``,
    the probabilities floored at 1e-12; ``weight`` = w, the motion stream's share (ACT: 0.5). The
    predictor's fusion and the exported two-stream graph's, so that both give the same numbers."""
    w = float(weight)
    probs = (1.0 - w) * rgb["conf"].float().softmax(-1) + w * motion["conf"].float().softmax(-1)
    return {"loc": rgb["loc"], "conf": probs.clamp(min=1e-12).log()}


class TwoStreamLoss:
    """The tubelet loss of each stream: ``loss_loc``, ``loss_conf`` (RGB), ``flow_loss_loc``, ``flow_loss_conf``."""

    def __init__(self, model: TwoStreamACT) -> None:
        self.loss = TubeletLoss(model.rgb.priors.detach().cpu(), model.k)

    def __call__(self, outputs: dict[str, Tensor], targets: list[TubeletTarget]) -> dict[str, Tensor]:
        rgb = self.loss({"loc": outputs["loc"], "conf": outputs["conf"]}, targets)
        flow = self.loss({"loc": outputs["flow_loc"], "conf": outputs["flow_conf"]}, targets)
        return {**rgb, **{f"flow_{k}": v for k, v in flow.items()}}
