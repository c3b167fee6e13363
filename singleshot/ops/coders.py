"""The SSD variance coder.

A matched box is encoded against its prior (both normalised ``cxcywh``) as
``((gx - px) / (v0 pw), (gy - py) / (v0 ph), log(gw / pw) / v1, log(gh / ph) / v1)`` with
variances ``(v0, v1) = (0.1, 0.2)``; this is torchvision's ``BoxCoder`` with weights (10, 10, 5, 5).
Decoding clamps the log-size deltas at ``log(1000 / 16)`` as torchvision does, so a wild prediction
cannot overflow ``exp``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from singleshot.ops.boxes import cxcywh_to_xyxy, xyxy_to_cxcywh

DEFAULT_VARIANCES: tuple[float, float] = (0.1, 0.2)
DECODE_CLAMP: float = math.log(1000.0 / 16)


def encode(boxes_xyxy: Tensor, priors_cxcywh: Tensor, variances: tuple[float, float] = DEFAULT_VARIANCES) -> Tensor:
    """Encode matched boxes as offsets from their priors.

    Args:
        boxes_xyxy: Tensor[..., P, 4] matched ground-truth boxes, xyxy normalised to [0, 1].
        priors_cxcywh: Tensor[P, 4] priors, cxcywh normalised.
        variances: (centre variance, size variance).

    Returns:
        Tensor[..., P, 4] regression targets (dx, dy, dw, dh).
    """
    g = xyxy_to_cxcywh(boxes_xyxy)
    p = priors_cxcywh
    dxy = (g[..., :2] - p[:, :2]) / (variances[0] * p[:, 2:])
    # A degenerate matched box only reaches here for background priors whose targets are unused.
    dwh = torch.log(g[..., 2:].clamp(min=1e-8) / p[:, 2:]) / variances[1]
    return torch.cat((dxy, dwh), dim=-1)


def decode(
    deltas: Tensor,
    priors_cxcywh: Tensor,
    variances: tuple[float, float] = DEFAULT_VARIANCES,
    clamp: float = DECODE_CLAMP,
) -> Tensor:
    """Invert :func:`encode`.

    Args:
        deltas: Tensor[..., P, 4] predicted offsets.
        priors_cxcywh: Tensor[P, 4] priors, cxcywh normalised (centres are ``priors[:, :2]``).
        variances: (centre variance, size variance).
        clamp: upper bound applied to the log-size deltas before ``exp``.

    Returns:
        Tensor[..., P, 4] boxes, xyxy normalised (not clipped).
    """
    p = priors_cxcywh
    cxy = p[:, :2] + deltas[..., :2] * variances[0] * p[:, 2:]
    wh = p[:, 2:] * torch.exp((deltas[..., 2:] * variances[1]).clamp(max=clamp))
    return cxcywh_to_xyxy(torch.cat((cxy, wh), dim=-1))
