"""The VGG16-reduced SSD trunk: VGG16 conv layers, atrous fc6/fc7 and the extra feature layers.

Layer indices of ``VGGBackbone.vgg`` are those of ssd.pytorch's ``vgg`` list (0..34); indices 0..29
are also those of torchvision's ``vgg16().features`` (conv1_1 .. conv5_3 with their ReLUs and pools),
which keeps the weight converters one-to-one:

* 0, 2: conv1_1, conv1_2 (64); 4: pool1 2x2/2
* 5, 7: conv2_1, conv2_2 (128); 9: pool2 2x2/2
* 10, 12, 14: conv3_1..conv3_3 (256); 16: pool3 2x2/2 with ceil_mode (75 -> 38 at 300x300)
* 17, 19, 21: conv4_1..conv4_3 (512); the first source is taken after 22 (conv4_3's ReLU), L2-normalised
* 23: pool4 2x2/2; 24, 26, 28: conv5_1..conv5_3 (512)
* 30: pool5 3x3/1 pad 1; 31: fc6 = 3x3 conv 1024, dilation 6, pad 6; 33: fc7 = 1x1 conv 1024
* every conv is followed by a ReLU at the next index; the second source is fc7's ReLU (34)
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from singleshot.models.heads import xavier_init_
from singleshot.models.l2norm import L2Norm

#: index in ``VGGBackbone.vgg`` after which conv4_3 (with its ReLU) has been applied.
CONV4_3_END = 23
FC6_INDEX = 31
FC7_INDEX = 33
#: conv layer indices shared with torchvision's vgg16().features.
VGG16_CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)


@dataclass(frozen=True)
class ExtraBlock:
    """One extra feature layer pair: 1x1 conv to ``mid`` channels, then a ``kernel`` conv to ``out``."""

    mid: int
    out: int
    kernel: int
    stride: int
    padding: int


#: conv8_2 .. conv11_2 of SSD300 (maps 10, 5, 3, 1 from the 19x19 fc7).
EXTRAS_300: tuple[ExtraBlock, ...] = (
    ExtraBlock(256, 512, 3, 2, 1),
    ExtraBlock(128, 256, 3, 2, 1),
    ExtraBlock(128, 256, 3, 1, 0),
    ExtraBlock(128, 256, 3, 1, 0),
)
#: conv8_2 .. conv12_2 of the paper's SSD512 (maps 16, 8, 4, 2, 1 from the 32x32 fc7); conv12_2 is a
#: 4x4 conv with pad 1 as in the original Caffe model and mmdetection's SSD512.
EXTRAS_512: tuple[ExtraBlock, ...] = (
    ExtraBlock(256, 512, 3, 2, 1),
    ExtraBlock(128, 256, 3, 2, 1),
    ExtraBlock(128, 256, 3, 2, 1),
    ExtraBlock(128, 256, 3, 2, 1),
    ExtraBlock(128, 256, 4, 1, 1),
)

_VGG16_CFG: tuple[int | str, ...] = (64, 64, "M", 128, 128, "M", 256, 256, 256, "C", 512, 512, 512, "M", 512, 512, 512)


def vgg16_reduced_layers() -> list[nn.Module]:
    """The 35 layers of the SSD VGG16-reduced trunk, conv1_1 .. fc7 (see the module table)."""
    layers: list[nn.Module] = []
    channels = 3
    for v in _VGG16_CFG:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        elif v == "C":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2, ceil_mode=True))
        else:
            assert isinstance(v, int)
            layers += [nn.Conv2d(channels, v, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
            channels = v
    layers += [
        nn.MaxPool2d(kernel_size=3, stride=1, padding=1),
        nn.Conv2d(512, 1024, kernel_size=3, padding=6, dilation=6),
        nn.ReLU(inplace=True),
        nn.Conv2d(1024, 1024, kernel_size=1),
        nn.ReLU(inplace=True),
    ]
    return layers


def extra_layers(in_channels: int, blocks: tuple[ExtraBlock, ...]) -> nn.ModuleList:
    """Extra feature blocks; block k is ``Sequential(conv1x1, ReLU, conv, ReLU)`` (convs at 0 and 2)."""
    out = nn.ModuleList()
    for b in blocks:
        out.append(
            nn.Sequential(
                nn.Conv2d(in_channels, b.mid, kernel_size=1),
                nn.ReLU(inplace=True),
                nn.Conv2d(b.mid, b.out, kernel_size=b.kernel, stride=b.stride, padding=b.padding),
                nn.ReLU(inplace=True),
            )
        )
        in_channels = b.out
    return out


class VGGBackbone(nn.Module):
    """VGG16-reduced SSD feature extractor.

    Source maps: L2-normalised conv4_3, fc7, then the output of each extra block.

    Args:
        extras: the extra blocks, ``EXTRAS_300`` or ``EXTRAS_512``.

    Shapes:
        x: Tensor[B, 3, S, S] normalised image -> list of Tensor[B, out_channels[k], F_k, F_k]
        (F = 38, 19, 10, 5, 3, 1 for S = 300; 64, 32, 16, 8, 4, 2, 1 for S = 512 with EXTRAS_512).
    """

    def __init__(self, extras: tuple[ExtraBlock, ...] = EXTRAS_300) -> None:
        super().__init__()
        self.vgg = nn.Sequential(*vgg16_reduced_layers())
        self.l2norm = L2Norm(512, init_scale=20.0)
        self.extras = extra_layers(1024, extras)
        # fc6/fc7 and the extras are new layers (the VGG convs come from ImageNet weights when available).
        xavier_init_([self.vgg[FC6_INDEX], self.vgg[FC7_INDEX], self.extras])
        self.out_channels: list[int] = [512, 1024] + [b.out for b in extras]

    def forward(self, x: Tensor) -> list[Tensor]:
        sources: list[Tensor] = []
        for i, layer in enumerate(self.vgg):
            if i == CONV4_3_END:
                sources.append(self.l2norm(x))
            x = layer(x)
        sources.append(x)
        for block in self.extras:
            x = block(x)
            sources.append(x)
        return sources
