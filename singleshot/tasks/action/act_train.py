"""The ACT member's training: the ACT tubelet detector on the engine.

Training: :class:`~singleshot.data.action.datasets.ActTubeletDataset` (ACT's sampling rule: a
K-frame window wholly inside or outside every ground-truth tube and inside one; the same clip
augmentation for all K frames) -> the engine (:func:`~singleshot.tasks.common.fit`) with
:class:`~singleshot.losses.tubelet.TubeletLoss`. The optimizer's groups follow ACT's Caffe net
(:func:`act_param_groups`, the plan's ``param_groups``): with SGD the shared trunk at lr/K and
biases at twice their group's rate without weight decay; with Adam one rate. Evaluation after an
epoch: :func:`~singleshot.tasks.action.act_evaluate.evaluate_act` (frame-mAP from the pooled
tubelets, video-mAP from ACT's linking), without a cache. ``modality=rgb+diff|rgb+flow`` trains the
two streams of :mod:`singleshot.tasks.action.act_two_stream` side by side and writes both in one
``best.safetensors`` (:mod:`singleshot.tasks.action.act_weights`: ``rgb.``/``flow.`` tensors, the
motion stream's metadata and the fusion weight inside; with flow, ``flow_stack`` images per frame,
ACT's FLOW5 by default). :func:`act_training` is the
``training`` of the ACT record in :mod:`singleshot.tasks.action.members`.

ACT's own recipe (vkalogeiton/caffe, branch act-detector, ``models/ACT-detector/<dataset>/solver_RGB.prototxt``
and ``train_RGB.prototxt``): SGD, base lr 1e-4, momentum 0.9, weight decay 5e-4, batch 5 (32 // K)
windows of K = 6 frames at 300x300, 600k iterations with lr x0.1 at 400k and 550k on UCF101-24
(J-HMDB-21: 240k, 160k, 220k), trunk lr_mult 1/K, bias lr_mult 2 and decay_mult 0; VGG16 from
ImageNet. ``configs/act_ucf24.yaml`` holds it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from torch import Tensor, nn

from singleshot.config import config_to_dict
from singleshot.data.action.clip_transforms import ActClipAugment, ClipResize, ClipToBGR
from singleshot.data.action.datasets import (
    ActTubeletDataset,
    collate_act,
    frames_fit_in_memory,
)
from singleshot.engine.weights import load_weights
from singleshot.errors import ConfigError
from singleshot.losses.tubelet import TubeletLoss
from singleshot.metrics.action_score import ACTION_METRIC_KEYS
from singleshot.metrics.mismatch import with_warnings
from singleshot.models import create_model
from singleshot.models.aux_heads import deployable
from singleshot.structures import TubeletTarget
from singleshot.tasks.action.act_evaluate import evaluate_act
from singleshot.tasks.action.act_predictor import ACTPredictor, act_arch_kwargs, act_meta
from singleshot.tasks.action.act_tubelets import link_params, tubelet_settings
from singleshot.tasks.action.act_two_stream import (
    TwoStreamACT,
    TwoStreamLoss,
    TwoStreamTubeletDataset,
    flow_arch_kwargs,
    two_stream_augment,
)
from singleshot.tasks.action.act_weights import finetune_act, read_finetune_weights, two_stream_meta
from singleshot.tasks.action.check import checked_data
from singleshot.tasks.action.config import ActionConfig, ActOptions
from singleshot.tasks.action.data import training_videos
from singleshot.tasks.action.distill import act_kd_term, build_training
from singleshot.tasks.action.flow import read_flow_info
from singleshot.tasks.action.predictor import branch_threads, training_input_spec
from singleshot.tasks.common import BestEvaluation, TrainingPlan

logger = logging.getLogger(__name__)

__all__ = ["ActLoss", "act_param_groups", "act_training", "load_fitting", "motion_modality"]


def act_param_groups(model: nn.Module, lr: float, weight_decay: float, caffe: bool = True) -> list[dict[str, Any]]:
    """Optimizer groups; the first one holds the non-trunk weights (its lr is the one logged).

    ``caffe=True`` (SGD): ACT's Caffe learning-rate multipliers: the shared trunk's weights at
    ``lr / K`` (``ACTDetector.param_groups``; the K streams add K gradients into them), the rest at
    ``lr``, and every bias at twice its group's rate with no weight decay. ``caffe=False`` (Adam,
    whose steps do not grow with the gradient's scale): every weight at ``lr``, biases without decay.
    """
    groups: list[dict[str, Any]] = []
    names = {id(p): n for n, p in model.named_parameters()}
    split = (
        reversed(model.param_groups(lr))
        if caffe
        else [{"params": [p for p in model.parameters() if p.requires_grad], "lr": lr}]
    )
    for g in split:  # rest first, then the trunk
        weights = [p for p in g["params"] if not names[id(p)].endswith(".bias")]
        biases = [p for p in g["params"] if names[id(p)].endswith(".bias")]
        groups.append({"params": weights, "lr": g["lr"], "weight_decay": weight_decay})
        groups.append({"params": biases, "lr": (2 if caffe else 1) * g["lr"], "weight_decay": 0.0})
    return [g for g in groups if g["params"]]


class ActLoss:
    """:class:`TubeletLoss` over the model's anchor cuboids (mean-IoU matching 0.5, loc weight 1/K, 3:1 negatives)."""

    def __init__(self, model: nn.Module) -> None:
        self.loss = TubeletLoss(model.priors.detach().cpu(), model.k)

    def __call__(self, outputs: dict[str, Tensor], targets: list[TubeletTarget]) -> dict[str, Tensor]:
        return self.loss(outputs, targets)


def motion_modality(cfg: ActOptions) -> str:
    """``""`` for ``modality=rgb``, else the motion stream's input (``diff`` or ``flow``)."""
    if cfg.modality == "rgb":
        return ""
    if cfg.modality in ("rgb+diff", "rgb+flow"):
        if cfg.modality == "rgb+flow" and not cfg.flow:
            raise ConfigError("modality=rgb+flow needs flow=<folder of flow images <Class>/<video>/<frame:05d>.jpg>")
        return cfg.modality.split("+")[1]
    raise ConfigError(f"modality={cfg.modality!r}; expected rgb, rgb+diff or rgb+flow")


def load_fitting(model: nn.Module, path: str) -> dict[str, Any]:
    """Load every tensor of ``path`` whose name and shape fit (the heads differ when the classes do);
    returns the file's metadata (its input convention: channel order, mean/std)."""
    state, meta = load_weights(path)
    own = model.state_dict()
    fits = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(fits, strict=False)
    left = sorted(set(own) - set(fits))
    if left:
        logger.warning("%s: %d tensors left at their initial values, e.g. %s", path, len(left), left[:4])
    return meta


def act_training(cfg: ActionConfig) -> Callable[[str, int], TrainingPlan]:
    """ACT's training of ``cfg.arch`` on ``cfg.data``: checks the architecture, the linking and the
    modality now and returns the ``build(device, world_size)`` of its
    :class:`~singleshot.tasks.common.TrainingPlan` (for :func:`~singleshot.tasks.common.fit`; the
    result holds the best metrics and ``per_class``)."""
    kwargs = act_arch_kwargs(cfg)
    link_params(cfg.linking, cfg.K)  # fail early on a bad linking name
    motion = motion_modality(cfg)
    flow_kwargs = flow_arch_kwargs(kwargs, motion, cfg.flow_stack) if motion else kwargs
    flow_stack = cfg.flow_stack if motion == "flow" else 1

    def build(device: str, world: int) -> TrainingPlan:
        ann, root, skipped = checked_data(cfg)  # the dataset check first (check=, bad=)
        classes = list(ann.classes)
        model: nn.Module = create_model(cfg.arch, len(classes), **kwargs)
        # fine-tuning from a whole trained ACT detector: its RGB stream here, a two-stream file's motion stream below
        tuned = read_finetune_weights(cfg.weights) if cfg.weights else None
        if tuned is not None:
            finetune_act(model, tuned[0]["rgb"], cfg.weights, tuned[1], cfg.arch)
        # the input convention: the pretrained file's (ImageNet without one), resized with cfg.antialias
        spec = training_input_spec(cfg, load_fitting(model, cfg.pretrained) if cfg.pretrained else None)
        train_videos, overlap = training_videos(ann)
        if motion:
            model = TwoStreamACT(
                model, create_model(cfg.arch, len(classes), **flow_kwargs), parallel=branch_threads(cfg, world)
            )
            if tuned is not None and "flow" in tuned[0]:
                finetune_act(model.flow, tuned[0]["flow"], f"{cfg.weights} (motion stream)", tuned[1], cfg.arch)
            transform = two_stream_augment(
                cfg.imgsz,
                cfg.K,
                spec.rgb_mean(),
                cfg.max_zoom if cfg.augment else 1.0,
                cfg.photometric and cfg.augment,
                motion,
                antialias=spec.antialias,
            )
            train_set: ActTubeletDataset = TwoStreamTubeletDataset(
                ann,
                root,
                train_videos,
                cfg.K,
                cfg.imgsz,
                True,
                mean=spec.mean,
                std=spec.std,
                transform=ClipToBGR(transform) if spec.bgr else transform,
                modality=motion,
                flow_root=cfg.flow or None,
                flow_stack=flow_stack,
            )
            train_set.cache_frames = frames_fit_in_memory(
                ann, train_videos, copies=2
            )  # the frames and their motion images
            loss_fn: Any = TwoStreamLoss(model)
        else:
            transform = (
                ActClipAugment(
                    cfg.imgsz, cfg.K, spec.rgb_mean(), cfg.max_zoom, cfg.photometric, antialias=spec.antialias
                )
                if cfg.augment
                else ClipResize(cfg.imgsz, spec.antialias)
            )
            train_set = ActTubeletDataset(
                ann,
                root,
                train_videos,
                cfg.K,
                cfg.imgsz,
                True,
                mean=spec.mean,
                std=spec.std,
                transform=ClipToBGR(transform) if spec.bgr else transform,
            )
            train_set.cache_frames = frames_fit_in_memory(ann, train_videos)
            loss_fn = ActLoss(model)
        if len(train_set) == 0:
            raise ConfigError(f"{ann.source}: no K={cfg.K} training window lies inside a ground-truth tube")
        meta = act_meta(cfg, kwargs, classes, **spec.to_meta(), train_config=config_to_dict(cfg))
        # the loader normalises both streams with the same mean/std; fusion_weight: the test-time class fusion
        flow_meta = dict(meta, modality=motion, fusion_weight=float(cfg.motion_weight), arch_kwargs=flow_kwargs)
        if motion == "flow":  # FLOW5 stacks, and how the flow images were made (for predict on raw videos)
            flow_meta.update(flow_stack=flow_stack, flow_images=read_flow_info(cfg.flow))
        saved = two_stream_meta(meta, flow_meta) if motion else meta  # one file holds both streams
        streams = [model.rgb, model.flow] if motion else [model]

        def evaluate_full(m: nn.Module) -> dict[str, Any]:
            m = deployable(m)
            rgb, flow = (m.rgb, m.flow) if motion else (m, None)
            predictor = ACTPredictor(
                rgb,
                meta,
                tubelet_settings(meta, cfg),
                cfg.linking,
                str(device),
                flow_model=flow,
                flow_meta=flow_meta,
                flow_root=cfg.flow or None,
            )
            predictor.parallel = isinstance(model, TwoStreamACT) and model.parallel
            return evaluate_act(predictor, ann, root, cfg)[0]

        evaluate = BestEvaluation(evaluate_full, "frame_map", ACTION_METRIC_KEYS)

        if motion and cfg.teacher:
            raise ConfigError(
                "teacher=: the two-stream ACT does not take a teacher; train each stream's teacher "
                "separately or drop modality="
            )
        train_model, loss_fn = build_training(
            cfg, model, loss_fn, classes, spec.mean, spec.std, ("K", cfg.K), act_kd_term
        )
        # ACT's per-group learning rates (same schedule for every group)
        caffe = cfg.optimizer == "sgd"
        groups = [g for m in streams for g in act_param_groups(m, cfg.lr, cfg.weight_decay, caffe=caffe)]
        return TrainingPlan(
            model,
            loss_fn,
            train_set,
            collate_act,
            evaluate,
            "frame_map",
            saved,
            train_model=train_model,
            param_groups=groups,
            metric_keys=ACTION_METRIC_KEYS,
            report=with_warnings(evaluate.report, [overlap]),
            skipped=skipped,
        )

    return build
