"""What the ``action`` family's modes predict with: the members' common interface, weights
metadata, and YOWO's predictor with its model building and tube linking.

- :class:`ActionPredictor`: what a member's predictor offers the modes (``class_names`` and
  :meth:`~ActionPredictor.predict_video`, a raw video in, :class:`VideoPrediction` out);
  :func:`family_of` names the member of a weights file and :func:`load_action_weights` rebuilds its
  model through the registry (:func:`~singleshot.models.model_from_meta`).
- YOWO: :func:`arch_kwargs` / :func:`build_action_model` (builder arguments of the config, freezing),
  :func:`action_meta` (its weights metadata), :class:`YowoPredictor` (frames -> clips ending at each
  key frame -> model -> :func:`~singleshot.postprocess.yowo.yowo_postprocess`, batched) and
  :func:`yowo_predictor`, the factory of its member record (:mod:`singleshot.tasks.action.members`).
- Linking: per-frame detections gathered into :class:`~singleshot.structures.FrameDets`
  (:func:`frame_dets_of`), linked into tubes (:func:`link_tubes`: YOWO's Viterbi linking, or ACT's
  linking of one-frame tubelets) and trimmed (:func:`trim_tubes`).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor, nn

from singleshot.data.action.clip_transforms import resize_clip
from singleshot.data.action.clips import yowo_clip_frames
from singleshot.data.action.datasets import IMAGENET_MEAN, IMAGENET_STD
from singleshot.data.input_spec import InputSpec, size_hw
from singleshot.engine.weights import load_state_into, read_model_weights
from singleshot.errors import ConfigError, WeightsError
from singleshot.models import create_model, list_models, model_entry, model_from_meta
from singleshot.models.yowo import YOWO, tiny3d_stride
from singleshot.postprocess.tube_link_act import ACTLinkParams, link_act, moc_link_params
from singleshot.postprocess.tube_link_viterbi import link_viterbi
from singleshot.postprocess.yowo import yowo_postprocess
from singleshot.structures import Detections, FrameDets, Tube
from singleshot.tasks.action.act_weights import is_two_stream, two_stream_model, with_flow_beside
from singleshot.tasks.action.config import ActionConfig, ActionOptions, YowoOptions

logger = logging.getLogger(__name__)

__all__ = [
    "ActionPredictor",
    "VideoPrediction",
    "YOWO_LINKINGS",
    "YowoPredictor",
    "action_meta",
    "anchor_pairs",
    "apply_freeze",
    "arch_kwargs",
    "branch_threads",
    "build_action_model",
    "check_yowo_arch",
    "checked_yowo_linking",
    "family_of",
    "frame_dets_of",
    "freeze_mode",
    "link_frames_act",
    "link_tubes",
    "link_params_of",
    "load_action_weights",
    "output_stride",
    "postprocess_settings",
    "training_input_spec",
    "trim_tube",
    "trim_tubes",
    "yowo_linking",
    "yowo_predictor",
]


# ---------------------------------------------------------------- members' common interface
@dataclass
class VideoPrediction:
    """What a predictor makes of one raw video (see :meth:`ActionPredictor.predict_video`).

    Attributes:
        dets: the per-frame detections (boxes xyxy pixels of the video's frames, frames 1-based).
        tubes: the linked (and trimmed) tubes, by descending score.
        num_frames: frames read (0: the source held none).
        size: (height, width) of the frames.
        extra: the member's own entries of the ``predict`` result (ACT: ``windows``).
    """

    dets: FrameDets
    tubes: list[Tube]
    num_frames: int
    size: tuple[int, int]
    extra: dict[str, Any] = field(default_factory=dict)


class ActionPredictor(Protocol):
    """What the modes ask of a member's predictor (:class:`YowoPredictor`,
    :class:`~singleshot.tasks.action.act_predictor.ACTPredictor`)."""

    class_names: list[str]

    def predict_video(self, frames: Iterable[np.ndarray], name: str, batch: int, trim: float = 0.0) -> VideoPrediction:
        """Online detection over a video's frames (uint8 [H, W, 3] RGB, in order) named ``name``:
        ``batch`` inputs run together; linked tubes trimmed at frame score ``trim`` (0: not)."""
        ...


def family_of(meta: dict[str, Any]) -> str:
    """The action member of weights metadata: its ``family``, else the registry's family of its
    ``architecture``.

    Raises:
        WeightsError: neither names an action member.
    """
    if "family" in meta:
        return str(meta["family"])
    arch = str(meta.get("architecture", ""))
    archs = list_models(task="action")
    if arch not in archs:
        raise WeightsError(
            f"weights metadata: architecture {arch!r} is no action architecture; expected one of {archs}"
        )
    return model_entry(arch).family


def load_action_weights(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """``(model holding the tensors of the action .safetensors at path, its metadata)``; the model is
    rebuilt from the metadata (:func:`~singleshot.models.model_from_meta`) and loaded strictly. Two-stream
    ACT weights (one file, or the older two files) give a
    :class:`~singleshot.tasks.action.act_two_stream.TwoStreamACT` (:mod:`~singleshot.tasks.action.act_weights`).

    Raises:
        WeightsError: naming the file: not an action model's, or tensors that do not fit.
    """
    state, meta = with_flow_beside(*read_model_weights(path), path)
    if is_two_stream(meta):
        return two_stream_model(state, meta, path), meta
    return load_state_into(
        model_from_meta(meta, task="action", source=path), state, path, meta.get("architecture")
    ), meta


# ---------------------------------------------------------------- YOWO: models and metadata
def anchor_pairs(values: Sequence[float]) -> list[list[float]] | None:
    """Flat ``(w1, h1, w2, h2, ...)`` -> ``[[w1, h1], ...]``; None for an empty list."""
    if not values:
        return None
    if len(values) % 2:
        raise ConfigError(f"anchors: needs pairs of (w, h) grid cells, got {len(values)} numbers")
    return [[float(values[i]), float(values[i + 1])] for i in range(0, len(values), 2)]


_FREEZE = {"none": "none", "false": "none", "all": "all", "true": "all", "partial": "partial"}


def freeze_mode(value: str, key: str) -> str:
    """``none``, ``all`` or ``partial`` of a ``freeze_2d`` / ``freeze_3d`` value (``false``/``true`` too)."""
    try:
        return _FREEZE[str(value).lower()]
    except KeyError:
        raise ConfigError(f"{key}={value!r}: expected none, all or partial") from None


def check_yowo_arch(cfg: YowoOptions) -> None:
    """Fail unless ``cfg.arch`` is a registered YOWO architecture."""
    archs = tuple(list_models(task="action", family="yowo"))
    if cfg.arch not in archs:
        raise ConfigError(f"arch={cfg.arch!r} is not a yowo architecture; expected one of {archs}")


def output_stride(cfg: YowoOptions) -> int:
    """Input pixels per output cell of the YOWO ``cfg`` builds: ``out_stride`` (8, 16 or 32) when both
    backbones are the tiny ones (``arch=yowo_tiny``, or ``tiny3d`` + ``tiny2d``), else 32."""
    if cfg.out_stride not in (8, 16, 32):
        raise ConfigError(f"out_stride={cfg.out_stride}: expected 8, 16 or 32")
    tiny = cfg.arch == "yowo_tiny" or (cfg.backbone3d == "tiny3d" and cfg.backbone2d == "tiny2d")
    if cfg.out_stride != 32 and not tiny:
        raise ConfigError(
            f"out_stride={cfg.out_stride}: only the tiny backbones (arch=yowo_tiny, or backbone3d=tiny3d "
            f"with backbone2d=tiny2d) offer strides 8 and 16; {cfg.backbone3d} + {cfg.backbone2d} have 32"
        )
    return cfg.out_stride if tiny else 32


def arch_kwargs(cfg: YowoOptions) -> dict[str, Any]:
    """Builder arguments of ``cfg.arch`` (freezing excluded: it is a training choice, not an architecture)."""
    check_yowo_arch(cfg)
    if cfg.imgsz % 32:
        raise ConfigError(f"imgsz={cfg.imgsz}: YOWO needs an input size divisible by 32")
    stride = output_stride(cfg)
    kwargs: dict[str, Any] = {"clip_len": cfg.clip_len}
    if cfg.arch == "yowo_tiny":
        kwargs.update(width=cfg.width, stride=stride)
    else:
        kwargs.update(backbone3d=cfg.backbone3d, backbone2d=cfg.backbone2d)
        if cfg.backbone3d == "tiny3d":
            kwargs["backbone3d_kwargs"] = {"width": cfg.width, "stride": tiny3d_stride(stride)}
        if cfg.backbone2d == "tiny2d":
            kwargs["backbone2d_kwargs"] = {"width": cfg.width, "out_channels": 8 * cfg.width, "stride": stride}
    if cfg.cfam_channels:
        kwargs["cfam_channels"] = cfg.cfam_channels
    if cfg.input_3d != "rgb":
        kwargs["input_3d"] = cfg.input_3d
    anchors = anchor_pairs(cfg.anchors)
    if anchors is not None:
        kwargs["anchors"] = anchors
    return kwargs


def branch_threads(cfg: ActionOptions, world_size: int) -> bool:
    """``parallel_branches``, refused under DDP (the threaded backward is not DDP's single pass)."""
    if cfg.parallel_branches and world_size > 1:
        raise ConfigError(
            "parallel_branches=true runs a model's two branches in threads of one process; "
            "it does not combine with torchrun (DDP): drop it or run one process"
        )
    return bool(cfg.parallel_branches)


def apply_freeze(model: nn.Module, cfg: YowoOptions) -> None:
    """Freeze the backbones named by ``freeze_2d`` / ``freeze_3d`` (YOWO models)."""
    modes = freeze_mode(cfg.freeze_2d, "freeze_2d"), freeze_mode(cfg.freeze_3d, "freeze_3d")
    if isinstance(model, YOWO):
        model.set_freeze(*modes)
    elif modes != ("none", "none"):
        raise ConfigError(f"{type(model).__name__} has no backbone freezing options")


def build_action_model(cfg: YowoOptions, num_classes: int) -> tuple[nn.Module, dict[str, Any]]:
    """``(YOWO with freezing applied, builder kwargs)`` for ``cfg.arch``."""
    kwargs = arch_kwargs(cfg)
    model = create_model(cfg.arch, num_classes, **kwargs)
    apply_freeze(model, cfg)
    return model, kwargs


def training_input_spec(cfg: ActionOptions, pretrained_meta: Mapping[str, Any] | None = None) -> InputSpec:
    """The input convention an action model trains with (both members): the channel order and
    mean/std of the ``pretrained=`` file's metadata (ImageNet RGB without one), at ``imgsz``, with
    the resize policy ``antialias``. Training normalises with it and writes it into the weights."""
    size = (int(cfg.imgsz), int(cfg.imgsz))
    base = InputSpec.from_meta(pretrained_meta, size=size) if pretrained_meta else InputSpec.named("imagenet", size)
    return dataclasses.replace(base, size=size, antialias=bool(cfg.antialias))


def action_meta(
    model: YOWO,
    cfg: YowoOptions,
    kwargs: dict[str, Any],
    classes: Sequence[str],
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    **extra: Any,
) -> dict[str, Any]:
    """Metadata written beside the tensors of a YOWO trained or converted here (read back by
    ``action val/predict`` and :func:`~singleshot.models.model_from_meta`)."""
    meta: dict[str, Any] = {
        "task": "action",
        "family": "yowo",
        "architecture": cfg.arch,
        "arch_kwargs": kwargs,
        "num_classes": len(classes),
        "classes": list(classes),
        "anchors": model.anchors.tolist(),
        "clip_len": int(model.clip_len),
        "stride": cfg.stride,
        "input_size": [cfg.imgsz, cfg.imgsz],
        "channel_order": "RGB",
        "mean": [float(v) for v in mean],
        "std": [float(v) for v in std],
        "postprocess": postprocess_settings(cfg),
        "linking": yowo_linking(cfg),
    }
    meta.update(extra)
    return meta


def postprocess_settings(cfg: YowoOptions, meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """Decoding thresholds: weights metadata first, explicit (non-default) CLI values win."""
    base, post = ActionConfig(), dict((meta or {}).get("postprocess", {}))
    pairs = {"conf_thresh": "conf", "nms_thresh": "iou", "max_det": "max_det", "mode": "post_mode"}
    out: dict[str, Any] = {}
    for entry, key in pairs.items():
        default = getattr(base, key)
        value = post.get(entry, default)
        if getattr(cfg, key) != default or meta is None:
            value = getattr(cfg, key)
        out[entry] = type(default)(value)
    return out


# ---------------------------------------------------------------- linking
def trim_tube(tube: Tube, thresh: float) -> Tube | None:
    """Cut a linked tube to its contiguous run of frames with score >= ``thresh`` of largest total score.

    Viterbi tubes span the whole video (YOWO does no temporal trimming); actions that start and end
    inside a video need their tubes cut. Returns None when no frame reaches ``thresh``.
    """
    scores = np.asarray(tube.frame_scores if tube.frame_scores is not None else np.full(len(tube), tube.score))
    above = np.concatenate(([False], scores >= thresh, [False]))
    edges = np.flatnonzero(np.diff(above.astype(np.int8)))
    if edges.size == 0:
        return None
    starts, ends = edges[0::2], edges[1::2]  # runs [start, end) in tube positions
    sums = np.array([scores[s:e].sum() for s, e in zip(starts, ends)])
    s, e = int(starts[sums.argmax()]), int(ends[sums.argmax()])
    kept = scores[s:e].astype(np.float32)
    return Tube(tube.video, tube.label, tube.frames[s:e], tube.boxes[s:e], float(kept.mean()), kept)


def trim_tubes(tubes: Sequence[Tube], thresh: float) -> list[Tube]:
    """:func:`trim_tube` on every tube, dropping those left empty; ``thresh`` <= 0: the tubes as they are."""
    if thresh <= 0:
        return list(tubes)
    return [t for t in (trim_tube(t, thresh) for t in tubes) if t is not None]


#: ``linking=`` values of the YOWO member: YOWO's Viterbi linking, or ACT's linking (ACT's or MOC's
#: parameters) of the per-frame detections taken as one-frame tubelets.
YOWO_LINKINGS = ("viterbi", "act", "moc")


def checked_yowo_linking(linking: str) -> str:
    """``linking`` when it is one of :data:`YOWO_LINKINGS`."""
    if linking not in YOWO_LINKINGS:
        raise ConfigError(f"linking={linking!r} is unknown for YOWO; expected one of {', '.join(YOWO_LINKINGS)}")
    return linking


def yowo_linking(cfg: ActionOptions, meta: dict[str, Any] | None = None) -> str:
    """The YOWO member's linking: ``cfg.linking``, else the weights' recorded one, else ``"viterbi"``."""
    return checked_yowo_linking(str(cfg.linking or (meta or {}).get("linking") or "viterbi"))


def link_frames_act(dets: FrameDets, params: ACTLinkParams) -> list[Tube]:
    """ACT's linking (:func:`~singleshot.postprocess.tube_link_act.link_act`) of per-frame detections:
    each detection is a one-frame tubelet of its label, so a tube grows frame by frame through boxes
    of IoU >= ``params.link_iou`` with its last box, survives ``params.max_gap`` frames without one,
    and is kept when it spans ``params.min_length`` frames and its mean score reaches ``params.min_score``."""
    order = np.lexsort((dets.label, dets.frame, dets.video))  # rows grouped by (video, frame, label)
    keys = np.stack((dets.video, dets.frame, dets.label), 1)[order]
    boxes, scores = dets.boxes[order, None], dets.score[order]  # boxes [M, 1, 4]: one-frame tubelets
    starts = np.flatnonzero(np.r_[True, np.any(keys[1:] != keys[:-1], axis=1)]) if len(keys) else np.zeros(0, np.int64)
    per_video: dict[int, dict[int, dict[int, tuple[np.ndarray, np.ndarray]]]] = {}
    for lo, hi in zip(starts, np.r_[starts[1:], len(keys)]):
        v, f, c = (int(x) for x in keys[lo])
        per_video.setdefault(v, {}).setdefault(f, {})[c] = (boxes[lo:hi], scores[lo:hi])
    return [t for v in sorted(per_video) for t in link_act(per_video[v], dets.videos[v], 1, params)]


def link_tubes(dets: FrameDets, num_frames: dict[str, int], trim: float = 0.0, linking: str = "viterbi") -> list[Tube]:
    """Tubes of per-frame detections: YOWO's Viterbi linking (``linking="viterbi"``) or ACT's linking of
    one-frame tubelets (``"act"``, ``"moc"``: :func:`link_frames_act`), then optional trimming
    (:func:`trim_tube`)."""
    if checked_yowo_linking(linking) == "viterbi":
        return trim_tubes(link_viterbi(dets, num_frames), trim)
    return trim_tubes(link_frames_act(dets, link_params_of(linking)), trim)


def link_params_of(linking: str) -> ACTLinkParams:
    """The ACT linking parameters of one-frame tubelets: ACT's (``act``) or MOC-Detector's (``moc``)."""
    return ACTLinkParams() if linking == "act" else moc_link_params(1)


def frame_dets_of(videos: Sequence[str], per_video: Sequence[Sequence[Detections]]) -> FrameDets:
    """Per-frame detections of several videos (``per_video[i][f]`` = frame ``f + 1`` of video ``i``)
    -> one :class:`FrameDets` (boxes xyxy pixels of each video)."""
    parts: list[tuple[np.ndarray, ...]] = []
    for vi, dets in enumerate(per_video):
        if not dets:
            continue
        counts = torch.tensor([len(d) for d in dets])
        frames = torch.repeat_interleave(torch.arange(1, len(dets) + 1), counts).numpy()
        parts.append(
            (
                np.full(frames.shape[0], vi),
                frames,
                torch.cat([d.labels for d in dets]).cpu().numpy(),
                torch.cat([d.scores for d in dets]).double().cpu().numpy(),
                torch.cat([d.boxes for d in dets]).double().cpu().numpy().reshape(-1, 4),
            )
        )
    if not parts:
        return FrameDets(list(videos), *(np.zeros(0),) * 4, np.zeros((0, 4)))
    return FrameDets(list(videos), *(np.concatenate([p[i] for p in parts]) for i in range(5)))


# ---------------------------------------------------------------- YOWO: the predictor
class YowoPredictor:
    """Frames in, per-frame detections (each frame the key frame of its clip) out.

    Pre-processing is the test path of :class:`~singleshot.data.action.datasets.YowoClipDataset`:
    each frame resized to the input size on uint8 (:func:`~singleshot.data.input_spec.resize_image`:
    bilinear, antialiased when shrinking unless the weights' ``resize`` metadata says ``antialias:
    false``; weights without the key antialias, as this predictor always did), scaled to [0, 1],
    channels flipped for BGR weights, normalised with the weights' mean/std. The clip of key frame ``k`` is frames
    ``k - i * stride`` (i = T-1 … 0), clamped at frame 1 (the past only: usable online).

    Args:
        model: a YOWO module (``anchors``, ``num_classes``, ``forward -> {"out"}``).
        meta: weights metadata (``input_size``, ``clip_len``, ``stride``, ``mean``, ``std``, ``classes``).
        settings: ``{"conf_thresh", "nms_thresh", "max_det", "mode"}`` (see :func:`postprocess_settings`).
        linking: how :meth:`link` builds tubes (see :func:`link_tubes`): ``viterbi`` (YOWO), ``act`` or ``moc``.
    """

    def __init__(
        self,
        model: nn.Module,
        meta: dict[str, Any],
        settings: dict[str, Any],
        device: str = "cpu",
        linking: str = "viterbi",
    ) -> None:
        self.device = torch.device(device)
        self.linking = linking
        self.model = model.eval().to(self.device)
        size = meta.get("input_size", [224, 224])
        self.size = size_hw(size)
        self.clip_len = int(meta.get("clip_len", getattr(model, "clip_len", 16)))
        self.stride = max(1, int(meta.get("stride", 1)))
        spec = InputSpec.from_meta(meta, size=self.size, antialias=True)
        self.mean = torch.tensor(spec.mean, device=self.device).view(1, 3, 1, 1, 1)
        self.std = torch.tensor(spec.std, device=self.device).view(1, 3, 1, 1, 1)
        self.bgr = spec.bgr
        self.antialias = spec.antialias
        self.settings = settings
        self.class_names: list[str] = list(meta.get("classes", [])) or [str(i) for i in range(model.num_classes)]

    @property
    def span(self) -> int:
        """Frames a clip reaches back over: ``(T - 1) * stride + 1`` (the online ring buffer's length)."""
        return (self.clip_len - 1) * self.stride + 1

    def prepare(self, frames: Tensor) -> Tensor:
        """frames: Tensor[N, 3, H, W] uint8 RGB -> Tensor[N, 3, h, w] uint8 at the input size."""
        out, _ = resize_clip(frames, torch.zeros(0, 4), self.size, self.antialias)
        return out.flip(1) if self.bgr else out

    def clips(self, stored: Tensor, keys: Sequence[int]) -> Tensor:
        """Normalised clips Tensor[B, 3, T, h, w] of 1-based key frames from prepared frames [N, 3, h, w]."""
        n = int(stored.shape[0])
        index = torch.tensor([yowo_clip_frames(k, self.clip_len, self.stride, n) for k in keys]) - 1  # [B, T]
        return self.normalise(stored[index.to(stored.device)])

    def normalise(self, clips: Tensor) -> Tensor:
        """Tensor[B, T, 3, h, w] uint8 (frame order) -> Tensor[B, 3, T, h, w] float normalised, on the device."""
        x = clips.to(self.device, torch.float32).div_(255.0).permute(0, 2, 1, 3, 4)
        return (x - self.mean) / self.std

    @torch.inference_mode()
    def __call__(self, clips: Tensor, orig_sizes: Sequence[tuple[int, int]]) -> list[Detections]:
        """clips: Tensor[B, 3, T, h, w] normalised -> one Detections per clip (boxes in ``orig_sizes`` pixels)."""
        if clips.shape[0] == 0:
            return []
        s = self.settings
        return yowo_postprocess(
            self.model(clips),
            self.model.anchors,
            self.model.num_classes,
            self.size,
            orig_sizes,
            conf_thresh=s["conf_thresh"],
            nms_thresh=s["nms_thresh"],
            max_det=s["max_det"],
            mode=s["mode"],
        )

    def detect_video(self, stored: Tensor, orig_size: tuple[int, int], batch: int = 16) -> list[Detections]:
        """Detections of every frame of a video (prepared frames [N, 3, h, w]), frames 1 … N in order."""
        n, out = int(stored.shape[0]), []
        for start in range(1, n + 1, batch):
            keys = list(range(start, min(n, start + batch - 1) + 1))
            out.extend(self(self.clips(stored, keys), [orig_size] * len(keys)))
        return out

    def stream(self, frames: Iterable[np.ndarray], batch: int = 8) -> Iterator[tuple[int, np.ndarray, Detections]]:
        """Online detection: ``(frame number, frame uint8 [H, W, 3], Detections)`` per frame, in order.

        A ring buffer holds the last :attr:`span` prepared frames; each new frame is the key frame
        (last) of its clip; up to ``batch`` clips run together (latency ``batch`` frames).
        """
        ring: list[Tensor] = []
        pending: list[tuple[int, np.ndarray, Tensor]] = []
        count = 0

        def flush() -> Iterator[tuple[int, np.ndarray, Detections]]:
            clips = torch.cat([p[2] for p in pending])
            dets = self(clips, [(int(p[1].shape[0]), int(p[1].shape[1])) for p in pending])
            yield from ((p[0], p[1], d) for p, d in zip(pending, dets))
            pending.clear()

        for frame in frames:
            count += 1
            ring.append(self.prepare(torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1)[None])[0])
            del ring[: max(0, len(ring) - self.span)]
            first = count - len(ring) + 1  # frame number of ring[0]
            keys = yowo_clip_frames(count, self.clip_len, self.stride, count)
            stacked = torch.stack([ring[k - first] for k in keys])  # [T, 3, h, w]
            pending.append((count, frame, self.normalise(stacked[None])))
            if len(pending) == batch:
                yield from flush()
        if pending:
            yield from flush()

    def link(self, dets: FrameDets, num_frames: dict[str, int], trim: float = 0.0) -> list[Tube]:
        """Tubes of per-frame detections by :attr:`linking` (+ optional trimming; :func:`link_tubes`)."""
        return link_tubes(dets, num_frames, trim, self.linking)

    def predict_video(self, frames: Iterable[np.ndarray], name: str, batch: int, trim: float = 0.0) -> VideoPrediction:
        """:meth:`stream` over ``frames``, the detections linked into tubes (by descending score)."""
        per_frame: list[Detections] = []
        size = (0, 0)
        for _, frame, dets in self.stream(frames, batch):
            per_frame.append(dets)
            size = (int(frame.shape[0]), int(frame.shape[1]))
        if not per_frame:
            return VideoPrediction(frame_dets_of([name], []), [], 0, size)
        dets_all = frame_dets_of([name], [per_frame])
        tubes = self.link(dets_all, {name: len(per_frame)}, trim)
        tubes.sort(key=lambda t: -t.score)
        return VideoPrediction(dets_all, tubes, len(per_frame), size)


def yowo_predictor(model: nn.Module, meta: dict[str, Any], cfg: ActionConfig) -> YowoPredictor:
    """The YOWO member's predictor factory: ``model`` (a :class:`~singleshot.models.yowo.YOWO`, or an
    exported graph standing in for it) with the thresholds and linking of ``meta`` under ``cfg``'s."""
    if isinstance(model, YOWO):
        model.parallel = bool(cfg.parallel_branches)  # the two backbones in two threads (same numbers)
        if str(cfg.device).startswith("cpu") and not model.channels_last_3d:
            model.set_channels_last_3d(True)
    return YowoPredictor(model, meta, postprocess_settings(cfg, meta), cfg.device, yowo_linking(cfg, meta))
