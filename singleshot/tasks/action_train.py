"""``action train``, ``action convert`` and ``action demo``: YOWO on the engine.

Training: :class:`~singleshot.data.action.datasets.YowoClipDataset` (YOWO's augmentation and random
temporal stride in {1, 2}) -> :class:`~singleshot.engine.trainer.Trainer` with
:class:`~singleshot.losses.region.RegionLoss` (gradient accumulation, amp, EMA, resume, plots all
through the engine); evaluation = frame-mAP + video-mAP over every frame of the test videos.
"""

from __future__ import annotations

import json
import logging
import os
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from singleshot.config import config_to_dict
from singleshot.data.action.clip_transforms import ClipResize, YowoClipAugment
from singleshot.data.action.datasets import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    YowoClipDataset,
    collate_yowo,
    frames_fit_in_memory,
)
from singleshot.engine.distributed import cleanup, get_world_size, init_distributed
from singleshot.engine.run import train_and_restore_best
from singleshot.engine.sampler import build_train_loader
from singleshot.engine.seed import seed_everything
from singleshot.engine.train_config import train_config_for
from singleshot.engine.trainer import Trainer
from singleshot.engine.weights import load_weights, save_weights
from singleshot.errors import ConfigError
from singleshot.losses.region import RegionLoss
from singleshot.models import build_model
from singleshot.models.aux_heads import deployable
from singleshot.structures import ActionAnnotations, TubeletTarget
from singleshot.tasks.action import (
    ActionConfig,
    action_meta,
    anchor_pairs,
    apply_freeze,
    branch_threads,
    build_action_model,
    check_family,
    output_stride,
    yowo_predictor,
)
from singleshot.tasks.action_distill import build_training
from singleshot.tasks.action_modes import _cfg, load_data, run_dir
from singleshot.tasks.action_predict import evaluate_action

logger = logging.getLogger(__name__)

METRIC_KEYS = ("frame_map", "video_map@0.2", "video_map@0.5", "video_map@0.75", "video_map@0.5:0.95")


class PrepareBatch:
    """Move a collated ``(clips [B, 3, T, H, W] normalised, targets)`` batch to the device."""

    def __call__(self, batch: tuple[Tensor, list[TubeletTarget]], device: torch.device) -> tuple[Tensor, list[TubeletTarget]]:
        clips, targets = batch
        return clips.to(device, non_blocking=True), [t.to(device) for t in targets]


class YowoLoss:
    """:class:`RegionLoss` with the network input size taken from the targets and, when
    ``prior_warmup`` > 0, the count of samples seen (over all processes) for YOWO's prior warm-up."""

    def __init__(self, model: nn.Module, cfg: ActionConfig, world_size: int = 1) -> None:
        self.loss = RegionLoss(
            model.num_classes, model.anchors.cpu(), object_scale=cfg.object_scale, noobject_scale=cfg.noobject_scale,
            class_scale=cfg.class_scale, coord_scale=cfg.coord_scale, prior_warmup_samples=cfg.prior_warmup,
            reduction=cfg.loss_reduction, rescore=cfg.rescore,  # type: ignore[arg-type]
        )  # fmt: skip
        self.warmup, self.world_size, self.seen = cfg.prior_warmup > 0, world_size, 0

    def __call__(self, outputs: dict[str, Tensor], targets: list[TubeletTarget]) -> dict[str, Tensor]:
        self.seen += len(targets) * self.world_size
        return self.loss(outputs, targets, targets[0].size, seen=self.seen if self.warmup else None)


def kmeans_anchors(ann: ActionAnnotations, videos: Sequence[str], grid: tuple[int, int], k: int = 5,
                   seed: int = 0, iters: int = 100) -> list[list[float]]:
    """YOLOv2's dimension clusters: k-means of the ground-truth (width, height) with distance
    ``1 - IoU`` of boxes sharing a centre, each box as a fraction of its video's frame times the
    ``grid`` (rows, columns) of the network output. Returns ``k`` (w, h) pairs in grid cells, by area."""
    parts = [np.stack(((t.boxes[:, 2] - t.boxes[:, 0]) / va.size[1], (t.boxes[:, 3] - t.boxes[:, 1]) / va.size[0]), 1)
             for va in (ann.videos[v] for v in videos) for t in va.tubes if len(t)]  # fmt: skip
    if not parts:
        raise ConfigError(f"auto_anchors: {ann.source} has no training boxes to cluster")
    wh = np.concatenate(parts).astype(np.float64) * np.array([grid[1], grid[0]])
    wh = wh[(wh > 0).all(1)]
    rng = np.random.default_rng(seed)
    centres = wh[rng.choice(len(wh), min(k, len(wh)), replace=False)]
    for _ in range(iters):
        inter = np.minimum(wh[:, None, 0], centres[None, :, 0]) * np.minimum(wh[:, None, 1], centres[None, :, 1])
        nearest = (inter / (wh.prod(1)[:, None] + centres.prod(1)[None] - inter)).argmax(1)
        new = np.stack([np.median(wh[nearest == j], 0) if (nearest == j).any() else centres[j] for j in range(len(centres))])
        if np.allclose(new, centres):
            break
        centres = new
    return [[round(float(w), 5), round(float(h), 5)] for w, h in sorted(centres.tolist(), key=lambda c: c[0] * c[1])]


def train_keyframes(ann: ActionAnnotations, videos: Sequence[str], step: int = 1) -> dict[str, list[int]]:
    """Every ``step``-th key frame of each video: its listed key frames (``ann.keyframes``), else its
    frames that carry a box."""
    if step < 1:
        raise ConfigError(f"keyframe_step: must be >= 1, got {step}")
    out = {}
    for v in videos:
        listed = ann.keyframes.get(v) if ann.keyframes is not None else None
        frames = sorted(listed) if listed is not None else sorted({int(f) for t in ann.videos[v].tubes for f in t.frames})
        out[v] = frames[::step]
    return out


def _pretrained_model(cfg: ActionConfig, num_classes: int) -> tuple[nn.Module, dict[str, Any], dict[str, Any]]:
    """The architecture of a ``pretrained`` file (``action convert`` output) for ``num_classes``,
    loaded with every tensor whose name and shape fit (the head differs when the classes do)."""
    state, meta = load_weights(cfg.pretrained)
    kwargs = dict(meta.get("arch_kwargs", {}), clip_len=cfg.clip_len)
    if cfg.anchors:
        kwargs["anchors"] = anchor_pairs(cfg.anchors)
    model = build_model(str(meta.get("architecture", cfg.arch)), num_classes, **kwargs)
    own = model.state_dict()
    fits = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    skipped = sorted(set(state) - set(fits)) + sorted(set(own) - set(state))
    model.load_state_dict(fits, strict=False)
    if skipped:
        logger.warning("%s: %d tensors left at their initial values (absent or of another shape), e.g. %s",
                       cfg.pretrained, len(skipped), skipped[:4])  # fmt: skip
    apply_freeze(model, cfg)
    cfg.arch = str(meta.get("architecture", cfg.arch))
    return model, kwargs, meta


def _floats(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: float(metrics[k]) for k in METRIC_KEYS if isinstance(metrics.get(k), (int, float))}


def train_action(cfg: ActionConfig) -> dict | None:
    """Train ``cfg.arch`` on ``cfg.data``; returns the best metrics plus the output paths.

    Under ``torchrun`` ``batch`` is the global batch; only rank 0 writes weights and returns.
    """
    if cfg.model == "act":  # the ACT family trains in its own module
        from singleshot.tasks.action_act import train_act

        return train_act(cfg)
    check_family(cfg)
    device = init_distributed(cfg.device)
    world = get_world_size()
    if cfg.batch % world:
        raise ConfigError(f"batch={cfg.batch}: the global batch must be divisible by the {world} processes")
    seed_everything(cfg.seed)
    ann, root = load_data(cfg)
    classes = list(ann.classes)
    mean, std = IMAGENET_MEAN, IMAGENET_STD
    if cfg.pretrained:
        model, kwargs, pmeta = _pretrained_model(cfg, len(classes))
        mean, std = tuple(pmeta.get("mean", mean)), tuple(pmeta.get("std", std))
    else:
        if cfg.auto_anchors:
            grid = (cfg.imgsz // output_stride(cfg),) * 2
            cfg.anchors = tuple(v for pair in kmeans_anchors(ann, ann.train_videos or sorted(ann.videos), grid) for v in pair)
            logger.info("auto_anchors: %s (grid cells)", anchor_pairs(cfg.anchors))
        model, kwargs = build_action_model(cfg, len(classes))
    model.parallel = branch_threads(cfg, world)  # type: ignore[assignment]  (a runtime attribute of YOWO)
    if str(device).startswith("cpu"):  # oneDNN's 3D convolutions and pooling are several times faster channels-last
        model.set_channels_last_3d(True)  # type: ignore[operator]
    train_videos = ann.train_videos or sorted(ann.videos)
    if not ann.train_videos:
        warnings.warn(f"{ann.source}: no training split; training on every video", stacklevel=2)
    transform = (YowoClipAugment(cfg.imgsz, cfg.jitter, cfg.hue, cfg.saturation, cfg.exposure) if cfg.augment
                 else ClipResize(cfg.imgsz))  # fmt: skip
    train_set = YowoClipDataset(ann, root, train_videos, cfg.clip_len, cfg.imgsz, True,
                                train_keyframes(ann, train_videos, cfg.keyframe_step), mean=mean, std=std,
                                transform=transform)  # fmt: skip
    train_set.cache_frames = frames_fit_in_memory(ann, train_videos)
    loader = build_train_loader(
        train_set, cfg.batch // world, seed=cfg.seed, drop_last=len(train_set) > cfg.batch, workers=cfg.workers,
        collate_fn=collate_yowo, device=device,
    )  # fmt: skip
    out = run_dir(cfg, "train")
    tcfg = train_config_for(cfg, len(loader), out, device)
    meta = action_meta(model, cfg, kwargs, classes, mean, std, train_config=config_to_dict(cfg))
    best_full: dict[str, Any] = {}

    def evaluate(m: nn.Module) -> dict[str, float]:
        full, _, _ = evaluate_action(yowo_predictor(deployable(m), meta, cfg), ann, root, cfg)
        if not best_full or (full["frame_map"] or 0.0) > (best_full["frame_map"] or 0.0):
            best_full.clear()
            best_full.update(full)
        return _floats(full)

    train_model, loss_fn = build_training(cfg, model, YowoLoss(model, cfg, world), classes, mean, std)
    trainer = Trainer(train_model, loss_fn, loader, tcfg, PrepareBatch(), evaluate, "frame_map",
                      run_config=config_to_dict(cfg))  # fmt: skip
    run = train_and_restore_best(trainer)  # the best weights are back in `model`
    if run is None:  # not the first process of a torchrun job
        return None
    best_metrics = _floats(run.metrics)
    weights = out / "best.safetensors"
    save_weights(weights, model, dict(meta, metrics=best_metrics, epoch=run.epoch))
    cleanup()
    result: dict[str, Any] = dict(best_metrics)
    if best_full:
        result["per_class"] = best_full.get("per_class")
    result.update(epochs=run.epoch, train_seconds=run.seconds, weights=str(weights), out=str(out))
    return result


# ---------------------------------------------------------------- convert
def _default_classes(cfg: ActionConfig) -> list[str]:
    from singleshot.convert.yowo import JHMDB21_CLASSES, UCF24_CLASSES

    if cfg.classes:
        return list(cfg.classes)
    n = cfg.num_classes or 24
    return list({24: UCF24_CLASSES, 21: JHMDB21_CLASSES}.get(n, tuple(f"class_{i}" for i in range(n))))


def _backbone_init(cfg: ActionConfig) -> tuple[nn.Module, dict[str, Any], list[str], list[str]]:
    """A YOWO whose backbones come from a Kinetics 3D file and/or a Darknet ``.weights`` file (the
    rest keeps its initial values): ``(model, builder kwargs, classes, parts loaded)``."""
    from singleshot.convert._common import load_strict
    from singleshot.convert.darknet_weights import read_darknet_weights
    from singleshot.convert.yowo import convert_kinetics_3d
    from singleshot.models.yowo import JHMDB21_ANCHORS, UCF24_ANCHORS, yowo

    kinetics = cfg.src if cfg.from_ == "kinetics" else cfg.kinetics
    darknet = cfg.src if cfg.from_ == "darknet" else cfg.darknet
    classes = _default_classes(cfg)
    kwargs: dict[str, Any] = {"backbone3d": cfg.backbone3d, "backbone2d": cfg.backbone2d, "clip_len": cfg.clip_len}
    if cfg.backbone3d == "tiny3d":
        kwargs["backbone3d_kwargs"] = {"width": cfg.width}
    if cfg.backbone2d == "tiny2d":
        kwargs["backbone2d_kwargs"] = {"width": cfg.width, "out_channels": 8 * cfg.width}
    converted = None
    if kinetics:
        converted = convert_kinetics_3d(Path(kinetics))
        kwargs["backbone3d"] = converted.metadata["backbone3d"]
        kwargs["backbone3d_kwargs"] = dict(converted.metadata["backbone3d_kwargs"])
    anchors = anchor_pairs(cfg.anchors) or [list(a) for a in (JHMDB21_ANCHORS if len(classes) == 21 else UCF24_ANCHORS)]
    kwargs["anchors"] = anchors
    if cfg.cfam_channels:
        kwargs["cfam_channels"] = cfg.cfam_channels
    model = yowo(len(classes), **kwargs)
    parts = []
    if converted is not None:
        load_strict(model.backbone_3d, converted.state_dict, converted.source, converted.origin)
        parts.append("backbone_3d")
    if darknet:
        read_darknet_weights(Path(darknet), model.backbone_2d, allow_partial=True)
        parts.append("backbone_2d")
    return model, kwargs, classes, parts


def convert_weights(cfg: ActionConfig) -> dict[str, Any]:
    """``from=yowo`` (a wei-tim/YOWO checkpoint), ``from=kinetics`` (a 3D backbone, plus ``darknet=``
    optionally) or ``from=darknet`` (a ``.weights`` 2D backbone, plus ``kinetics=`` optionally) ->
    ``dst`` (.safetensors) with the metadata ``action val/predict`` (YOWO checkpoints) or
    ``action train pretrained=`` (backbone files) read. Pixels: YOWO's convention, 0..1 with no mean/std."""
    from singleshot.convert.yowo import convert_yowo_checkpoint

    if cfg.from_ == "yowo":
        converted = convert_yowo_checkpoint(Path(cfg.src), clip_len=cfg.clip_len, anchors=anchor_pairs(cfg.anchors))
        meta = dict(converted.metadata)
        if cfg.classes:
            if len(cfg.classes) != meta["num_classes"]:
                raise ConfigError(f"classes: {len(cfg.classes)} names for a checkpoint of {meta['num_classes']} classes")
            meta["classes"] = list(cfg.classes)
        model = build_model("yowo", meta["num_classes"], **meta["arch_kwargs"])
        model.load_state_dict(converted.state_dict)  # proves the mapping before anything is written
        parts = ["all"]
        kwargs, classes, extra = meta["arch_kwargs"], meta["classes"], {"source": meta.get("source", "")}
    elif cfg.from_ in ("kinetics", "darknet"):
        model, kwargs, classes, parts = _backbone_init(cfg)
        extra = {"source": cfg.src, "note": f"only {', '.join(parts)} loaded; train with pretrained={cfg.dst}"}
    else:
        raise ConfigError(f"from={cfg.from_!r} is unknown; expected yowo, kinetics or darknet")
    cfg.model, cfg.arch = "yowo", "yowo"
    meta = action_meta(model, cfg, kwargs, classes, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), pretrained_parts=parts,
                       normalisation="frames resized to the input size, pixels in 0..1, no mean/std (YOWO)", **extra)  # fmt: skip
    save_weights(Path(cfg.dst), model, meta)
    return {"dst": cfg.dst, "architecture": "yowo", "num_classes": len(classes), "loaded": parts,
            "tensors": len(model.state_dict())}  # fmt: skip


# ---------------------------------------------------------------- demo
#: The CPU demo recipe (measured in BENCHMARKS.md, "Action demos"). Output stride 8 (``out_stride=8``:
#: the 2D branch at a 12 x 12 map at 96 px, the 3D branch's stride-16 map upsampled to it), so that the
#: actors (about one 16-px cell) span about two cells and the box offsets are regressed finely enough
#: for IoU 0.5; the 3D branch sees frame differences (``input_3d=diff``), so it need not learn to
#: subtract frames before it can learn the motion classes; batch 4, 4 epochs over the same 180
#: training videos as the ACT demo. Evaluation: detections per class (``post_mode=per_class``: a box
#: whose class is uncertain still counts for its other likely classes, as YOWO's validation boxes do),
#: tubes by ACT's linking of the per-frame detections (``linking=act``: YOWO's Viterbi paths span the
#: whole video and keep one path per class, so actions that start and end inside a video, or two
#: actors of one class, are lost).
DEMO_DEFAULTS: dict[str, Any] = {
    "model": "yowo",
    "arch": "yowo_tiny",
    "width": 16,
    "out_stride": 8,
    "input_3d": "diff",
    "clip_len": 8,
    "imgsz": 96,
    "auto_anchors": True,
    "epochs": 4,
    "batch": 4,
    "lr": 1e-3,
    "optimizer": "adam",
    "schedule": "cosine",
    "milestones": "",
    "warmup": 20,
    "weight_decay": 5e-4,
    "workers": 1,
    "parallel_branches": True,
    "protocol": "act",
    "post_mode": "per_class",
    "linking": "act",
    "name": "demo",
    "eval_every": 100,
    "checkpoint_every": 0,
    "n_train": 180,
    "n_test": 16,
}


def run_demo(args: dict[str, str]) -> dict:
    """Synthetic dataset -> train -> evaluate (ACT protocol) -> annotated video of a test video.

    Runs with ``torch.set_num_threads(demo_threads(workers))`` and restores the thread count after.
    """
    from singleshot.tasks.detect_train import demo_threads

    cfg = _cfg(dict(args), **DEMO_DEFAULTS)
    threads = torch.get_num_threads()
    torch.set_num_threads(demo_threads(cfg.workers))
    try:
        return _run_demo(cfg)
    finally:
        torch.set_num_threads(threads)


def _run_demo(cfg: ActionConfig) -> dict:
    from singleshot.data.action.synthetic import ensure_action_dataset
    from singleshot.tasks.action_modes import load_predictor
    from singleshot.tasks.action_predict import predict_source

    if get_world_size() > 1 or int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ConfigError("the demo runs in one process; under torchrun use `singleshot action train`")
    t0 = time.perf_counter()
    if not cfg.data:
        root = ensure_action_dataset(Path(cfg.project) / "demo_data", cfg.n_train, cfg.n_test, cfg.video_size,
                                     cfg.video_frames, cfg.seed)  # fmt: skip
        cfg.data = str(root)
    cfg.eval_every = min(cfg.eval_every, cfg.epochs)
    result = train_action(cfg)
    assert result is not None  # one process: rank 0
    out = Path(result["out"])
    ann, root = load_data(cfg)
    cfg.weights = result["weights"]
    video = ann.test_videos[0] if ann.test_videos else sorted(ann.videos)[0]
    cfg.video_name = video
    pred = predict_source(load_predictor(cfg), root / "rgb-images" / video, out / "predictions", cfg)
    result.update(annotated_video=pred["video"], demo_seconds=round(time.perf_counter() - t0, 1))
    (out / "metrics.json").write_text(json.dumps(result, indent=2))
    return result
