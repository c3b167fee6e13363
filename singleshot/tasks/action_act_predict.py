"""ACT inference: K-frame windows -> tubelets (:class:`~singleshot.tasks.action_act_tubelets.VideoTubelets`).

A window's input is its K frames resized to the model's input (bilinear, antialiased when
shrinking), scaled to [0, 1] and normalised with the weights' mean/std (channels flipped first for
BGR models such as ACT's Caffe ones). With a motion stream (two-stream ACT, see
:mod:`singleshot.tasks.action_act_two_stream`) each frame also has its motion image (RGB difference
computed here, or a precomputed flow image); the two detectors' class probabilities are averaged
(with weights 1 − w and w, w the motion stream's ``fusion_weight``: ACT's 0.5 unless its metadata or
``motion_weight=`` says otherwise)
per anchor cuboid and the boxes come from the RGB stream, as in ACT's ``extract_tubelets``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from singleshot.data.action.clip_transforms import resize_clip
from singleshot.data.action.datasets import IMAGENET_MEAN, IMAGENET_STD
from singleshot.engine.branches import parallel_branches
from singleshot.errors import ConfigError
from singleshot.postprocess.tubelet import TubeletDetections, TubeletPostprocess, postprocess_tubelets
from singleshot.tasks.action_act_tubelets import (
    CandidateSettings,
    VideoTubelets,
    act_linking,
    link_params,
    linking_candidates,
    tubelet_settings,
)

logger = logging.getLogger(__name__)

__all__ = ["ACTPredictor", "act_predictor"]


#: ACT's late fusion: the motion stream's class probabilities weigh 0.5 (``0.5 * (rgb + flow)``).
ACT_FUSION_WEIGHT = 0.5


class _Stream:
    """One detector and its input convention."""

    def __init__(self, model: nn.Module, meta: dict[str, Any], device: torch.device) -> None:
        self.model = model.eval().to(device)
        self.mean = torch.tensor([float(v) for v in meta.get("mean", IMAGENET_MEAN)], device=device).view(1, 1, 3, 1, 1)
        self.std = torch.tensor([float(v) for v in meta.get("std", IMAGENET_STD)], device=device).view(1, 1, 3, 1, 1)
        self.bgr = str(meta.get("channel_order", "RGB")).upper() == "BGR"


class ACTPredictor:
    """An ACT model (or two streams) and its settings: frames in, :class:`VideoTubelets` out.

    Args:
        model: an :class:`~singleshot.models.act.ACTDetector` (``k``, ``priors``, ``num_classes``).
        meta: weights metadata (``input_size``, ``mean``, ``std``, ``channel_order``, ``classes``).
        settings: tubelet thresholds. linking: ``act`` or ``moc``. device: where the models run.
        candidates: the linking candidates' settings.
        flow_model, flow_meta: the motion stream (its metadata's ``modality``: ``diff`` or ``flow``).
        flow_root: folder of precomputed flow images (``flow`` streams, dataset evaluation).
    """

    protocol = "act"  #: the evaluation protocol ACT is scored with unless asked otherwise

    def __init__(self, model: nn.Module, meta: dict[str, Any], settings: TubeletPostprocess = TubeletPostprocess(),
                 linking: str = "act", device: str = "cpu", candidates: CandidateSettings = CandidateSettings(),
                 flow_model: nn.Module | None = None, flow_meta: dict[str, Any] | None = None,
                 flow_root: str | Path | None = None) -> None:  # fmt: skip
        self.device = torch.device(device)
        self.meta, self.settings, self.candidates = meta, settings, candidates
        self.streams = [_Stream(model, meta, self.device)]
        self.model = self.streams[0].model
        self.k = int(model.k)
        size = meta["input_size"] if "input_size" in meta else [model.image_size] * 2
        self.size = (int(size[0]), int(size[1])) if isinstance(size, (list, tuple)) else (int(size), int(size))
        self.flow_meta, self.motion, self.flow_root = flow_meta, None, Path(flow_root) if flow_root else None
        if flow_model is not None:
            self.motion = str((flow_meta or {}).get("modality", "diff"))
            if self.motion not in ("diff", "flow"):
                raise ConfigError(f"motion stream of modality {self.motion!r}; expected diff or flow")
            if flow_model.k != self.k or flow_model.priors.shape != model.priors.shape:
                raise ConfigError("the motion stream must have the RGB stream's K and anchor cuboids")
            self.streams.append(_Stream(flow_model, flow_meta or {}, self.device))
        self.fusion_weight = float((flow_meta or {}).get("fusion_weight", ACT_FUSION_WEIGHT))
        if not 0.0 <= self.fusion_weight <= 1.0:
            raise ConfigError(f"the motion stream's fusion_weight must lie in [0, 1], got {self.fusion_weight}")
        self.linking = act_linking(linking)
        self.link_params = link_params(self.linking, self.k)
        #: run the two streams in two threads (:func:`~singleshot.engine.branches.parallel_branches`; same numbers)
        self.parallel = False
        self.class_names: list[str] = list(meta.get("classes", [])) or [str(i) for i in range(model.num_classes)]

    def prepare(self, frames: Tensor, flow: Tensor | None = None) -> Tensor:
        """A video's frames Tensor[N, 3, H, W] uint8 RGB (and, for a ``flow`` stream, its flow images)
        -> Tensor[N, 3 * streams, h, w] uint8 at the input size: each stream's input, channel-stacked."""
        from singleshot.tasks.action_act_two_stream import motion_images

        rgb, _ = resize_clip(frames, torch.zeros(0, 4), self.size)
        parts = [rgb.flip(1) if self.streams[0].bgr else rgb]
        if self.motion is not None:
            if self.motion == "flow" and flow is None:
                raise ConfigError("this two-stream ACT reads precomputed flow images: pass flow=<folder>")
            extra = motion_images(frames) if self.motion == "diff" else flow
            parts.append(resize_clip(extra, torch.zeros(0, 4), self.size)[0])
        return torch.cat(parts, 1) if len(parts) > 1 else parts[0]

    def normalise(self, windows: Tensor) -> list[Tensor]:
        """Tensor[B, K, 3 * streams, h, w] uint8 -> per stream Tensor[B, K, 3, h, w] float normalised."""
        x = windows.to(self.device, torch.float32).div_(255.0)
        return [(x[:, :, 3 * i : 3 * i + 3] - s.mean) / s.std for i, s in enumerate(self.streams)]

    @torch.inference_mode()
    def detect_windows(self, windows: Tensor, starts: Sequence[int], orig_size: tuple[int, int]) -> tuple[list[TubeletDetections], list[tuple[Tensor, Tensor]]]:  # fmt: skip
        """Prepared windows Tensor[B, K, C, h, w] uint8 starting at ``starts`` -> (detections, candidates) per window."""
        xs = self.normalise(windows)
        if len(self.streams) > 1:  # ACT's late fusion: (weighted) mean class probabilities, boxes of the RGB stream
            out, motion = parallel_branches([partial(s.model, x) for s, x in zip(self.streams, xs)]) if self.parallel \
                else [s.model(x) for s, x in zip(self.streams, xs)]  # fmt: skip
            w = self.fusion_weight
            probs = (1.0 - w) * out["conf"].float().softmax(-1) + w * motion["conf"].float().softmax(-1)
            out = {"loc": out["loc"], "conf": probs.clamp_(min=1e-12).log()}
        else:
            out = self.model(xs[0])
        sizes = [orig_size] * len(starts)
        frames = [torch.arange(s, s + self.k, dtype=torch.int64) for s in starts]
        dets = postprocess_tubelets(out, self.model.priors, sizes, self.settings, frames=frames)
        return dets, linking_candidates(out, self.model.priors, sizes, self.candidates, self.settings.variances)

    def _collect(self, video: str, num_frames: int, size: tuple[int, int], parts: Iterable[tuple[list[int], tuple]]) -> VideoTubelets:  # fmt: skip
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

    def detect_video(self, stored: Tensor, orig_size: tuple[int, int], video: str = "", batch: int = 16) -> VideoTubelets:
        """Tubelets of every window ``1 … N-K+1`` of a video's prepared frames Tensor[N, C, h, w] uint8.

        A video shorter than K frames has no window and gives no tubelets (a warning says so).
        """
        n = int(stored.shape[0])
        if n < self.k:
            logger.warning("%s: %d frames, fewer than K=%d: no window to detect on", video or "video", n, self.k)
        offsets = torch.arange(self.k)

        def parts() -> Iterator[tuple[list[int], tuple]]:
            for first in range(1, n - self.k + 2, max(1, batch)):
                starts = list(range(first, min(n - self.k + 1, first + max(1, batch) - 1) + 1))
                index = (torch.tensor(starts)[:, None] - 1) + offsets[None]  # [B, K] 0-based frames
                yield starts, self.detect_windows(stored[index], starts, orig_size)

        return self._collect(video, n, orig_size, parts())

    def _prepared(self, frames: Iterable[np.ndarray]) -> Iterator[tuple[tuple[int, int], Tensor]]:
        """``(frame size, prepared frame Tensor[C, h, w])`` per frame, in order; with an RGB-difference
        stream one frame late (frame t's motion image needs frame t + 1; the ends are clamped)."""
        if self.motion == "flow":
            raise ConfigError("a two-stream ACT on precomputed flow images cannot run on a raw video")
        prev: Tensor | None = None
        cur: Tensor | None = None
        for frame in frames:
            t = torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1)
            if self.motion is None:
                yield (int(t.shape[1]), int(t.shape[2])), self.prepare(t[None])[0]
                continue
            if cur is not None:
                yield (int(cur.shape[1]), int(cur.shape[2])), self.prepare(torch.stack([prev if prev is not None else cur, cur, t]))[1]
            prev, cur = cur, t
        if cur is not None:  # the last frame (motion image against its predecessor)
            yield (int(cur.shape[1]), int(cur.shape[2])), self.prepare(torch.stack([prev if prev is not None else cur, cur, cur]))[1]

    def stream(self, frames: Iterable[np.ndarray], video: str = "", batch: int = 8) -> tuple[VideoTubelets, tuple[int, int]]:
        """Online detection over frames uint8 [H, W, 3] RGB: a ring of the last K prepared frames,
        each new frame closing the window that ends at it, ``batch`` windows run together.

        Returns:
            (the video's tubelets, its frame size (h, w)).
        """
        ring: list[Tensor] = []
        pending: list[tuple[int, Tensor]] = []
        count, size = 0, (0, 0)

        def flush() -> tuple[list[int], tuple]:
            starts = [p[0] for p in pending]
            result = self.detect_windows(torch.stack([p[1] for p in pending]), starts, size)
            pending.clear()
            return starts, result

        def parts() -> Iterator[tuple[list[int], tuple]]:
            nonlocal count, size
            for size, stored in self._prepared(frames):
                count += 1
                ring.append(stored)
                del ring[: max(0, len(ring) - self.k)]
                if len(ring) == self.k:
                    pending.append((count - self.k + 1, torch.stack(ring)))
                    if len(pending) == batch:
                        yield flush()
            if pending:
                yield flush()

        collected = list(parts())
        return self._collect(video, count, size, collected), size

    def evaluate(self, ann: Any, frame_root: str | Path, cfg: Any, videos: Sequence[str] | None = None) -> tuple:
        """``action val``: :func:`singleshot.tasks.action_act_eval.evaluate_act` with the tubelet cache
        under ``project/val/tubelets`` (``cache=true``) and ``workers`` processes."""
        from singleshot.tasks.action_act_eval import evaluate_act

        cache = Path(cfg.project) / "val" / "tubelets" if cfg.cache else None
        return evaluate_act(self, ann, frame_root, cfg, videos, cache_dir=cache, workers=cfg.workers)

    def predict_source(self, source: Path, out_dir: Path, cfg: Any) -> dict[str, Any]:
        """``action predict``: see :func:`singleshot.tasks.action_act_eval.predict_act`."""
        from singleshot.tasks.action_act_eval import predict_act

        return predict_act(self, source, out_dir, cfg)


def _flow_stream(meta: dict[str, Any], cfg: Any) -> tuple[nn.Module, dict[str, Any]] | None:
    """The motion stream named by ``flow_weights`` (else by the RGB weights' metadata, beside them)."""
    from singleshot.engine.weights import load_state_into, load_weights
    from singleshot.tasks.action import model_from_meta

    name = str(getattr(cfg, "flow_weights", "") or meta.get("flow_weights", "") or "")
    if not name or name.lower() == "none":
        return None
    path = Path(name)
    if not getattr(cfg, "flow_weights", "") and getattr(cfg, "weights", ""):
        path = Path(cfg.weights).parent / name
    state, fmeta = load_weights(path)
    weight = float(getattr(cfg, "motion_weight", ACT_FUSION_WEIGHT))
    if weight != ACT_FUSION_WEIGHT:  # an explicit motion_weight= wins over the metadata's
        fmeta = dict(fmeta, fusion_weight=weight)
    return load_state_into(model_from_meta(fmeta), state, path, fmeta.get("architecture")), fmeta


def act_predictor(model: nn.Module, meta: dict[str, Any], cfg: Any) -> ACTPredictor:
    """The ``PREDICTORS["act"]`` entry of :mod:`singleshot.tasks.action` (with the motion stream, if any)."""
    flow = _flow_stream(meta, cfg)
    predictor = ACTPredictor(model, meta, tubelet_settings(meta, cfg),
                             getattr(cfg, "linking", "") or str(meta.get("linking", "act")), cfg.device,
                             flow_model=flow[0] if flow else None, flow_meta=flow[1] if flow else None,
                             flow_root=getattr(cfg, "flow", "") or None)  # fmt: skip
    predictor.parallel = bool(getattr(cfg, "parallel_branches", False))
    return predictor
