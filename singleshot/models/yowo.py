"""YOWO: a 3D clip backbone and a 2D key-frame backbone fused by CFAM into a YOLOv2-style region output.

``model(clip)`` with ``clip`` Tensor[B, 3, T, H, W] (normalised; the key frame is ``clip[:, :, -1]``,
H and W divisible by 32) returns ``{"out": Tensor[B, A * (5 + C), H/s, W/s]}`` with s =
``model.stride`` (32 as published; 16 or 8 for the tiny backbones built with ``stride=16`` or ``8``). Viewed as
[B, A, 5 + C, H/s, W/s], the channels of anchor ``a`` are (tx, ty, tw, th, conf, class_0 ..
class_{C-1}), raw (no activation), as in YOWO. ``model.anchors`` is Tensor[A, 2] (w, h) in grid cells.

Attribute names are YOWO's (``backbone_3d``, ``backbone_2d``, ``cfam``, ``conv_final``), so its
checkpoints load after removing DataParallel's ``module.`` prefix (``singleshot.convert.yowo``). As in
YOWO the 3D features come first in the concatenation, and ``conv_final`` is a 1x1 conv without bias.

Freezing (``freeze_2d`` / ``freeze_3d``): ``"all"`` (or True) freezes the whole backbone, ``"partial"``
all but its ``tail_names()`` (YOWO's choice: ``layer4`` of a 3D ResNet, Darknet's last two convs), and
``"none"`` (or False) nothing. Frozen parameters get ``requires_grad=False`` (build optimisers from
``p for p in model.parameters() if p.requires_grad``), and ``YOWO.train()`` switches every frozen
submodule back to eval mode after ``nn.Module.train`` ran, so frozen BatchNorm layers keep their running
statistics and normalise with them in training too. (YOWO itself only sets a zero learning rate, so
its frozen BatchNorm statistics still drift during training.)
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from singleshot.engine.branches import parallel_branches
from singleshot.errors import ConfigError
from singleshot.models.backbones3d import build_backbone3d
from singleshot.models.cfam import CFAM
from singleshot.models.darknet import darknet19_yolov2, tiny2d
from singleshot.models.registry import register_model

logger = logging.getLogger(__name__)

__all__ = ["BACKBONES_2D", "JHMDB21_ANCHORS", "UCF24_ANCHORS", "YOWO", "tiny3d_stride", "yowo", "yowo_tiny"]

#: YOWO's UCF101-24 anchors (w, h) in grid cells (cfg/ucf24.yaml).
UCF24_ANCHORS: tuple[tuple[float, float], ...] = (
    (0.70458, 1.18803),
    (1.26654, 2.55121),
    (1.59382, 4.08321),
    (2.30548, 4.94180),
    (3.52332, 5.91979),
)
#: YOWO's J-HMDB-21 anchors (w, h) in grid cells (cfg/jhmdb.yaml).
JHMDB21_ANCHORS: tuple[tuple[float, float], ...] = (
    (0.95878, 3.10197),
    (1.67204, 4.0040),
    (1.75482, 5.64937),
    (3.09299, 5.80857),
    (4.91803, 6.25225),
)

BACKBONES_2D: dict[str, Callable[..., nn.Module]] = {"darknet19": darknet19_yolov2, "tiny2d": tiny2d}
_FREEZE_MODES = {False: "none", True: "all", "none": "none", "all": "all", "partial": "partial"}


def _freeze_mode(value: bool | str, name: str) -> str:
    try:
        return _FREEZE_MODES[value]
    except (KeyError, TypeError):
        raise ConfigError(f"{name} must be one of False, True, 'none', 'all', 'partial'; got {value!r}") from None


def _anchor_tensor(anchors: Sequence[Sequence[float]] | Tensor) -> Tensor:
    t = (
        torch.as_tensor(anchors, dtype=torch.float32, device="cpu").reshape(-1, 2)
        if len(anchors)
        else torch.empty(0, 2)
    )
    if t.shape[0] == 0 or not bool((t > 0).all()):
        raise ConfigError(f"anchors must be a non-empty list of positive (w, h) pairs in grid cells, got {anchors!r}")
    return t


class YOWO(nn.Module):
    """You Only Watch Once.

    Args:
        backbone3d: clip backbone, Tensor[B, 3, T, H, W] -> Tensor[B, C3, H/32, W/32], with ``out_channels``.
        backbone2d: key-frame backbone, Tensor[B, 3, H, W] -> Tensor[B, C2, H/32, W/32], with ``out_channels``.
        num_classes: action classes C.
        anchors: A (w, h) pairs in grid cells (default: YOWO's UCF101-24 anchors).
        cfam_channels: CFAM's inner and output width (YOWO: 1024).
        freeze_2d, freeze_3d: ``"none"``/False, ``"all"``/True or ``"partial"`` (see the module docstring).
        clip_len: the number of frames T the model is meant for (recorded; any T works).
        dropout: CFAM's Dropout2d probability.
        input_3d: what the 3D backbone sees: ``"rgb"`` (YOWO: the clip itself) or ``"diff"`` (the T − 1
            differences of consecutive frames, ``clip[:, :, 1:] − clip[:, :, :-1]``: a motion input in the
            manner of TSN's RGB difference, so the clip branch need not learn to subtract frames before
            it can learn motion; the 2D branch still sees the key frame).
    """

    def __init__(
        self,
        backbone3d: nn.Module,
        backbone2d: nn.Module,
        num_classes: int,
        anchors: Sequence[Sequence[float]] | Tensor = UCF24_ANCHORS,
        cfam_channels: int = 1024,
        freeze_2d: bool | str = False,
        freeze_3d: bool | str = False,
        clip_len: int = 16,
        dropout: float = 0.1,
        input_3d: str = "rgb",
    ) -> None:
        super().__init__()
        if num_classes < 1:
            raise ConfigError(f"num_classes must be at least 1, got {num_classes}")
        if clip_len < 1:
            raise ConfigError(f"clip_len must be at least 1, got {clip_len}")
        if input_3d not in ("rgb", "diff"):
            raise ConfigError(f"input_3d must be 'rgb' or 'diff', got {input_3d!r}")
        anchor_t = _anchor_tensor(anchors)
        s3, s2 = int(getattr(backbone3d, "stride", 32)), int(getattr(backbone2d, "stride", 32))
        if s3 < s2 or s3 % s2:
            raise ConfigError(
                f"the 3D backbone's output stride ({s3}) must equal the 2D backbone's ({s2}) or be a "
                "multiple of it (its map is then upsampled to the 2D map)"
            )
        self.stride = s2
        self.backbone_3d = backbone3d
        self.backbone_2d = backbone2d
        c3, c2 = int(backbone3d.out_channels), int(backbone2d.out_channels)
        self.cfam = CFAM(c3 + c2, cfam_channels, cfam_channels, dropout)
        self.conv_final = nn.Conv2d(cfam_channels, anchor_t.shape[0] * (5 + num_classes), 1, bias=False)
        self.register_buffer("anchors", anchor_t, persistent=False)
        self.num_classes = num_classes
        self.num_anchors = int(anchor_t.shape[0])
        self.clip_len = clip_len
        self.input_3d = input_3d
        #: run the 3D and 2D backbones in two threads, forward and backward (same numbers; a CPU
        #: speed-up when intra-op threads leave a core idle; not under DDP). A runtime setting, not
        #: part of the architecture: training sets it from ``parallel_branches=``.
        self.parallel = False
        #: run the 3D backbone in channels-last-3d memory format (see :meth:`set_channels_last_3d`)
        self.channels_last_3d = False
        self.freeze_2d = "none"
        self.freeze_3d = "none"
        self.set_freeze(freeze_2d, freeze_3d)

    # -- freezing -----------------------------------------------------------------------------
    def set_freeze(self, freeze_2d: bool | str = False, freeze_3d: bool | str = False) -> None:
        """(Re)apply freezing: parameters of frozen parts stop requiring gradients and frozen
        submodules go to eval mode (and stay there through ``train()``)."""
        self.freeze_2d = _freeze_mode(freeze_2d, "freeze_2d")
        self.freeze_3d = _freeze_mode(freeze_3d, "freeze_3d")
        for backbone, mode in ((self.backbone_2d, self.freeze_2d), (self.backbone_3d, self.freeze_3d)):
            tail = self._tail(backbone, mode)
            for name, p in backbone.named_parameters():
                p.requires_grad_(mode == "none" or _inside(name, tail))
        self.train(self.training)

    @staticmethod
    def _tail(backbone: nn.Module, mode: str) -> tuple[str, ...]:
        if mode != "partial":
            return ()
        tail_names = getattr(backbone, "tail_names", None)
        if tail_names is None:
            raise ConfigError(f"{type(backbone).__name__} has no tail_names(); use freeze 'all' or 'none'")
        return tuple(tail_names())

    def frozen_modules(self) -> list[nn.Module]:
        """The backbone submodules held in eval mode (all of a frozen backbone but its kept tail)."""
        frozen: list[nn.Module] = []
        for backbone, mode in ((self.backbone_2d, self.freeze_2d), (self.backbone_3d, self.freeze_3d)):
            if mode == "none":
                continue
            tail = self._tail(backbone, mode)
            frozen += [m for name, m in backbone.named_modules() if not _inside(name, tail)]
        return frozen

    def train(self, mode: bool = True) -> YOWO:
        """``nn.Module.train(mode)``, then frozen submodules are set back to eval (non-recursively,
        so the trainable tail of a partially frozen backbone follows ``mode``)."""
        super().train(mode)
        if mode:
            for m in self.frozen_modules():
                m.training = False
        return self

    def set_channels_last_3d(self, on: bool = True) -> YOWO:
        """Keep the 3D backbone's weights and run its input in channels-last-3d memory format.

        A runtime setting (the state dict is the same): on a CPU, oneDNN's 3D convolutions and
        max pooling run several times faster in this layout (the tiny backbone's step ~1.3x).
        Values agree with the default layout to float rounding.
        """
        fmt = torch.channels_last_3d if on else torch.contiguous_format
        self.backbone_3d.to(memory_format=fmt)
        self.channels_last_3d = bool(on)
        return self

    # -- forward ------------------------------------------------------------------------------
    def forward(self, clip: Tensor) -> dict[str, Tensor]:
        """Tensor[B, 3, T, H, W] -> {"out": Tensor[B, A * (5 + C), H/s, W/s]}, s = ``self.stride``."""
        if clip.dim() != 5:
            raise ValueError(f"YOWO expects a clip Tensor[B, 3, T, H, W], got shape {tuple(clip.shape)}")
        h, w = clip.shape[-2:]
        if h % 32 or w % 32:
            raise ValueError(f"YOWO needs H and W divisible by 32, got {h}x{w}")
        if self.input_3d == "diff":
            if clip.shape[2] < 2:
                raise ValueError(f"YOWO with input_3d='diff' needs clips of at least 2 frames, got {clip.shape[2]}")
            clip_3d = clip[:, :, 1:] - clip[:, :, :-1]
        else:
            clip_3d = clip
        if self.channels_last_3d:
            branch_3d = partial(self._forward_3d_channels_last, clip_3d)
        else:
            branch_3d = partial(self.backbone_3d, clip_3d)
        branch_2d = partial(self.backbone_2d, clip[:, :, -1])
        if self.parallel:
            params = [list(self.backbone_3d.parameters()), list(self.backbone_2d.parameters())]
            f3, f2 = parallel_branches([branch_3d, branch_2d], params)
        else:
            f3, f2 = branch_3d(), branch_2d()
        if f3.shape[-2:] != f2.shape[-2:]:  # a coarser 3D map (yowo_tiny stride 8): nearest upsampling, as YOWOv2
            f3 = F.interpolate(f3, size=f2.shape[-2:], mode="nearest")
        x = self.cfam(torch.cat((f3, f2), dim=1))
        return {"out": self.conv_final(x)}

    def _forward_3d_channels_last(self, clip: Tensor) -> Tensor:
        return self.backbone_3d(clip.contiguous(memory_format=torch.channels_last_3d)).contiguous()


def _inside(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


@register_model("yowo", task="action", family="yowo")
def yowo(
    num_classes: int,
    backbone3d: str = "resnext101",
    backbone2d: str = "darknet19",
    clip_len: int = 16,
    anchors: Sequence[Sequence[float]] | None = None,
    cfam_channels: int = 1024,
    freeze_2d: bool | str = False,
    freeze_3d: bool | str = False,
    backbone3d_kwargs: dict[str, Any] | None = None,
    backbone2d_kwargs: dict[str, Any] | None = None,
    input_3d: str = "rgb",
) -> YOWO:
    """YOWO as published: 3D ResNeXt-101 + YOLOv2 Darknet-19, CFAM 1024, UCF101-24 anchors.

    Args:
        num_classes: action classes C.
        backbone3d: ``resnext101``, ``resnext``, ``resnet18``, ``shufflenetv2`` or ``tiny3d``.
        backbone2d: ``darknet19`` (YOLOv2, 425 channels) or ``tiny2d``.
        clip_len: frames per clip T (16 in YOWO's UCF101-24 recipe).
        anchors: (w, h) pairs in grid cells; default ``UCF24_ANCHORS``.
        backbone3d_kwargs, backbone2d_kwargs: passed to the backbone builders (e.g. ``{"width_mult": 1.0}``).
        input_3d: ``"rgb"`` (YOWO) or ``"diff"`` (frame differences into the 3D backbone; see :class:`YOWO`).

    Raises:
        ConfigError: unknown backbone names or bad arguments.
    """
    b3 = build_backbone3d(backbone3d, **(backbone3d_kwargs or {}))
    if backbone2d not in BACKBONES_2D:
        raise ConfigError(f"unknown 2D backbone {backbone2d!r}; valid names: {', '.join(sorted(BACKBONES_2D))}")
    try:
        b2 = BACKBONES_2D[backbone2d](**(backbone2d_kwargs or {}))
    except TypeError as exc:
        raise ConfigError(
            f"2D backbone {backbone2d!r}: bad arguments {sorted(backbone2d_kwargs or {})}: {exc}"
        ) from exc
    anchors = UCF24_ANCHORS if anchors is None else anchors
    model = YOWO(b3, b2, num_classes, anchors, cfam_channels, freeze_2d, freeze_3d, clip_len, input_3d=input_3d)
    logger.debug("yowo(%d classes, %s + %s, T=%d)", num_classes, backbone3d, backbone2d, clip_len)
    return model


def tiny3d_stride(stride: int) -> int:
    """The ``tiny3d`` stride paired with a ``tiny2d`` of output ``stride``: the same, but at least 16 (an
    output stride of 8 upsamples the 3D branch's stride-16 map)."""
    return max(int(stride), 16)


@register_model("yowo_tiny", task="action", family="yowo")
def yowo_tiny(
    num_classes: int,
    clip_len: int = 8,
    width: int = 16,
    anchors: Sequence[Sequence[float]] | None = None,
    cfam_channels: int = 128,
    freeze_2d: bool | str = False,
    freeze_3d: bool | str = False,
    stride: int = 32,
    input_3d: str = "rgb",
) -> YOWO:
    """A CPU-sized YOWO: ``tiny3d(width)`` (8 * width channels) + ``tiny2d(width, 8 * width)``, CFAM of
    ``cfam_channels``; same output layout as ``yowo``. ``stride=16`` gives both backbones output
    stride 16 (a 6 x 6 map at 96 px rather than 3 x 3: small inputs, small actors); ``stride=8`` gives
    the 2D backbone stride 8 and upsamples the stride-16 3D map to it (a 12 x 12 map at 96 px: boxes
    regressed on a finer grid, motion features at the 3D branch's own resolution)."""
    if stride not in (8, 16, 32):
        raise ConfigError(f"yowo_tiny: stride must be 8, 16 or 32, got {stride}")
    return yowo(
        num_classes,
        "tiny3d",
        "tiny2d",
        clip_len,
        anchors,
        cfam_channels,
        freeze_2d,
        freeze_3d,
        backbone3d_kwargs={"width": width, "stride": tiny3d_stride(stride)},
        backbone2d_kwargs={"width": width, "out_channels": 8 * width, "stride": stride},
        input_3d=input_3d,
    )
