"""``detect train``: SSD training on the engine, as a :class:`~singleshot.tasks.common.TrainingPlan`
handed to :func:`singleshot.tasks.common.fit`.

The plan: the model named by ``model=`` (``pretrained=`` loads a VGG16 base into it), the
training split with the SSD augmentation (``augment=false``: flips only), the multibox loss
(wrapped by :func:`singleshot.tasks.detect.distill.build_training` for ``teacher=`` / ``aux=true``),
batches moved to the device and normalised with the run's input convention
(:class:`NormalizeToDevice`), and evaluation on the ``val_set`` split (``map`` for ``metric=coco``,
else ``map50``, selects the best weights). Validation images that are training images too (one COCO
json without ``gt=``, ``val_set`` = ``train_set``) are warned about before training and listed
under the result's ``warnings``; nothing is held out in their stead. ``best.safetensors`` holds the plain student with
:func:`model_meta` metadata.

The input convention (:func:`input_spec_for`): ``input_norm=auto`` (default) takes the one of the
``pretrained=`` file (torchvision ``vgg16``: ImageNet RGB; ssd.pytorch's reduced trunk: Caffe BGR
0..255 minus (104, 117, 123)), ImageNet without one; ``input_norm=imagenet|caffe|ssd_pytorch``
chooses it. ``antialias`` (default true) is the resize policy. Both go into the weights' metadata,
so ``val``, ``predict`` and ``export`` pre-process exactly as training did (the zoom-out fill is the
convention's mean too).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from singleshot.config import config_to_dict
from singleshot.data.collate import collate_detection
from singleshot.data.detect_formats import detect_format
from singleshot.data.input_spec import InputSpec
from singleshot.losses.multibox import MultiBoxLoss
from singleshot.metrics.mismatch import same_items, with_warnings
from singleshot.models.aux_heads import deployable
from singleshot.structures import BoxTarget
from singleshot.tasks.common import ToDevice, TrainingPlan, fit, make_config, metric_floats, start_from_weights
from singleshot.tasks.detect.config import DetectConfig
from singleshot.tasks.detect.data import class_names_for, image_files, screened_dataset
from singleshot.tasks.detect.distill import build_training
from singleshot.tasks.detect.evaluate import evaluate_dataset
from singleshot.tasks.detect.predictor import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    DetectPredictor,
    build_detector,
    model_meta,
    normalize,
    postprocess_settings,
)

logger = logging.getLogger(__name__)

__all__ = ["NormalizeToDevice", "input_spec_for", "train", "train_detector", "training_plan"]


class NormalizeToDevice(ToDevice):
    """``prepare_batch`` of a collated ``(images Tensor[B, 3, S, S] RGB in [0, 1], targets)`` batch:
    moved to the device, then the images normalised by ``spec`` (channel order, mean/std; default
    ImageNet RGB)."""

    def __init__(self, spec: InputSpec | None = None) -> None:
        self.spec = spec

    def __call__(self, batch: tuple[Tensor, list[BoxTarget]], device: torch.device) -> tuple[Tensor, list[BoxTarget]]:
        images, targets = super().__call__(batch, device)
        if self.spec is None:
            return normalize(images, IMAGENET_MEAN, IMAGENET_STD), targets
        return self.spec.normalize(images), targets


def input_spec_for(cfg: DetectConfig, size: int, pretrained: str | None = None) -> InputSpec:
    """The input convention a run trains with: ``cfg.input_norm`` (``auto``: ``pretrained``, the
    convention of the ``pretrained=`` file, or ImageNet without one) at ``size`` with the resize
    policy ``cfg.antialias``."""
    name = cfg.input_norm
    if name == "auto":
        name = pretrained or "imagenet"
    elif pretrained and name != pretrained:
        logger.warning(
            "input_norm=%s overrides the convention of pretrained=%s (%s): the trunk sees other pixels than it was trained on",
            name,
            cfg.pretrained,
            pretrained,
        )
    return InputSpec.named(name, size, cfg.antialias)


def training_plan(cfg: DetectConfig, device: str) -> TrainingPlan:
    """What :func:`~singleshot.tasks.common.fit` trains for ``cfg`` (built after seeding; the order
    of the random draws: the model, then the auxiliary head / feature adapter of ``build_training``)."""
    classes = class_names_for(cfg)
    model, kwargs = build_detector(cfg.model, len(classes), cfg.imgsz, cfg.priors)
    pretrained: str | None = None
    if cfg.pretrained:
        from singleshot.convert.vgg_decimate import load_vgg16_base

        pretrained = load_vgg16_base(model, Path(cfg.pretrained))
    if cfg.weights:  # fine-tuning: a whole trained detector (its heads re-initialised when the classes differ)
        start_from_weights(model, cfg.weights, "detect", cfg.model)
    size = int(model.image_size)
    spec = input_spec_for(cfg, size, pretrained)
    logger.info("input convention: %s", spec.describe())
    from singleshot.data.transforms import build_train_transform

    train_set, skipped = screened_dataset(
        cfg,
        "train",
        classes,
        build_train_transform(size, spec.rgb_mean(), strong=cfg.augment, antialias=spec.antialias),
    )
    val_set, val_skipped = screened_dataset(cfg, "val", classes)
    overlap = _overlap(cfg, train_set, val_set)
    meta = model_meta(model, cfg.model, kwargs, classes, spec, train_config=config_to_dict(cfg))
    settings = postprocess_settings(cfg)

    def evaluate(m: nn.Module) -> dict[str, float]:
        predictor = DetectPredictor(deployable(m), meta, settings, device, channels_last=False)
        return metric_floats(evaluate_dataset(predictor, val_set, cfg, cfg.metric, classes))

    # teacher= / aux=true wrap `model` in train-only parts; `model` itself stays the saved student
    train_model, loss_fn = build_training(cfg, model, classes, MultiBoxLoss(model.priors), spec)
    return TrainingPlan(
        model=model,
        loss_fn=loss_fn,
        train_set=train_set,
        collate_fn=collate_detection,
        evaluate=evaluate,
        metric_key="map" if cfg.metric == "coco" else "map50",
        meta=meta,
        prepare_batch=NormalizeToDevice(spec),
        train_model=train_model,
        report=with_warnings(None, [overlap]),  # the result lists the overlap warning
        skipped=list(dict.fromkeys([*skipped, *val_skipped])),  # one COCO file may serve both
    )


def _overlap(cfg: DetectConfig, train_set: Dataset, val_set: Dataset) -> str | None:
    """The warning (logged once, before training) when the validation images are training images too
    (a single COCO json serves both splits unless ``gt=`` names another; ``val_set`` = ``train_set``)."""
    train_files, val_files = image_files(train_set), image_files(val_set)
    if train_files is None or val_files is None:
        return None
    one_json = detect_format(cfg.data) == "coco" and not cfg.gt
    hint = "name a validation COCO json with gt=" if one_json else "name another split with val_set="
    return same_items(train_files, val_files, "images", hint=hint)


def train_detector(cfg: DetectConfig) -> dict | None:
    """Train ``cfg.model`` on ``cfg.data``; returns the best metrics plus the output paths.

    Under ``torchrun`` every process calls this; ``batch`` is the global batch, split evenly
    across the processes. Only rank 0 writes the weights and returns the result (others: None).
    The evaluation reads ``metric``, ``plus_one`` and ``voc07_thresholds`` from ``cfg`` (checked when
    the config is built, so a bad value fails before any training).
    """
    return fit(cfg, lambda device, world: training_plan(cfg, device))


def train(args: dict[str, str]) -> dict | None:
    """Train an SSD; writes ``last.pt``/``best.pt`` checkpoints, ``best.safetensors``, logs and plots."""
    return train_detector(make_config(DetectConfig, args))
