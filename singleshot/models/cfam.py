"""CFAM: YOWO's channel fusion and attention mechanism.

``CFAM(in_channels, out_channels, inter_channels)`` runs, with YOWO's attribute names (so its
checkpoints map as ``cfam.*``):

* ``conv_bn_relu1``: 1x1 conv (no bias) to ``inter_channels``, BatchNorm, ReLU;
* ``conv_bn_relu2``: 3x3 conv (no bias), BatchNorm, ReLU;
* ``sc``: ``ChannelAttention``, a Gram-matrix channel attention with a learned scale ``gamma``
  (initialised to 0, so the block starts as the identity);
* ``conv_bn_relu3``: 3x3 conv (no bias), BatchNorm, ReLU;
* ``conv_out``: ``Dropout2d(0.1)`` (index 0) and a 1x1 conv with bias to ``out_channels`` (index 1).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["CFAM", "ChannelAttention"]


class ChannelAttention(nn.Module):
    """Channel attention from the Gram matrix of the flattened features (DANet's CAM, as in YOWO).

    With ``F = x.view(B, C, N)`` (N = H * W): ``G = F F^T`` (Tensor[B, C, C]);
    ``A = softmax(max_j G[:, i, j] - G[:, i, :])`` over the last axis (channels that correlate
    *less* get more weight, the inverted energy of DANet); ``out = gamma * (A F) + x``. The
    attention is computed in float32 even under autocast.

    Shapes: Tensor[B, C, H, W] -> Tensor[B, C, H, W].
    """

    def __init__(self) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        # the Gram matrix sums H*W products and overflows float16 on large maps: keep it in float32
        with torch.autocast(device_type=x.device.type, enabled=False):
            flat = x.reshape(b, c, h * w).float()
            gram = torch.bmm(flat, flat.transpose(1, 2))
            energy = gram.amax(dim=-1, keepdim=True) - gram
            attended = torch.bmm(energy.softmax(dim=-1), flat).reshape(b, c, h, w)
        return self.gamma * attended.to(x.dtype) + x


def _conv_bn_relu(cin: int, cout: int, k: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


class CFAM(nn.Module):
    """Fuses concatenated 3D + 2D features.

    Args:
        in_channels: C3 + C2 of the concatenated input.
        out_channels: output channels (YOWO: 1024).
        inter_channels: width of the inner layers (YOWO: 1024).
        dropout: ``Dropout2d`` probability before the output conv (YOWO: 0.1).

    Shapes: Tensor[B, in_channels, H, W] -> Tensor[B, out_channels, H, W].
    """

    def __init__(
        self, in_channels: int, out_channels: int = 1024, inter_channels: int = 1024, dropout: float = 0.1
    ) -> None:
        super().__init__()
        self.conv_bn_relu1 = _conv_bn_relu(in_channels, inter_channels, 1)
        self.conv_bn_relu2 = _conv_bn_relu(inter_channels, inter_channels, 3)
        self.sc = ChannelAttention()
        self.conv_bn_relu3 = _conv_bn_relu(inter_channels, inter_channels, 3)
        self.conv_out = nn.Sequential(nn.Dropout2d(dropout), nn.Conv2d(inter_channels, out_channels, 1))
        self.out_channels = out_channels

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv_bn_relu2(self.conv_bn_relu1(x))
        x = self.conv_bn_relu3(self.sc(x))
        return self.conv_out(x)
