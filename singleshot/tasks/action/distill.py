"""``action train teacher=...``: soft-label distillation wired into YOWO and ACT training.

``singleshot action train ... teacher=path/to/teacher.safetensors [kd_weight=1.0 kd_temperature=2.0
kd_obj_thresh=0.5]``

The teacher is built from its weights' metadata (any architecture of the student's member) and run
frozen on every training batch by :class:`~singleshot.losses.distill.StudentWithTeacher`. It sees
the student's own input batch, so its metadata must agree on what that batch is: the same classes
(names and order), input size, mean/std and clip length (YOWO) or K (ACT). Its head must cover the
same anchors: YOWO's anchor count and output grid, ACT's anchor cuboids.

Terms added to the task loss (:class:`~singleshot.losses.distill.DistillLoss`):

* YOWO: ``kd`` = ``kd_weight`` x soft-label KD at temperature ``kd_temperature`` of the class
  logits of the region output (:class:`~singleshot.losses.distill.RegionLogits`) over the anchors
  whose *teacher* objectness is at least ``kd_obj_thresh``
  (:class:`~singleshot.losses.distill.TeacherObjectnessMask`): where the teacher sees no object its
  class scores carry no knowledge, and YOWO's class loss itself only trains responsible anchors.
* ACT: ``kd`` = ``kd_weight`` x soft-label KD of the C+1 scores of every anchor cuboid (background
  included: ACT's confidence loss trains background too).

Each member's training (:mod:`~singleshot.tasks.action.yowo_train`,
:mod:`~singleshot.tasks.action.act_train`) names its input length (``clip_len`` or ``K``) and its
term (:func:`yowo_kd_term`, :func:`act_kd_term`). The saved weights hold the student only. The
two-stream ACT (``modality=diff|flow``) does not take a teacher; a two-stream ACT's weights teach
with their RGB stream.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from torch import nn

from singleshot.engine.weights import load_state_into, read_model_weights
from singleshot.errors import ConfigError
from singleshot.losses.distill import DistillLoss, RegionLogits, SoftLabelKD, StudentWithTeacher, TeacherObjectnessMask
from singleshot.models import model_from_meta
from singleshot.models.registry import check_weights_task
from singleshot.tasks.action.act_weights import rgb_stream
from singleshot.tasks.action.config import ActionConfig, YowoOptions
from singleshot.tasks.action.predictor import family_of

logger = logging.getLogger(__name__)

__all__ = ["KDTerm", "act_kd_term", "build_training", "load_teacher", "yowo_kd_term"]

#: ``(teacher, student, cfg) -> the soft-label term``, after checking that the teacher's head covers
#: the student's (raises ConfigError otherwise).
KDTerm = Callable[[nn.Module, nn.Module, ActionConfig], SoftLabelKD]


def yowo_kd_term(teacher: nn.Module, model: nn.Module, cfg: YowoOptions) -> SoftLabelKD:
    """YOWO's term: KD of the class logits of the region output over the anchors whose teacher
    objectness is at least ``kd_obj_thresh`` (the teacher must have the student's anchor count)."""
    a, c = int(model.num_anchors), int(model.num_classes)
    if int(teacher.num_anchors) != a:
        raise ConfigError(f"teacher={cfg.teacher}: {int(teacher.num_anchors)} anchors, the student has {a}")
    return SoftLabelKD(
        "out", cfg.kd_temperature, TeacherObjectnessMask(a, c, cfg.kd_obj_thresh), logits_fn=RegionLogits(a, c)
    )


def act_kd_term(teacher: nn.Module, model: nn.Module, cfg: ActionConfig) -> SoftLabelKD:
    """ACT's term: KD of the C+1 scores of every anchor cuboid (the teacher must have the student's cuboids)."""
    if tuple(teacher.priors.shape) != tuple(model.priors.shape) or not bool((teacher.priors == model.priors).all()):
        raise ConfigError(f"teacher={cfg.teacher}: its anchor cuboids differ from the student's")
    return SoftLabelKD("conf", cfg.kd_temperature)


def load_teacher(
    path: str,
    cfg: ActionConfig,
    classes: Sequence[str],
    mean: Sequence[float],
    std: Sequence[float],
    length: tuple[str, int],
) -> tuple[nn.Module, dict[str, Any]]:
    """The teacher of an action ``.safetensors`` in eval mode, checked against the student's batch
    (``length``: the name and value of the student's input length, ``("clip_len", T)`` or ``("K", K)``)."""
    state, meta = rgb_stream(*read_model_weights(path), path)  # a two-stream ACT teaches with its RGB stream
    check_weights_task(meta, "action", f"teacher={path}")
    family = family_of(meta)
    if family != cfg.model:
        raise ConfigError(f"teacher={path}: a {family!r} model; the student is {cfg.model!r}")
    key, ours = length
    checks = [
        ("classes", list(meta.get("classes", [])), list(classes)),
        ("input_size", [int(v) for v in meta.get("input_size", [])], [cfg.imgsz, cfg.imgsz]),
        ("mean", [round(float(v), 6) for v in meta.get("mean", [])], [round(float(v), 6) for v in mean]),
        ("std", [round(float(v), 6) for v in meta.get("std", [])], [round(float(v), 6) for v in std]),
        (key, int(meta.get(key, -1)), int(ours)),
    ]
    for name, theirs, ours in checks:
        if theirs != ours:
            raise ConfigError(
                f"teacher={path}: its {name} {theirs} differs from the student's {ours}; "
                "the teacher must take the student's batch as it is"
            )
    teacher = load_state_into(
        model_from_meta(meta, task="action", source=f"teacher={path}"), state, path, meta.get("architecture")
    )
    return teacher.eval(), meta


def build_training(
    cfg: ActionConfig,
    model: nn.Module,
    task_loss: Any,
    classes: Sequence[str],
    mean: Sequence[float],
    std: Sequence[float],
    length: tuple[str, int],
    kd_term: KDTerm,
) -> tuple[nn.Module, Any]:
    """``(module, loss)`` for the trainer: unchanged without ``teacher``, else the student beside
    its frozen teacher and the task loss plus ``kd`` (``kd_term`` of the member; see the module
    docstring). ``model`` is wrapped, not copied: after training it holds the trained student."""
    if cfg.kd_weight < 0 or cfg.kd_temperature <= 0:
        raise ConfigError(f"kd_weight={cfg.kd_weight}, kd_temperature={cfg.kd_temperature}: need >= 0 and > 0")
    if not cfg.teacher:
        return model, task_loss
    teacher, meta = load_teacher(cfg.teacher, cfg, classes, mean, std, length)
    term = kd_term(teacher, model, cfg)
    logger.info(
        "distilling from %s (%s); kd_weight=%g T=%g",
        cfg.teacher,
        meta.get("architecture"),
        cfg.kd_weight,
        cfg.kd_temperature,
    )
    return StudentWithTeacher(model, teacher), DistillLoss(task_loss, {"kd": (cfg.kd_weight, term)})
