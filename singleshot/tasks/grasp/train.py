"""``grasp train``: grasp nets on the engine (:func:`singleshot.tasks.common.fit`).

Training: :class:`~singleshot.data.grasp.dataset.GraspDataset` views (augmented with the grasps) →
the model's four maps → :class:`~singleshot.losses.grasp.GraspLoss`, which renders the target maps
of the whole batch with :func:`~singleshot.losses.grasp.render_grasp_maps` (centre third, cos 2θ,
sin 2θ, width / 150). Evaluation after each ``eval_every`` epochs: top-1 grasp success rate on the
held-out views (:class:`~singleshot.metrics.grasp.GraspEvaluator`, metric key ``success_rate``);
with ``split=all`` they are the training views, which a warning before training and the result's
``warnings`` say.
With ``teacher=``, the student is trained beside a frozen teacher (:mod:`singleshot.tasks.grasp.distill`).
With ``pretrained=`` (PSP nets only), the trunk starts from a local torchvision ImageNet ResNet state
dict (:func:`~singleshot.models.psp_grasp.load_imagenet_trunk`), recorded as ``pretrained`` (file
name and kind) in the weights' metadata.
The saved weights hold the deployable model (no PSPNet auxiliary head).
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

from singleshot.config import config_to_dict
from singleshot.data.collate import collate_detection
from singleshot.errors import ConfigError
from singleshot.losses.grasp import GraspLoss
from singleshot.metrics.grasp import wilson_interval
from singleshot.metrics.mismatch import same_items, with_warnings
from singleshot.models.aux_heads import deployable
from singleshot.models.psp_grasp import PSPGrasp, load_imagenet_trunk, strip_aux
from singleshot.tasks.common import TrainingPlan, fit, make_config, metric_floats, start_from_weights
from singleshot.tasks.grasp.check import screened_split
from singleshot.tasks.grasp.config import GraspConfig
from singleshot.tasks.grasp.data import make_dataset
from singleshot.tasks.grasp.distill import build_training
from singleshot.tasks.grasp.evaluate import evaluate_dataset
from singleshot.tasks.grasp.predictor import GraspPredictor, build_grasp_model, model_meta, postprocess_from

logger = logging.getLogger(__name__)

__all__ = ["train", "train_grasp"]


def train_grasp(cfg: GraspConfig) -> dict | None:
    """Train ``cfg.model`` on the train side of ``cfg.split`` of ``cfg.data``; returns the best
    metrics (``success_rate``, ``n``, ``n_success``, ``ci95``, ``split``, ``iou``) plus ``epochs``,
    ``train_seconds`` and the output paths (``weights``, ``out``).

    Under ``torchrun`` only rank 0 writes the weights and returns the result (others: None).
    ``threads`` > 0 sets torch's intra-op threads for the run (restored after).
    """
    threads = torch.get_num_threads()
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    try:
        if not cfg.data:
            raise ConfigError("missing required key(s): data=... (a Cornell or Jacquard root)")
        return fit(cfg, lambda device, world: _plan(cfg, device))
    finally:
        torch.set_num_threads(threads)


def _plan(cfg: GraspConfig, device: str) -> TrainingPlan:
    """The grasp net, its views, loss, evaluation and weights files (after seeding, in this order:
    the model, then the teacher when distilling)."""
    if cfg.model in ("ggcnn",) and cfg.size % 12:
        logger.info("size=%d is not a multiple of 12: GG-CNN's maps are resized to the input", cfg.size)
    model = build_grasp_model(cfg.model, cfg.input, aux=cfg.aux)
    extra: dict[str, Any] = {}
    if cfg.pretrained:
        if not isinstance(model, PSPGrasp):
            raise ConfigError(
                f"pretrained={cfg.pretrained}: an ImageNet ResNet trunk is for the PSP grasp nets "
                f"(psp_resnet18/50/101); model={cfg.model} has none"
            )
        extra["pretrained"] = load_imagenet_trunk(model, cfg.pretrained)
    if cfg.weights:  # fine-tuning from a whole trained grasp net (aux-head tensors dropped when absent here)
        start_from_weights(model, cfg.weights, "grasp", cfg.model)
    train_samples, test_samples, split, skipped = screened_split(cfg, cfg.data)
    overlap = same_items(
        [s.image_id for s in train_samples],
        [s.image_id for s in test_samples],
        "images",
        hint="hold images out with split=image, object, reference or kfold",
    )
    train_set = make_dataset(cfg, train_samples, train=True)
    val_set = make_dataset(cfg, test_samples, train=False)
    meta = model_meta(cfg, train_config=config_to_dict(cfg), split=split, **extra)
    post = postprocess_from(cfg)

    def evaluate(m: nn.Module) -> dict[str, float]:
        metrics, _ = evaluate_dataset(GraspPredictor(deployable(m), meta, post, device), val_set, cfg, split)
        lo, hi = metrics["ci95"]
        return dict(metric_floats(metrics), ci95_lo=lo, ci95_hi=hi)

    def report(best: dict[str, float]) -> dict[str, Any]:
        n, k = int(best.get("n", 0)), int(best.get("n_success", 0))
        return {
            "success_rate": best.get("success_rate", float("nan")),
            "n": n,
            "n_success": k,
            "ci95": list(wilson_interval(k, n)),
            "split": split,
            "iou": cfg.iou,
        }

    train_model, loss = build_training(cfg, model, GraspLoss(cfg.loss, cfg.aux_weight))  # type: ignore[arg-type]
    return TrainingPlan(
        model=model,
        loss_fn=loss,
        train_set=train_set,
        collate_fn=collate_detection,
        evaluate=evaluate,
        metric_key="success_rate",
        meta=meta,
        train_model=train_model,
        files=lambda: {"best.safetensors": (strip_aux(model.state_dict()), meta)},
        report=with_warnings(report, [overlap]),  # the result lists the overlap warning
        skipped=skipped,
    )


# ---------------------------------------------------------------- mode
def train(args: dict[str, str]) -> dict | None:
    """Train a grasp net; writes checkpoints, ``best.safetensors``, logs and plots."""
    return train_grasp(make_config(GraspConfig, args))
