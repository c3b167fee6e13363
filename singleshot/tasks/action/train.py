"""``action train``: the member that ``model=`` names (YOWO by default, ``model=act``) trained on the
engine.

The member's ``training`` (:func:`~singleshot.tasks.action.yowo_train.yowo_training`,
:func:`~singleshot.tasks.action.act_train.act_training`) plans the run as a
:class:`~singleshot.tasks.common.TrainingPlan`; :func:`~singleshot.tasks.common.fit` runs it and
writes ``last.pt``/``best.pt``, ``best.safetensors`` (a two-stream ACT's holds both streams:
:mod:`~singleshot.tasks.action.act_weights`), ``results.csv``/``results.png`` under ``project/name``.
Under ``torchrun`` ``batch`` is the global batch; only the first process writes weights and returns
the result.
"""

from __future__ import annotations

import logging
from typing import Any

from singleshot.tasks.action.config import ActionConfig
from singleshot.tasks.action.members import ActionMember, member_config
from singleshot.tasks.common import fit

logger = logging.getLogger(__name__)

__all__ = ["train", "train_member"]


def train_member(member: ActionMember, cfg: ActionConfig) -> dict[str, Any] | None:
    """Train ``member`` as ``cfg`` says; returns the best metrics (with ``per_class``) plus the output paths."""
    return fit(cfg, member.training(cfg))


def train(args: dict[str, str]) -> dict | None:
    """Train a YOWO (``model=yowo``, the default) or an ACT (``model=act``) on ``data``."""
    member, cfg = member_config(args)
    return train_member(member, cfg)
