"""``detect train teacher=... aux=true``: distillation and the auxiliary head wired into SSD training.

``singleshot detect train ... teacher=path/to/weights.safetensors [kd_weight=1.0 kd_temperature=2.0
kd_mask=matched feat_weight=0 aux=false aux_weight=0.4]``

:func:`build_training` turns the plain student and its multibox loss into what the trainer trains:

* ``aux=true``: :class:`~singleshot.models.aux_heads.WithAuxHead` around the student and the term
  ``aux`` = ``aux_weight`` x (:class:`~singleshot.losses.multibox.AuxMultiBoxLoss`), logged as
  ``aux_loc`` and ``aux_conf``.
* ``teacher=``: the teacher is built from its weights' metadata and loaded; its class list must
  equal the student's (same names, same order). :class:`~singleshot.losses.distill.StudentWithTeacher`
  runs it frozen on every batch (:class:`TeacherInput`: re-normalised and resized first when its
  metadata asks for another mean/std, channel order or input size). Terms: ``kd`` = ``kd_weight`` x soft-label KD of the
  class logits at temperature ``kd_temperature`` over the priors chosen by ``kd_mask``, and, with
  ``feat_weight > 0``, ``feat`` = ``feat_weight`` x MSE between the student's stride-8 and
  stride-16 source maps (through a learned 1x1 adapter) and the teacher's.

``kd_mask`` (:class:`DetectKDMask`): ``matched`` (default) = the positives and the 3:1 hard
negatives that the multibox confidence loss itself trains on (mined from the student's background
loss, as in :class:`~singleshot.losses.multibox.MultiBoxLoss`), so the soft labels refine exactly
the decisions the hard labels train and the mass of easy background priors, on which student and
teacher agree, does not dilute the mean; ``positive`` = matched positives only; ``all`` = every
prior (the most dark knowledge about background, at the cost of a mean dominated by it).

A teacher whose priors differ from the student's (another architecture) gives each student prior
the soft label of the teacher prior it overlaps most (:func:`prior_correspondence`, IoU of the
normalised prior boxes); student priors with no teacher prior at IoU >= 0.5 get no KD term.

The saved ``best.safetensors`` holds the student only: the trainer checkpoints the wrapper (so
``resume=true`` restores the adapter and the auxiliary head), and the weights file is written from
the wrapped student module itself.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from singleshot.data.input_spec import InputSpec, resize_image
from singleshot.engine.weights import load_state_into, read_model_weights
from singleshot.errors import ConfigError, WeightsError
from singleshot.losses.distill import DistillLoss, FeatureAdapter, FeatureImitation, SoftLabelKD, StudentWithTeacher
from singleshot.losses.multibox import AuxMultiBoxLoss, assign_targets, background_loss, hard_negative_mask, pad_targets
from singleshot.models import model_from_meta
from singleshot.models.aux_heads import WithAuxHead
from singleshot.models.registry import check_weights_task
from singleshot.ops.boxes import cxcywh_to_xyxy, pairwise_iou
from singleshot.structures import BoxTarget
from singleshot.tasks.detect.config import DetectConfig

logger = logging.getLogger(__name__)

__all__ = ["KD_MASKS", "DetectKDMask", "prior_correspondence", "TeacherInput", "load_teacher", "build_training"]

KD_MASKS = ("matched", "positive", "all")
#: Source levels imitated with ``feat_weight > 0`` (stride 8 and 16: most priors, small objects).
FEATURE_LEVELS = (0, 1)


class DetectKDMask:
    """Which priors the KD term averages over (see the module docstring for the choices).

    Args:
        priors: Tensor[P, 4] cxcywh normalised, the student's.
        mode: ``"matched"``, ``"positive"`` or ``"all"``.
        neg_pos_ratio, iou_threshold: as in the multibox loss.

    ``__call__(outputs, targets)`` -> bool Tensor[B, P], or None for ``"all"``.
    """

    def __init__(
        self, priors: Tensor, mode: str = "matched", neg_pos_ratio: float = 3.0, iou_threshold: float = 0.5
    ) -> None:
        if mode not in KD_MASKS:
            raise ConfigError(f"kd_mask={mode!r}: expected one of {', '.join(KD_MASKS)}")
        self.priors = priors
        self.mode = mode
        self.neg_pos_ratio = neg_pos_ratio
        self.iou_threshold = iou_threshold

    @torch.no_grad()
    def __call__(self, outputs: Mapping[str, Tensor], targets: Sequence[BoxTarget]) -> Tensor | None:
        if self.mode == "all":
            return None
        logits = outputs["cls_logits"]
        padded = pad_targets(targets, logits.device)
        labels, _ = assign_targets(padded, self.priors.to(logits.device), self.iou_threshold)
        positive = labels > 0
        if self.mode == "positive":
            return positive
        return positive | hard_negative_mask(background_loss(logits.detach().float()), positive, self.neg_pos_ratio)


def prior_correspondence(
    student_priors: Tensor, teacher_priors: Tensor, min_iou: float = 0.5, chunk: int = 1024
) -> tuple[Tensor | None, Tensor | None]:
    """For each student prior, the teacher prior of highest IoU.

    Args:
        student_priors: Tensor[Ps, 4], teacher_priors: Tensor[Pt, 4], cxcywh normalised.
        min_iou: student priors whose best IoU is lower get no teacher prior.
        chunk: student priors per IoU block (bounds memory to chunk x Pt floats).

    Returns:
        ``(None, None)`` when the two sets are identical (same order); else ``index`` Tensor[Ps]
        int64 into the teacher priors and ``valid`` bool Tensor[Ps].
    """
    if student_priors.shape == teacher_priors.shape and torch.allclose(student_priors, teacher_priors, atol=1e-6):
        return None, None
    s = cxcywh_to_xyxy(student_priors.float())
    t = cxcywh_to_xyxy(teacher_priors.float())
    best, index = [], []
    for start in range(0, s.shape[0], chunk):
        v, i = pairwise_iou(s[start : start + chunk], t).max(dim=1)
        best.append(v)
        index.append(i)
    return torch.cat(index), torch.cat(best) >= min_iou


class TeacherInput:
    """The student's normalised batch turned into the teacher's input.

    Undoes the student's normalisation (back to RGB in [0, 1]), resizes to the teacher's input size
    with the teacher's resize policy (:func:`~singleshot.data.input_spec.resize_image` in float, as
    its predictor does), then applies the teacher's channel order and mean/std. When both
    normalise alike only the resize runs (it commutes with the per-channel affine map).

    Args:
        student: the student's input convention (what the batch was normalised with).
        teacher: the teacher's (from its weights' metadata).

    ``x`` Tensor[B, 3, S, S] -> Tensor[B, 3, Ht, Wt].
    """

    def __init__(self, student: InputSpec, teacher: InputSpec) -> None:
        self.student, self.teacher = student, teacher
        self.size = teacher.size
        self.same_norm = student.same_normalisation(teacher)

    def __call__(self, x: Tensor) -> Tensor:
        if self.same_norm:
            return resize_image(x, self.size, self.teacher.antialias)
        return self.teacher.normalize(resize_image(self.student.denormalize(x), self.size, self.teacher.antialias))


def load_teacher(path: str | Path, classes: Sequence[str]) -> tuple[nn.Module, dict[str, Any]]:
    """Build and load the teacher of ``path`` (a singleshot detect weights file).

    Raises:
        WeightsError: unreadable file, missing metadata or weights that do not fit the architecture.
        ConfigError: the teacher's classes differ from ``classes`` (names and order must agree).
    """
    state, meta = read_model_weights(path)
    if not meta:
        raise WeightsError(f"teacher={path}: no singleshot metadata (architecture, classes) in the file")
    check_weights_task(meta, "detect", f"teacher={path}")
    teacher_classes = meta.get("classes")
    if teacher_classes is None:
        if int(meta.get("num_classes", -1)) != len(classes):
            raise ConfigError(f"teacher={path}: {meta.get('num_classes')} classes, the student has {len(classes)}")
        logger.warning("teacher=%s lists no class names; assuming its %d classes are the student's", path, len(classes))
    elif list(teacher_classes) != list(classes):
        raise ConfigError(
            f"teacher={path}: its classes {list(teacher_classes)} differ from the student's {list(classes)} "
            "(distillation needs the same classes in the same order)"
        )
    return load_state_into(
        model_from_meta(meta, task="detect", source=f"teacher={path}"),
        state,
        f"teacher={path}",
        meta.get("architecture"),
    ), meta


def _teacher_input(meta: Mapping[str, Any], teacher: nn.Module, student: InputSpec, source: str) -> TeacherInput:
    """The student's convention -> the teacher's (weights without a ``resize`` key: no antialias, as its predictor)."""
    return TeacherInput(student, InputSpec.from_meta(meta, size=teacher.image_size, antialias=False, source=source))


def _check(cfg: DetectConfig) -> None:
    if cfg.kd_temperature <= 0:
        raise ConfigError(f"kd_temperature={cfg.kd_temperature}: must be > 0")
    for key in ("kd_weight", "feat_weight", "aux_weight"):
        if getattr(cfg, key) < 0:
            raise ConfigError(f"{key}={getattr(cfg, key)}: must be >= 0")
    if cfg.kd_mask not in KD_MASKS:
        raise ConfigError(f"kd_mask={cfg.kd_mask!r}: expected one of {', '.join(KD_MASKS)}")
    if cfg.feat_weight > 0 and not cfg.teacher:
        raise ConfigError("feat_weight > 0 needs teacher=path/to/weights.safetensors")
    if cfg.teacher and cfg.kd_weight == 0 and cfg.feat_weight == 0:
        logger.warning("teacher=%s with kd_weight=0 and feat_weight=0: the teacher runs but adds no loss", cfg.teacher)


def build_training(
    cfg: DetectConfig, model: nn.Module, classes: Sequence[str], task_loss: Any, spec: InputSpec | None = None
) -> tuple[nn.Module, Any]:
    """The module and loss the trainer gets for ``cfg.teacher`` / ``cfg.aux`` (see the module doc).

    ``model`` (the plain SSD student, already built) is wrapped, not copied: after training it
    holds the trained weights and is what gets saved. ``spec`` is the student's input convention
    (default: ImageNet RGB at its size, antialiased). With neither key set, ``(model, task_loss)``
    are returned as they are. The keys are checked in every case.
    """
    _check(cfg)
    if not cfg.teacher and not cfg.aux:
        return model, task_loss
    train_model: nn.Module = model
    terms: dict[str, tuple[float, Any]] = {}
    if cfg.aux:
        wrapped = WithAuxHead(model)
        terms["aux"] = (cfg.aux_weight, AuxMultiBoxLoss(model.priors, wrapped.prior_index))
        train_model = wrapped
        logger.info(
            "auxiliary head on %s (%d priors), aux_weight=%g",
            ", ".join(wrapped.taps),
            wrapped.prior_index.numel(),
            cfg.aux_weight,
        )
    if cfg.teacher:
        teacher, meta = load_teacher(cfg.teacher, classes)
        index, valid = prior_correspondence(model.priors, teacher.priors)
        features, levels, adapter = None, (), None
        if cfg.feat_weight > 0:
            s_ch, t_ch = list(model.backbone.out_channels), list(teacher.backbone.out_channels)
            levels = tuple(lv for lv in FEATURE_LEVELS if lv < min(len(s_ch), len(t_ch)))
            adapter = FeatureAdapter([s_ch[lv] for lv in levels], [t_ch[lv] for lv in levels])
            features = ("backbone", "backbone")
            terms["feat"] = (cfg.feat_weight, FeatureImitation(len(levels)))
        student = spec or InputSpec.named("imagenet", int(model.image_size))
        t_in: TeacherInput | None = _teacher_input(meta, teacher, student, f"teacher={cfg.teacher}")
        if t_in is not None and t_in.same_norm and t_in.size == student.size:
            t_in = None  # the student's batch is the teacher's input as it is
        train_model = StudentWithTeacher(train_model, teacher, t_in, features, levels, adapter)
        mask = DetectKDMask(model.priors, cfg.kd_mask)
        terms["kd"] = (cfg.kd_weight, SoftLabelKD("cls_logits", cfg.kd_temperature, mask, index, valid))
        how = (
            "the same priors"
            if index is None
            else (f"priors mapped by IoU: {int(valid.sum())}/{valid.numel()} student priors have a teacher prior")
        )  # type: ignore[union-attr]
        logger.info(
            "distilling from %s (%s, %s); kd_weight=%g T=%g kd_mask=%s feat_weight=%g",
            cfg.teacher,
            meta.get("architecture"),
            how,
            cfg.kd_weight,
            cfg.kd_temperature,
            cfg.kd_mask,
            cfg.feat_weight,
        )
    return train_model, DistillLoss(task_loss, terms)
