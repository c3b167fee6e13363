"""``dry_run=true``: what a training run would do (parameters trained and frozen, optimizer groups,
schedule, input convention, priors or anchors), as plain data, without training or writing."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from singleshot.engine.train_config import EngineOptions, TrainConfig
from singleshot.engine.trainer import Trainer
from singleshot.models.act import ACT_PRIORS_2X2, ACT_PRIORS_3X3
from singleshot.ops.priors import PriorSpec, prior_spec

if TYPE_CHECKING:
    from singleshot.tasks.fit import TrainingPlan

logger = logging.getLogger(__name__)

__all__ = [
    "anchors_summary",
    "dry_run_summary",
    "input_convention",
    "module_prefixes",
    "param_group_summary",
    "parameter_status",
    "priors_summary",
    "schedule_summary",
]


def parameter_status(module: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, str]:
    """Each named parameter of ``module`` -> ``"trainable"`` (in a group of lr > 0), ``"frozen"``
    (``requires_grad`` False), ``"lr_zero"`` (requires gradients but sits only in groups of base lr 0,
    YOWO's way of freezing) or ``"unused"`` (requires gradients, in no group). The base lr of a group
    is its ``initial_lr`` (a warm-up may have scaled ``lr`` already)."""
    rates: dict[int, list[float]] = {}
    for group in optimizer.param_groups:
        lr = float(group.get("initial_lr", group["lr"]))
        for p in group["params"]:
            rates.setdefault(id(p), []).append(lr)
    status: dict[str, str] = {}
    for name, p in module.named_parameters():
        if not p.requires_grad:
            status[name] = "frozen"
        elif id(p) not in rates:
            status[name] = "unused"
        else:
            status[name] = "trainable" if max(rates[id(p)]) > 0 else "lr_zero"
    return status


def module_prefixes(status: Mapping[str, str], wanted: str) -> list[str]:
    """The shortest dotted name prefixes under which every parameter has status ``wanted``.

    ``status`` maps parameter names (``"backbone.layer1.0.conv1.weight"``) to a status (see
    :func:`parameter_status`). A module whose parameters all have ``wanted`` is named once and
    nothing under it; a module with mixed statuses is split into its children, down to single
    parameters. ``""`` stands for the whole module when every parameter has ``wanted``. In the
    order the parameters come in ``status``.
    """
    below: dict[str, set[str]] = {"": set()}  # prefix -> statuses of the parameters under it
    children: dict[str, list[str]] = {"": []}  # prefix -> its direct children, in parameter order
    for name, st in status.items():
        parts = name.split(".")
        below[""].add(st)
        for k in range(1, len(parts) + 1):
            prefix, parent = ".".join(parts[:k]), ".".join(parts[: k - 1])
            if prefix not in below:
                below[prefix], children[prefix] = set(), []
                children[parent].append(prefix)
            below[prefix].add(st)
    out: list[str] = []

    def visit(prefix: str) -> None:
        if wanted not in below[prefix]:
            return
        if below[prefix] == {wanted}:
            out.append(prefix)
            return
        for child in children[prefix]:
            visit(child)

    if status:
        visit("")
    return out


def param_group_summary(optimizer: torch.optim.Optimizer) -> list[dict[str, Any]]:
    """Per optimizer group: base ``lr`` (``initial_lr`` when a schedule set one), ``weight_decay``,
    the number of ``tensors`` and of scalar ``parameters``."""
    return [
        {
            "lr": float(g.get("initial_lr", g["lr"])),
            "weight_decay": float(g.get("weight_decay", 0.0)),
            "tensors": len(g["params"]),
            "parameters": int(sum(p.numel() for p in g["params"])),
        }
        for g in optimizer.param_groups
    ]


def input_convention(meta: Mapping[str, Any]) -> dict[str, Any]:
    """What a network expects as input, read from its weights metadata ``meta``.

    Images: ``size`` ``[h, w]``, ``channel_order``, ``value_range`` and ``mean``/``std`` in that
    range's units: ``"0-1"`` (the metadata's own units), or ``"0-255"`` when every std is 1/255 (a
    Caffe-style convention: pixels 0..255 minus a mean, no std), and ``resize`` (None when the
    metadata does not record it). Depth or RGB-D grasp inputs: ``size``, ``input``, ``channels`` and
    the metadata's ``normalise`` text.
    """
    size = [int(v) for v in meta.get("input_size", [])]
    if "mean" not in meta:
        return {
            "size": size,
            "input": meta.get("input"),
            "channels": meta.get("in_channels"),
            "normalise": meta.get("normalise"),
        }
    mean = [float(v) for v in meta["mean"]]
    std = [float(v) for v in meta.get("std", [1.0, 1.0, 1.0])]
    per_255 = all(abs(v * 255.0 - 1.0) < 1e-6 for v in std)
    scale = 255.0 if per_255 else 1.0
    return {
        "size": size,
        "channel_order": str(meta.get("channel_order", "RGB")).upper(),
        "value_range": "0-255" if per_255 else "0-1",
        "mean": [round(v * scale, 6) for v in mean],
        "std": [round(v * scale, 6) for v in std],
        "resize": meta.get("resize"),
    }


def _known_priors() -> dict[str, PriorSpec]:
    """The prior configurations the dry run names: the published SSD ones and ACT's."""
    known = {name: prior_spec(name) for name in ("voc300", "coco300", "voc512", "coco512")}
    known.update({"act300_pool5_2x2": ACT_PRIORS_2X2, "act300_pool5_3x3": ACT_PRIORS_3X3})
    return known


def priors_summary(model: nn.Module) -> dict[str, Any] | None:
    """The default boxes of the first submodule of ``model`` with ``prior_spec`` and ``priors``
    (SSD, ACT's anchor cuboids); None when there is none.

    ``name``: the prior sizes' origin (``voc``: ssd.pytorch / paper sizes, ``coco``: torchvision's
    scales, ``custom``), ``spec``: the published configuration they equal (clipping aside), ``count``,
    ``clip``, ``first_map`` (its grid ``size`` and ``min_size``/``max_size`` in input pixels) and per
    map its grid ``size``, ``step`` (pixels) and ``boxes_wh``: the (w, h) in input pixels of one
    cell's priors as the model holds them (after clipping), in the model's order.
    """
    host = next((m for m in model.modules() if hasattr(m, "prior_spec") and hasattr(m, "priors")), None)
    if host is None:
        return None
    spec: PriorSpec = host.prior_spec
    priors: Tensor = host.priors.detach().cpu()
    spec_name = next(
        (n for n, k in _known_priors().items() if dataclasses.replace(spec, clip=k.clip) == k),
        "custom",
    )
    name = "voc" if spec_name.startswith(("voc", "act")) else "coco" if spec_name.startswith("coco") else "custom"
    maps, start = [], 0
    for f, step, ars in zip(spec.feature_maps, spec.steps, spec.aspect_ratios):
        per_cell = 2 + 2 * len(ars)
        cell = priors[start : start + per_cell, 2:] * spec.image_size
        maps.append({"size": f, "step": float(step), "boxes_wh": [[round(float(v), 4) for v in wh] for wh in cell]})
        start += f * f * per_cell
    return {
        "name": name,
        "spec": spec_name,
        "count": int(priors.shape[0]),
        "image_size": int(spec.image_size),
        "clip": spec.clip,
        "first_map": {
            "size": int(spec.feature_maps[0]),
            "min_size": round(float(spec.min_sizes[0]), 4),
            "max_size": round(float(spec.max_sizes[0]), 4),
        },
        "maps": maps,
    }


def anchors_summary(model: nn.Module) -> dict[str, Any] | None:
    """YOWO-style region anchors: ``count``, ``wh`` (grid cells) and the output ``stride``; None
    when ``model`` has no ``anchors`` buffer of [A, 2]."""
    anchors = getattr(model, "anchors", None)
    if not isinstance(anchors, Tensor) or anchors.dim() != 2 or anchors.shape[1] != 2:
        return None
    return {
        "count": int(anchors.shape[0]),
        "wh": [[round(float(v), 5) for v in wh] for wh in anchors.cpu()],
        "units": "grid cells",
        "stride": int(getattr(model, "stride", 0)) or None,
    }


def schedule_summary(tcfg: TrainConfig, trainer: Trainer) -> dict[str, Any]:
    """The learning-rate schedule in optimizer steps, as the trainer planned it."""
    steps = trainer.steps_per_epoch
    return {
        "name": tcfg.schedule,
        "epochs": tcfg.epochs,
        "batches_per_epoch": trainer.batches_per_epoch,
        "steps_per_epoch": steps,
        "total_steps": trainer.total_iters,
        "warmup_steps": tcfg.warmup_iters,
        "warmup_factor": tcfg.warmup_factor,
        "milestones_steps": list(tcfg.milestones),
        "gamma": tcfg.gamma,
        "max_steps": tcfg.max_steps,
    }


def dry_run_summary(cfg: EngineOptions, plan: TrainingPlan, trainer: Trainer) -> dict[str, Any]:
    """What training ``plan`` with ``trainer`` would do, as plain JSON-ready data.

    Keys: ``dry_run`` (True), ``model`` (the architecture in the plan's metadata), ``num_parameters``
    (the saved model), ``trainable_parameters`` (in groups of lr > 0), ``trainable`` / ``frozen`` /
    ``lr_zero`` (and ``unused`` when any): the shortest module-name prefixes of the trained module
    in each state (:func:`parameter_status`, :func:`module_prefixes`), ``optimizer`` (name, momentum
    for SGD), ``param_groups`` (:func:`param_group_summary`), ``schedule`` (in optimizer steps),
    ``accumulation`` (micro-batches per step, ``mean``/``sum``, images per step), ``input``
    (:func:`input_convention` of the metadata), ``priors`` (:func:`priors_summary`) or ``anchors``
    (:func:`anchors_summary`) when the model has them, ``train_samples``, ``device``,
    ``world_size`` and ``out`` (the run folder training would write; not created).
    """
    tcfg, module = trainer.cfg, trainer.model
    status = parameter_status(module, trainer.optimizer)
    sizes = dict(module.named_parameters())
    states = {key: module_prefixes(status, key) for key in ("trainable", "frozen", "lr_zero")}
    if "unused" in status.values():
        states["unused"] = module_prefixes(status, "unused")
    optimizer: dict[str, Any] = {"name": tcfg.optimizer}
    if tcfg.optimizer == "sgd":
        optimizer["momentum"] = tcfg.momentum
    summary: dict[str, Any] = {
        "dry_run": True,
        "model": plan.meta.get("architecture", type(plan.model).__name__),
        "num_parameters": int(sum(p.numel() for p in plan.model.parameters())),
        "trainable_parameters": int(sum(sizes[n].numel() for n, st in status.items() if st == "trainable")),
        **states,
        "optimizer": optimizer,
        "param_groups": param_group_summary(trainer.optimizer),
        "schedule": dict(schedule_summary(tcfg, trainer), warmup_asked=cfg.warmup),  # warmup= before fit_warmup
        "accumulation": {
            "accumulate": tcfg.accumulate,
            "mode": tcfg.accumulate_mode,
            "batch": cfg.batch,
            "images_per_step": cfg.batch * tcfg.accumulate,
        },
        "input": input_convention(plan.meta),
    }
    priors = priors_summary(plan.model)
    if priors is not None:
        summary["priors"] = priors
    anchors = anchors_summary(plan.model)
    if anchors is not None:
        summary["anchors"] = anchors
    summary.update(
        train_samples=len(plan.train_set),  # type: ignore[arg-type]
        device=str(trainer.device),
        world_size=trainer.world_size,
        out=str(tcfg.out_dir),
    )
    logger.info("dry run: nothing trained, no run folder written")
    return summary
