"""SSD prediction heads: one 3x3 convolution per source map for box offsets and one for class scores."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn


def xavier_init_(modules: Iterable[nn.Module]) -> None:
    """Xavier-uniform weights and zero biases for every ``nn.Conv2d`` inside ``modules`` (as ssd.pytorch)."""
    for module in modules:
        for layer in module.modules():
            if isinstance(layer, nn.Conv2d):
                nn.init.xavier_uniform_(layer.weight)
                if layer.bias is not None:
                    nn.init.zeros_(layer.bias)


def flatten_predictions(maps: list[Tensor], columns: int) -> Tensor:
    """Concatenate per-map predictions in prior order.

    Args:
        maps: per source map k a Tensor[B, A_k * columns, H_k, W_k]; channel ``a * columns + j`` holds
            column ``j`` of the cell's ``a``-th prior.
        columns: values per prior (4 for box offsets, C + 1 for class logits).

    Returns:
        Tensor[B, P, columns] with ``P = sum_k H_k W_k A_k``, ordered map by map, cells row-major
        (y, then x), then priors within the cell: the order of ``generate_priors``.
    """
    flat = [m.permute(0, 2, 3, 1).reshape(m.shape[0], -1, columns) for m in maps]
    return torch.cat(flat, dim=1)


class SSDHead(nn.Module):
    """Box-offset (``loc``) and class-logit (``conf``) convolutions over the source maps.

    Args:
        in_channels: channels of each source map.
        num_anchors: priors per cell of each source map.
        num_logits: class logits per prior, background included (C + 1, background at index 0).
        kernel_size: spatial size of the prediction convolutions (3 in SSD).
    """

    def __init__(self, in_channels: list[int], num_anchors: list[int], num_logits: int, kernel_size: int = 3) -> None:
        super().__init__()
        if len(in_channels) != len(num_anchors):
            raise ValueError(f"{len(in_channels)} source maps but {len(num_anchors)} anchor counts")
        pad = kernel_size // 2
        self.num_logits = num_logits
        self.loc = nn.ModuleList(
            nn.Conv2d(c, a * 4, kernel_size, padding=pad) for c, a in zip(in_channels, num_anchors)
        )
        self.conf = nn.ModuleList(
            nn.Conv2d(c, a * num_logits, kernel_size, padding=pad) for c, a in zip(in_channels, num_anchors)
        )
        xavier_init_([self.loc, self.conf])

    def forward(self, features: list[Tensor]) -> tuple[Tensor, Tensor]:
        """Predict for every prior.

        Args:
            features: source maps, Tensor[B, in_channels[k], H_k, W_k] each.

        Returns:
            (bbox_regression Tensor[B, P, 4] encoded offsets, cls_logits Tensor[B, P, C + 1]).
        """
        if len(features) != len(self.loc):
            raise ValueError(f"head built for {len(self.loc)} source maps, got {len(features)}")
        loc = flatten_predictions([layer(f) for layer, f in zip(self.loc, features)], 4)
        conf = flatten_predictions([layer(f) for layer, f in zip(self.conf, features)], self.num_logits)
        return loc, conf
