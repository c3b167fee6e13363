"""Inference-time fusion of a convolution with the ReLU that follows it.

On the CPU, PyTorch's eager mode runs ``Conv2d`` (oneDNN) and then ``ReLU`` as a second pass over
the whole feature map. oneDNN can apply the ReLU inside the convolution (a "post-op");
``torch.ops.mkldnn._convolution_pointwise`` exposes that, and it is what ``torch.compile`` itself
emits for CPU convolutions. :func:`fuse_conv_relu` swaps ``Conv2d`` + ``ReLU`` pairs of
``nn.Sequential`` containers for :class:`ConvReLU2d`, which keeps the same parameters (state-dict
keys unchanged) and falls back to the two eager ops whenever the fused kernel does not apply
(gradients enabled, a non-CPU tensor, or a PyTorch build without oneDNN).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _fused_op_available() -> bool:
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_convolution_pointwise")


class ConvReLU2d(nn.Conv2d):
    """``relu(conv(x))`` computed by one oneDNN call when running inference on the CPU."""

    def forward(self, x: Tensor) -> Tensor:
        if (
            x.device.type == "cpu"
            and x.dtype == torch.float32
            and not torch.is_grad_enabled()
            and isinstance(self.padding, tuple)
            and self.padding_mode == "zeros"
            and _fused_op_available()
        ):
            return torch.ops.mkldnn._convolution_pointwise(
                x,
                self.weight,
                self.bias,
                list(self.padding),
                list(self.stride),
                list(self.dilation),
                self.groups,
                "relu",
                [],
                "",
            )
        return F.relu(super().forward(x))


def _as_fused(conv: nn.Conv2d) -> ConvReLU2d:
    fused = ConvReLU2d.__new__(ConvReLU2d)
    fused.__dict__ = conv.__dict__.copy()  # shares the Parameters and every hyper-parameter
    fused._parameters = conv._parameters
    return fused


def fuse_conv_relu(module: nn.Module) -> int:
    """Fuse, in place, every ``Conv2d`` directly followed by a ``ReLU`` in an ``nn.Sequential``.

    The ReLU becomes ``nn.Identity`` (indices, and so state-dict keys, do not move). Meant for a
    model in evaluation; training through a fused model still works (the eager fallback).

    Returns:
        The number of pairs fused.
    """
    count = 0
    for child in module.modules():
        if not isinstance(child, nn.Sequential):
            continue
        layers = list(child)
        for i in range(len(layers) - 1):
            conv, act = layers[i], layers[i + 1]
            if type(conv) is nn.Conv2d and isinstance(act, nn.ReLU):
                child[i] = _as_fused(conv)
                child[i + 1] = nn.Identity()
                count += 1
    return count
