"""Knowledge distillation for every family: loss terms, a feature adapter and the teacher wrapper.

How the pieces fit (the trainer's contract is unchanged: ``model(inputs) -> dict``,
``loss_fn(outputs, targets) -> dict of scalars``):

* :class:`StudentWithTeacher` is the model the trainer trains. Its ``forward(x)`` runs the student,
  then the teacher on the same batch under ``torch.no_grad()``, and returns the student's dict plus
  every teacher output as ``teacher_<key>`` (and, with feature imitation, the adapted student
  features ``feat_<i>`` beside the teacher's ``teacher_feat_<i>``). So the loss needs nothing but
  the outputs, and the inputs never have to reach the loss.
* The teacher is *not a registered submodule*: it is absent from ``parameters()`` (the optimiser
  never sees it), from ``state_dict()`` (checkpoints and EMA hold student + adapter only), and
  ``.train()`` never reaches it; it is put in eval mode with ``requires_grad=False`` once and
  re-asserted by :meth:`StudentWithTeacher.train`. ``.to()`` moves it with the wrapper; deep copies
  (the EMA) share it.
* :class:`DistillLoss` adds weighted terms to the task loss: :class:`SoftLabelKD` (soft class scores
  with temperature on a mask of priors/anchors: detect and ACT's per-prior logits directly, YOWO's
  region output through :class:`RegionLogits` and :class:`TeacherObjectnessMask`),
  :class:`MapDistill` (dense maps: grasp) and :class:`FeatureImitation` (features through a learned
  1x1 :class:`FeatureAdapter`).
* Deployable weights are the student's own ``state_dict``
  (:func:`singleshot.models.aux_heads.deployable`).

References: Hinton et al. 2015 (softened softmax, T² keeps gradient scale), Chen et al. 2017
(distillation for detection: soft class scores and hint features through an adaptation layer),
Romero et al. 2015 (FitNets hints).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from singleshot.models.aux_heads import TrainingWrapper, capture_outputs, deployable
from singleshot.ops.region import split_region_output

logger = logging.getLogger(__name__)

__all__ = [
    "kd_loss",
    "map_distill_loss",
    "FeatureAdapter",
    "StudentWithTeacher",
    "SoftLabelKD",
    "MapDistill",
    "RegionLogits",
    "TeacherObjectnessMask",
    "FeatureImitation",
    "DistillLoss",
    "WRAPPER_PREFIXES",
]

#: Output keys added by :class:`StudentWithTeacher`; :class:`DistillLoss` hides them from the task loss.
WRAPPER_PREFIXES = ("teacher_", "feat_")

Term = Callable[[Mapping[str, Tensor], Any], "Tensor | Mapping[str, Tensor]"]


def _zero(t: Tensor) -> Tensor:
    """A zero scalar that keeps ``t`` in the graph (no selected element: gradient 0, not an error)."""
    return t.sum() * 0.0


def kd_loss(
    student_logits: Tensor, teacher_logits: Tensor, temperature: float = 1.0, mask: Tensor | None = None
) -> Tensor:
    """Soft-label distillation: mean over the selected rows of ``T² · KL(softmax(t/T) ‖ softmax(s/T))``.

    Args:
        student_logits: Tensor[..., K] raw scores (the gradient flows into them).
        teacher_logits: Tensor[..., K] raw scores of the same shape (detached here).
        temperature: T > 0; T² keeps the gradient's magnitude comparable across temperatures.
        mask: bool Tensor[...] (the logits' shape without K): the rows that count; None = all.

    Returns:
        A scalar; 0 (still differentiable) when no row is selected. KL is computed in float32.
    """
    if temperature <= 0:
        raise ValueError(f"kd_loss: temperature must be > 0, got {temperature}")
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(
            f"kd_loss: student logits {tuple(student_logits.shape)} vs teacher {tuple(teacher_logits.shape)}"
        )
    k = student_logits.shape[-1]
    s = student_logits.float()
    t = teacher_logits.detach().float()
    if mask is not None:
        s, t = s[mask], t[mask]
    s, t = s.reshape(-1, k), t.reshape(-1, k)
    if s.shape[0] == 0:
        return _zero(student_logits.float())
    log_ps = F.log_softmax(s / temperature, dim=-1)
    log_pt = F.log_softmax(t / temperature, dim=-1)
    kl = (log_pt.exp() * (log_pt - log_ps)).sum(dim=-1)
    return kl.mean() * (temperature * temperature)


def map_distill_loss(
    student: Tensor, teacher: Tensor, kind: Literal["mse", "smooth_l1"] = "mse", mask: Tensor | None = None
) -> Tensor:
    """Per-element regression of a dense student map onto the teacher's, averaged.

    Args:
        student, teacher: Tensor[B, C, H, W] (any equal shapes).
        kind: ``"mse"`` or ``"smooth_l1"`` (beta 1).
        mask: bool, broadcastable to the maps: the elements that count (None = all).

    Returns:
        Scalar mean over the selected elements (0 when none).
    """
    if student.shape != teacher.shape:
        raise ValueError(f"map_distill_loss: student map {tuple(student.shape)} vs teacher {tuple(teacher.shape)}")
    s, t = student.float(), teacher.detach().float()
    if kind == "mse":
        per = (s - t).square()
    elif kind == "smooth_l1":
        per = F.smooth_l1_loss(s, t, reduction="none", beta=1.0)
    else:
        raise ValueError(f"map_distill_loss: kind must be 'mse' or 'smooth_l1', got {kind!r}")
    if mask is None:
        return per.mean()
    m = mask.expand_as(per)
    return per[m].mean() if bool(m.any()) else _zero(per)


class FeatureAdapter(nn.Module):
    """Learned 1x1 convolutions mapping student feature maps to the teacher's channels (FitNets).

    Args:
        in_channels: channels of each student map.
        out_channels: channels of the matching teacher map.

    ``forward(features, sizes=None)``: features Tensor[B, in_k, H_k, W_k] each -> list of
    Tensor[B, out_k, H_k, W_k]; with ``sizes`` each result is resized bilinearly to ``sizes[k]``
    (teacher maps of another resolution).
    """

    def __init__(self, in_channels: Sequence[int], out_channels: Sequence[int]) -> None:
        super().__init__()
        if len(in_channels) != len(out_channels):
            raise ValueError(f"FeatureAdapter: {len(in_channels)} student maps but {len(out_channels)} teacher maps")
        self.convs = nn.ModuleList(nn.Conv2d(ci, co, kernel_size=1) for ci, co in zip(in_channels, out_channels))
        for conv in self.convs:
            nn.init.kaiming_uniform_(conv.weight, a=1.0)  # gain 1: a linear map
            nn.init.zeros_(conv.bias)

    def forward(self, features: Sequence[Tensor], sizes: Sequence[tuple[int, int]] | None = None) -> list[Tensor]:
        out = [conv(f) for conv, f in zip(self.convs, features)]
        if sizes is not None:
            out = [
                o
                if tuple(o.shape[-2:]) == tuple(s)
                else F.interpolate(o, size=tuple(s), mode="bilinear", align_corners=False)
                for o, s in zip(out, sizes)
            ]
        return out


class _Shared:
    """Holds a module outside its owner's registry; deep copies of the owner share it."""

    def __init__(self, module: nn.Module) -> None:
        self.module = module

    def __deepcopy__(self, memo: dict[int, Any]) -> _Shared:
        return self


def _as_maps(value: Any, name: str) -> list[Tensor]:
    if isinstance(value, Tensor):
        return [value]
    if isinstance(value, (list, tuple)) and all(isinstance(v, Tensor) for v in value):
        return list(value)
    raise TypeError(f"feature module {name!r} returned {type(value).__name__}, expected a tensor or a list of tensors")


class StudentWithTeacher(TrainingWrapper):
    """The student trained beside a frozen teacher (see the module docstring).

    Args:
        student: the model being trained (may itself be a :class:`TrainingWrapper`).
        teacher: a trained model with the same output keys; frozen here (eval, no gradients).
        teacher_input: maps the student's input batch to the teacher's (other normalisation or
            input size); None = the same batch.
        features: ``(student_module, teacher_module)`` submodule names (of the deployable student
            and of the teacher) whose output, a Tensor or a list of Tensors, holds the maps to imitate.
        feature_levels: indices into those lists.
        adapter: a :class:`FeatureAdapter` for those levels (required with ``features``).

    ``forward(x)`` -> the student's dict, ``teacher_<key>`` for each teacher output and, with
    features, ``feat_<i>`` (adapted student map, resized to the teacher's) and ``teacher_feat_<i>``
    for ``i`` in ``range(len(feature_levels))``.
    """

    def __init__(
        self,
        student: nn.Module,
        teacher: nn.Module,
        teacher_input: Callable[[Tensor], Tensor] | None = None,
        features: tuple[str, str] | None = None,
        feature_levels: Sequence[int] = (),
        adapter: FeatureAdapter | None = None,
    ) -> None:
        super().__init__()
        if (features is None) != (adapter is None):
            raise ValueError("StudentWithTeacher: features and adapter go together")
        self.student = student
        teacher.eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
        self._teacher = _Shared(teacher)
        self.teacher_input = teacher_input
        self.features = features
        self.feature_levels = tuple(int(i) for i in feature_levels)
        self.adapter = adapter

    @property
    def teacher(self) -> nn.Module:
        """The frozen teacher (not a registered submodule: see the module docstring)."""
        return self._teacher.module

    def train(self, mode: bool = True) -> StudentWithTeacher:
        super().train(mode)
        self.teacher.eval()
        return self

    def _apply(self, fn: Callable[..., Any], recurse: bool = True) -> StudentWithTeacher:  # .to(), .cuda(), .half()
        super()._apply(fn, recurse)
        self.teacher._apply(fn, recurse)
        return self

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        teacher = self.teacher
        if teacher.training:  # someone called teacher.train() directly
            logger.warning("the distillation teacher was in training mode; switching it back to eval")
            teacher.eval()
        s_names = [self.features[0]] if self.features else []
        t_names = [self.features[1]] if self.features else []
        with capture_outputs(deployable(self.student), s_names) as s_maps:
            out = dict(self.student(x))
        t_x = self.teacher_input(x) if self.teacher_input is not None else x
        with torch.no_grad(), capture_outputs(teacher, t_names) as t_maps:
            t_out = teacher(t_x)
        for key, value in t_out.items():
            out["teacher_" + key] = value
        if self.features is not None and self.adapter is not None:
            s_all = _as_maps(s_maps[self.features[0]], self.features[0])
            t_all = _as_maps(t_maps[self.features[1]], self.features[1])
            t_sel = [t_all[i] for i in self.feature_levels]
            adapted = self.adapter([s_all[i] for i in self.feature_levels], [tuple(t.shape[-2:]) for t in t_sel])
            for i, (a, t) in enumerate(zip(adapted, t_sel)):
                out[f"feat_{i}"] = a
                out[f"teacher_feat_{i}"] = t
        return out


class SoftLabelKD:
    """KD term on per-prior (per-anchor) class scores.

    Args:
        key: output key of the logits (the teacher's is ``teacher_<key>``).
        temperature: T of :func:`kd_loss`.
        mask_fn: ``(outputs, targets) -> bool Tensor[B, P] | None``, the priors that count
            (None or a None result: all).
        teacher_index: Tensor[P] int64, for each student prior the teacher prior giving its soft
            label (teachers with other priors); None = the same priors.
        teacher_valid: bool Tensor[P], student priors that have a teacher prior (with ``teacher_index``).
        logits_fn: maps a raw output to Tensor[B, P, K] logits (e.g. slicing YOWO's region output);
            None = the output already is.
    """

    def __init__(
        self,
        key: str = "cls_logits",
        temperature: float = 1.0,
        mask_fn: Callable[[Mapping[str, Tensor], Any], Tensor | None] | None = None,
        teacher_index: Tensor | None = None,
        teacher_valid: Tensor | None = None,
        logits_fn: Callable[[Tensor], Tensor] | None = None,
    ) -> None:
        if temperature <= 0:
            raise ValueError(f"SoftLabelKD: temperature must be > 0, got {temperature}")
        self.key = key
        self.temperature = float(temperature)
        self.mask_fn = mask_fn
        self.teacher_index = teacher_index
        self.teacher_valid = teacher_valid
        self.logits_fn = logits_fn

    def __call__(self, outputs: Mapping[str, Tensor], targets: Any) -> Tensor:
        s, t = outputs[self.key], outputs["teacher_" + self.key]
        if self.logits_fn is not None:
            s, t = self.logits_fn(s), self.logits_fn(t)
        mask = self.mask_fn(outputs, targets) if self.mask_fn is not None else None
        if self.teacher_index is not None:
            t = t[:, self.teacher_index.to(t.device)]
            if self.teacher_valid is not None:
                valid = self.teacher_valid.to(s.device)[None].expand(s.shape[:-1])
                mask = valid if mask is None else mask & valid
        return kd_loss(s, t, self.temperature, mask)


class RegionLogits:
    """``logits_fn`` of :class:`SoftLabelKD` for YOLO-style region outputs (YOWO): raw
    Tensor[B, A·(5+C), H, W] -> class logits Tensor[B, A·H·W, C], anchors in (anchor, row, column) order."""

    def __init__(self, num_anchors: int, num_classes: int) -> None:
        self.num_anchors = int(num_anchors)
        self.num_classes = int(num_classes)

    def __call__(self, out: Tensor) -> Tensor:
        raw = split_region_output(out, self.num_anchors, self.num_classes)
        return raw[:, :, 5:].permute(0, 1, 3, 4, 2).reshape(out.shape[0], -1, self.num_classes)


class TeacherObjectnessMask:
    """``mask_fn`` of :class:`SoftLabelKD` for region outputs: the anchors whose *teacher*
    objectness ``sigmoid(conf)`` is at least ``threshold`` (the objectness-scaled distillation of
    Mehta & Ozturk 2018, as a hard mask: class scores are distilled only where the teacher sees an
    object). Returns bool Tensor[B, A·H·W] in :class:`RegionLogits` order."""

    def __init__(self, num_anchors: int, num_classes: int, threshold: float = 0.5, key: str = "out") -> None:
        self.num_anchors = int(num_anchors)
        self.num_classes = int(num_classes)
        self.threshold = float(threshold)
        self.key = key

    def __call__(self, outputs: Mapping[str, Tensor], targets: Any) -> Tensor:
        t = outputs["teacher_" + self.key]
        obj = split_region_output(t, self.num_anchors, self.num_classes)[:, :, 4].float().sigmoid()  # [B, A, H, W]
        return obj.reshape(t.shape[0], -1) >= self.threshold


class MapDistill:
    """Map-level term for dense outputs: sum over ``keys`` of :func:`map_distill_loss` against
    ``teacher_<key>`` (the grasp family's four maps: ``pos``, ``cos``, ``sin``, ``width``)."""

    def __init__(self, keys: Sequence[str], kind: Literal["mse", "smooth_l1"] = "mse") -> None:
        if not keys:
            raise ValueError("MapDistill: no keys")
        self.keys = tuple(keys)
        self.kind = kind

    def __call__(self, outputs: Mapping[str, Tensor], targets: Any) -> Tensor:
        return sum(map_distill_loss(outputs[k], outputs["teacher_" + k], self.kind) for k in self.keys)  # type: ignore[return-value]


class FeatureImitation:
    """Feature term: mean over the ``num_levels`` pairs of the MSE between ``feat_<i>`` (adapted
    student map) and ``teacher_feat_<i>``."""

    def __init__(self, num_levels: int) -> None:
        if num_levels < 1:
            raise ValueError("FeatureImitation: needs at least one level")
        self.num_levels = int(num_levels)

    def __call__(self, outputs: Mapping[str, Tensor], targets: Any) -> Tensor:
        terms = [map_distill_loss(outputs[f"feat_{i}"], outputs[f"teacher_feat_{i}"]) for i in range(self.num_levels)]
        return torch.stack(terms).mean()


class DistillLoss:
    """The task loss plus weighted extra terms, called like the task loss.

    ``loss(outputs, targets)`` returns the task loss's dict (computed on the outputs without the
    :data:`WRAPPER_PREFIXES` keys) plus, for each term with a non-zero weight, ``name`` =
    weight x term (or ``name_<k>`` = weight x value for a term that returns a dict).

    Args:
        task_loss: ``(outputs, targets) -> dict of scalars``.
        terms: name -> ``(weight, term)``; a term is ``(outputs, targets) -> scalar or dict``.
    """

    def __init__(
        self,
        task_loss: Callable[[Mapping[str, Tensor], Any], Mapping[str, Tensor]],
        terms: Mapping[str, tuple[float, Term]],
    ) -> None:
        for name, (weight, _) in terms.items():
            if weight < 0:
                raise ValueError(f"DistillLoss: weight of {name!r} must be >= 0, got {weight}")
        self.task_loss = task_loss
        self.terms = dict(terms)

    def __call__(self, outputs: Mapping[str, Tensor], targets: Any) -> dict[str, Tensor]:
        task_out = {k: v for k, v in outputs.items() if not k.startswith(WRAPPER_PREFIXES)}
        losses = dict(self.task_loss(task_out, targets))
        for name, (weight, term) in self.terms.items():
            if weight == 0:
                continue
            value = term(outputs, targets)
            named = {f"{name}_{k}": v for k, v in value.items()} if isinstance(value, Mapping) else {name: value}
            for key, v in named.items():
                if key in losses:
                    raise ValueError(f"DistillLoss: term {key!r} collides with a task loss term")
                losses[key] = weight * v
        return losses
