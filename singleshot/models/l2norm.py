"""Channel-wise L2 normalisation with a learnable per-channel scale (SSD's conv4_3 norm)."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class L2Norm(nn.Module):
    """Normalise every spatial position's channel vector to unit length, then scale it per channel.

    ``y[b, c, i, j] = weight[c] * x[b, c, i, j] / (||x[b, :, i, j]||_2 + eps)``.
    The scale starts at ``init_scale`` (20 in the SSD paper) and is learnt. ``eps`` (1e-10) is the
    one ssd.pytorch adds to the norm; torchvision instead divides by ``max(norm, 1e-12)``, which
    differs from this only for feature vectors whose norm is below ~1e-10.

    Args:
        channels: number of input channels C.
        init_scale: initial value of every entry of ``weight`` (Tensor[C]).
        eps: added to the norm to keep the division finite.

    Shapes:
        x: Tensor[B, C, H, W] -> Tensor[B, C, H, W].
    """

    def __init__(self, channels: int, init_scale: float = 20.0, eps: float = 1e-10) -> None:
        super().__init__()
        self.init_scale = float(init_scale)
        self.eps = float(eps)
        self.weight = nn.Parameter(torch.full((channels,), self.init_scale))

    def reset_parameters(self) -> None:
        """Set every channel's scale back to ``init_scale``."""
        with torch.no_grad():
            self.weight.fill_(self.init_scale)

    def forward(self, x: Tensor) -> Tensor:
        norm = x.pow(2).sum(dim=1, keepdim=True).sqrt() + self.eps
        return x / norm * self.weight.view(1, -1, 1, 1)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, init_scale={self.init_scale}, eps={self.eps}"
