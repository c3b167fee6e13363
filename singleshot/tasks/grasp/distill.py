"""``grasp train teacher=...``: map-level distillation wired into grasp training.

``singleshot grasp train ... teacher=path/to/teacher.safetensors [kd_weight=1.0 kd_loss=mse]``

The teacher (any grasp net: GG-CNN, GG-CNN2, a PSPNet grasp net; its auxiliary head, if any, is
dropped) is built from its weights' metadata and run frozen on every training batch by
:class:`~singleshot.losses.distill.StudentWithTeacher`. Its input kind (depth, RGB, RGB-D) must be
the student's: both see the same pre-processed views. The term ``kd`` = ``kd_weight`` x the sum over
the four maps (``pos``, ``cos``, ``sin``, ``width``) of the mean squared (or smooth-L1) difference
between the student's raw map and the teacher's (:class:`~singleshot.losses.distill.MapDistill`),
added to the task loss (and to the auxiliary term when ``aux=true``). The saved weights hold the
student only.
"""

from __future__ import annotations

import logging
from typing import Any

from torch import nn

from singleshot.errors import ConfigError
from singleshot.losses.distill import DistillLoss, MapDistill, StudentWithTeacher
from singleshot.models.ggcnn import MAP_KEYS
from singleshot.tasks.grasp.config import GraspConfig
from singleshot.tasks.grasp.predictor import load_grasp_weights

logger = logging.getLogger(__name__)

__all__ = ["KD_LOSSES", "build_training", "load_teacher"]

KD_LOSSES = ("mse", "smooth_l1")


def load_teacher(path: str, cfg: GraspConfig) -> tuple[nn.Module, dict[str, Any]]:
    """The teacher net of a grasp ``.safetensors`` in eval mode, checked against the student's input."""
    teacher, meta = load_grasp_weights(path)
    kind = str(meta.get("input", "depth"))
    if kind != cfg.input:
        raise ConfigError(f"teacher={path}: trained on {kind!r} input, the student takes {cfg.input!r}")
    return teacher, meta


def build_training(cfg: GraspConfig, model: nn.Module, task_loss: Any) -> tuple[nn.Module, Any]:
    """``(module, loss)`` for the trainer: ``(model, task_loss)`` unchanged without ``teacher``,
    else the student beside its frozen teacher and the task loss plus the ``kd`` term. ``model``
    is wrapped, not copied: after training it holds the trained student."""
    if cfg.kd_loss not in KD_LOSSES:
        raise ConfigError(f"kd_loss={cfg.kd_loss!r}: expected one of {', '.join(KD_LOSSES)}")
    if cfg.kd_weight < 0:
        raise ConfigError(f"kd_weight={cfg.kd_weight}: must be >= 0")
    if not cfg.teacher:
        return model, task_loss
    teacher, meta = load_teacher(cfg.teacher, cfg)
    logger.info(
        "distilling from %s (%s); kd_weight=%g kd_loss=%s",
        cfg.teacher,
        meta.get("architecture"),
        cfg.kd_weight,
        cfg.kd_loss,
    )
    terms = {"kd": (cfg.kd_weight, MapDistill(MAP_KEYS, cfg.kd_loss))}  # type: ignore[arg-type]
    return StudentWithTeacher(model, teacher), DistillLoss(task_loss, terms)
