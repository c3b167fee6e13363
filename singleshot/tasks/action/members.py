"""The members of the ``action`` family, YOWO and ACT, as data: one :class:`ActionMember` record each
in one table, :data:`MEMBERS`.

A mode looks its member up once, then calls the record's fields:

- ``train`` and ``demo``: from ``model=`` (the command line, else the ``cfg=`` YAML, else ``yowo``)
  by :func:`member_config`, which also builds the config from the member's defaults;
- ``val`` and ``predict``: from the weights file (:func:`member_of_meta`: its metadata's ``family``,
  else the registry's family of its ``architecture``);
- ``convert``: from ``from=`` (:func:`converter_of`: the member whose ``converters`` name it).

``export`` and ``score`` need no member (an exported graph and a prediction file carry what they need).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from singleshot.config import load_yaml_mapping
from singleshot.errors import ConfigError, WeightsError
from singleshot.structures import ActionAnnotations, FrameDets, Tube
from singleshot.tasks.action.act_convert import convert_caffe
from singleshot.tasks.action.act_evaluate import val_act
from singleshot.tasks.action.act_predictor import act_predictor
from singleshot.tasks.action.act_train import act_training
from singleshot.tasks.action.config import ActionConfig
from singleshot.tasks.action.predictor import ActionPredictor, family_of, yowo_predictor
from singleshot.tasks.action.yowo_convert import convert_backbones, convert_yowo
from singleshot.tasks.action.yowo_evaluate import evaluate_yowo
from singleshot.tasks.action.yowo_train import yowo_training
from singleshot.tasks.common import TrainingPlan, make_config

logger = logging.getLogger(__name__)

__all__ = [
    "ACT",
    "ACT_DEFAULTS",
    "ACT_DEMO_DEFAULTS",
    "ActionMember",
    "MEMBERS",
    "YOWO",
    "YOWO_DEMO_DEFAULTS",
    "converter_names",
    "converter_of",
    "member_config",
    "member_named",
    "member_of_meta",
]

#: ``(predictor, ground truth, folder holding rgb-images/, cfg) -> (metrics, frame detections, tubes)``.
Evaluation = Callable[[Any, ActionAnnotations, Path, ActionConfig], tuple[dict[str, Any], FrameDets, list[Tube]]]


@dataclass(frozen=True)
class ActionMember:
    """One member of the action family.

    Attributes:
        name: ``model=`` on the command line and ``family`` in weights metadata (the registry's
            family of its architectures: :func:`~singleshot.models.list_models`).
        defaults: config defaults over :class:`~singleshot.tasks.action.config.ActionConfig`'s for
            ``train`` and ``demo`` with this member (the ``cfg=`` YAML and the command line win).
        demo: the ``demo`` recipe, over ``defaults``.
        predictor: ``(model, weights metadata, cfg) -> predictor`` (an
            :class:`~singleshot.tasks.action.predictor.ActionPredictor`).
        evaluate: ``action val``'s evaluation of that predictor on the test split of ``data``.
        training: ``cfg -> build(device, world_size) -> TrainingPlan``: checks ``cfg`` at once and
            plans the training :func:`~singleshot.tasks.common.fit` runs.
        converters: ``from=`` value -> ``cfg -> result``: weights of other projects to ``dst``.
        protocol: the evaluation protocol ``action val`` uses unless ``protocol=`` is given.
    """

    name: str
    defaults: Mapping[str, Any]
    demo: Mapping[str, Any]
    predictor: Callable[[nn.Module, dict[str, Any], ActionConfig], ActionPredictor]
    evaluate: Evaluation
    training: Callable[[ActionConfig], Callable[[str, int], TrainingPlan]]
    converters: Mapping[str, Callable[[ActionConfig], dict[str, Any]]]
    protocol: str


#: The CPU demo recipe of YOWO (measured in BENCHMARKS.md, "Action demos"). Output stride 8 (``out_stride=8``:
#: the 2D branch at a 12 x 12 map at 96 px, the 3D branch's stride-16 map upsampled to it), so that the
#: actors (about one 16-px cell) span about two cells and the box offsets are regressed finely enough
#: for IoU 0.5; the 3D branch sees frame differences (``input_3d=diff``), so it need not learn to
#: subtract frames before it can learn the motion classes; batch 4, 4 epochs over the same 180
#: training videos as the ACT demo. Evaluation: detections per class (``post_mode=per_class``: a box
#: whose class is uncertain still counts for its other likely classes, as YOWO's validation boxes do),
#: tubes by ACT's linking of the per-frame detections (``linking=act``: YOWO's Viterbi paths span the
#: whole video and keep one path per class, so actions that start and end inside a video, or two
#: actors of one class, are lost).
YOWO_DEMO_DEFAULTS: dict[str, Any] = {
    "model": "yowo",
    "arch": "yowo_tiny",
    "width": 16,
    "out_stride": 8,
    "input_3d": "diff",
    "clip_len": 8,
    "imgsz": 96,
    "auto_anchors": True,
    "epochs": 4,
    "batch": 4,
    "lr": 1e-3,
    "optimizer": "adam",
    "schedule": "cosine",
    "milestones": "",
    "warmup": 20,
    "weight_decay": 5e-4,
    "workers": 1,
    "parallel_branches": True,
    "protocol": "act",
    "post_mode": "per_class",
    "linking": "act",
    "name": "demo",
    "eval_every": 100,
    "checkpoint_every": 0,
    "n_train": 180,
    "n_test": 16,
}

#: Defaults of ``model=act`` where ActionConfig's (YOWO's) do not fit.
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

#: The CPU demo recipe of ACT (measured in BENCHMARKS.md, "Action demos"); the data are the
#: synthetic videos of YOWO's demo (the same folder and arguments, so one copy serves both). The
#: synthetic classes are defined by motion alone, which ACT's streams (each frame through the trunk
#: on its own, fused only linearly by the heads) see only through a motion input: hence the
#: RGB-difference second stream, whose class probabilities weigh 0.75 in the late fusion (ACT: 0.5)
#: because it is the stream that sees the class. The actors exist only during their actions, so the
#: linked tubes are trimmed to their frames of tubelet score >= 0.05 (ACT's linking alone runs them on
#: past the action's ends). No zoom-out and no photometric distortion (the test videos are at the
#: training scale; the diff images are differences), batch 8 (more updates in the same time).
ACT_DEMO_DEFAULTS: dict[str, Any] = {
    "model": "act",
    "arch": "act_tiny",
    "act_width": 0.5,
    "K": 4,
    "imgsz": 96,
    "modality": "rgb+diff",
    "motion_weight": 0.75,
    "max_zoom": 1.0,
    "photometric": False,
    "epochs": 5,
    "batch": 8,
    "optimizer": "sgd",
    "lr": 0.02,
    "momentum": 0.9,
    "weight_decay": 5e-4,
    "schedule": "cosine",
    "milestones": "",
    "warmup": 50,
    "workers": 1,
    "parallel_branches": True,
    "protocol": "act",
    "linking": "act",
    "trim": 0.05,
    "name": "demo_act",
    "eval_every": 100,
    "checkpoint_every": 0,
    "n_train": 180,
    "n_test": 16,
}

YOWO = ActionMember(
    name="yowo",
    defaults={},
    demo=YOWO_DEMO_DEFAULTS,
    predictor=yowo_predictor,
    evaluate=evaluate_yowo,
    training=yowo_training,
    converters={"yowo": convert_yowo, "kinetics": convert_backbones, "darknet": convert_backbones},
    protocol="yowo",
)

ACT = ActionMember(
    name="act",
    defaults=ACT_DEFAULTS,
    demo=ACT_DEMO_DEFAULTS,
    predictor=act_predictor,
    evaluate=val_act,
    training=act_training,
    converters={"caffe": convert_caffe},
    protocol="act",
)

#: The members by name (``model=``, weights' ``family``).
MEMBERS: dict[str, ActionMember] = {m.name: m for m in (YOWO, ACT)}


def member_named(name: str) -> ActionMember:
    """The member ``model=name`` names.

    Raises:
        ConfigError: no member of that name (the message lists them).
    """
    try:
        return MEMBERS[name]
    except KeyError:
        raise ConfigError(f"model={name!r}: this build knows the action families {sorted(MEMBERS)}") from None


def member_config(args: Mapping[str, str], demo: bool = False) -> tuple[ActionMember, ActionConfig]:
    """The member ``model=`` names (the command line, else the ``cfg=`` YAML, else ActionConfig's
    default) and the config of ``args``: the member's ``defaults`` (and its ``demo`` recipe), then the
    YAML file, then the other arguments."""
    args = dict(args)
    given = {**(load_yaml_mapping(args.pop("cfg")) if args.get("cfg") else {}), **args}
    member = member_named(str(given.get("model", ActionConfig.model)))
    defaults = {**member.defaults, **(member.demo if demo else {})}
    return member, make_config(ActionConfig, given, **defaults)


def member_of_meta(meta: dict[str, Any]) -> ActionMember:
    """The member of weights metadata (:func:`~singleshot.tasks.action.predictor.family_of`).

    Raises:
        WeightsError: the weights are of no member.
    """
    family = family_of(meta)
    if family not in MEMBERS:
        raise WeightsError(
            f"weights of the {family!r} family: no action member of that name (known: {sorted(MEMBERS)})"
        )
    return MEMBERS[family]


def converter_of(source: str) -> Callable[[ActionConfig], dict[str, Any]] | None:
    """The converter of ``from=source`` (None when no member converts it)."""
    return next((m.converters[source] for m in MEMBERS.values() if source in m.converters), None)


def converter_names() -> list[str]:
    """Every ``from=`` value a member converts, in table order."""
    return [name for m in MEMBERS.values() for name in m.converters]
