"""ACT's tube linking (vkalogeiton ACT ``BuildTubes``; MOC-Detector keeps its structure).

Input, per video: ``tubelets = {start_frame: {label: (boxes, scores)}}`` with ``boxes`` float
[N, K, 4] xyxy pixels of frames ``start_frame … start_frame + K - 1`` and ``scores`` float [N]
(the tubelets' score for ``label``). :func:`tubelets_from_act_rows` and
:func:`tubelets_from_moc_dict` build it from the two projects' per-frame files.

Per class, start frames 1, 2, … in order:

1. NMS of the frame's tubelets: a tubelet whose IoU averaged over the K frames with a better one
   exceeds ``nms_thresh`` (0.3) is dropped; the ``top_k`` (10) best are kept.
2. Current tubes, sorted by mean tubelet score (descending, stable), each take in turn the
   best-scored remaining tubelet whose IoU with the tube's last tubelet, averaged over the frames
   they share (``K - offset`` frames, offset = start difference; when they share none, the last
   box against the first), is >= ``link_iou`` (0.2).
3. A tube that took nothing and whose last tubelet started ``max_gap`` (5) or more frames ago is
   closed. Tubelets left over start new tubes.

At the end every tube is scored by the mean score of its tubelets and dropped when that is below
``min_score`` (0.01) or when it spans fewer than ``min_length`` (15) frames; each frame's box (and
per-frame score) is the mean over the tubelets covering that frame. (Frames covered by no tubelet,
possible only with ``max_gap > K``, are left out of the tube; ACT would divide by zero there.)
IoUs (:func:`singleshot.ops.boxes.box_iou_np`, float64) use the +1 pixel convention, as ACT.
Classes are advanced together frame by frame, so the K-frame IoU matrix of tubelets that several
classes share (ACT's ``dets_all``) is computed once per start frame. MOC's preset
(:func:`moc_link_params`): NMS 0.6, link IoU 0.5, gap K, min score 0.005; MOC's NMS re-weights
suppressed tubelets' scores instead of dropping them, which is not copied.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from singleshot.ops.boxes import box_iou_np
from singleshot.structures import Tube

logger = logging.getLogger(__name__)

__all__ = [
    "ACTLinkParams",
    "OnlineACTLinker",
    "link_act",
    "moc_link_params",
    "nms_tubelets",
    "tubelet_iou_matrix",
    "tubelets_from_act_rows",
    "tubelets_from_moc_dict",
]

VideoTubelets = Mapping[int, Mapping[int, tuple[np.ndarray, np.ndarray]]]


@dataclass(frozen=True)
class ACTLinkParams:
    """Parameters of ACT linking (defaults: ACT's published values)."""

    nms_thresh: float = 0.3
    top_k: int = 10
    link_iou: float = 0.2
    max_gap: int = 5
    min_score: float = 0.01
    min_length: int = 15
    plus_one: bool = True


def moc_link_params(k: int) -> ACTLinkParams:
    """MOC-Detector's values for tubelets of ``k`` frames."""
    return ACTLinkParams(nms_thresh=0.6, top_k=10, link_iou=0.5, max_gap=k, min_score=0.005, min_length=15)


def tubelet_iou_matrix(boxes: np.ndarray, plus_one: bool = True) -> np.ndarray:
    """float64 [N, N]: IoU averaged over the K frames between tubelets ``boxes`` [N, K, 4]."""
    out = np.empty((boxes.shape[0], boxes.shape[0]), dtype=np.float64)
    step = max(1, (1 << 20) // max(1, boxes.shape[0] * boxes.shape[1]))
    for i in range(0, boxes.shape[0], step):
        out[i : i + step] = box_iou_np(boxes[i : i + step, None], boxes[None], plus_one).mean(axis=2)
    return out


def nms_tubelets(
    boxes: np.ndarray,
    scores: np.ndarray,
    thresh: float,
    top_k: int,
    plus_one: bool = True,
    iou: np.ndarray | None = None,
) -> np.ndarray:
    """Greedy NMS of tubelets (boxes [N, K, 4], scores [N]) on the K-frame mean IoU (> ``thresh``
    suppresses). Returns the kept indices, best first, at most ``top_k``.

    ``iou``: the [N, N] matrix of :func:`tubelet_iou_matrix` when already known (tubelets shared by
    several classes); otherwise only the rows of the kept tubelets are computed.
    """
    n = scores.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.argsort(-scores, kind="stable")
    ranked = boxes[order]
    alive = np.ones(n, dtype=bool)
    keep: list[int] = []
    while len(keep) < top_k:
        i = int(np.argmax(alive))
        if not alive[i]:
            break
        keep.append(i)
        if iou is not None:
            row = iou[order[i], order]
        else:
            row = box_iou_np(ranked[i][None], ranked, plus_one).mean(axis=1)
        alive &= row <= thresh
        alive[i] = False
    return order[np.asarray(keep, dtype=np.int64)]


def _link_iou(last: np.ndarray, offset: np.ndarray, new: np.ndarray, plus_one: bool) -> np.ndarray:
    """[T, M]: IoU between each tube's last tubelet (``last`` [T, K, 4], started ``offset`` [T]
    frames before) and each new tubelet ``new`` [M, K, 4], over the frames they share."""
    k = last.shape[1]
    kk = np.arange(k)
    src = kk[None, :] + offset[:, None]  # frame k of a new tubelet is frame k + offset of the last one
    shared = src < k
    no_overlap = offset >= k
    shared[no_overlap, 0] = True
    src = np.where(no_overlap[:, None], k - 1, np.minimum(src, k - 1))
    aligned = np.take_along_axis(last, src[:, :, None], axis=1)  # [T, K, 4]
    iou = box_iou_np(aligned[:, None], new[None], plus_one)  # [T, M, K]
    return (iou * shared[:, None, :]).sum(axis=2) / shared.sum(axis=1)[:, None]


Chain = list[tuple[int, np.ndarray, float]]


class _ClassLinker:
    """ACT's linking state for one class, advanced one start frame at a time."""

    def __init__(self, k: int, params: ACTLinkParams) -> None:
        self.k, self.p = k, params
        self.chains: list[Chain] = []  # current tubes
        self.finished: list[Chain] = []
        self.last_start = np.zeros(0, dtype=np.int64)
        self.last_boxes = np.zeros((0, k, 4))
        self.total = np.zeros(0)
        self.count = np.zeros(0)

    def step(self, frame: int, boxes: np.ndarray, scores: np.ndarray, iou: np.ndarray | None) -> None:
        """Link the tubelets starting at ``frame`` (boxes [N, K, 4], scores [N]; ``iou`` their
        [N, N] mean-IoU matrix when precomputed)."""
        p = self.p
        keep = nms_tubelets(boxes, scores, p.nms_thresh, p.top_k, p.plus_one, iou)
        boxes, scores = boxes[keep], scores[keep]
        free = [True] * scores.shape[0]
        if self.chains:
            order = np.argsort(-(self.total / self.count), kind="stable")
            chains = [self.chains[i] for i in order]
            last_start, last_boxes = self.last_start[order], self.last_boxes[order]
            total, count = self.total[order], self.count[order]
            offsets = frame - last_start
            hit = np.zeros(len(chains), dtype=bool)
            if scores.size:
                valid = _link_iou(last_boxes, offsets, boxes, p.plus_one) >= p.link_iou
                score_list = scores.tolist()
                n_free = len(free)
                for i in np.flatnonzero(valid.any(axis=1)).tolist():
                    best = -1
                    for j, ok in enumerate(valid[i].tolist()):
                        if ok and free[j] and (best < 0 or score_list[j] > score_list[best]):
                            best = j
                    if best >= 0:
                        free[best] = False
                        hit[i] = True
                        chains[i].append((frame, boxes[best], score_list[best]))
                        last_boxes[i] = boxes[best]
                        total[i] += score_list[best]
                        count[i] += 1
                        n_free -= 1
                        if n_free == 0:
                            break
            last_start = np.where(hit, frame, last_start)
            stay = hit | (offsets < p.max_gap)
            if not stay.all():
                self.finished.extend(c for c, s in zip(chains, stay.tolist()) if not s)
                chains = [c for c, s in zip(chains, stay.tolist()) if s]
                last_start, last_boxes, total, count = last_start[stay], last_boxes[stay], total[stay], count[stay]
            self.chains, self.last_start, self.last_boxes, self.total, self.count = (
                chains,
                last_start,
                last_boxes,
                total,
                count,
            )
        new = [j for j, f in enumerate(free) if f]
        if new:
            self.chains.extend([(frame, boxes[j], float(scores[j]))] for j in new)
            self.last_start = np.concatenate([self.last_start, np.full(len(new), frame, dtype=np.int64)])
            self.last_boxes = np.concatenate([self.last_boxes, boxes[new]])
            self.total = np.concatenate([self.total, scores[new]])
            self.count = np.concatenate([self.count, np.ones(len(new))])

    def tubes(self) -> list[Chain]:
        return self.finished + self.chains


def link_act(
    tubelets: VideoTubelets, video: str, k: int | None = None, params: ACTLinkParams | None = None
) -> list[Tube]:
    """Link one video's tubelets into tubes, per class (see the module doc).

    Args:
        tubelets: ``{start_frame (1-based): {label (0-based): (boxes [N, K, 4], scores [N])}}``.
        video: the video's name (``"Class/video"``).
        k: tubelet length (default: read from the boxes).
        params: ACT's values by default.

    Returns:
        Tubes by label then creation order; ``score`` the mean tubelet score, ``frame_scores`` the
        mean score of the tubelets covering each frame.
    """
    p = params or ACTLinkParams()
    by_label: dict[int, dict[int, tuple[np.ndarray, np.ndarray]]] = {}
    converted: dict[int, np.ndarray] = {}
    users: dict[int, int] = {}
    for start, per_label in tubelets.items():
        for label, (boxes_in, scores_in) in per_label.items():
            if id(boxes_in) not in converted:
                converted[id(boxes_in)] = np.asarray(boxes_in, dtype=np.float64)
            boxes = converted[id(boxes_in)]
            scores = np.asarray(scores_in, dtype=np.float64).reshape(-1)
            if boxes.ndim != 3 or boxes.shape[2] != 4 or boxes.shape[0] != scores.shape[0]:
                raise ValueError(
                    f"{video}: tubelets at frame {start}, label {label} must be boxes [N, K, 4] "
                    f"and scores [N], not {list(boxes.shape)} and {list(scores.shape)}"
                )
            if k is None:
                k = boxes.shape[1]
            if boxes.shape[1] != k:
                raise ValueError(f"{video}: tubelets at frame {start} have {boxes.shape[1]} frames, expected {k}")
            users[id(boxes)] = users.get(id(boxes), 0) + 1
            by_label.setdefault(int(label), {})[int(start)] = (boxes, scores)
    k = int(k or 1)
    linkers = {label: _ClassLinker(k, p) for label in by_label}
    spans = {label: (min(ps), max(ps)) for label, ps in by_label.items()}
    empty = (np.zeros((0, k, 4)), np.zeros(0))
    frames = [f for f0, f1 in spans.values() for f in (f0, f1)]
    for frame in range(min(frames, default=1), max(frames, default=0) + 1):
        # Tubelets shared by several classes (ACT's dets_all) get their IoU matrix once per frame.
        shared: dict[int, np.ndarray] = {}
        for label, linker in linkers.items():
            if not spans[label][0] <= frame <= spans[label][1]:
                continue
            boxes, scores = by_label[label].get(frame, empty)
            iou = None
            if users.get(id(boxes), 0) > 1 and boxes.shape[0] > p.top_k:
                if id(boxes) not in shared:
                    shared[id(boxes)] = tubelet_iou_matrix(boxes, p.plus_one)
                iou = shared[id(boxes)]
            linker.step(frame, boxes, scores, iou)
    out: list[Tube] = []
    for label in sorted(by_label):
        for chain in linkers[label].tubes():
            score = sum(s for _, _, s in chain) / len(chain)
            if score >= p.min_score and chain[-1][0] + k - chain[0][0] >= p.min_length:
                out.append(_build_tube(chain, k, video, label, score))
    return out


class OnlineACTLinker:
    """ACT's linking advanced frame by frame as tubelets arrive, handing out each tube as soon as
    it is closed (its last tubelet started ``max_gap`` frames ago without a successor).

    Over a finite video, the tubes of :meth:`step` and :meth:`finish` together are those of
    :func:`link_act` on the same tubelets (the same chains, scores and boxes), in the order they
    close. Memory holds the open chains only.

    Args:
        video: the video's name. k: tubelet length. num_classes: labels 0 … C-1.
        params: ACT's values by default.
    """

    def __init__(self, video: str, k: int, num_classes: int, params: ACTLinkParams | None = None) -> None:
        self.video, self.k, self.p = video, int(k), params or ACTLinkParams()
        self.linkers = [_ClassLinker(self.k, self.p) for _ in range(int(num_classes))]
        self.frame = 0

    def _tube(self, chain: Chain, label: int) -> Tube | None:
        score = sum(s for _, _, s in chain) / len(chain)
        if score >= self.p.min_score and chain[-1][0] + self.k - chain[0][0] >= self.p.min_length:
            return _build_tube(chain, self.k, self.video, label, score)
        return None

    def step(self, frame: int, tubelets: Mapping[int, tuple[np.ndarray, np.ndarray]]) -> list[Tube]:
        """Link the tubelets starting at ``frame`` (``{label: (boxes [N, K, 4], scores [N])}``; frames
        must come in increasing order, missing labels have none); returns the tubes closed now."""
        if frame <= self.frame:
            raise ValueError(f"{self.video}: frame {frame} after frame {self.frame}: frames must increase")
        empty = (np.zeros((0, self.k, 4)), np.zeros(0))
        closed: list[Tube] = []
        for f in range(self.frame + 1, frame + 1):
            for label, linker in enumerate(self.linkers):
                boxes, scores = tubelets.get(label, empty) if f == frame else empty
                linker.step(
                    f, np.asarray(boxes, dtype=np.float64), np.asarray(scores, dtype=np.float64).reshape(-1), None
                )
                if linker.finished:
                    closed += [t for t in (self._tube(c, label) for c in linker.finished) if t is not None]
                    linker.finished = []
        self.frame = frame
        return closed

    def finish(self) -> list[Tube]:
        """The tubes still open at the end of the video (then the linker is empty)."""
        out: list[Tube] = []
        for label, linker in enumerate(self.linkers):
            out += [t for t in (self._tube(c, label) for c in linker.tubes()) if t is not None]
            linker.finished, linker.chains = [], []
        return out


def _build_tube(chain: Chain, k: int, video: str, label: int, tube_score: float) -> Tube:
    """The tube of a chain: per frame the mean box and mean score of the tubelets covering it."""
    first = chain[0][0]
    length = chain[-1][0] + k - first
    acc = np.zeros((length, 4))
    acc_score = np.zeros(length)
    count = np.zeros(length)
    for start, boxes, score in chain:
        sl = slice(start - first, start - first + k)
        acc[sl] += boxes
        acc_score[sl] += score
        count[sl] += 1
    has = count > 0
    frames = np.arange(first, first + length, dtype=np.int64)[has]
    boxes = (acc[has] / count[has, None]).astype(np.float32)
    return Tube(video, label, frames, boxes, float(tube_score), (acc_score[has] / count[has]).astype(np.float32))


def tubelets_from_act_rows(
    rows_by_start: Mapping[int, np.ndarray], k: int, background: bool = True
) -> dict[int, dict[int, tuple[np.ndarray, np.ndarray]]]:
    """From ACT's per-start-frame ``dets_all`` arrays [N, 4K + 1 + C] (K boxes, the background
    score when ``background``, then one score per class) to the linking input."""
    out: dict[int, dict[int, tuple[np.ndarray, np.ndarray]]] = {}
    for start, rows in rows_by_start.items():
        rows = np.asarray(rows, dtype=np.float64)
        boxes = rows[:, : 4 * k].reshape(-1, k, 4)
        scores = rows[:, 4 * k + (1 if background else 0) :]
        out[int(start)] = {c: (boxes, scores[:, c]) for c in range(scores.shape[1])}
    return out


def tubelets_from_moc_dict(
    dets_by_start: Mapping[int, Mapping[int, np.ndarray]], k: int
) -> dict[int, dict[int, tuple[np.ndarray, np.ndarray]]]:
    """From MOC-Detector's per-start-frame ``{label (1-based): [N, 4K + 1]}`` to the linking input."""
    out: dict[int, dict[int, tuple[np.ndarray, np.ndarray]]] = {}
    for start, per_label in dets_by_start.items():
        out[int(start)] = {}
        for label, rows in per_label.items():
            rows = np.asarray(rows, np.float64)
            out[int(start)][int(label) - 1] = (rows[:, : 4 * k].reshape(-1, k, 4), rows[:, -1])
    return out
