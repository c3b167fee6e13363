"""Grasp-map targets and the GG-CNN loss.

Targets follow dougsm/ggcnn (``GraspRectangles.draw`` and ``GraspDatasetBase.__getitem__``): each
ground-truth rectangle is drawn with only its centre third along the opening (opening/3 × full
jaw, same centre and angle); on its pixels ``pos`` = 1, ``cos`` = cos 2θ, ``sin`` = sin 2θ and
``width`` = min(opening, 150) / 150. Rectangles are drawn in order, so a later one overwrites an
earlier one where they overlap. Pixels covered by no rectangle hold the reference's background
values: ``pos`` 0, angle 0 — hence ``cos`` = 1 and ``sin`` = 0 — and ``width`` 0.

A pixel ``(r, c)`` is drawn when the point ``(x = c, y = r)`` lies inside or on the centre-third
rectangle (``skimage.draw.polygon`` semantics, with the boundary tolerance of
:data:`singleshot.ops.grasp.RASTER_EPS`). The reference first truncates a rectangle's centre to
integer pixels (its corners are integers and ``center`` casts the mean to int); this module keeps
sub-pixel centres unless ``truncate_centre=True``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from singleshot.models.ggcnn import MAP_KEYS
from singleshot.ops.grasp import RASTER_EPS, points_in_grasps
from singleshot.structures import Grasps

logger = logging.getLogger(__name__)

__all__ = ["GraspLoss", "WIDTH_SCALE", "pad_grasps", "render_grasp_maps"]

WIDTH_SCALE = 150.0
"""Openings are clipped to this many pixels and divided by it in the ``width`` map."""

_BLOCK = 1 << 21  # rectangles × pixels evaluated at once by render_grasp_maps


def pad_grasps(grasps: Sequence[Grasps], device: torch.device | str | None = None) -> tuple[Tensor, Tensor]:
    """Stack the grasps of a batch into one padded tensor.

    Args:
        grasps: one :class:`Grasps` per image.
        device: where to put the result (default: the first image's device).

    Returns:
        (Tensor[B, N, 5] float32 grasps padded with zeros, Tensor[B, N] bool valid mask), with N the
        largest number of grasps in an image (at least 1).
    """
    b = len(grasps)
    if device is None:
        device = grasps[0].grasps.device if b else "cpu"
    n = max([len(g) for g in grasps] + [1])
    out = torch.zeros((b, n, 5), dtype=torch.float32, device=device)
    valid = torch.zeros((b, n), dtype=torch.bool, device=device)
    counts = torch.tensor([len(g) for g in grasps], dtype=torch.int64, device=device)
    if b and int(counts.sum()):
        flat = torch.cat([g.grasps.to(device=device, dtype=torch.float32).reshape(-1, 5) for g in grasps])
        rows = torch.repeat_interleave(torch.arange(b, device=device), counts)
        starts = torch.cumsum(counts, 0) - counts
        cols = torch.arange(flat.shape[0], device=device) - starts[rows]
        out[rows, cols] = flat
        valid[rows, cols] = True
    return out, valid


@torch.no_grad()
def render_grasp_maps(
    grasps: Sequence[Grasps],
    size: tuple[int, int],
    *,
    device: torch.device | str | None = None,
    width_scale: float = WIDTH_SCALE,
    fraction: float = 1.0 / 3.0,
    truncate_centre: bool = False,
) -> dict[str, Tensor]:
    """Training targets of a batch (see the module docstring), rendered with tensor ops.

    Args:
        grasps: one :class:`Grasps` per image, in the pixels of the ``size`` maps.
        size: (H, W) of the maps.
        device: device of the maps (default: that of the first image's grasps).
        width_scale: openings are clipped to [0, width_scale] and divided by it.
        fraction: the part of the opening drawn (1/3 in the reference).
        truncate_centre: truncate centres to integer pixels first, as the reference does.

    Returns:
        ``{"pos", "cos", "sin", "width"}`` each Tensor[B, 1, H, W] float32.
    """
    h, w = int(size[0]), int(size[1])
    g, valid = pad_grasps(grasps, device)
    b, n, _ = g.shape
    dev = g.device
    drawn = g.to(torch.float64)  # float64: edge pixels are decided well within RASTER_EPS
    if truncate_centre:
        drawn[..., :2] = drawn[..., :2].trunc()
    drawn[..., 3] = drawn[..., 3] * fraction
    xs = torch.arange(w, dtype=torch.float64, device=dev)
    ys = torch.arange(h, dtype=torch.float64, device=dev)
    last = torch.full((b, h, w), -1, dtype=torch.int64, device=dev)  # index of the last covering rectangle
    step = max(1, _BLOCK // max(1, b * h * w))
    for j in range(0, n, step):  # blocks of rectangles (not images), to bound memory
        blk = drawn[:, j : j + step, None, None, :]  # [B, k, 1, 1, 5]
        inside = points_in_grasps(blk, xs[None, None, None, :], ys[None, None, :, None], RASTER_EPS)
        inside &= valid[:, j : j + step, None, None]
        k = inside.shape[1]
        order = torch.arange(j, j + k, device=dev).view(1, k, 1, 1)
        last = torch.maximum(last, torch.where(inside, order, torch.full_like(order, -1)).amax(dim=1))
    covered = last >= 0
    idx = last.clamp(min=0).view(b, -1)
    theta = g[..., 2].gather(1, idx).view(b, h, w)
    opening = g[..., 3].gather(1, idx).view(b, h, w)
    zero = torch.zeros((), device=dev)
    maps = {
        "pos": covered.float(),
        "cos": torch.where(covered, torch.cos(2 * theta), torch.ones((), device=dev)),
        "sin": torch.where(covered, torch.sin(2 * theta), zero),
        "width": torch.where(covered, opening.clamp(0.0, width_scale) / width_scale, zero),
    }
    return {k: v[:, None] for k, v in maps.items()}


class GraspLoss:
    """Per-map regression loss of the grasp networks, summed over the four maps (dougsm/ggcnn
    ``compute_loss``: MSE; GR-ConvNet: smooth-L1), each averaged over the pixels of the batch.

    ``loss(outputs, targets)`` returns ``{"pos", "cos", "sin", "width"}`` and, when the outputs hold
    the auxiliary maps (``"aux_pos"`` …) and the loss is in training mode (the default;
    :meth:`eval` turns it off), ``"aux"`` = ``aux_weight`` × (sum of the four auxiliary map losses),
    so that the total is main + w·aux as in PSPNet.

    Args:
        kind: ``"mse"`` or ``"smooth_l1"`` (beta 1).
        aux_weight: weight w of the auxiliary head's loss.
        width_scale: see :func:`render_grasp_maps`.
    """

    def __init__(
        self,
        kind: Literal["mse", "smooth_l1"] = "mse",
        aux_weight: float = 0.4,
        width_scale: float = WIDTH_SCALE,
    ) -> None:
        if kind not in ("mse", "smooth_l1"):
            raise ValueError(f"unknown grasp loss kind {kind!r}; use 'mse' or 'smooth_l1'")
        self.kind = kind
        self.aux_weight = float(aux_weight)
        self.width_scale = width_scale
        self.training = True

    def train(self, mode: bool = True) -> GraspLoss:
        """Use the auxiliary maps (``mode=True``) or ignore them."""
        self.training = mode
        return self

    def eval(self) -> GraspLoss:
        """Ignore the auxiliary maps (validation losses)."""
        return self.train(False)

    def _term(self, pred: Tensor, target: Tensor) -> Tensor:
        pred = pred.float()
        if self.kind == "mse":
            return F.mse_loss(pred, target)
        return F.smooth_l1_loss(pred, target, beta=1.0)

    def __call__(
        self, outputs: Mapping[str, Tensor], targets: Sequence[Grasps] | Mapping[str, Tensor]
    ) -> dict[str, Tensor]:
        """Args:
            outputs: the model's maps, each Tensor[B, 1, H, W].
            targets: one :class:`Grasps` per image (in the pixels of the maps; rendered here with
                :func:`render_grasp_maps`), or ready target maps ``{"pos", "cos", "sin", "width"}``
                of the outputs' shape (e.g. a teacher's outputs for distillation).

        Returns:
            dict of scalar tensors; the total loss is their sum.
        """
        pos = outputs["pos"]
        if isinstance(targets, Mapping):
            maps = {k: targets[k].to(device=pos.device, dtype=torch.float32) for k in MAP_KEYS}
        else:
            size = (int(pos.shape[-2]), int(pos.shape[-1]))
            maps = render_grasp_maps(targets, size, device=pos.device, width_scale=self.width_scale)
        for k in MAP_KEYS:
            if maps[k].shape != outputs[k].shape:
                raise ValueError(f"target map {k!r} has shape {tuple(maps[k].shape)}, output {tuple(outputs[k].shape)}")
        losses = {k: self._term(outputs[k], maps[k]) for k in MAP_KEYS}
        if self.training and self.aux_weight and all(f"aux_{k}" in outputs for k in MAP_KEYS):
            aux = sum(self._term(outputs[f"aux_{k}"], maps[k]) for k in MAP_KEYS)
            losses["aux"] = self.aux_weight * aux  # type: ignore[operator]
        return losses
