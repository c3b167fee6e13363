"""Train-only additions to a model: the wrapper contract and an auxiliary head for the SSD detectors.

**Training wrappers.** Distillation and auxiliary losses need parts that exist only while training
(a teacher, feature adapters, auxiliary heads). They live in a :class:`TrainingWrapper` around the
deployable model, which the wrapper holds as ``student`` (wrappers may nest). The trainer trains
and checkpoints the wrapper (so ``resume`` restores adapters and auxiliary heads exactly); the
deployable model is :func:`deployable` ``(wrapper)``, the very module object that was wrapped, so
evaluating it or saving its ``state_dict`` involves none of the train-only parts. Intermediate
feature maps are read with :func:`capture_outputs`, which registers forward hooks only for the
duration of one forward pass: the wrapped model carries no hooks afterwards (deep copies such as
the EMA's and the exported model stay clean).

**The SSD auxiliary head** (``aux=true``), and why this design. SSD's predictions come from the
last layer of each source map's stage; the shallow layers that feed the high-resolution sources
(stride 8 and 16, which hold most of the priors and all the small objects) receive their gradient
only through those final convolutions. Deep supervision (the auxiliary classifiers of GoogLeNet,
PSPNet's loss on layer3 with weight 0.4, DSOD) adds a second, shorter path. :class:`WithAuxHead`
taps, for each chosen source level (default: the two highest-resolution ones), the feature map
that is the *input of the last convolution producing that source*: the same resolution, one block
shallower (conv4_2 and fc6 in the VGG16 trunk; the penultimate conv-BN-ReLU of each stage in the
small trunks). On these taps an SSD-style head (3x3 loc and conf convolutions,
:class:`~singleshot.models.heads.SSDHead`) predicts offsets and class logits for exactly the priors
of those levels. :class:`~singleshot.losses.multibox.AuxMultiBoxLoss` (a loss, so it lives in
:mod:`singleshot.losses`) trains it with the multibox loss *on the same matched priors as the main
head*: matching runs over all priors (so a large object is never forced onto a small prior) and the
result is restricted to the tapped levels; hard negatives (3:1) are mined among those levels from
the auxiliary logits; the loss is normalised by the tapped levels' positives. A dense
objectness-only head would be cheaper but gives no box signal, and a head on the source maps
themselves adds no shorter path. The head and its loss cost two 3x3 convolutions per tapped level
and one matching pass; at inference nothing changes (the head is never saved in deployable weights).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from singleshot.errors import ConfigError
from singleshot.models.heads import SSDHead
from singleshot.ops.priors import priors_per_cell

logger = logging.getLogger(__name__)

__all__ = [
    "TrainingWrapper",
    "deployable",
    "capture_outputs",
    "ssd_aux_taps",
    "WithAuxHead",
]


class TrainingWrapper(nn.Module):
    """Base of the modules that add train-only parts around ``student`` (the deployable model).

    Subclasses set ``self.student`` and return, from ``forward``, the student's output dict plus
    their own extra keys.
    """

    student: nn.Module

    def deployable(self) -> nn.Module:
        """The innermost wrapped model: what is evaluated, exported and saved."""
        return deployable(self)


def deployable(module: nn.Module) -> nn.Module:
    """``module`` with every :class:`TrainingWrapper` around it removed (itself when unwrapped)."""
    while isinstance(module, TrainingWrapper):
        module = module.student
    return module


@contextmanager
def capture_outputs(root: nn.Module, names: Sequence[str]) -> Iterator[dict[str, Any]]:
    """Record the outputs of the submodules ``names`` of ``root`` during the ``with`` block.

    Yields a dict ``name -> output`` filled by forward hooks (the last call wins when a module runs
    twice); the hooks are removed on exit. ``""`` names ``root`` itself.

    Raises:
        ConfigError: a name is not a submodule of ``root``.
    """
    store: dict[str, Any] = {}
    handles = []
    try:
        for name in names:
            try:
                module = root.get_submodule(name)
            except AttributeError as exc:
                raise ConfigError(f"{type(root).__name__} has no submodule {name!r} to read features from") from exc

            def hook(_m: nn.Module, _inputs: Any, output: Any, key: str = name) -> None:
                store[key] = output

            handles.append(module.register_forward_hook(hook))
        yield store
    finally:
        for handle in handles:
            handle.remove()


def _input_of_last_conv(seq: nn.Sequential, prefix: str) -> str:
    """Name of the layer whose output feeds the last ``Conv2d`` of ``seq`` (``prefix.index``)."""
    convs = [i for i, m in enumerate(seq) if isinstance(m, nn.Conv2d)]
    if len(convs) < 2:
        raise ConfigError(f"{prefix}: needs at least two convolutions to tap an intermediate map")
    return f"{prefix}.{convs[-1] - 1}"


def ssd_aux_taps(model: nn.Module, levels: Sequence[int] = (0, 1)) -> list[str]:
    """Submodule names (relative to the SSD) of the intermediate maps tapped for ``levels``.

    Level 0 and 1 are the stride-8 and stride-16 sources of the small trunks (``stage8``,
    ``stage16``) and conv4_3 / fc7 of the VGG16 trunk; the tap is the input of the last
    convolution producing the source (same resolution, one block shallower).

    Raises:
        ConfigError: the backbone is not one of these, or a level has no tap.
    """
    from singleshot.models.small import TwoStageTrunk
    from singleshot.models.vgg import CONV4_3_END, FC7_INDEX, VGGBackbone

    backbone = getattr(model, "backbone", None)
    taps: dict[int, str] = {}
    if isinstance(backbone, TwoStageTrunk):
        taps = {
            0: _input_of_last_conv(backbone.stage8, "backbone.stage8"),
            1: _input_of_last_conv(backbone.stage16, "backbone.stage16"),
        }
    elif isinstance(backbone, VGGBackbone):
        # conv4_3 is the conv just before CONV4_3_END's ReLU; fc7 is FC7_INDEX: tap their inputs.
        taps = {0: f"backbone.vgg.{CONV4_3_END - 3}", 1: f"backbone.vgg.{FC7_INDEX - 1}"}
    else:
        raise ConfigError(
            f"aux=true: no auxiliary taps are defined for the backbone {type(backbone).__name__} "
            "(available for ssd300, ssd512, ssd_slim, ssd_tiny)"
        )
    missing = [lv for lv in levels if lv not in taps]
    if missing or not levels:
        raise ConfigError(f"aux=true: levels {list(levels)} requested; taps exist for source levels {sorted(taps)}")
    return [taps[lv] for lv in levels]


def _level_prior_index(feature_maps: Sequence[int], anchors: Sequence[int], levels: Sequence[int]) -> Tensor:
    """Indices (into the model's prior order) of the priors of ``levels``, level by level."""
    starts = [0]
    for f, a in zip(feature_maps, anchors):
        starts.append(starts[-1] + f * f * a)
    return torch.cat([torch.arange(starts[lv], starts[lv + 1]) for lv in levels])


class WithAuxHead(TrainingWrapper):
    """An SSD detector plus an auxiliary SSD head on intermediate maps (see the module docstring).

    Args:
        detector: an :class:`~singleshot.models.ssd.SSD` (``backbone``, ``prior_spec``,
            ``num_classes``, ``image_size``); it stays the deployable model.
        levels: source levels whose priors the auxiliary head predicts.

    Attributes:
        taps: submodule names of ``detector`` read in each forward pass.
        prior_index: Tensor[Pa] int64, the priors of ``levels`` in the order of the auxiliary outputs.

    ``forward(x)``: x Tensor[B, 3, S, S] -> the detector's dict plus ``aux_cls_logits``
    Tensor[B, Pa, C + 1] and ``aux_bbox_regression`` Tensor[B, Pa, 4] (offsets from
    ``detector.priors[prior_index]``).
    """

    def __init__(self, detector: nn.Module, levels: Sequence[int] = (0, 1)) -> None:
        super().__init__()
        self.student = detector
        self.levels = tuple(int(lv) for lv in levels)
        self.taps = ssd_aux_taps(detector, self.levels)
        spec = detector.prior_spec
        size = int(detector.image_size)
        was_training = detector.training
        detector.eval()
        try:
            with torch.no_grad(), capture_outputs(detector, self.taps) as maps:
                detector(torch.zeros(1, 3, size, size))
        finally:
            detector.train(was_training)
        channels = []
        for lv, name in zip(self.levels, self.taps):
            f = maps[name]
            want = spec.feature_maps[lv]
            if tuple(f.shape[-2:]) != (want, want):
                raise ConfigError(f"aux tap {name} gives a {tuple(f.shape[-2:])} map; level {lv} needs {want}x{want}")
            channels.append(int(f.shape[1]))
        anchors = priors_per_cell(spec.aspect_ratios)
        self.aux_head = SSDHead(channels, [anchors[lv] for lv in self.levels], detector.num_classes + 1)
        self.register_buffer(
            "prior_index", _level_prior_index(spec.feature_maps, anchors, self.levels), persistent=False
        )
        logger.debug("aux head on %s: %d priors", self.taps, self.prior_index.numel())

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        with capture_outputs(self.student, self.taps) as maps:
            out = dict(self.student(x))
        loc, conf = self.aux_head([maps[name] for name in self.taps])
        out["aux_cls_logits"] = conf
        out["aux_bbox_regression"] = loc
        return out
