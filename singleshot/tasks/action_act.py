"""``action train model=act`` and ``action convert from=caffe``: the ACT tubelet detector on the engine.

Training: :class:`~singleshot.data.action.datasets.ActTubeletDataset` (ACT's sampling rule: a
K-frame window wholly inside or outside every ground-truth tube and inside one; the same clip
augmentation for all K frames) -> :class:`~singleshot.engine.trainer.Trainer` with
:class:`~singleshot.losses.tubelet.TubeletLoss`. The optimizer's groups follow ACT's Caffe net
(:func:`act_param_groups`): with SGD the shared trunk at lr/K and biases at twice their group's
rate without weight decay; with Adam one rate. Evaluation after an epoch: :func:`~singleshot.tasks.action_act_eval.evaluate_act`
(frame-mAP from the pooled tubelets, video-mAP from ACT's linking), without a cache.

ACT's own recipe (vkalogeiton/caffe, branch act-detector, ``models/ACT-detector/<dataset>/solver_RGB.prototxt``
and ``train_RGB.prototxt``): SGD, base lr 1e-4, momentum 0.9, weight decay 5e-4, batch 5 (32 // K)
windows of K = 6 frames at 300x300, 600k iterations with lr x0.1 at 400k and 550k on UCF101-24
(J-HMDB-21: 240k, 160k, 220k), trunk lr_mult 1/K, bias lr_mult 2 and decay_mult 0; VGG16 from
ImageNet. ``configs/act_ucf24.yaml`` holds it.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import Tensor, nn

from singleshot.config import build_config, config_to_dict
from singleshot.data.action.clip_transforms import ActClipAugment, ClipResize
from singleshot.data.action.datasets import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ActTubeletDataset,
    collate_act,
    frames_fit_in_memory,
)
from singleshot.engine.distributed import cleanup, get_world_size, init_distributed
from singleshot.engine.run import train_and_restore_best
from singleshot.engine.sampler import build_train_loader
from singleshot.engine.schedules import build_scheduler
from singleshot.engine.seed import seed_everything
from singleshot.engine.train_config import train_config_for
from singleshot.engine.trainer import Trainer, build_optimizer
from singleshot.engine.weights import load_weights, save_weights
from singleshot.postprocess.tubelet import TubeletPostprocess
from singleshot.errors import ConfigError
from singleshot.losses.tubelet import TubeletLoss
from singleshot.models import build_model
from singleshot.models.aux_heads import deployable
from singleshot.structures import TubeletTarget
from singleshot.tasks.action import ActionConfig, branch_threads
from singleshot.tasks.action_act_tubelets import act_linking, tubelet_settings
from singleshot.tasks.action_distill import build_training

logger = logging.getLogger(__name__)

__all__ = ["ACT_ARCHS", "ACT_DEFAULTS", "explicit_keys", "act_config", "act_arch_kwargs", "act_meta", "act_param_groups",
           "ActLoss", "train_act", "convert_caffe"]  # fmt: skip

ACT_ARCHS: tuple[str, ...] = ("act_vgg16", "act_tiny", "act_slim")

#: Defaults of ``model=act`` where ActionConfig's (YOWO's) do not fit; a YAML file and the command line win.
ACT_DEFAULTS: dict[str, Any] = {
    "arch": "act_tiny",
    "imgsz": 128,
    "protocol": "act",
    "optimizer": "sgd",
    "lr": 0.01,
    "momentum": 0.9,
    "weight_decay": 5e-4,
    "batch": 16,
    "epochs": 20,
    "schedule": "cosine",
    "milestones": (),
    "warmup": 50,
}


def _yaml_values(path: str | None) -> dict[str, Any]:
    if not path:
        return {}
    try:
        loaded = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"{path}: cannot read the YAML config: {e}") from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: a config file must hold a mapping of key: value")
    return loaded


def explicit_keys(args: dict[str, str]) -> set[str]:
    """The keys given on the command line or in its ``cfg=`` YAML file (``-`` read as ``_``)."""
    keys = set(args) | set(_yaml_values(args.get("cfg")))
    return {str(k).replace("-", "_") for k in keys}


def act_config(args: dict[str, str], **defaults: Any) -> ActionConfig | None:
    """The ``ActionConfig`` of ``model=act`` (from the arguments or the ``cfg=`` YAML), else None.

    Precedence: :data:`ACT_DEFAULTS`, then ``defaults``, then the YAML file, then the arguments.
    """
    args = dict(args)
    values = _yaml_values(args.pop("cfg", None))
    if str(args.get("model", values.get("model", defaults.get("model", "")))) != "act":
        return None
    merged: dict[str, Any] = {**ACT_DEFAULTS, **defaults, **values, **args}
    return build_config(ActionConfig, None, merged)


def act_arch_kwargs(cfg: ActionConfig) -> dict[str, Any]:
    """Builder arguments of ``cfg.arch`` (``K``; ``imgsz`` and ``act_width`` for the light trunks)."""
    if cfg.arch not in ACT_ARCHS:
        raise ConfigError(f"arch={cfg.arch!r} is not an ACT architecture; expected one of {ACT_ARCHS}")
    if cfg.K < 1:
        raise ConfigError(f"K={cfg.K}: frames per tubelet must be >= 1")
    if cfg.arch == "act_vgg16":
        if cfg.imgsz != 300:
            raise ConfigError(f"imgsz={cfg.imgsz}: act_vgg16 is ACT's SSD300 (imgsz=300)")
        return {"k": cfg.K}
    return {"k": cfg.K, "image_size": cfg.imgsz, "width": cfg.act_width}


def act_meta(cfg: ActionConfig, kwargs: dict[str, Any], classes: list[str], mean: Any = IMAGENET_MEAN,
             std: Any = IMAGENET_STD, **extra: Any) -> dict[str, Any]:  # fmt: skip
    """Weights metadata of an ACT model trained here (read back by ``action val/predict``)."""
    post = TubeletPostprocess()
    meta: dict[str, Any] = {
        "task": "action", "family": "act", "architecture": cfg.arch, "arch_kwargs": kwargs,
        "num_classes": len(classes), "classes": list(classes), "K": cfg.K, "input_size": [cfg.imgsz, cfg.imgsz],
        "channel_order": "RGB", "mean": [float(v) for v in mean], "std": [float(v) for v in std],
        "postprocess": {"score_thresh": post.score_thresh, "nms_thresh": post.nms_thresh,
                        "topk_candidates": post.topk_candidates, "max_detections": post.max_detections},
        "linking": act_linking(cfg.linking),
    }  # fmt: skip
    meta.update(extra)
    return meta


def act_param_groups(model: nn.Module, lr: float, weight_decay: float, caffe: bool = True) -> list[dict[str, Any]]:
    """Optimizer groups; the first one holds the non-trunk weights (its lr is the one logged).

    ``caffe=True`` (SGD): ACT's Caffe learning-rate multipliers: the shared trunk's weights at
    ``lr / K`` (``ACTDetector.param_groups``; the K streams add K gradients into them), the rest at
    ``lr``, and every bias at twice its group's rate with no weight decay. ``caffe=False`` (Adam,
    whose steps do not grow with the gradient's scale): every weight at ``lr``, biases without decay.
    """
    groups: list[dict[str, Any]] = []
    names = {id(p): n for n, p in model.named_parameters()}
    split = reversed(model.param_groups(lr)) if caffe else [{"params": [p for p in model.parameters() if p.requires_grad], "lr": lr}]
    for g in split:  # rest first, then the trunk
        weights = [p for p in g["params"] if not names[id(p)].endswith(".bias")]
        biases = [p for p in g["params"] if names[id(p)].endswith(".bias")]
        groups.append({"params": weights, "lr": g["lr"], "weight_decay": weight_decay})
        groups.append({"params": biases, "lr": (2 if caffe else 1) * g["lr"], "weight_decay": 0.0})
    return [g for g in groups if g["params"]]


class PrepareBatch:
    """Move a collated ``(frames [B, K, 3, H, W] normalised, targets)`` batch to the device."""

    def __call__(self, batch: tuple[Tensor, list[TubeletTarget]], device: torch.device) -> tuple[Tensor, list[TubeletTarget]]:
        frames, targets = batch
        return frames.to(device, non_blocking=True), [t.to(device) for t in targets]


class ActLoss:
    """:class:`TubeletLoss` over the model's anchor cuboids (mean-IoU matching 0.5, loc weight 1/K, 3:1 negatives)."""

    def __init__(self, model: nn.Module) -> None:
        self.loss = TubeletLoss(model.priors.detach().cpu(), model.k)

    def __call__(self, outputs: dict[str, Tensor], targets: list[TubeletTarget]) -> dict[str, Tensor]:
        return self.loss(outputs, targets)


def _floats(metrics: dict[str, Any]) -> dict[str, float]:
    from singleshot.metrics.action_score import ACTION_METRIC_KEYS

    return {k: float(metrics[k]) for k in ACTION_METRIC_KEYS if isinstance(metrics.get(k), (int, float))}


def _motion_modality(cfg: ActionConfig) -> str:
    """``""`` for ``modality=rgb``, else the motion stream's input (``diff`` or ``flow``)."""
    if cfg.modality == "rgb":
        return ""
    if cfg.modality in ("rgb+diff", "rgb+flow"):
        if cfg.modality == "rgb+flow" and not cfg.flow:
            raise ConfigError("modality=rgb+flow needs flow=<folder of flow images <Class>/<video>/<frame:05d>.jpg>")
        return cfg.modality.split("+")[1]
    raise ConfigError(f"modality={cfg.modality!r}; expected rgb, rgb+diff or rgb+flow")


def _pretrained(model: nn.Module, path: str) -> None:
    """Load every tensor of ``path`` whose name and shape fit (the heads differ when the classes do)."""
    state, _ = load_weights(path)
    own = model.state_dict()
    fits = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(fits, strict=False)
    left = sorted(set(own) - set(fits))
    if left:
        logger.warning("%s: %d tensors left at their initial values, e.g. %s", path, len(left), left[:4])


def train_act(cfg: ActionConfig) -> dict | None:
    """Train ``cfg.arch`` on ``cfg.data``; returns the best metrics plus the output paths.

    Under ``torchrun`` ``batch`` is the global batch; only rank 0 writes weights and returns.
    """
    from singleshot.tasks.action_act_eval import evaluate_act
    from singleshot.tasks.action_act_predict import ACTPredictor
    from singleshot.tasks.action_act_tubelets import link_params
    from singleshot.tasks.action_modes import load_data, run_dir

    kwargs = act_arch_kwargs(cfg)
    link_params(cfg.linking, cfg.K)  # fail early on a bad linking name
    motion = _motion_modality(cfg)
    device = init_distributed(cfg.device)
    world = get_world_size()
    if cfg.batch % world:
        raise ConfigError(f"batch={cfg.batch}: the global batch must be divisible by the {world} processes")
    seed_everything(cfg.seed)
    ann, root = load_data(cfg)
    classes = list(ann.classes)
    model = build_model(cfg.arch, len(classes), **kwargs)
    if cfg.pretrained:
        _pretrained(model, cfg.pretrained)
    train_videos = ann.train_videos or sorted(ann.videos)
    if not ann.train_videos:
        warnings.warn(f"{ann.source}: no training split; training on every video", stacklevel=2)
    if motion:
        from singleshot.tasks.action_act_two_stream import (
            TwoStreamACT, TwoStreamLoss, TwoStreamTubeletDataset, two_stream_augment)

        model = TwoStreamACT(model, build_model(cfg.arch, len(classes), **kwargs), parallel=branch_threads(cfg, world))
        transform = two_stream_augment(cfg.imgsz, cfg.K, IMAGENET_MEAN, cfg.max_zoom if cfg.augment else 1.0,
                                       cfg.photometric and cfg.augment, motion)  # fmt: skip
        train_set = TwoStreamTubeletDataset(ann, root, train_videos, cfg.K, cfg.imgsz, True, transform=transform,
                                            modality=motion, flow_root=cfg.flow or None)  # fmt: skip
        train_set.cache_frames = frames_fit_in_memory(ann, train_videos, copies=2)  # the frames and their motion images
        loss_fn: Any = TwoStreamLoss(model)
    else:
        transform = (ActClipAugment(cfg.imgsz, cfg.K, IMAGENET_MEAN, cfg.max_zoom, cfg.photometric) if cfg.augment
                     else ClipResize(cfg.imgsz))  # fmt: skip
        train_set = ActTubeletDataset(ann, root, train_videos, cfg.K, cfg.imgsz, True, transform=transform)
        train_set.cache_frames = frames_fit_in_memory(ann, train_videos)
        loss_fn = ActLoss(model)
    if len(train_set) == 0:
        raise ConfigError(f"{ann.source}: no K={cfg.K} training window lies inside a ground-truth tube")
    loader = build_train_loader(
        train_set, cfg.batch // world, seed=cfg.seed, drop_last=len(train_set) > cfg.batch, workers=cfg.workers,
        collate_fn=collate_act, device=device,
    )  # fmt: skip
    out = run_dir(cfg, "train")
    tcfg = train_config_for(cfg, len(loader), out, device)
    meta = act_meta(cfg, kwargs, classes, train_config=config_to_dict(cfg))
    # the loader normalises both streams with the same mean/std; fusion_weight: the test-time class fusion
    flow_meta = dict(meta, modality=motion, fusion_weight=float(cfg.motion_weight))
    if motion:
        meta = dict(meta, flow_weights="best_flow.safetensors")
    best_full: dict[str, Any] = {}

    def evaluate(m: nn.Module) -> dict[str, float]:
        m = deployable(m)
        rgb, flow = (m.rgb, m.flow) if motion else (m, None)
        predictor = ACTPredictor(rgb, meta, tubelet_settings(meta, cfg), cfg.linking, str(device),
                                 flow_model=flow, flow_meta=flow_meta, flow_root=cfg.flow or None)  # fmt: skip
        predictor.parallel = bool(getattr(model, "parallel", False))
        full, _, _ = evaluate_act(predictor, ann, root, cfg)
        if not best_full or (full["frame_map"] or 0.0) > (best_full["frame_map"] or 0.0):
            best_full.clear()
            best_full.update(full)
        return _floats(full)

    if motion and cfg.teacher:
        raise ConfigError("teacher=: the two-stream ACT does not take a teacher; train each stream's teacher "
                          "separately or drop modality=")  # fmt: skip
    train_model, loss_fn = build_training(cfg, model, loss_fn, classes, IMAGENET_MEAN, IMAGENET_STD)
    trainer = Trainer(train_model, loss_fn, loader, tcfg, PrepareBatch(), evaluate, "frame_map",
                      run_config=config_to_dict(cfg))  # fmt: skip
    # ACT's per-group learning rates replace the engine's single group (same schedule).
    caffe = cfg.optimizer == "sgd"
    streams = [model.rgb, model.flow] if motion else [model]
    groups = [g for m in streams for g in act_param_groups(m, cfg.lr, cfg.weight_decay, caffe=caffe)]
    trainer.optimizer = build_optimizer(groups, tcfg)  # type: ignore[arg-type]
    trainer.scheduler = build_scheduler(trainer.optimizer, tcfg.schedule, trainer.total_iters, tcfg.warmup_iters,
                                        tcfg.warmup_factor, tcfg.milestones, tcfg.gamma, tcfg.power, tcfg.min_lr_factor)  # fmt: skip
    run = train_and_restore_best(trainer)  # the best weights are back in `model`
    if run is None:  # not the first process of a torchrun job
        return None
    best_metrics = _floats(run.metrics)
    weights = out / "best.safetensors"
    save_weights(weights, streams[0], dict(meta, metrics=best_metrics, epoch=run.epoch))
    if motion:
        save_weights(out / "best_flow.safetensors", streams[1], dict(flow_meta, epoch=run.epoch))
    cleanup()
    result: dict[str, Any] = dict(best_metrics)
    if best_full:
        result["per_class"] = best_full.get("per_class")
    result.update(epochs=run.epoch, train_seconds=run.seconds, weights=str(weights), out=str(out))
    return result


def convert_caffe(cfg: ActionConfig) -> dict[str, Any]:
    """``action convert from=caffe prototxt=... caffemodel=... dst=...``: an ACT Caffe model ->
    ``dst`` (.safetensors) with the metadata ``action val/predict`` read (BGR, Caffe's mean)."""
    from singleshot.convert.caffe_act import convert_caffe_act

    missing = [k for k in ("prototxt", "caffemodel", "dst") if not getattr(cfg, k)]
    if missing:
        raise ConfigError(f"from=caffe needs {', '.join(k + '=...' for k in missing)}")
    converted = convert_caffe_act(cfg.prototxt, cfg.caffemodel)
    meta = dict(converted.metadata)
    if cfg.classes:
        if len(cfg.classes) != meta["num_classes"]:
            raise ConfigError(f"classes: {len(cfg.classes)} names for a model of {meta['num_classes']} classes")
        meta["classes"] = list(cfg.classes)
    model = build_model(meta["architecture"], meta["num_classes"], **meta["arch_kwargs"])
    model.load_state_dict(converted.state_dict)  # proves the mapping before anything is written
    meta["linking"] = act_linking(cfg.linking)
    save_weights(Path(cfg.dst), model, meta)
    return {"dst": cfg.dst, "architecture": meta["architecture"], "num_classes": meta["num_classes"],
            "K": meta["K"], "tensors": len(model.state_dict())}  # fmt: skip
