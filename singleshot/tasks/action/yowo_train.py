"""The YOWO member's training: YOWO on the engine.

:class:`~singleshot.data.action.datasets.YowoClipDataset` (YOWO's augmentation and random temporal
stride in {1, 2}) -> the engine (:func:`~singleshot.tasks.common.fit`) with
:class:`~singleshot.losses.region.RegionLoss` (gradient accumulation, amp, EMA, resume, plots all
through the engine); evaluation = frame-mAP + video-mAP over every frame of the test videos
(:func:`~singleshot.tasks.action.yowo_evaluate.evaluate_yowo`). :func:`yowo_training` is the
``training`` of the YOWO record in :mod:`singleshot.tasks.action.members`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from torch import Tensor, nn

from singleshot.config import config_to_dict
from singleshot.data.action.clip_transforms import ClipResize, ClipToBGR, YowoClipAugment
from singleshot.data.action.datasets import (
    YowoClipDataset,
    collate_yowo,
    frames_fit_in_memory,
)
from singleshot.engine.weights import load_weights
from singleshot.errors import ConfigError
from singleshot.losses.region import RegionLoss
from singleshot.metrics.action_score import ACTION_METRIC_KEYS
from singleshot.metrics.mismatch import with_warnings
from singleshot.models import create_model
from singleshot.models.aux_heads import deployable
from singleshot.structures import ActionAnnotations, TubeletTarget
from singleshot.tasks.action.check import checked_data
from singleshot.tasks.action.config import ActionConfig, YowoOptions
from singleshot.tasks.action.data import train_keyframes, training_videos
from singleshot.tasks.action.distill import build_training, yowo_kd_term
from singleshot.tasks.action.predictor import (
    action_meta,
    anchor_pairs,
    apply_freeze,
    branch_threads,
    build_action_model,
    check_yowo_arch,
    output_stride,
    training_input_spec,
    yowo_predictor,
)
from singleshot.tasks.action.yowo_evaluate import evaluate_yowo
from singleshot.tasks.common import BestEvaluation, TrainingPlan, start_from_weights

logger = logging.getLogger(__name__)

__all__ = ["YowoLoss", "kmeans_anchors", "pretrained_model", "yowo_training"]


class YowoLoss:
    """:class:`RegionLoss` with the network input size taken from the targets and, when
    ``prior_warmup`` > 0, the count of samples seen (over all processes) for YOWO's prior warm-up."""

    def __init__(self, model: nn.Module, cfg: YowoOptions, world_size: int = 1) -> None:
        self.loss = RegionLoss(
            model.num_classes,
            model.anchors.cpu(),
            object_scale=cfg.object_scale,
            noobject_scale=cfg.noobject_scale,
            class_scale=cfg.class_scale,
            coord_scale=cfg.coord_scale,
            prior_warmup_samples=cfg.prior_warmup,
            reduction=cfg.loss_reduction,
            rescore=cfg.rescore,  # type: ignore[arg-type]
        )
        self.warmup, self.world_size, self.seen = cfg.prior_warmup > 0, world_size, 0

    def __call__(self, outputs: dict[str, Tensor], targets: list[TubeletTarget]) -> dict[str, Tensor]:
        self.seen += len(targets) * self.world_size
        return self.loss(outputs, targets, targets[0].size, seen=self.seen if self.warmup else None)


def kmeans_anchors(
    ann: ActionAnnotations, videos: Sequence[str], grid: tuple[int, int], k: int = 5, seed: int = 0, iters: int = 100
) -> list[list[float]]:
    """YOLOv2's dimension clusters: k-means of the ground-truth (width, height) with distance
    ``1 - IoU`` of boxes sharing a centre, each box as a fraction of its video's frame times the
    ``grid`` (rows, columns) of the network output. Returns ``k`` (w, h) pairs in grid cells, by area."""
    parts = [
        np.stack(((t.boxes[:, 2] - t.boxes[:, 0]) / va.size[1], (t.boxes[:, 3] - t.boxes[:, 1]) / va.size[0]), 1)
        for va in (ann.videos[v] for v in videos)
        for t in va.tubes
        if len(t)
    ]
    if not parts:
        raise ConfigError(f"auto_anchors: {ann.source} has no training boxes to cluster")
    wh = np.concatenate(parts).astype(np.float64) * np.array([grid[1], grid[0]])
    wh = wh[(wh > 0).all(1)]
    rng = np.random.default_rng(seed)
    centres = wh[rng.choice(len(wh), min(k, len(wh)), replace=False)]
    for _ in range(iters):
        inter = np.minimum(wh[:, None, 0], centres[None, :, 0]) * np.minimum(wh[:, None, 1], centres[None, :, 1])
        nearest = (inter / (wh.prod(1)[:, None] + centres.prod(1)[None] - inter)).argmax(1)
        new = np.stack(
            [np.median(wh[nearest == j], 0) if (nearest == j).any() else centres[j] for j in range(len(centres))]
        )
        if np.allclose(new, centres):
            break
        centres = new
    return [[round(float(w), 5), round(float(h), 5)] for w, h in sorted(centres.tolist(), key=lambda c: c[0] * c[1])]


def pretrained_model(cfg: YowoOptions, num_classes: int) -> tuple[nn.Module, dict[str, Any], dict[str, Any]]:
    """The architecture of a ``pretrained`` file (``action convert`` output) for ``num_classes``,
    loaded with every tensor whose name and shape fit (the head differs when the classes do)."""
    state, meta = load_weights(cfg.pretrained)
    kwargs = dict(meta.get("arch_kwargs", {}), clip_len=cfg.clip_len)
    if cfg.anchors:
        kwargs["anchors"] = anchor_pairs(cfg.anchors)
    model = create_model(str(meta.get("architecture", cfg.arch)), num_classes, **kwargs)
    own = model.state_dict()
    fits = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    skipped = sorted(set(state) - set(fits)) + sorted(set(own) - set(state))
    model.load_state_dict(fits, strict=False)
    if skipped:
        logger.warning(
            "%s: %d tensors left at their initial values (absent or of another shape), e.g. %s",
            cfg.pretrained,
            len(skipped),
            skipped[:4],
        )
    apply_freeze(model, cfg)
    cfg.arch = str(meta.get("architecture", cfg.arch))
    return model, kwargs, meta


def yowo_training(cfg: ActionConfig) -> Callable[[str, int], TrainingPlan]:
    """YOWO's training of ``cfg.arch`` on ``cfg.data``: checks the architecture now and returns the
    ``build(device, world_size)`` of its :class:`~singleshot.tasks.common.TrainingPlan` (for
    :func:`~singleshot.tasks.common.fit`; the result holds the best metrics and ``per_class``)."""
    check_yowo_arch(cfg)

    def build(device: str, world: int) -> TrainingPlan:
        ann, root, skipped = checked_data(cfg)  # the dataset check first (check=, bad=)
        classes = list(ann.classes)
        pmeta: dict[str, Any] | None = None
        if cfg.pretrained:
            model, kwargs, pmeta = pretrained_model(cfg, len(classes))
        else:
            if cfg.auto_anchors:
                grid = (cfg.imgsz // output_stride(cfg),) * 2
                cfg.anchors = tuple(
                    v for pair in kmeans_anchors(ann, ann.train_videos or sorted(ann.videos), grid) for v in pair
                )
                logger.info("auto_anchors: %s (grid cells)", anchor_pairs(cfg.anchors))
            model, kwargs = build_action_model(cfg, len(classes))
        if cfg.weights:  # fine-tuning from a whole trained YOWO (class-dependent tensors re-initialised)
            start_from_weights(model, cfg.weights, "action", cfg.arch)
        # the input convention: the pretrained file's (ImageNet without one), resized with cfg.antialias
        spec = training_input_spec(cfg, pmeta)
        mean, std = spec.mean, spec.std
        model.parallel = branch_threads(cfg, world)  # type: ignore[assignment]  (a runtime attribute of YOWO)
        if str(device).startswith("cpu"):  # oneDNN's 3D convolutions and pooling are several times faster channels-last
            model.set_channels_last_3d(True)  # type: ignore[operator]
        train_videos, overlap = training_videos(ann)
        transform = (
            YowoClipAugment(cfg.imgsz, cfg.jitter, cfg.hue, cfg.saturation, cfg.exposure, antialias=spec.antialias)
            if cfg.augment
            else ClipResize(cfg.imgsz, spec.antialias)
        )
        train_set = YowoClipDataset(
            ann,
            root,
            train_videos,
            cfg.clip_len,
            cfg.imgsz,
            True,
            train_keyframes(ann, train_videos, cfg.keyframe_step),
            mean=mean,
            std=std,
            transform=ClipToBGR(transform) if spec.bgr else transform,
        )
        train_set.cache_frames = frames_fit_in_memory(ann, train_videos)
        meta = action_meta(model, cfg, kwargs, classes, **spec.to_meta(), train_config=config_to_dict(cfg))
        evaluate = BestEvaluation(
            lambda m: evaluate_yowo(yowo_predictor(deployable(m), meta, cfg), ann, root, cfg)[0],
            "frame_map",
            ACTION_METRIC_KEYS,
        )

        train_model, loss_fn = build_training(
            cfg, model, YowoLoss(model, cfg, world), classes, mean, std, ("clip_len", cfg.clip_len), yowo_kd_term
        )
        return TrainingPlan(
            model,
            loss_fn,
            train_set,
            collate_yowo,
            evaluate,
            "frame_map",
            meta,
            train_model=train_model,
            metric_keys=ACTION_METRIC_KEYS,
            report=with_warnings(evaluate.report, [overlap]),
            skipped=skipped,
        )

    return build
