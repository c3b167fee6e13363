"""ACT's tubelets of a video: per-window detections and linking candidates, their pooling into
per-frame detections and their linking into tubes.

Per window (frames ``s … s+K-1``) two sets are kept, as ACT's ``extract_tubelets`` keeps them:

* the *detections* (``dets``): per class the 400 best cuboids above 0.01, tubelet NMS at 0.45, 200
  kept (:func:`~singleshot.postprocess.tubelet.postprocess_tubelets`); they give the per-frame
  detections of frame-mAP (:func:`~singleshot.postprocess.tubelet.frames_from_tubelets`, NMS 0.3);
* the *linking candidates* (``dets_all``): the cuboids whose best class score exceeds 0.01, with the
  scores of all C classes, after a class-agnostic tubelet NMS at 0.7 on the best class score, 300
  kept (:func:`linking_candidates`); every cuboid above 0.01 enters that NMS, as in ACT (no cap on
  the candidates before it unless ``CandidateSettings.pre_top`` / ``pre_top=`` sets one);
  ACT's linking (:func:`~singleshot.postprocess.tube_link_act.link_act`) reads these per class.

Boxes are xyxy pixels of the video's own frames (clipped to them). :func:`frame_dets_of_tubelets`
gathers the per-frame detections of many videos into one :class:`~singleshot.structures.FrameDets`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from singleshot.errors import ConfigError
from singleshot.ops.boxes import pairwise_iou
from singleshot.ops.cuboids import decode_tubelets
from singleshot.postprocess.tube_link_act import ACTLinkParams, link_act, moc_link_params
from singleshot.postprocess.tubelet import (
    TubeletDetections,
    TubeletPostprocess,
    VideoFrameDetections,
    frames_from_tubelets,
)
from singleshot.structures import FrameDets, Tube

logger = logging.getLogger(__name__)

__all__ = [
    "CandidateSettings",
    "VideoTubelets",
    "act_linking",
    "candidate_settings",
    "frame_dets_of_tubelets",
    "greedy_tubelet_nms",
    "link_params",
    "linking_candidates",
    "tubelet_settings",
]


@dataclass(frozen=True)
class CandidateSettings:
    """ACT's linking candidates: cuboids whose best class score exceeds ``min_score`` (0.01, the
    threshold ACT's ``extract_tubelets`` documents; its code passes every cuboid, which
    ``min_score=0`` / ``cand_min_score=0`` reproduces), class-agnostic tubelet NMS at
    ``nms_thresh`` (0.7) on that score, ``keep`` (300) kept.

    ``pre_top``: when > 0, only the ``pre_top`` best cuboids enter the NMS — a cap ACT does not have
    (its ``nms_tubelets`` runs over every cuboid); 0 (default) passes them all. The NMS computes
    overlaps only for the rows it visits (about ``keep`` of them), so the uncapped run costs
    O(keep · n · K), not O(n² · K).
    """

    nms_thresh: float = 0.7
    keep: int = 300
    pre_top: int = 0
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
            out.append(
                TubeletDetections(
                    torch.from_numpy(self.det_boxes[m]),
                    torch.from_numpy(self.det_scores[m]),
                    torch.from_numpy(self.det_labels[m]),
                    self.video,
                    torch.arange(s, s + self.k, dtype=torch.int64),
                )
            )
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


def frame_dets_of_tubelets(videos: Sequence[str], tubelets: dict[str, VideoTubelets]) -> FrameDets:
    """Per-frame detections (ACT's pooling and NMS 0.3) of ``videos`` as one :class:`FrameDets`."""
    parts = []
    for i, v in enumerate(videos):
        fd = tubelets[v].frame_detections()
        if len(fd):
            parts.append(
                (
                    np.full(len(fd), i),
                    fd.frames.numpy(),
                    fd.labels.numpy(),
                    fd.scores.double().numpy(),
                    fd.boxes.double().numpy(),
                )
            )
    if not parts:
        return FrameDets(list(videos), *(np.zeros(0),) * 4, np.zeros((0, 4)))
    return FrameDets(list(videos), *(np.concatenate([p[j] for p in parts]) for j in range(5)))


def _mean_iou_rows(rows: Tensor, boxes: Tensor) -> Tensor:
    """Tensor[r, K, 4] and Tensor[m, K, 4] xyxy tubelets -> Tensor[r, m]: IoU averaged over the K frames."""
    out = rows.new_zeros((rows.shape[0], boxes.shape[0]))
    for f in range(boxes.shape[1]):  # frames summed in order, then averaged
        out += pairwise_iou(rows[:, f], boxes[:, f])
    return out / boxes.shape[1]


def greedy_tubelet_nms(boxes: Tensor, thresh: float, keep: int, block: int = 64) -> Tensor:
    """Greedy NMS of score-sorted tubelets (ACT's ``nms_tubelets`` rule): candidate j is dropped
    when its mean IoU over the K frames with a kept, better one exceeds ``thresh``; stops at
    ``keep`` kept.

    The candidates are visited ``block`` at a time: each block is compared with the tubelets kept
    so far and with itself, and the visit stops at the ``keep``-th kept one. No [n, n] matrix is
    held and candidates after the stopping point cost nothing, so the work is about
    (visited) · (keep + block) · K IoUs however long the tail of candidates is.

    Args:
        boxes: Tensor[n, K, 4] xyxy, sorted by descending score.

    Returns:
        Tensor[n] bool, True for the kept candidates.
    """
    n = boxes.shape[0]
    kept = np.zeros(n, dtype=bool)
    kept_idx: list[int] = []
    for start in range(0, n, block):
        cand = boxes[start : start + block]
        alive = np.ones(cand.shape[0], dtype=bool)
        if kept_idx:
            alive &= ~(_mean_iou_rows(boxes[torch.tensor(kept_idx)], cand) > thresh).any(0).cpu().numpy()
        if not alive.any():
            continue
        within = (_mean_iou_rows(cand, cand) > thresh).cpu().numpy()
        for j in np.flatnonzero(alive).tolist():
            if not alive[j]:
                continue
            kept[start + j] = True
            kept_idx.append(start + j)
            if len(kept_idx) == keep:
                return torch.from_numpy(kept)
            alive[j + 1 :] &= ~within[j, j + 1 :]
    return torch.from_numpy(kept)


def linking_candidates(
    outputs: dict[str, Tensor],
    priors: Tensor,
    frame_sizes: Sequence[tuple[int, int]],
    settings: CandidateSettings = CandidateSettings(),
    variances: tuple[float, float] = TubeletPostprocess().variances,
) -> list[tuple[Tensor, Tensor]]:
    """ACT's ``dets_all`` of a batch: per sample ``(boxes Tensor[A, K, 4] xyxy pixels clipped to the
    frame, scores Tensor[A, C] softmax class scores)``, A <= ``settings.keep``, by descending best
    score (> ``settings.min_score``; all of them, or the ``settings.pre_top`` best when > 0); a
    candidate is dropped when its mean IoU over the K frames with a better kept one exceeds
    ``settings.nms_thresh`` (greedy, ACT's ``nms_tubelets``: :func:`greedy_tubelet_nms`)."""
    logits, loc = outputs["conf"].float(), outputs["loc"].float()
    b, p, _ = logits.shape
    k = loc.shape[2] // 4
    scores = logits.softmax(-1)[..., 1:]  # [B, P, C]
    best_all = scores.max(-1).values  # [B, P]
    above = int((best_all > settings.min_score).sum(1).max()) if b else 0  # only these can enter
    top = min(settings.pre_top, above) if settings.pre_top > 0 else above
    best, idx = best_all.topk(top, dim=1)  # sorted, descending
    tubes = decode_tubelets(loc.unflatten(-1, (k, 4)), priors.to(loc.device), variances)  # [B, P, K, 4]
    wh = torch.tensor([[w, h, w, h] for h, w in frame_sizes], dtype=torch.float32, device=loc.device)
    bi = torch.arange(b, device=loc.device)[:, None]
    cand = tubes[bi, idx] * wh[:, None, None, :]  # [B, n, K, 4]
    cand = torch.minimum(cand.clamp(min=0), wh[:, None, None, :])
    out = []
    for i in range(b):
        n = int((best[i] > settings.min_score).sum())  # a prefix: best is sorted
        kept = greedy_tubelet_nms(cand[i, :n], settings.nms_thresh, settings.keep).to(loc.device)
        out.append((cand[i, :n][kept], scores[i, idx[i, :n][kept]]))
    return out


def candidate_settings(cfg: Any = None) -> CandidateSettings:
    """The linking candidates' settings under ``cfg``: ACT's, with ``pre_top=`` (0: no cap, ACT's;
    N > 0: only the N best cuboids enter the NMS) and ``cand_min_score=`` (0.01, ACT's documented
    floor; 0: every cuboid, as ACT's code) when ``cfg`` has them."""
    base = CandidateSettings()
    pre_top = int(getattr(cfg, "pre_top", base.pre_top))
    if pre_top < 0:
        raise ConfigError(f"pre_top={pre_top}: expected 0 (every candidate, as ACT) or a positive cap")
    min_score = float(getattr(cfg, "cand_min_score", base.min_score))
    return CandidateSettings(pre_top=pre_top, min_score=min_score)


def tubelet_settings(meta: dict[str, Any], cfg: Any = None) -> TubeletPostprocess:
    """Tubelet thresholds: the weights' ``postprocess`` (ACT's defaults otherwise); CLI ``conf``,
    ``iou`` and ``max_det`` win when they differ from the ``ActionConfig`` defaults."""
    post = dict(meta.get("postprocess") or {})
    base = TubeletPostprocess()
    values = {
        f: type(getattr(base, f))(post[f])
        for f in ("score_thresh", "nms_thresh", "topk_candidates", "max_detections")
        if f in post
    }
    if cfg is not None:
        defaults = type(cfg)()
        for key, f in (("conf", "score_thresh"), ("iou", "nms_thresh"), ("max_det", "max_detections")):
            if getattr(cfg, key) != getattr(defaults, key):
                values[f] = type(getattr(base, f))(getattr(cfg, key))
    return TubeletPostprocess(**values)


def act_linking(linking: str) -> str:
    """The ACT member's linking name: ``act`` (ACT's published parameters; also for ``""``, the
    member's default) or ``moc`` (MOC-Detector's preset)."""
    name = linking or "act"
    if name not in ("act", "moc"):
        raise ConfigError(f"linking={linking!r} is unknown for ACT; expected act or moc")
    return name


def link_params(linking: str, k: int) -> ACTLinkParams:
    """The parameters of :func:`act_linking`'s ``linking`` for tubelets of ``k`` frames."""
    return ACTLinkParams() if act_linking(linking) == "act" else moc_link_params(k)
