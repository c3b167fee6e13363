"""ACT inference: K-frame windows -> tubelets -> per-frame detections and linked tubes.

Per window (frames ``s … s+K-1``) two sets are kept, as ACT's ``extract_tubelets`` keeps them:

* the *detections* (``dets``): per class the 400 best cuboids above 0.01, tubelet NMS at 0.45, 200
  kept (:func:`~singleshot.postprocess.tubelet.postprocess_tubelets`); they give the per-frame
  detections of frame-mAP (:func:`~singleshot.postprocess.tubelet.frames_from_tubelets`, NMS 0.3);
* the *linking candidates* (``dets_all``): the cuboids whose best class score exceeds 0.01, with the
  scores of all C classes, after a class-agnostic tubelet NMS at 0.7 on the best class score, 300
  kept (:func:`linking_candidates`);
  ACT's linking (:func:`~singleshot.postprocess.tube_link_act.link_act`) reads these per class.

Boxes are xyxy pixels of the video's own frames (clipped to them). A window's input is its K frames
resized to the model's input (bilinear, antialiased when shrinking), scaled to [0, 1] and normalised
with the weights' mean/std (channels flipped first for BGR models such as ACT's Caffe ones).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from singleshot.data.action.clip_transforms import resize_clip
from singleshot.data.action.datasets import IMAGENET_MEAN, IMAGENET_STD
from singleshot.errors import ConfigError
from singleshot.ops.cuboids import decode_tubelets
from singleshot.postprocess.tube_link_act import ACTLinkParams, link_act, moc_link_params
from singleshot.postprocess.tubelet import (
    TubeletDetections,
    TubeletPostprocess,
    VideoFrameDetections,
    frames_from_tubelets,
    postprocess_tubelets,
)
from singleshot.structures import Tube

logger = logging.getLogger(__name__)

__all__ = ["ACTPredictor", "CandidateSettings", "VideoTubelets", "link_params", "linking_candidates", "tubelet_settings"]


@dataclass(frozen=True)
class CandidateSettings:
    """ACT's linking candidates: cuboids whose best class score exceeds ``min_score`` (0.01, the
    threshold ACT's ``extract_tubelets`` documents), class-agnostic tubelet NMS at ``nms_thresh``
    (0.7) on that score, ``keep`` (300) kept; only the ``pre_top`` best enter the NMS."""

    nms_thresh: float = 0.7
    keep: int = 300
    pre_top: int = 1000
    min_score: float = 0.01


@dataclass
class VideoTubelets:
    """Every window's tubelets of one video (see the module doc); arrays as stored in the cache.

    Attributes:
        video: name. num_frames: frames in the video. size: (height, width) of the boxes' frames.
        k: frames per tubelet.
        det_start: int64 [D] start frame of each detection; det_boxes: float32 [D, K, 4] xyxy pixels;
        det_scores: float32 [D]; det_labels: int64 [D] 0-based.
        cand_start: int64 [A]; cand_boxes: float32 [A, K, 4]; cand_scores: float32 [A, C].
    """

    video: str
    num_frames: int
    size: tuple[int, int]
    k: int
    det_start: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    det_boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 1, 4), np.float32))
    det_scores: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    det_labels: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    cand_start: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    cand_boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 1, 4), np.float32))
    cand_scores: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))

    ARRAYS = ("det_start", "det_boxes", "det_scores", "det_labels", "cand_start", "cand_boxes", "cand_scores")

    def tubelet_detections(self) -> list[TubeletDetections]:
        """One :class:`TubeletDetections` per start frame that has detections (``frames`` set)."""
        out = []
        for s in np.unique(self.det_start).tolist():
            m = self.det_start == s
            out.append(TubeletDetections(torch.from_numpy(self.det_boxes[m]), torch.from_numpy(self.det_scores[m]),
                                         torch.from_numpy(self.det_labels[m]), self.video,
                                         torch.arange(s, s + self.k, dtype=torch.int64)))  # fmt: skip
        return out

    def frame_detections(self, nms_thresh: float = 0.3, plus_one: bool = True) -> VideoFrameDetections:
        """Per-frame detections, ACT's way (every tubelet gives each covered frame its box; NMS per frame and class)."""
        return frames_from_tubelets(self.tubelet_detections(), nms_thresh, plus_one, video=self.video)

    def link_input(self) -> dict[int, dict[int, tuple[np.ndarray, np.ndarray]]]:
        """``{start: {label: (boxes [N, K, 4], scores [N])}}`` of the linking candidates."""
        out: dict[int, dict[int, tuple[np.ndarray, np.ndarray]]] = {}
        for s in np.unique(self.cand_start).tolist():
            m = self.cand_start == s
            boxes, scores = self.cand_boxes[m], self.cand_scores[m]
            out[int(s)] = {c: (boxes, scores[:, c]) for c in range(scores.shape[1])}
        return out

    def link(self, params: ACTLinkParams) -> list[Tube]:
        """ACT's tube linking of the candidates (tubes of every class)."""
        return link_act(self.link_input(), self.video, self.k, params) if len(self.cand_start) else []


def _mean_iou_matrix(boxes: Tensor) -> Tensor:
    """Tensor[n, K, 4] xyxy tubelets -> Tensor[n, n] IoU averaged over the K frames."""
    out = boxes.new_zeros((boxes.shape[0], boxes.shape[0]))
    for f in range(boxes.shape[1]):
        x1, y1, x2, y2 = boxes[:, f].unbind(-1)
        iw = torch.minimum(x2[:, None], x2[None]).sub_(torch.maximum(x1[:, None], x1[None])).clamp_(min=0)
        inter = torch.minimum(y2[:, None], y2[None]).sub_(torch.maximum(y1[:, None], y1[None])).clamp_(min=0).mul_(iw)
        area = (x2 - x1).clamp(min=0) * (y2 - y1).clamp(min=0)
        union = (area[:, None] + area[None]).sub_(inter).clamp_(min=1e-12)
        out += inter.div_(union)
    return out / boxes.shape[1]


def _greedy_keep(over: np.ndarray, keep: int) -> np.ndarray:
    """Greedy NMS of score-sorted candidates given ``over`` (bool [n, n], True where i suppresses j):
    bool [n], the first ``keep`` survivors."""
    n = over.shape[0]
    alive = np.ones(n, dtype=bool)
    kept = np.zeros(n, dtype=bool)
    count = 0
    for i in range(n):
        if not alive[i]:
            continue
        kept[i] = True
        count += 1
        if count == keep:
            break
        alive[i + 1 :] &= ~over[i, i + 1 :]
    return kept


def linking_candidates(outputs: dict[str, Tensor], priors: Tensor, frame_sizes: Sequence[tuple[int, int]],
                       settings: CandidateSettings = CandidateSettings(),
                       variances: tuple[float, float] = TubeletPostprocess().variances) -> list[tuple[Tensor, Tensor]]:  # fmt: skip
    """ACT's ``dets_all`` of a batch: per sample ``(boxes Tensor[A, K, 4] xyxy pixels clipped to the
    frame, scores Tensor[A, C] softmax class scores)``, A <= ``settings.keep``, by descending best
    score (> ``settings.min_score``); a candidate is dropped when its mean IoU over the K frames
    with a better kept one exceeds ``settings.nms_thresh`` (greedy, ACT's ``nms_tubelets``)."""
    logits, loc = outputs["conf"].float(), outputs["loc"].float()
    b, p, _ = logits.shape
    k = loc.shape[2] // 4
    scores = logits.softmax(-1)[..., 1:]  # [B, P, C]
    best, idx = scores.max(-1).values.topk(min(settings.pre_top, p), dim=1)  # sorted, descending
    tubes = decode_tubelets(loc.unflatten(-1, (k, 4)), priors.to(loc.device), variances)  # [B, P, K, 4]
    wh = torch.tensor([[w, h, w, h] for h, w in frame_sizes], dtype=torch.float32, device=loc.device)
    bi = torch.arange(b, device=loc.device)[:, None]
    cand = tubes[bi, idx] * wh[:, None, None, :]  # [B, n, K, 4]
    cand = torch.minimum(cand.clamp(min=0), wh[:, None, None, :])
    out = []
    for i in range(b):
        n = int((best[i] > settings.min_score).sum())  # a prefix: best is sorted
        over = (_mean_iou_matrix(cand[i, :n]) > settings.nms_thresh).cpu().numpy()
        kept = torch.from_numpy(_greedy_keep(over, settings.keep)).to(loc.device)
        out.append((cand[i, :n][kept], scores[i, idx[i, :n][kept]]))
    return out


def tubelet_settings(meta: dict[str, Any], cfg: Any = None) -> TubeletPostprocess:
    """Tubelet thresholds: the weights' ``postprocess`` (ACT's defaults otherwise); CLI ``conf``,
    ``iou`` and ``max_det`` win when they differ from the ``ActionConfig`` defaults."""
    post = dict(meta.get("postprocess") or {})
    base = TubeletPostprocess()
    values = {f: type(getattr(base, f))(post[f]) for f in ("score_thresh", "nms_thresh", "topk_candidates", "max_detections")
              if f in post}  # fmt: skip
    if cfg is not None:
        defaults = type(cfg)()
        for key, f in (("conf", "score_thresh"), ("iou", "nms_thresh"), ("max_det", "max_detections")):
            if getattr(cfg, key) != getattr(defaults, key):
                values[f] = type(getattr(base, f))(getattr(cfg, key))
    return TubeletPostprocess(**values)


def link_params(linking: str, k: int) -> ACTLinkParams:
    """``linking=act`` (ACT's published parameters) or ``moc`` (MOC-Detector's preset for K frames)."""
    if linking == "act":
        return ACTLinkParams()
    if linking == "moc":
        return moc_link_params(k)
    raise ConfigError(f"linking={linking!r} is unknown; expected act or moc")


class ACTPredictor:
    """An ACT model and its settings: frames in, :class:`VideoTubelets` out.

    Args:
        model: an :class:`~singleshot.models.act.ACTDetector` (``k``, ``priors``, ``num_classes``).
        meta: weights metadata (``input_size``, ``mean``, ``std``, ``channel_order``, ``classes``).
        settings: tubelet thresholds. linking: ``act`` or ``moc``. device: where the model runs.
    """

    protocol = "act"  #: the evaluation protocol ACT is scored with unless asked otherwise

    def __init__(self, model: nn.Module, meta: dict[str, Any], settings: TubeletPostprocess = TubeletPostprocess(),
                 linking: str = "act", device: str = "cpu", candidates: CandidateSettings = CandidateSettings()) -> None:  # fmt: skip
        self.device = torch.device(device)
        self.model = model.eval().to(self.device)
        self.meta, self.settings, self.candidates = meta, settings, candidates
        self.k = int(model.k)
        size = meta.get("input_size", [model.image_size, model.image_size])
        self.size = (int(size[0]), int(size[1])) if isinstance(size, (list, tuple)) else (int(size), int(size))
        self.mean = torch.tensor([float(v) for v in meta.get("mean", IMAGENET_MEAN)], device=self.device).view(1, 1, 3, 1, 1)
        self.std = torch.tensor([float(v) for v in meta.get("std", IMAGENET_STD)], device=self.device).view(1, 1, 3, 1, 1)
        self.bgr = str(meta.get("channel_order", "RGB")).upper() == "BGR"
        self.linking = linking
        self.link_params = link_params(linking, self.k)
        self.class_names: list[str] = list(meta.get("classes", [])) or [str(i) for i in range(model.num_classes)]

    def prepare(self, frames: Tensor) -> Tensor:
        """frames: Tensor[N, 3, H, W] uint8 RGB -> Tensor[N, 3, h, w] uint8 at the input size (BGR for BGR models)."""
        out, _ = resize_clip(frames, torch.zeros(0, 4), self.size)
        return out.flip(1) if self.bgr else out

    def normalise(self, windows: Tensor) -> Tensor:
        """Tensor[B, K, 3, h, w] uint8 -> float normalised on the device."""
        return (windows.to(self.device, torch.float32).div_(255.0) - self.mean) / self.std

    @torch.inference_mode()
    def detect_windows(self, windows: Tensor, starts: Sequence[int], orig_size: tuple[int, int]) -> tuple[list[TubeletDetections], list[tuple[Tensor, Tensor]]]:  # fmt: skip
        """Prepared windows Tensor[B, K, 3, h, w] uint8 starting at ``starts`` -> (detections, candidates) per window."""
        out = self.model(self.normalise(windows))
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
        """Tubelets of every window ``1 … N-K+1`` of a video's prepared frames Tensor[N, 3, h, w] uint8.

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
            for frame in frames:
                count += 1
                size = (int(frame.shape[0]), int(frame.shape[1]))
                ring.append(self.prepare(torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1)[None])[0])
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


def act_predictor(model: nn.Module, meta: dict[str, Any], cfg: Any) -> ACTPredictor:
    """The ``PREDICTORS["act"]`` entry of :mod:`singleshot.tasks.action`."""
    return ACTPredictor(model, meta, tubelet_settings(meta, cfg), getattr(cfg, "linking", "act"), cfg.device)
