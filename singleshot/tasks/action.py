"""The ``action`` task: spatio-temporal action detection (YOWO now; ACT plugs in beside it).

Pieces: :class:`ActionConfig` (every key the CLI accepts), model building from names or from weights
metadata, :class:`YowoPredictor` (frames -> clips ending at each key frame -> model ->
:func:`~singleshot.postprocess.yowo.yowo_postprocess`, batched), per-frame detections gathered into
:class:`~singleshot.metrics.frame_ap.FrameDets`, and the linking of those detections into tubes.
The CLI modes live in :mod:`singleshot.tasks.action_modes`.

Extension point for other model families (ACT): ``cfg.model`` names the family; :data:`FAMILY_ARCHS`
lists its architectures and :data:`PREDICTORS` maps a family to ``(model, meta, cfg) -> predictor``.
A predictor offers ``class_names``, ``prepare(frames uint8 [N, 3, H, W]) -> stored frames``,
``detect_video(stored, orig_size, batch) -> list[Detections]`` (one per frame, 1-based order),
``stream(frames, batch)`` (online) and ``link(dets, num_frames) -> list[Tube]``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from singleshot.data.action.clip_transforms import resize_clip
from singleshot.data.action.clips import yowo_clip_frames
from singleshot.data.action.datasets import IMAGENET_MEAN, IMAGENET_STD
from singleshot.errors import ConfigError, WeightsError
from singleshot.metrics.frame_ap import FrameDets
from singleshot.models import build_model
from singleshot.models.yowo import tiny3d_stride
from singleshot.postprocess.tube_link_act import ACTLinkParams, link_act, moc_link_params
from singleshot.postprocess.tube_link_viterbi import link_viterbi
from singleshot.postprocess.yowo import yowo_postprocess
from singleshot.structures import Detections, Tube

logger = logging.getLogger(__name__)


@dataclass
class ActionConfig:
    """Every ``key=value`` the ``action`` modes accept (each mode reads the keys it needs)."""

    # model
    model: str = "yowo"  # the family: yowo (act: a later addition, see the module doc)
    arch: str = "yowo_tiny"  # yowo family: yowo (published backbones) | yowo_tiny (CPU-sized)
    backbone3d: str = "resnext101"  # arch=yowo: resnext101 | resnet18 | shufflenetv2 | tiny3d
    backbone2d: str = "darknet19"  # arch=yowo: darknet19 | tiny2d
    width: int = 16  # yowo_tiny (and tiny2d / tiny3d) channel width
    out_stride: int = 32  # yowo_tiny (and tiny2d + tiny3d): output stride 32 as published, or 16 / 8 (finer maps)
    input_3d: str = "rgb"  # yowo family: what the 3D backbone sees, rgb (YOWO) | diff (consecutive-frame differences)
    cfam_channels: int = 0  # 0: the builder's default (1024 for yowo, 128 for yowo_tiny)
    clip_len: int = 16  # frames per clip T (key frame last)
    K: int = 6  # frames per tubelet (ACT family)
    act_width: float = 1.0  # act_tiny / act_slim trunk channel multiplier
    modality: str = "rgb"  # ACT: rgb | rgb+diff | rgb+flow (two streams, scores averaged at test time)
    motion_weight: float = 0.5  # ACT two-stream: weight of the motion stream's class probabilities (ACT: 0.5)
    flow: str = ""  # ACT rgb+flow: folder of precomputed flow images <Class>/<video>/<frame:05d>.jpg
    flow_weights: str = ""  # ACT val/predict: the motion stream's weights ("": the one named by weights' metadata; none: RGB only)
    imgsz: int = 224  # square network input, divisible by 32
    stride: int = 1  # temporal stride between clip frames at test time
    anchors: tuple[float, ...] = ()  # flat w1,h1,w2,h2,... in grid cells; () = YOWO's UCF101-24 anchors
    auto_anchors: bool = False  # train: 5 anchors by k-means (1 - IoU) on the training boxes, as YOLOv2
    freeze_2d: str = "none"  # none | all | partial (YOWO freezes the 2D backbone on J-HMDB-21)
    freeze_3d: str = "none"
    weights: str = ""
    pretrained: str = ""  # a .safetensors from `action convert` to start training from
    # data
    data: str = ""  # a YOWO root, or a ground-truth file (ACT *-GT.pkl, finalAnnots.mat, pyannot.pkl)
    frames: str = ""  # folder holding rgb-images/ (default: data when it is a folder, else its parent)
    split: int = 1
    split_list: str = ""  # a test list replacing the data's own
    classes: tuple[str, ...] = ()
    # training
    epochs: int = 5
    batch: int = 10
    lr: float = 1e-4
    momentum: float = 0.9
    weight_decay: float = 5e-4
    optimizer: str = "adam"
    schedule: str = "multistep"
    milestones: tuple[int, ...] = (1, 2, 3, 4)  # completed epochs after which lr *= gamma
    gamma: float = 0.5
    warmup: int = 0
    accumulate: int = 1
    clip_grad: float | None = None
    augment: bool = True  # YOWO's clip augmentation (jitter crop, flip, HSV); false: resize only
    max_zoom: float = 4.0  # ACT's clip augmentation: largest zoom-out (expand) ratio, 1 = none
    photometric: bool = True  # ACT's clip augmentation: photometric distortion (same for the K frames)
    jitter: float = 0.2
    hue: float = 0.1
    saturation: float = 1.5
    exposure: float = 1.5
    keyframe_step: int = 1  # train on every k-th key frame of each training video
    object_scale: float = 5.0  # region loss weights (YOWO: 5, 1, 1, 1)
    noobject_scale: float = 1.0
    class_scale: float = 1.0
    coord_scale: float = 1.0
    prior_warmup: int = 0  # samples of YOWO's prior warm-up (its first release: 12800); 0: off
    loss_reduction: str = "sum"  # sum (YOWO) | mean (divided by the batch size)
    rescore: bool = True  # region loss confidence target: IoU with the ground truth (YOWO) | false: 1 (darknet rescore=0)
    # distillation (train): a trained model of the same family; see singleshot/tasks/action_distill.py
    teacher: str = ""
    kd_weight: float = 1.0  # weight of the soft-label term
    kd_temperature: float = 2.0
    kd_obj_thresh: float = 0.5  # yowo: class scores distilled where the teacher's objectness is at least this
    workers: int = 2
    parallel_branches: bool = False  # two-stream ACT's streams / YOWO's 3D and 2D backbones in two threads (train, eval, predict; one process)
    device: str = "cpu"
    seed: int = 0
    resume: bool = False
    eval_every: int = 1
    amp: bool = False
    ema: float | None = None
    patience: int | None = None
    checkpoint_every: int = 1000
    plot_every: int = 1
    project: str = "runs/action"
    name: str = "train"
    # inference and evaluation
    source: str = ""
    video_name: str = ""  # name of a predicted video in the JSON files (default: the source's stem)
    conf: float = 0.005
    iou: float = 0.4  # NMS IoU
    max_det: int = 100  # detections kept per frame
    post_mode: str = "yowo"  # yowo (class-agnostic NMS, YOWO's test path) | per_class
    show_conf: float = 0.3
    protocol: str = "yowo"  # yowo | act
    match_iou: float = 0.5  # frame-mAP IoU threshold
    trim: float = 0.0  # cut linked tubes (YOWO's Viterbi or ACT's) to their best run of frame scores >= trim (0: no trimming)
    linking: str = ""  # "": the family's own (yowo: viterbi, act: act) | act (ACT's parameters) | moc (MOC-Detector's) | viterbi (yowo only)
    cache: bool = True  # ACT val: keep each video's tubelets under project/val/tubelets (resumable)
    # score and convert
    gt: str = ""
    pred: str = ""
    tubes: str = ""
    from_: str = ""
    src: str = ""
    dst: str = ""
    kinetics: str = ""  # convert: a Kinetics 3D backbone file to load too
    darknet: str = ""  # convert: a Darknet .weights file to load too
    prototxt: str = ""  # convert from=caffe: ACT deploy prototxt
    caffemodel: str = ""  # convert from=caffe: ACT .caffemodel
    num_classes: int = 0
    # demo
    n_train: int = 40
    n_test: int = 16
    video_size: tuple[int, ...] = (120, 160)
    video_frames: tuple[int, ...] = (24, 40)


#: Architectures of each model family (``cfg.model``).
FAMILY_ARCHS: dict[str, tuple[str, ...]] = {"yowo": ("yowo", "yowo_tiny"), "act": ("act_vgg16", "act_tiny", "act_slim")}

_FREEZE = {"none": "none", "false": "none", "all": "all", "true": "all", "partial": "partial"}


def family_of(meta: dict[str, Any]) -> str:
    """The model family of weights metadata (``family``, else found from the architecture)."""
    if "family" in meta:
        return str(meta["family"])
    arch = str(meta.get("architecture", ""))
    for family, archs in FAMILY_ARCHS.items():
        if arch in archs:
            return family
    raise WeightsError(f"weights metadata: architecture {arch!r} belongs to no action model family {sorted(FAMILY_ARCHS)}")


def anchor_pairs(values: Sequence[float]) -> list[list[float]] | None:
    """Flat ``(w1, h1, w2, h2, ...)`` -> ``[[w1, h1], ...]``; None for an empty list."""
    if not values:
        return None
    if len(values) % 2:
        raise ConfigError(f"anchors: needs pairs of (w, h) grid cells, got {len(values)} numbers")
    return [[float(values[i]), float(values[i + 1])] for i in range(0, len(values), 2)]


def freeze_mode(value: str, key: str) -> str:
    try:
        return _FREEZE[str(value).lower()]
    except KeyError:
        raise ConfigError(f"{key}={value!r}: expected none, all or partial") from None


def check_family(cfg: ActionConfig) -> None:
    if cfg.model not in FAMILY_ARCHS:
        raise ConfigError(f"model={cfg.model!r}: this build knows the action families {sorted(FAMILY_ARCHS)}")
    if cfg.arch not in FAMILY_ARCHS[cfg.model]:
        raise ConfigError(f"arch={cfg.arch!r} is not a {cfg.model} architecture; expected one of {FAMILY_ARCHS[cfg.model]}")


def output_stride(cfg: ActionConfig) -> int:
    """Input pixels per output cell of the YOWO ``cfg`` builds: ``out_stride`` (8, 16 or 32) when both
    backbones are the tiny ones (``arch=yowo_tiny``, or ``tiny3d`` + ``tiny2d``), else 32."""
    if cfg.out_stride not in (8, 16, 32):
        raise ConfigError(f"out_stride={cfg.out_stride}: expected 8, 16 or 32")
    tiny = cfg.arch == "yowo_tiny" or (cfg.backbone3d == "tiny3d" and cfg.backbone2d == "tiny2d")
    if cfg.out_stride != 32 and not tiny:
        raise ConfigError(f"out_stride={cfg.out_stride}: only the tiny backbones (arch=yowo_tiny, or backbone3d=tiny3d "
                          f"with backbone2d=tiny2d) offer strides 8 and 16; {cfg.backbone3d} + {cfg.backbone2d} have 32")  # fmt: skip
    return cfg.out_stride if tiny else 32


def arch_kwargs(cfg: ActionConfig) -> dict[str, Any]:
    """Builder arguments of ``cfg.arch`` (freezing excluded: it is a training choice, not an architecture)."""
    check_family(cfg)
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


def branch_threads(cfg: ActionConfig, world_size: int) -> bool:
    """``parallel_branches``, refused under DDP (the threaded backward is not DDP's single pass)."""
    if cfg.parallel_branches and world_size > 1:
        raise ConfigError("parallel_branches=true runs a model's two branches in threads of one process; "
                          "it does not combine with torchrun (DDP): drop it or run one process")  # fmt: skip
    return bool(cfg.parallel_branches)


def apply_freeze(model: nn.Module, cfg: ActionConfig) -> None:
    """Freeze the backbones named by ``freeze_2d`` / ``freeze_3d`` (YOWO models)."""
    modes = freeze_mode(cfg.freeze_2d, "freeze_2d"), freeze_mode(cfg.freeze_3d, "freeze_3d")
    if hasattr(model, "set_freeze"):
        model.set_freeze(*modes)
    elif modes != ("none", "none"):
        raise ConfigError(f"{type(model).__name__} has no backbone freezing options")


def build_action_model(cfg: ActionConfig, num_classes: int) -> tuple[nn.Module, dict[str, Any]]:
    """``(model with freezing applied, builder kwargs)`` for ``cfg.arch``."""
    kwargs = arch_kwargs(cfg)
    model = build_model(cfg.arch, num_classes, **kwargs)
    apply_freeze(model, cfg)
    return model, kwargs


def model_from_meta(meta: dict[str, Any]) -> nn.Module:
    """Build the architecture described by weights metadata (without loading weights)."""
    try:
        arch, num_classes = meta["architecture"], int(meta["num_classes"])
    except KeyError as e:
        raise WeightsError(f"weights metadata lacks {e}; it must name the architecture and num_classes") from None
    return build_model(arch, num_classes, **dict(meta.get("arch_kwargs", {})))


def action_meta(model: nn.Module, cfg: ActionConfig, kwargs: dict[str, Any], classes: Sequence[str],
                mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD, **extra: Any) -> dict[str, Any]:
    """Metadata written beside the tensors of a model trained or converted here."""
    meta: dict[str, Any] = {
        "task": "action",
        "family": cfg.model,
        "architecture": cfg.arch,
        "arch_kwargs": kwargs,
        "num_classes": len(classes),
        "classes": list(classes),
        "anchors": model.anchors.tolist() if hasattr(model, "anchors") else None,
        "clip_len": int(getattr(model, "clip_len", cfg.clip_len)),
        "stride": cfg.stride,
        "input_size": [cfg.imgsz, cfg.imgsz],
        "channel_order": "RGB",
        "mean": [float(v) for v in mean],
        "std": [float(v) for v in std],
        "postprocess": postprocess_settings(cfg),
    }
    if cfg.model == "yowo":
        meta["linking"] = yowo_linking(cfg)
    meta.update(extra)
    return meta


def postprocess_settings(cfg: ActionConfig, meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """Decoding thresholds: weights metadata first, explicit (non-default) CLI values win."""
    base, post = ActionConfig(), dict((meta or {}).get("postprocess", {}))
    pairs = {"conf_thresh": "conf", "nms_thresh": "iou", "max_det": "max_det", "mode": "post_mode"}
    out: dict[str, Any] = {}
    for field, key in pairs.items():
        default = getattr(base, key)
        value = post.get(field, default)
        if getattr(cfg, key) != default or meta is None:
            value = getattr(cfg, key)
        out[field] = type(default)(value)
    return out


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


#: ``linking=`` values of the YOWO family: YOWO's Viterbi linking, or ACT's linking (ACT's or MOC's
#: parameters) of the per-frame detections taken as one-frame tubelets.
YOWO_LINKINGS = ("viterbi", "act", "moc")


def _checked_linking(linking: str) -> str:
    if linking not in YOWO_LINKINGS:
        raise ConfigError(f"linking={linking!r} is unknown for YOWO; expected one of {', '.join(YOWO_LINKINGS)}")
    return linking


def yowo_linking(cfg: Any, meta: dict[str, Any] | None = None) -> str:
    """The YOWO family's linking: ``cfg.linking``, else the weights' recorded one, else ``"viterbi"``."""
    return _checked_linking(str(getattr(cfg, "linking", "") or (meta or {}).get("linking") or "viterbi"))


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
    if _checked_linking(linking) == "viterbi":
        return trim_tubes(link_viterbi(dets, num_frames), trim)
    params = ACTLinkParams() if linking == "act" else moc_link_params(1)
    return trim_tubes(link_frames_act(dets, params), trim)


def frame_dets_of(videos: Sequence[str], per_video: Sequence[Sequence[Detections]]) -> FrameDets:
    """Per-frame detections of several videos (``per_video[i][f]`` = frame ``f + 1`` of video ``i``)
    -> one :class:`FrameDets` (boxes xyxy pixels of each video)."""
    parts: list[tuple[np.ndarray, ...]] = []
    for vi, dets in enumerate(per_video):
        if not dets:
            continue
        counts = torch.tensor([len(d) for d in dets])
        frames = torch.repeat_interleave(torch.arange(1, len(dets) + 1), counts).numpy()
        parts.append((np.full(frames.shape[0], vi), frames, torch.cat([d.labels for d in dets]).cpu().numpy(),
                      torch.cat([d.scores for d in dets]).double().cpu().numpy(),
                      torch.cat([d.boxes for d in dets]).double().cpu().numpy().reshape(-1, 4)))  # fmt: skip
    if not parts:
        return FrameDets(list(videos), *(np.zeros(0),) * 4, np.zeros((0, 4)))
    return FrameDets(list(videos), *(np.concatenate([p[i] for p in parts]) for i in range(5)))


class YowoPredictor:
    """Frames in, per-frame detections (each frame the key frame of its clip) out.

    Pre-processing is the test path of :class:`~singleshot.data.action.datasets.YowoClipDataset`:
    each frame resized to the input size (bilinear, antialiased when shrinking, on uint8), scaled
    to [0, 1], normalised with the weights' mean/std. The clip of key frame ``k`` is frames
    ``k - i * stride`` (i = T-1 … 0), clamped at frame 1 (the past only: usable online).

    Args:
        model: a YOWO module (``anchors``, ``num_classes``, ``forward -> {"out"}``).
        meta: weights metadata (``input_size``, ``clip_len``, ``stride``, ``mean``, ``std``, ``classes``).
        settings: ``{"conf_thresh", "nms_thresh", "max_det", "mode"}`` (see :func:`postprocess_settings`).
        linking: how :meth:`link` builds tubes (see :func:`link_tubes`): ``viterbi`` (YOWO), ``act`` or ``moc``.
    """

    def __init__(self, model: nn.Module, meta: dict[str, Any], settings: dict[str, Any], device: str = "cpu",
                 linking: str = "viterbi") -> None:
        self.device = torch.device(device)
        self.linking = linking
        self.model = model.eval().to(self.device)
        size = meta.get("input_size", [224, 224])
        self.size = (int(size[0]), int(size[1])) if isinstance(size, (list, tuple)) else (int(size), int(size))
        self.clip_len = int(meta.get("clip_len", getattr(model, "clip_len", 16)))
        self.stride = max(1, int(meta.get("stride", 1)))
        self.mean = torch.tensor([float(v) for v in meta.get("mean", IMAGENET_MEAN)], device=self.device).view(1, 3, 1, 1, 1)
        self.std = torch.tensor([float(v) for v in meta.get("std", IMAGENET_STD)], device=self.device).view(1, 3, 1, 1, 1)
        self.bgr = str(meta.get("channel_order", "RGB")).upper() == "BGR"
        self.settings = settings
        self.class_names: list[str] = list(meta.get("classes", [])) or [str(i) for i in range(model.num_classes)]

    @property
    def span(self) -> int:
        """Frames a clip reaches back over: ``(T - 1) * stride + 1`` (the online ring buffer's length)."""
        return (self.clip_len - 1) * self.stride + 1

    def prepare(self, frames: Tensor) -> Tensor:
        """frames: Tensor[N, 3, H, W] uint8 RGB -> Tensor[N, 3, h, w] uint8 at the input size."""
        out, _ = resize_clip(frames, torch.zeros(0, 4), self.size)
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
            self.model(clips), self.model.anchors, self.model.num_classes, self.size, orig_sizes,
            conf_thresh=s["conf_thresh"], nms_thresh=s["nms_thresh"], max_det=s["max_det"], mode=s["mode"],
        )  # fmt: skip

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


def yowo_predictor(model: nn.Module, meta: dict[str, Any], cfg: ActionConfig) -> YowoPredictor:
    if hasattr(model, "parallel"):  # YOWO's two backbones in two threads (same numbers)
        model.parallel = bool(getattr(cfg, "parallel_branches", False))
    if hasattr(model, "set_channels_last_3d") and str(cfg.device).startswith("cpu") and not model.channels_last_3d:
        model.set_channels_last_3d(True)
    return YowoPredictor(model, meta, postprocess_settings(cfg, meta), cfg.device, yowo_linking(cfg, meta))


#: family -> ``(model, meta, cfg) -> predictor`` (ACT adds its own entry).
def act_predictor(model: nn.Module, meta: dict[str, Any], cfg: ActionConfig) -> Any:
    from singleshot.tasks.action_act_predict import act_predictor as build

    return build(model, meta, cfg)


PREDICTORS: dict[str, Callable[[nn.Module, dict[str, Any], ActionConfig], Any]] = {"yowo": yowo_predictor, "act": act_predictor}


def make_predictor(model: nn.Module, meta: dict[str, Any], cfg: ActionConfig) -> Any:
    family = family_of(meta)
    if family not in PREDICTORS:
        raise WeightsError(f"weights of the {family!r} family: no predictor registered (known: {sorted(PREDICTORS)})")
    return PREDICTORS[family](model, meta, cfg)
