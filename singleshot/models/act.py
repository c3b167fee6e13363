"""The ACT tubelet detector (Kalogeiton et al., "Action Tubelet Detector for Spatio-Temporal Action
Localization", ICCV 2017): an SSD run on K frames with one shared trunk, whose heads see the K
frames' features side by side and regress a tubelet (one box per frame) from each anchor cuboid.

Design, checked against ACT's prototxt generator and Caffe layers (vkalogeiton/caffe):

* every frame goes through the *same* backbone (Caffe: K streams ``conv1_1_stream{k}`` … whose
  parameters share one name); here the K frames are folded into the batch, [B*K, 3, H, W], so
  the weights are one parameter set by construction and gradients of all frames add up in it;
* conv4_3 is L2-normalised with a *separate* learnable scale per stream (Caffe layers
  ``conv4_3_norm_stream{k}``, initialised to 20, unshared); ``shared_l2norm=True`` keeps the
  backbone's single scale instead;
* for every source map the K streams are concatenated along channels in frame order (Caffe
  ``{source}_concat``, axis 1), so map s feeds the heads K·C_s channels;
* per anchor the heads give C + 1 class logits and 4K offsets (frame-major: the 4 offsets of
  frame 0, then frame 1, …), 3x3 convolutions as in SSD;
* ACT's VGG16 trunk differs from SSD300's in pool5: 2x2 stride 1 without padding (SSD: 3x3
  stride 1 pad 1), which turns fc7 into an 18x18 map and the extras into 9, 5, 3, 1, hence 8396
  anchor cuboids instead of 8732; its priors are SSD300's VOC sizes (30 … 315) *not* clipped.
* ACT trains the shared trunk with lr_mult 1/K (the K streams add K gradients into it):
  :meth:`ACTDetector.param_groups` gives that grouping.
* a flow stream reads, per frame, 5 flow images stacked along channels (ACT's FLOW5: Caffe inputs
  ``data_stream{k}flow`` of 15 channels): ``in_channels=15`` widens the trunk's first convolution
  (:func:`widen_first_conv`), the rest of the net is the RGB one.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from singleshot.errors import ConfigError
from singleshot.models.heads import flatten_predictions, xavier_init_
from singleshot.models.l2norm import L2Norm
from singleshot.models.registry import register_model
from singleshot.models.small import ssd_slim
from singleshot.models.stream_conv import StreamDilatedConv2d
from singleshot.models.tiny import ssd_tiny
from singleshot.models.vgg import EXTRAS_300, FC6_INDEX, VGGBackbone
from singleshot.ops.priors import PriorSpec, generate_priors, priors_per_cell

logger = logging.getLogger(__name__)

__all__ = [
    "ACT_PRIORS_2X2",
    "ACT_PRIORS_3X3",
    "POOL5_VARIANTS",
    "ACTDetector",
    "FrameFeatures",
    "StreamL2Norm",
    "TubeletHead",
    "first_conv",
    "widen_first_conv",
    "act_vgg16",
    "act_tiny",
    "act_slim",
]

#: pool5 index in ``VGGBackbone.vgg``.
_POOL5_INDEX = 30
POOL5_VARIANTS = ("2x2s1", "3x3s1p1")

_AR6 = [[2], [2, 3], [2, 3], [2, 3], [2], [2]]
_MIN_SIZES = [30.0, 60.0, 111.0, 162.0, 213.0, 264.0]
_MAX_SIZES = [60.0, 111.0, 162.0, 213.0, 264.0, 315.0]
_STEPS = [8.0, 16.0, 32.0, 64.0, 100.0, 300.0]
#: ACT's released VGG16 (pool5 2x2/s1): source maps 38, 18, 9, 5, 3, 1 -> 8396 cuboids, priors not clipped.
ACT_PRIORS_2X2 = PriorSpec(300, [38, 18, 9, 5, 3, 1], _STEPS, _MIN_SIZES, _MAX_SIZES, _AR6, clip="none")
#: The same priors on SSD300's trunk (pool5 3x3/s1/p1): maps 38, 19, 10, 5, 3, 1 -> 8732 cuboids.
ACT_PRIORS_3X3 = PriorSpec(300, [38, 19, 10, 5, 3, 1], _STEPS, _MIN_SIZES, _MAX_SIZES, _AR6, clip="none")


def first_conv(module: nn.Module) -> tuple[nn.Module, str, nn.Conv2d]:
    """``(parent, attribute name, conv)`` of the first ``nn.Conv2d`` of ``module`` (its input layer)."""
    for name, child in module.named_modules():
        if isinstance(child, nn.Conv2d):
            parent_name, _, attr = name.rpartition(".")
            return module.get_submodule(parent_name), attr, child
    raise ConfigError(f"{type(module).__name__} has no Conv2d to take the input channels")


def widen_first_conv(backbone: nn.Module, in_channels: int) -> None:
    """Give ``backbone``'s first convolution ``in_channels`` inputs (a multiple of its current C).

    The new weight is the old one repeated over the ``in_channels / C`` input groups and divided by
    their number, so that a stack of n copies of one image gives the old response (the builder's
    initial scale is kept; pretrained RGB weights of that layer do not fit and are not loaded).
    """
    parent, attr, old = first_conv(backbone)
    c = old.in_channels
    if in_channels == c:
        return
    if in_channels < 1 or in_channels % c:
        raise ConfigError(f"in_channels={in_channels}: must be a multiple of the trunk's {c} input channels")
    if old.groups != 1:
        raise ConfigError(f"{type(backbone).__name__}: a grouped first convolution cannot be widened")
    n = in_channels // c
    new = nn.Conv2d(
        in_channels,
        old.out_channels,
        old.kernel_size,
        stride=old.stride,
        padding=old.padding,
        dilation=old.dilation,
        bias=old.bias is not None,
        padding_mode=old.padding_mode,
    )
    with torch.no_grad():
        new.weight.copy_(old.weight.repeat(1, n, 1, 1) / n)
        if old.bias is not None:
            new.bias.copy_(old.bias)
    setattr(parent, attr, new)


class StreamL2Norm(nn.Module):
    """L2 normalisation of a frame-folded batch with one learnable scale vector per stream.

    ``y[b*K + k, c] = weight[k, c] * x[b*K + k, c] / (||x[b*K + k, :]||_2 + eps)``: the input holds
    the K frames of each sample consecutively (sample-major), as :class:`ACTDetector` folds them.

    Args:
        channels: C.
        k: number of streams K.
        init_scale: initial value of every scale (20 as SSD and ACT).
        eps: added to the norm (as :class:`~singleshot.models.l2norm.L2Norm`).

    Shapes:
        x: Tensor[B*K, C, H, W] -> Tensor[B*K, C, H, W]; ``weight`` is Tensor[K, C].
    """

    def __init__(self, channels: int, k: int, init_scale: float = 20.0, eps: float = 1e-10) -> None:
        super().__init__()
        self.k = int(k)
        self.eps = float(eps)
        self.weight = nn.Parameter(torch.full((self.k, channels), float(init_scale)))

    @classmethod
    def from_shared(cls, norm: L2Norm, k: int) -> StreamL2Norm:
        """K streams that all start from the scale vector of an existing (shared) ``L2Norm``."""
        out = cls(norm.weight.shape[0], k, norm.init_scale, norm.eps)
        with torch.no_grad():
            out.weight.copy_(norm.weight.detach()[None].expand(k, -1))
        return out

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        if n % self.k:
            raise ValueError(f"StreamL2Norm with K={self.k} got a batch of {n} maps, not a multiple of K")
        y = x / (x.pow(2).sum(dim=1, keepdim=True).sqrt() + self.eps)
        return (y.view(n // self.k, self.k, c, h, w) * self.weight.view(1, self.k, c, 1, 1)).view(n, c, h, w)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[1]}, streams={self.k}, eps={self.eps}"


class TubeletHead(nn.Module):
    """Cuboid prediction convolutions: per anchor 4K offsets (``loc``) and C + 1 logits (``conf``).

    Args:
        in_channels: channels of each fused source map (K times the backbone's).
        num_anchors: anchors per cell of each source map.
        num_logits: C + 1 (background at index 0).
        k: frames per tubelet K.
        kernel_size: spatial size of the convolutions (3 in ACT and SSD).

    Attributes ``loc`` / ``conf`` are named as in :class:`~singleshot.models.heads.SSDHead`, so
    for K = 1 the two heads' state dicts are interchangeable.
    """

    def __init__(
        self, in_channels: list[int], num_anchors: list[int], num_logits: int, k: int, kernel_size: int = 3
    ) -> None:
        super().__init__()
        if len(in_channels) != len(num_anchors):
            raise ValueError(f"{len(in_channels)} source maps but {len(num_anchors)} anchor counts")
        pad = kernel_size // 2
        self.k = int(k)
        self.num_logits = int(num_logits)
        self.loc = nn.ModuleList(
            nn.Conv2d(c, a * 4 * self.k, kernel_size, padding=pad) for c, a in zip(in_channels, num_anchors)
        )
        self.conf = nn.ModuleList(
            nn.Conv2d(c, a * self.num_logits, kernel_size, padding=pad) for c, a in zip(in_channels, num_anchors)
        )
        xavier_init_([self.loc, self.conf])

    def forward(self, features: list[Tensor]) -> tuple[Tensor, Tensor]:
        """Fused maps Tensor[B, in_channels[s], H_s, W_s] -> (loc Tensor[B, P, 4K], conf Tensor[B, P, C+1])."""
        if len(features) != len(self.loc):
            raise ValueError(f"head built for {len(self.loc)} source maps, got {len(features)}")
        loc = flatten_predictions([layer(f) for layer, f in zip(self.loc, features)], 4 * self.k)
        conf = flatten_predictions([layer(f) for layer, f in zip(self.conf, features)], self.num_logits)
        return loc, conf


class ACTDetector(nn.Module):
    """ACT: one shared SSD backbone over K frames, per-source-map fusion by concatenation, cuboid heads.

    Args:
        backbone: module mapping Tensor[N, 3, S, S] to a list of source maps
            Tensor[N, out_channels[s], F_s, F_s] (``F_s = prior_spec.feature_maps[s]``), with an
            ``out_channels`` attribute — any SSD trunk of this package. If it has an ``l2norm``
            attribute that is an :class:`L2Norm` (the VGG trunk's conv4_3 norm) and
            ``shared_l2norm`` is False, that module is replaced by a :class:`StreamL2Norm` with K
            scale vectors starting from its weight.
        k: frames per sample K.
        num_classes: action classes C, background excluded.
        prior_spec: prior geometry; anchor cuboids are these priors repeated over the K frames.
        shared_l2norm: keep one conv4_3 scale for all streams (the backbone untouched).
        in_channels: channels of each frame's input: 3 (RGB), or 3n for n stacked flow images
            (ACT's FLOW5: 15); the first convolution is widened by :func:`widen_first_conv`.

    Attributes:
        priors: non-persistent buffer Tensor[P, 4], cxcywh normalised (each cuboid's box).
        k, num_classes, prior_spec, in_channels.
    """

    def __init__(
        self,
        backbone: nn.Module,
        k: int,
        num_classes: int,
        prior_spec: PriorSpec,
        shared_l2norm: bool = False,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        if int(k) < 1:
            raise ConfigError(f"K (frames per tubelet) must be >= 1, got {k}")
        if int(num_classes) < 1:
            raise ConfigError(f"num_classes must be >= 1 (background excluded), got {num_classes}")
        out_channels = [int(c) for c in backbone.out_channels]
        if len(out_channels) != len(prior_spec.feature_maps):
            raise ConfigError(
                f"backbone has {len(out_channels)} source maps but the prior spec lists "
                f"{len(prior_spec.feature_maps)} feature maps {prior_spec.feature_maps}"
            )
        self.k = int(k)
        self.num_classes = int(num_classes)
        self.prior_spec = prior_spec
        self.shared_l2norm = bool(shared_l2norm)
        widen_first_conv(backbone, int(in_channels))
        self.in_channels = int(in_channels)
        norm = getattr(backbone, "l2norm", None)
        if isinstance(norm, L2Norm) and not shared_l2norm:
            backbone.l2norm = StreamL2Norm.from_shared(norm, self.k)
        self.backbone = backbone
        self.head = TubeletHead(
            [self.k * c for c in out_channels], priors_per_cell(prior_spec.aspect_ratios), self.num_classes + 1, self.k
        )
        self.register_buffer("priors", generate_priors(prior_spec), persistent=False)

    @property
    def image_size(self) -> int:
        """Side S of the square frames the priors were laid out for."""
        return self.prior_spec.image_size

    def fuse(self, features: list[Tensor], batch: int) -> list[Tensor]:
        """Concatenate the K streams of every source map along channels, frame 0 first.

        Args:
            features: per source map Tensor[B*K, C_s, H_s, W_s] (sample-major frame folding).
            batch: B.

        Returns:
            per source map Tensor[B, K*C_s, H_s, W_s]; channels ``k*C_s .. (k+1)*C_s - 1`` are frame k's.
        """
        return [f.reshape(batch, self.k * f.shape[1], f.shape[2], f.shape[3]) for f in features]

    def forward(self, frames: Tensor) -> dict[str, Tensor]:
        """Raw cuboid predictions.

        Args:
            frames: Tensor[B, K, C, S, S], normalised frames of each sample in temporal order
                (C = ``in_channels``: 3, or a frame's stacked flow images).

        Returns:
            ``loc`` Tensor[B, P, 4K] (per frame the variance-coded (cx, cy, w, h) offsets from the
            cuboid's prior, frame-major) and ``conf`` Tensor[B, P, C + 1] (index 0 = background).
        """
        size = self.prior_spec.image_size
        if (
            frames.dim() != 5
            or frames.shape[1] != self.k
            or frames.shape[2] != self.in_channels
            or frames.shape[-2] != size
            or frames.shape[-1] != size
        ):
            raise ConfigError(
                f"input of shape {tuple(frames.shape)} does not fit this ACT detector: expected "
                f"[B, {self.k}, {self.in_channels}, {size}, {size}] (K={self.k} frames resized to the priors' size)"
            )
        b = frames.shape[0]
        features = self.backbone(frames.flatten(0, 1))
        for s, (f, n) in enumerate(zip(features, self.prior_spec.feature_maps)):
            if f.shape[-2] != n or f.shape[-1] != n:
                raise ConfigError(
                    f"frames of size {tuple(frames.shape[-2:])} give source map {s} of size "
                    f"{tuple(f.shape[-2:])}, but the priors expect {n}x{n}"
                )
        loc, conf = self.head(self.fuse(features, b))
        return {"loc": loc, "conf": conf}

    # ---------------------------------------------------------------- each frame through the trunk once
    def frame_features(self, frames: Tensor) -> FrameFeatures:
        """The trunk's source maps of single frames, to be shared by every window holding them.

        A frame's maps do not depend on the window it sits in, except through the layers that
        differ per stream: the per-stream conv4_3 scales (applied later, by
        :meth:`window_outputs`) and a per-stream fc6 dilation (ACT's released models; the streams
        that compute the same map share one computation, so frames 1..K-1 of those models, whose
        fc6 is a 1x1 convolution on the 18x18 map, cost one extra fc6 and extras, not K-1).

        Args:
            frames: Tensor[N, C, S, S], normalised frames (C = ``in_channels``).

        Returns:
            :class:`FrameFeatures` of the N frames.
        """
        size = (int(frames.shape[-2]), int(frames.shape[-1]))
        if frames.dim() != 4 or frames.shape[1] != self.in_channels or size != (self.image_size,) * 2:
            raise ConfigError(
                f"frames of shape {tuple(frames.shape)} do not fit this ACT detector: expected "
                f"[N, {self.in_channels}, {self.image_size}, {self.image_size}]"
            )
        maps: dict[int, list[Tensor]] = {}
        probe = _StreamProbe()
        first, scaled = _run_as_stream(self.backbone, frames, 0, probe)
        maps[0] = first
        groups = probe.groups(self.k)
        for group in groups[1:]:
            maps[group[0]] = _run_as_stream(self.backbone, frames, group[0], None)[0]
        rep = [next(g[0] for g in groups if k in g) for k in range(self.k)]
        return FrameFeatures(maps, rep, scaled)

    def window_outputs(self, features: FrameFeatures, index: Tensor) -> dict[str, Tensor]:
        """The raw predictions of windows assembled from per-frame maps: the same as :meth:`forward`
        on the windows' frames.

        Args:
            features: :meth:`frame_features` of the frames the windows hold.
            index: Tensor[B, K] int64, per window the rows of ``features`` of its K frames in order.

        Returns:
            ``loc`` Tensor[B, P, 4K] and ``conf`` Tensor[B, P, C + 1] as :meth:`forward`.
        """
        if index.dim() != 2 or index.shape[1] != self.k:
            raise ConfigError(f"window index of shape {tuple(index.shape)}: expected [B, K={self.k}]")
        norm = self.backbone.l2norm if isinstance(getattr(self.backbone, "l2norm", None), StreamL2Norm) else None
        n_sources = len(next(iter(features.maps.values())))
        fused = []
        for s in range(n_sources):
            parts = []
            for k in range(self.k):
                f = features.maps[features.streams[k]][s][index[:, k]]
                if norm is not None and s == features.scaled:
                    f = f * norm.weight[k].view(1, -1, 1, 1)
                parts.append(f)
            fused.append(torch.cat(parts, 1))
        loc, conf = self.head(fused)
        return {"loc": loc, "conf": conf}

    def param_groups(self, lr: float) -> list[dict[str, object]]:
        """Optimizer groups as ACT trains: the shared trunk at ``lr / K``, everything else at ``lr``.

        The K streams add K gradients into every trunk weight, which ACT's Caffe net offsets with
        lr_mult 1/K on the trunk and extras; the per-stream conv4_3 scales and the heads are not
        shared and keep the full rate. Groups without parameters are left out.
        """
        trunk = [
            p for name, p in self.backbone.named_parameters() if p.requires_grad and not name.startswith("l2norm.")
        ]
        trunk_ids = {id(p) for p in trunk}
        rest = [p for p in self.parameters() if p.requires_grad and id(p) not in trunk_ids]
        groups = [{"params": trunk, "lr": lr / self.k}, {"params": rest, "lr": lr}]
        return [g for g in groups if g["params"]]


@dataclass
class FrameFeatures:
    """Per-frame trunk maps (:meth:`ACTDetector.frame_features`).

    Attributes:
        maps: representative stream r -> its source maps Tensor[N, C_s, F_s, F_s] of the N frames
            (the per-stream conv4_3 map L2-normalised, not yet scaled).
        streams: per window position k (K entries) the representative stream whose maps it uses.
        scaled: the index of the source map that the per-stream conv4_3 scales apply to (None: no
            per-stream scale).
    """

    maps: dict[int, list[Tensor]]
    streams: list[int]
    scaled: int | None

    def __len__(self) -> int:
        return int(next(iter(self.maps.values()))[0].shape[0])

    def rows(self, start: int) -> FrameFeatures:
        """The frames from row ``start`` on."""
        return FrameFeatures({r: [f[start:] for f in fs] for r, fs in self.maps.items()}, self.streams, self.scaled)

    def cat(self, later: FrameFeatures) -> FrameFeatures:
        """These frames followed by ``later``'s (features of the same detector)."""
        maps = {r: [torch.cat([a, b]) for a, b in zip(fs, later.maps[r])] for r, fs in self.maps.items()}
        return FrameFeatures(maps, self.streams, self.scaled)


class _StreamProbe:
    """Records, while the trunk runs as stream 0, the input size of each per-stream convolution,
    so the streams that compute the same maps can be grouped."""

    def __init__(self) -> None:
        self.seen: list[tuple[StreamDilatedConv2d, int, int]] = []

    def groups(self, k: int) -> list[list[int]]:
        keys: dict[tuple, list[int]] = {}
        for stream in range(k):
            key = tuple(conv.taps(stream, h, w) for conv, h, w in self.seen)
            keys.setdefault(key, []).append(stream)
        return list(keys.values())


class _AsStream(nn.Module):
    """A per-stream convolution applied to every map as one stream (parameters shared, not copied)."""

    def __init__(self, conv: StreamDilatedConv2d, stream: int, probe: _StreamProbe | None) -> None:
        super().__init__()
        self.__dict__["conv"] = conv  # not a submodule: the view owns no parameters
        self.stream, self.probe = int(stream), probe

    def forward(self, x: Tensor) -> Tensor:
        if self.probe is not None:
            self.probe.seen.append((self.conv, int(x.shape[-2]), int(x.shape[-1])))
        return self.conv.forward_stream(x, self.stream)


class _Unscaled(nn.Module):
    """:class:`StreamL2Norm` without its per-stream scale (the same arithmetic); marks its output."""

    def __init__(self, eps: float, outputs: list[Tensor]) -> None:
        super().__init__()
        self.eps, self.outputs = float(eps), outputs

    def forward(self, x: Tensor) -> Tensor:
        y = x / (x.pow(2).sum(dim=1, keepdim=True).sqrt() + self.eps)
        self.outputs.append(y)
        return y


def _stream_view(module: nn.Module, stream: int, probe: _StreamProbe | None, marks: list[Tensor]) -> nn.Module:
    """``module`` with its per-stream layers replaced by their view as ``stream`` (other layers and all
    parameters shared); ``module`` itself when it holds no per-stream layer."""
    if isinstance(module, StreamDilatedConv2d):
        return _AsStream(module, stream, probe)
    if isinstance(module, StreamL2Norm):
        return _Unscaled(module.eps, marks)
    if not any(isinstance(m, (StreamDilatedConv2d, StreamL2Norm)) for m in module.modules()):
        return module
    clone = copy.copy(module)
    clone.__dict__["_modules"] = {
        name: _stream_view(child, stream, probe, marks) if child is not None else None
        for name, child in module._modules.items()
    }
    return clone


def _run_as_stream(
    backbone: nn.Module, frames: Tensor, stream: int, probe: _StreamProbe | None
) -> tuple[list[Tensor], int | None]:
    """The backbone's source maps of ``frames`` as stream ``stream`` computes them (conv4_3 unscaled),
    and the index of the unscaled source map (None: none)."""
    marks: list[Tensor] = []
    sources = list(_stream_view(backbone, stream, probe, marks)(frames))
    scaled = next((i for i, f in enumerate(sources) for m in marks if f is m), None)
    return sources, scaled


@register_model("act_vgg16", task="action", family="act")
def act_vgg16(
    num_classes: int,
    k: int = 6,
    pool5: str = "2x2s1",
    shared_l2norm: bool = False,
    fc6_dilations: Sequence[int] | None = None,
    in_channels: int = 3,
) -> ACTDetector:
    """ACT's VGG16-SSD300 tubelet detector.

    Args:
        num_classes: action classes C, background excluded.
        k: frames per tubelet (6 in ACT; 8 also published).
        pool5: ``"2x2s1"`` (ACT's released prototxt: 2x2 stride 1, 18x18 fc7, 8396 cuboids) or
            ``"3x3s1p1"`` (SSD300's: 19x19 fc7, 8732 cuboids, so SSD300 weights line up map for map).
        shared_l2norm: one conv4_3 scale for all streams instead of ACT's K.
        fc6_dilations: K dilations of fc6, one per stream (ACT's released models: 6·6^k, see
            :mod:`singleshot.models.stream_conv`); None: 6 for every stream.
        in_channels: per-frame input channels: 3 (RGB) or 15 (ACT's FLOW5 flow stream).

    The trunk layers are those of :class:`~singleshot.models.vgg.VGGBackbone` (conv layers at
    torchvision's vgg16 indices, decimated fc6/fc7, extras conv6_1 … conv9_2 as ACT names them).
    """
    backbone = VGGBackbone(EXTRAS_300)
    if pool5 == "2x2s1":
        backbone.vgg[_POOL5_INDEX] = nn.MaxPool2d(kernel_size=2, stride=1)
        spec = ACT_PRIORS_2X2
    elif pool5 == "3x3s1p1":
        spec = ACT_PRIORS_3X3
    else:
        raise ConfigError(f"unknown pool5 {pool5!r} for act_vgg16; choose one of {list(POOL5_VARIANTS)}")
    if fc6_dilations is not None:
        if len(fc6_dilations) != k:
            raise ConfigError(f"fc6_dilations has {len(fc6_dilations)} values for K={k} streams")
        old = backbone.vgg[FC6_INDEX]
        fc6 = StreamDilatedConv2d(old.in_channels, old.out_channels, fc6_dilations)
        fc6.load_state_dict(old.state_dict())
        backbone.vgg[FC6_INDEX] = fc6
    return ACTDetector(backbone, k, num_classes, spec, shared_l2norm=shared_l2norm, in_channels=in_channels)


@register_model("act_tiny", task="action", family="act")
def act_tiny(
    num_classes: int, k: int = 6, image_size: int = 128, width: float = 1.0, in_channels: int = 3
) -> ACTDetector:
    """ACT on the tiny SSD trunk (:func:`~singleshot.models.tiny.ssd_tiny`'s backbone and priors), for CPU work.

    The trunk is BatchNorm based and has no conv4_3 L2 norm, so there are no per-stream scales.
    ``in_channels``: per-frame input channels (3n for n stacked flow images).
    """
    ssd = ssd_tiny(num_classes, image_size=image_size, width=width)
    return ACTDetector(ssd.backbone, k, num_classes, ssd.prior_spec, in_channels=in_channels)


@register_model("act_slim", task="action", family="act")
def act_slim(
    num_classes: int, k: int = 6, image_size: int = 160, width: float = 1.0, in_channels: int = 3
) -> ACTDetector:
    """ACT on the slim SSD trunk (:func:`~singleshot.models.small.ssd_slim`'s backbone and priors);
    ``in_channels`` as :func:`act_tiny`'s."""
    ssd = ssd_slim(num_classes, image_size=image_size, width=width)
    return ACTDetector(ssd.backbone, k, num_classes, ssd.prior_spec, in_channels=in_channels)
