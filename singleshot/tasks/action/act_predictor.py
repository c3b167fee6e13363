"""The ACT member's predictor: K-frame windows -> tubelets
(:class:`~singleshot.tasks.action.act_tubelets.VideoTubelets`), and ACT's builder arguments and
weights metadata.

A window's input is its K frames resized to the model's input as uint8 (the one resize,
:func:`~singleshot.data.input_spec.resize_image`: bilinear, antialiased when shrinking unless the
weights' ``resize`` metadata says ``antialias: false``, as ACT's converted Caffe models do), scaled
to [0, 1] and normalised with the weights' mean/std (channels flipped first for BGR models such as
ACT's Caffe ones) -- the pixels training's test transform
(:class:`~singleshot.data.action.clip_transforms.ClipResize`) gives. With a motion stream (two-stream ACT, see
:mod:`singleshot.tasks.action.act_two_stream`) each frame also has its motion image (RGB difference
computed here, or a precomputed flow image); the two detectors' class probabilities are averaged
(with weights 1 − w and w, w the motion stream's ``fusion_weight``: ACT's 0.5 unless its metadata or
``motion_weight=`` says otherwise)
per anchor cuboid and the boxes come from the RGB stream, as in ACT's ``extract_tubelets``. A flow
stream of n images per frame (ACT's FLOW5: n = 5) gets, for frame t, the flow images t … t + n - 1
(clamped at the video's end); on a raw video (``predict``) the flow is computed on the way with the
method the training flow was made with (its metadata's ``flow_images``; DIS otherwise).
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

from singleshot.data.action.clip_transforms import resize_clip
from singleshot.data.action.datasets import IMAGENET_MEAN, IMAGENET_STD
from singleshot.data.action.flow import FLOW_METHODS, flow_stack_indices
from singleshot.data.input_spec import InputSpec, size_hw
from singleshot.engine.branches import parallel_branches
from singleshot.errors import ConfigError, WeightsError
from singleshot.models import list_models
from singleshot.models.act import FrameFeatures
from singleshot.postprocess.tubelet import TubeletDetections, TubeletPostprocess, postprocess_tubelets
from singleshot.tasks.action.act_tubelets import (
    CandidateSettings,
    VideoTubelets,
    act_linking,
    candidate_settings,
    frame_dets_of_tubelets,
    link_params,
    linking_candidates,
    tubelet_settings,
)
from singleshot.tasks.action.act_two_stream import flow_stack_of, fuse_streams, motion_images, online_flow_inputs
from singleshot.tasks.action.act_weights import embedded_streams
from singleshot.tasks.action.config import ActionConfig, ActOptions
from singleshot.tasks.action.predictor import VideoPrediction, frame_dets_of, load_action_weights, trim_tubes

logger = logging.getLogger(__name__)

__all__ = ["ACT_FUSION_WEIGHT", "ACTPredictor", "act_arch_kwargs", "act_meta", "act_predictor"]


#: ACT's late fusion: the motion stream's class probabilities weigh 0.5 (``0.5 * (rgb + flow)``).
ACT_FUSION_WEIGHT = 0.5


# ---------------------------------------------------------------- models and metadata
def act_arch_kwargs(cfg: ActOptions) -> dict[str, Any]:
    """Builder arguments of ``cfg.arch`` (``K``; ``imgsz`` and ``act_width`` for the light trunks)."""
    archs = tuple(list_models(task="action", family="act"))
    if cfg.arch not in archs:
        raise ConfigError(f"arch={cfg.arch!r} is not an ACT architecture; expected one of {archs}")
    if cfg.K < 1:
        raise ConfigError(f"K={cfg.K}: frames per tubelet must be >= 1")
    if cfg.arch == "act_vgg16":
        if cfg.imgsz != 300:
            raise ConfigError(f"imgsz={cfg.imgsz}: act_vgg16 is ACT's SSD300 (imgsz=300)")
        return {"k": cfg.K}
    return {"k": cfg.K, "image_size": cfg.imgsz, "width": cfg.act_width}


def act_meta(
    cfg: ActOptions,
    kwargs: dict[str, Any],
    classes: list[str],
    mean: Any = IMAGENET_MEAN,
    std: Any = IMAGENET_STD,
    **extra: Any,
) -> dict[str, Any]:
    """Weights metadata of an ACT model trained here (read back by ``action val/predict``)."""
    post = TubeletPostprocess()
    meta: dict[str, Any] = {
        "task": "action",
        "family": "act",
        "architecture": cfg.arch,
        "arch_kwargs": kwargs,
        "num_classes": len(classes),
        "classes": list(classes),
        "K": cfg.K,
        "input_size": [cfg.imgsz, cfg.imgsz],
        "channel_order": "RGB",
        "mean": [float(v) for v in mean],
        "std": [float(v) for v in std],
        "postprocess": {
            "score_thresh": post.score_thresh,
            "nms_thresh": post.nms_thresh,
            "topk_candidates": post.topk_candidates,
            "max_detections": post.max_detections,
        },
        "linking": act_linking(cfg.linking),
    }
    meta.update(extra)
    return meta


# ---------------------------------------------------------------- the predictor


class _Stream:
    """One detector and its input convention (:class:`~singleshot.data.input_spec.InputSpec` of its
    metadata; weights without a ``resize`` key antialias when shrinking, as this predictor always did)."""

    def __init__(self, model: nn.Module, meta: dict[str, Any], device: torch.device) -> None:
        self.model = model.eval().to(device)
        spec = InputSpec.from_meta(meta, size=getattr(model, "image_size", 300), antialias=True)
        self.mean = torch.tensor(spec.mean, device=device).view(1, 1, 3, 1, 1)
        self.std = torch.tensor(spec.std, device=device).view(1, 1, 3, 1, 1)
        self.bgr = spec.bgr
        self.antialias = spec.antialias


class ACTPredictor:
    """An ACT model (or two streams) and its settings: frames in, :class:`VideoTubelets` out (an
    :class:`~singleshot.tasks.action.predictor.ActionPredictor`).

    Args:
        model: an :class:`~singleshot.models.act.ACTDetector` (``k``, ``priors``, ``num_classes``).
        meta: weights metadata (``input_size``, ``mean``, ``std``, ``channel_order``, ``classes``).
        settings: tubelet thresholds. linking: ``act`` or ``moc``. device: where the models run.
        candidates: the linking candidates' settings.
        flow_model, flow_meta: the motion stream (its metadata's ``modality``: ``diff`` or ``flow``).
        flow_root: folder of precomputed flow images (``flow`` streams, dataset evaluation).
    """

    def __init__(
        self,
        model: nn.Module,
        meta: dict[str, Any],
        settings: TubeletPostprocess = TubeletPostprocess(),
        linking: str = "act",
        device: str = "cpu",
        candidates: CandidateSettings = CandidateSettings(),
        flow_model: nn.Module | None = None,
        flow_meta: dict[str, Any] | None = None,
        flow_root: str | Path | None = None,
    ) -> None:
        self.device = torch.device(device)
        self.meta, self.settings, self.candidates = meta, settings, candidates
        self.streams = [_Stream(model, meta, self.device)]
        self.model = self.streams[0].model
        self.k = int(model.k)
        size = meta["input_size"] if "input_size" in meta else [model.image_size] * 2
        self.size = size_hw(size)
        self.flow_meta, self.motion, self.flow_root = flow_meta, None, Path(flow_root) if flow_root else None
        if flow_model is not None:
            self.motion = str((flow_meta or {}).get("modality", "diff"))
            if self.motion not in ("diff", "flow"):
                raise ConfigError(f"motion stream of modality {self.motion!r}; expected diff or flow")
            if flow_model.k != self.k or flow_model.priors.shape != model.priors.shape:
                raise ConfigError("the motion stream must have the RGB stream's K and anchor cuboids")
            self.streams.append(_Stream(flow_model, flow_meta or {}, self.device))
        #: flow images per frame of the motion stream (1 for diff; ACT's FLOW5: 5)
        self.flow_stack = flow_stack_of(flow_model, flow_meta) if self.motion == "flow" else 1
        #: ``model`` is an exported two-stream graph (both inputs in, the fused outputs out; passed as
        #: both streams, the motion stream's ``flow_meta`` giving its second input's convention)
        self.fused = flow_model is not None and len(getattr(model, "input_names", ())) == 2
        self.fusion_weight = float((flow_meta or {}).get("fusion_weight", ACT_FUSION_WEIGHT))
        if not 0.0 <= self.fusion_weight <= 1.0:
            raise ConfigError(f"the motion stream's fusion_weight must lie in [0, 1], got {self.fusion_weight}")
        self.linking = act_linking(linking)
        self.link_params = link_params(self.linking, self.k)
        #: run the two streams in two threads (:func:`~singleshot.engine.branches.parallel_branches`; same numbers)
        self.parallel = False
        #: each frame through the trunk once, windows assembled from per-frame maps (false: every window whole)
        self.feature_cache = True
        self.class_names: list[str] = list(meta.get("classes", [])) or [str(i) for i in range(model.num_classes)]

    def prepare(self, frames: Tensor, flow: Tensor | None = None) -> Tensor:
        """A video's frames Tensor[N, 3, H, W] uint8 RGB (and, for a ``flow`` stream, its flow images)
        -> Tensor[N, 3 * streams, h, w] uint8 at the input size: each stream's input, channel-stacked
        (a flow stream's frame its own flow image; :meth:`windows` stacks n of them)."""
        rgb, _ = resize_clip(frames, torch.zeros(0, 4), self.size, self.streams[0].antialias)
        parts = [rgb.flip(1) if self.streams[0].bgr else rgb]
        if self.motion is not None:
            if self.motion == "flow" and flow is None:
                raise ConfigError("this two-stream ACT reads precomputed flow images: pass flow=<folder>")
            extra = resize_clip(
                motion_images(frames) if self.motion == "diff" else flow,
                torch.zeros(0, 4),
                self.size,
                self.streams[1].antialias,
            )[0]
            parts.append(extra.flip(1) if self.streams[1].bgr else extra)  # per image (x, y, mag -> mag, y, x)
        return torch.cat(parts, 1) if len(parts) > 1 else parts[0]

    def normalise(self, windows: Tensor) -> list[Tensor]:
        """Tensor[B, K, 3 + 3n, h, w] uint8 (:meth:`windows`) -> per stream Tensor[B, K, 3 or 3n, h, w]
        float, normalised with the stream's mean/std per 3-channel image (n = 1 but for a flow stack)."""
        x = windows.to(self.device, torch.float32).div_(255.0)
        widths = [3] + [3 * self.flow_stack] * (len(self.streams) - 1)
        starts = [sum(widths[:i]) for i in range(len(widths))]
        return [
            ((x[:, :, a : a + w].unflatten(2, (-1, 3)) - s.mean[:, :, None]) / s.std[:, :, None]).flatten(2, 3)
            for a, w, s in zip(starts, widths, self.streams)
        ]

    def windows(self, stored: Tensor, starts: Sequence[int]) -> Tensor:
        """Windows starting at 1-based ``starts`` of a video's prepared frames Tensor[N, C, h, w] ->
        Tensor[B, K, C', h, w]; a flow stream of n images per frame gets its n images of each frame
        (C' = 3 + 3n, the frames past the end clamped), the others the frames as stored (C' = C)."""
        n = int(stored.shape[0])
        index = (torch.tensor(list(starts))[:, None] - 1) + torch.arange(self.k)[None]  # [B, K] 0-based
        if self.flow_stack == 1:
            return stored[index]
        flow = torch.tensor([flow_stack_indices(s, self.k, self.flow_stack, n) for s in starts]) - 1
        images = stored[flow][:, :, 3:]  # [B, K + n - 1, 3, h, w]
        stacks = [images[:, i : i + self.flow_stack].flatten(1, 2) for i in range(self.k)]
        return torch.cat([stored[index][:, :, :3], torch.stack(stacks, 1)], dim=2)

    @property
    def caches_features(self) -> bool:
        """Whether windows are assembled from per-frame maps: ``feature_cache`` on and every stream a
        module with :meth:`~singleshot.models.act.ACTDetector.frame_features` (an exported ONNX graph
        runs whole windows)."""
        return self.feature_cache and all(hasattr(s.model, "frame_features") for s in self.streams)

    def _fuse(self, outs: Sequence[dict[str, Tensor]]) -> dict[str, Tensor]:
        """One output of the streams' raw outputs: ACT's late fusion, (weighted) mean class
        probabilities and the boxes of the RGB stream."""
        return outs[0] if len(outs) == 1 else fuse_streams(outs[0], outs[1], self.fusion_weight)

    def _finish(
        self, out: dict[str, Tensor], starts: Sequence[int], orig_size: tuple[int, int]
    ) -> tuple[list[TubeletDetections], list[tuple[Tensor, Tensor]]]:
        sizes = [orig_size] * len(starts)
        frames = [torch.arange(s, s + self.k, dtype=torch.int64) for s in starts]
        dets = postprocess_tubelets(out, self.model.priors, sizes, self.settings, frames=frames)
        return dets, linking_candidates(out, self.model.priors, sizes, self.candidates, self.settings.variances)

    def _branches(self, calls: Sequence[Callable[[], Any]]) -> list[Any]:
        return parallel_branches(list(calls)) if self.parallel and len(calls) > 1 else [c() for c in calls]

    @torch.inference_mode()
    def detect_windows(
        self, windows: Tensor, starts: Sequence[int], orig_size: tuple[int, int]
    ) -> tuple[list[TubeletDetections], list[tuple[Tensor, Tensor]]]:
        """Prepared windows Tensor[B, K, C, h, w] uint8 starting at ``starts`` -> (detections, candidates)
        per window; every window's K frames go through the trunk (``feature_cache=false``)."""
        xs = self.normalise(windows)
        if self.fused:
            return self._finish(self.model(*xs), starts, orig_size)
        outs = self._branches([partial(s.model, x) for s, x in zip(self.streams, xs)])
        return self._finish(self._fuse(outs), starts, orig_size)

    @torch.inference_mode()
    def frame_features(self, frames: Tensor) -> list[FrameFeatures]:
        """Per stream the trunk maps of prepared single frames Tensor[F, C, h, w] uint8 (a flow
        stream's stack included, as :meth:`frame_inputs` gives them)."""
        xs = self.normalise(frames[:, None])
        return self._branches([partial(s.model.frame_features, x[:, 0]) for s, x in zip(self.streams, xs)])

    @torch.inference_mode()
    def detect_cached(
        self, features: Sequence[FrameFeatures], index: Tensor, starts: Sequence[int], orig_size: tuple[int, int]
    ) -> tuple[list[TubeletDetections], list[tuple[Tensor, Tensor]]]:
        """As :meth:`detect_windows`, from per-frame maps: window b holds rows ``index[b]`` (Tensor[B, K])
        of ``features`` (:meth:`frame_features`, one per stream)."""
        outs = self._branches([partial(s.model.window_outputs, f, index) for s, f in zip(self.streams, features)])
        return self._finish(self._fuse(outs), starts, orig_size)

    def frame_inputs(self, stored: Tensor, frames: Sequence[int]) -> Tensor:
        """The per-frame inputs of 1-based ``frames`` of a video's prepared frames Tensor[N, C, h, w]:
        the frames as stored, or for a flow stream of n images per frame its frame's n images stacked
        (clamped at the video's end, as :meth:`windows` stacks them) -> Tensor[F, C', h, w]."""
        index = torch.tensor(list(frames)) - 1
        if self.flow_stack == 1:
            return stored[index]
        n = int(stored.shape[0])
        flow = torch.tensor([flow_stack_indices(t, 1, self.flow_stack, n) for t in frames]) - 1
        return torch.cat([stored[index][:, :3], stored[flow][:, :, 3:].flatten(1, 2)], dim=1)

    def _collect(
        self, video: str, num_frames: int, size: tuple[int, int], parts: Iterable[tuple[list[int], tuple]]
    ) -> VideoTubelets:
        cols: dict[str, list[np.ndarray]] = {name: [] for name in VideoTubelets.ARRAYS}
        for starts, (dets, cands) in parts:
            for s, d, (cb, cs) in zip(starts, dets, cands):
                cols["det_start"].append(np.full(len(d), s, np.int64))
                cols["det_boxes"].append(d.boxes.cpu().numpy().astype(np.float32))
                cols["det_scores"].append(d.scores.cpu().numpy().astype(np.float32))
                cols["det_labels"].append(d.labels.cpu().numpy().astype(np.int64))
                cols["cand_start"].append(np.full(cb.shape[0], s, np.int64))
                cols["cand_boxes"].append(cb.cpu().numpy().astype(np.float32))
                cols["cand_scores"].append(cs.cpu().numpy().astype(np.float32))
        vt = VideoTubelets(video, int(num_frames), size, self.k)
        for name, parts_ in cols.items():
            if parts_:
                setattr(vt, name, np.concatenate(parts_))
        if not cols["cand_scores"]:
            vt.cand_scores = np.zeros((0, self.model.num_classes), np.float32)
            vt.det_boxes = vt.cand_boxes = np.zeros((0, self.k, 4), np.float32)
        return vt

    def detect_video(
        self, stored: Tensor, orig_size: tuple[int, int], video: str = "", batch: int = 16
    ) -> VideoTubelets:
        """Tubelets of every window ``1 … N-K+1`` of a video's prepared frames Tensor[N, C, h, w] uint8.

        A video shorter than K frames has no window and gives no tubelets (a warning says so).
        """
        n = int(stored.shape[0])
        if n < self.k:
            logger.warning("%s: %d frames, fewer than K=%d: no window to detect on", video or "video", n, self.k)

        def parts() -> Iterator[tuple[list[int], tuple]]:
            held: WindowFeatures | None = WindowFeatures(self) if self.caches_features else None
            for first in range(1, n - self.k + 2, max(1, batch)):
                starts = list(range(first, min(n - self.k + 1, first + max(1, batch) - 1) + 1))
                if held is None:
                    yield starts, self.detect_windows(self.windows(stored, starts), starts, orig_size)
                    continue
                upto = starts[-1] + self.k - 1
                held.add(lambda frames: self.frame_inputs(stored, frames), upto)
                yield starts, held.detect(starts, orig_size)

        return self._collect(video, n, orig_size, parts())

    def _prepared(self, frames: Iterable[np.ndarray]) -> Iterator[tuple[tuple[int, int], Tensor]]:
        """``(frame size, prepared frame Tensor[C, h, w])`` per frame, in order; with an RGB-difference
        stream one frame late (frame t's motion image needs frame t + 1; the ends are clamped)."""
        if self.motion == "flow":  # the flow computed on the way, the method of the training flow
            method = str(((self.flow_meta or {}).get("flow_images") or {}).get("method", "dis"))
            if method not in FLOW_METHODS:
                logger.warning("flow stream trained on %s flow: computing DIS flow in its place", method)
                method = "dis"
            yield from online_flow_inputs(frames, self.prepare, self.flow_stack, method)
            return
        prev: Tensor | None = None
        cur: Tensor | None = None
        for frame in frames:
            t = torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1)
            if self.motion is None:
                yield (int(t.shape[1]), int(t.shape[2])), self.prepare(t[None])[0]
                continue
            if cur is not None:
                yield (
                    (int(cur.shape[1]), int(cur.shape[2])),
                    self.prepare(torch.stack([prev if prev is not None else cur, cur, t]))[1],
                )
            prev, cur = cur, t
        if cur is not None:  # the last frame (motion image against its predecessor)
            yield (
                (int(cur.shape[1]), int(cur.shape[2])),
                self.prepare(torch.stack([prev if prev is not None else cur, cur, cur]))[1],
            )

    def window_parts(
        self, frames: Iterable[np.ndarray], batch: int = 8, state: dict[str, Any] | None = None
    ) -> Iterator[tuple[list[int], tuple[list[TubeletDetections], list[tuple[Tensor, Tensor]]]]]:
        """Online detection over frames uint8 [H, W, 3] RGB: ``(starts, (detections, candidates))`` per
        batch of windows, each new frame closing the window that ends at it, ``batch`` windows run
        together. With the feature cache, each frame goes through the trunk once and at most K - 1
        frames' maps are held between batches; without it, a ring of the last K prepared frames.
        ``state`` (when given) gets ``frames`` (read so far) and ``size`` ((h, w) of the frames).
        """
        ring: list[Tensor] = []
        pending: list[tuple[int, Tensor]] = []
        fresh: list[Tensor] = []  # feature cache: prepared frames not yet through the trunk
        held = WindowFeatures(self) if self.caches_features else None
        state = {} if state is None else state
        state.update(frames=0, size=(0, 0))

        def flush() -> tuple[list[int], tuple]:
            starts = [p[0] for p in pending]
            if held is not None:
                held.add(lambda frames: torch.stack(fresh), state["frames"])
                fresh.clear()
                result = held.detect(starts, state["size"])
            else:
                result = self.detect_windows(torch.stack([p[1] for p in pending]), starts, state["size"])
            pending.clear()
            return starts, result

        for size, stored in self._prepared(frames):
            state["frames"] += 1
            state["size"] = size
            count = state["frames"]
            if held is not None:
                fresh.append(stored)
                if count >= self.k:
                    pending.append((count - self.k + 1, stored))
            else:
                ring.append(stored)
                del ring[: max(0, len(ring) - self.k)]
                if len(ring) == self.k:
                    pending.append((count - self.k + 1, torch.stack(ring)))
            if len(pending) == batch:
                yield flush()
        if pending:
            yield flush()

    def stream(
        self, frames: Iterable[np.ndarray], video: str = "", batch: int = 8
    ) -> tuple[VideoTubelets, tuple[int, int]]:
        """:meth:`window_parts` collected: (the video's tubelets, its frame size (h, w))."""
        state: dict[str, Any] = {}
        collected = list(self.window_parts(frames, batch, state))
        return self._collect(video, state["frames"], state["size"], collected), state["size"]

    def predict_video(self, frames: Iterable[np.ndarray], name: str, batch: int, trim: float = 0.0) -> VideoPrediction:
        """:meth:`stream` over ``frames``: the per-frame detections pooled from the tubelets, the tubes of
        ACT's linking (trimmed at ``trim``; by descending score) and ``extra["windows"]``, the windows run."""
        vt, size = self.stream(frames, name, batch)
        if vt.num_frames == 0:
            return VideoPrediction(frame_dets_of([name], []), [], 0, size, {"windows": 0})
        dets = frame_dets_of_tubelets([name], {name: vt})
        tubes = sorted(trim_tubes(vt.link(self.link_params), trim), key=lambda t: -t.score)
        windows = vt.num_frames - self.k + 1 if vt.num_frames >= self.k else 0
        return VideoPrediction(dets, tubes, vt.num_frames, size, {"windows": windows})


class WindowFeatures:
    """The per-frame trunk maps of the frames the next windows need, each frame computed once.

    Frames are added in order (:meth:`add` computes those not held yet); :meth:`detect` runs the
    heads of windows over them and then forgets the frames no later window holds (at most K - 1
    stay), so memory does not grow with the video.
    """

    def __init__(self, predictor: ACTPredictor) -> None:
        self.p = predictor
        self.features: list[FrameFeatures] | None = None
        self.first = 1  # 1-based frame of row 0
        self.next = 1  # the next frame to compute

    def add(self, inputs: Callable[[list[int]], Tensor], upto: int) -> None:
        """Compute frames ``next … upto`` from ``inputs(frames) -> Tensor[F, C, h, w]`` uint8."""
        frames = list(range(self.next, upto + 1))
        if not frames:
            return
        new = self.p.frame_features(inputs(frames))
        self.features = new if self.features is None else [a.cat(b) for a, b in zip(self.features, new)]
        self.next = upto + 1

    def detect(
        self, starts: Sequence[int], orig_size: tuple[int, int]
    ) -> tuple[list[TubeletDetections], list[tuple[Tensor, Tensor]]]:
        """The windows starting at 1-based ``starts`` (their frames added), then drop the frames
        before the frame after the last start."""
        assert self.features is not None
        index = (torch.tensor(list(starts))[:, None] - self.first) + torch.arange(self.p.k)[None]
        result = self.p.detect_cached(self.features, index, starts, orig_size)
        drop = max(0, starts[-1] + 1 - self.first)
        self.features = [f.rows(drop) for f in self.features]
        self.first += drop
        return result


def flow_stream(
    model: nn.Module, meta: dict[str, Any], cfg: ActOptions
) -> tuple[nn.Module, tuple[nn.Module, dict[str, Any]] | None]:
    """``(RGB stream, (motion stream, its metadata) or None)`` of ``weights=``'s model: the streams of a
    two-stream file (or of its exported graph, fused inside: :func:`~singleshot.tasks.action.act_weights.embedded_streams`),
    else the file ``flow_weights=`` names, else the one the RGB weights' metadata names beside them
    (the older two-file layout); ``flow_weights=none``: the RGB stream alone. An explicit
    ``motion_weight=`` (other than ACT's 0.5) replaces the fusion weight."""
    rgb, flow = embedded_streams(model, meta, cfg.weights)
    name, weight = str(cfg.flow_weights or ""), float(cfg.motion_weight)
    if flow is not None and flow[0] is model:  # an exported graph of both streams, fused inside
        baked = float(flow[1]["fusion_weight"])
        if name or weight not in (ACT_FUSION_WEIGHT, baked):
            raise ConfigError(
                f"{cfg.weights}: an exported two-stream graph, its streams fused inside with motion weight "
                f"{baked:g}; flow_weights= and motion_weight= need the two-stream .safetensors"
            )
        return rgb, flow
    if name.lower() == "none":
        return rgb, None
    if name or (flow is None and meta.get("flow_weights")):
        path = Path(name) if name else Path(cfg.weights).parent / str(meta["flow_weights"])
        if not name and not path.is_file():
            raise WeightsError(
                f"{cfg.weights}: two-stream weights of the older two-file layout; their motion stream {path} "
                "is not beside them. Copy it there, or pass flow_weights=none for the RGB stream alone"
            )
        other, other_meta = load_action_weights(path)
        flow = embedded_streams(other, other_meta, path)[1] or (other, other_meta)
    if flow is not None and weight != ACT_FUSION_WEIGHT:  # an explicit motion_weight= wins
        flow = (flow[0], dict(flow[1], fusion_weight=weight))
    return rgb, flow


def act_predictor(model: nn.Module, meta: dict[str, Any], cfg: ActionConfig) -> ACTPredictor:
    """The ACT member's predictor factory (:mod:`singleshot.tasks.action.members`): ``model`` with the
    thresholds and linking of ``meta`` under ``cfg``'s, and the motion stream, if any (:func:`flow_stream`)."""
    rgb, flow = flow_stream(model, meta, cfg)
    predictor = ACTPredictor(
        rgb,
        meta,
        tubelet_settings(meta, cfg),
        cfg.linking or str(meta.get("linking", "act")),
        cfg.device,
        candidate_settings(cfg),
        flow_model=flow[0] if flow else None,
        flow_meta=flow[1] if flow else None,
        flow_root=cfg.flow or None,
    )
    predictor.parallel = bool(cfg.parallel_branches)
    predictor.feature_cache = bool(cfg.feature_cache)
    return predictor
