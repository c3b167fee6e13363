"""PSPNet grasp network: a dilated torchvision ResNet trunk, a pyramid pooling module, four grasp maps.

Layout (Zhao et al., PSPNet, adapted to the four GG-CNN maps):

* ``adapter``: a learned 1×1 conv without bias from the input channels to the 3 channels the ResNet
  stem expects (present whenever ``in_channels != 3``; a depth image enters as 1 → 3). Its input
  is the grasp normalisation (:mod:`singleshot.data.grasp.depth`): depth minus its mean, clipped to
  [-1, 1] (RGB: / 255 minus its mean) — not ImageNet's mean/std, so with an ImageNet trunk the
  adapter (randomly initialised) learns the map into what the stem expects. Weights of older
  singleshot PSP nets, whose adapter had a bias, still load: the adapter is rebuilt with a bias
  when such a state dict is loaded, and the outputs are the old ones.
* ``trunk``: a torchvision ResNet-18/50/101 (``weights=None``; nothing is downloaded) whose layer3
  and layer4 have their strides replaced by dilations 2 and 4 (every block of the layer, as in the
  original PSPNet), for an output stride of 8. :func:`load_imagenet_trunk` fills it from a local
  torchvision ImageNet state dict (``grasp train pretrained=``); dilation keeps every weight's shape.
* ``ppm``: pyramid pooling over bins (1, 2, 3, 6): adaptive average pooling, 1×1 conv to
  C/len(bins) channels, BN, ReLU, bilinear up-sampling, concatenated with the layer4 features.
* ``head``: 3×3 conv → BN → ReLU → dropout → 1×1 conv to the four maps, up-sampled bilinearly to the
  input size.
* ``aux_head`` (only when built with ``aux=True``): the same head on layer3, returned as the extra
  keys ``"aux_pos"``, ``"aux_cos"``, ``"aux_sin"``, ``"aux_width"``. The model returns them in train
  and eval mode alike; :class:`singleshot.losses.grasp.GraspLoss` weighs them in training only and
  :func:`strip_aux` drops their weights for export.

``forward(x)`` with x Tensor[B, C, H, W] returns a dict of Tensor[B, 1, H, W] (raw, no activation).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
import torchvision
from safetensors import SafetensorError
from safetensors.torch import load_file as load_safetensors_file
from torch import Tensor, nn

from singleshot.engine.weights import load_foreign_pth, unwrap_state_dict
from singleshot.errors import ConfigError, WeightsError
from singleshot.models.ggcnn import MAP_KEYS, grasp_kwargs_from_meta
from singleshot.models.registry import register_model

logger = logging.getLogger(__name__)

__all__ = [
    "AUX_PREFIX",
    "PSPGrasp",
    "PyramidPooling",
    "load_imagenet_trunk",
    "resnet_layout",
    "psp_grasp_resnet18",
    "psp_grasp_resnet50",
    "psp_grasp_resnet101",
    "strip_aux",
]

AUX_PREFIX = "aux_head."
"""State-dict prefix of the auxiliary head's parameters."""

_TRUNKS = {
    "resnet18": (torchvision.models.resnet18, 256, 512),
    "resnet50": (torchvision.models.resnet50, 1024, 2048),
    "resnet101": (torchvision.models.resnet101, 1024, 2048),
}


def _dilate(layer: nn.Module, dilation: int) -> None:
    """Turn a strided ResNet layer into a dilated one in place: every conv gets stride 1 and every
    3×3 conv gets ``dilation`` (and the matching padding), which keeps the resolution and the
    receptive field growth. Works for BasicBlock and Bottleneck layers."""
    for m in layer.modules():
        if isinstance(m, nn.Conv2d):
            m.stride = (1, 1)
            if m.kernel_size == (3, 3):
                m.dilation = (dilation, dilation)
                m.padding = (dilation, dilation)


class PyramidPooling(nn.Module):
    """Pyramid pooling module: Tensor[B, C, h, w] → Tensor[B, C + len(bins)·(C // len(bins)), h, w].

    Args:
        channels: input channels C.
        bins: output sizes of the adaptive average pools.
    """

    def __init__(self, channels: int, bins: Sequence[int] = (1, 2, 3, 6)) -> None:
        super().__init__()
        reduced = channels // len(bins)
        self.bins = tuple(int(b) for b in bins)
        self.stages = nn.ModuleList(
            nn.Sequential(
                nn.AdaptiveAvgPool2d(b),
                nn.Conv2d(channels, reduced, 1, bias=False),
                nn.BatchNorm2d(reduced),
                nn.ReLU(inplace=True),
            )
            for b in self.bins
        )
        self.out_channels = channels + reduced * len(self.bins)

    def forward(self, x: Tensor) -> Tensor:
        size = x.shape[-2:]
        pooled = [F.interpolate(s(x), size=size, mode="bilinear", align_corners=False) for s in self.stages]
        return torch.cat([x, *pooled], dim=1)


def _head(in_channels: int, mid_channels: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, mid_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(mid_channels),
        nn.ReLU(inplace=True),
        nn.Dropout2d(dropout),
        nn.Conv2d(mid_channels, len(MAP_KEYS), 1),
    )


class PSPGrasp(nn.Module):
    """PSPNet grasp network (see the module docstring).

    Args:
        backbone: ``"resnet18"``, ``"resnet50"`` or ``"resnet101"``.
        in_channels: input channels (1 depth, 3 RGB, 4 RGB-D).
        aux: build the auxiliary head on layer3.
        bins: pyramid pooling bins.
        head_channels: channels of the 3×3 conv of the heads (default 512, 128 for ResNet-18).
        dropout: dropout rate of the heads.
    """

    def __init__(
        self,
        backbone: str = "resnet50",
        in_channels: int = 1,
        aux: bool = False,
        bins: Sequence[int] = (1, 2, 3, 6),
        head_channels: int | None = None,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if backbone not in _TRUNKS:
            raise ConfigError(f"unknown PSPNet grasp backbone {backbone!r}; valid: {', '.join(_TRUNKS)}")
        if in_channels < 1:
            raise ConfigError(f"in_channels must be >= 1, got {in_channels}")
        builder, c3, c4 = _TRUNKS[backbone]
        self.backbone = backbone
        self.in_channels = in_channels
        self.aux = aux
        mid = head_channels if head_channels is not None else (128 if backbone == "resnet18" else 512)
        self.adapter: nn.Module = nn.Conv2d(in_channels, 3, 1, bias=False) if in_channels != 3 else nn.Identity()
        trunk = builder(weights=None)
        _dilate(trunk.layer3, 2)
        _dilate(trunk.layer4, 4)
        del trunk.fc  # the classifier is unused; keep it out of the state dict
        self.trunk = trunk
        self.ppm = PyramidPooling(c4, bins)
        self.head = _head(self.ppm.out_channels, mid, dropout)
        self.aux_head: nn.Module | None = _head(c3, mid // 2, dropout) if aux else None
        self.register_load_state_dict_pre_hook(_legacy_adapter_bias)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """x: Tensor[B, C, H, W] → ``{"pos", "cos", "sin", "width"}`` (and ``"aux_*"`` when built
        with ``aux=True``), each Tensor[B, 1, H, W]."""
        size = (x.shape[-2], x.shape[-1])
        t = self.trunk
        x = self.adapter(x)
        x = t.maxpool(t.relu(t.bn1(t.conv1(x))))
        c3 = t.layer3(t.layer2(t.layer1(x)))
        c4 = t.layer4(c3)
        out = self._maps(self.head(self.ppm(c4)), size, "")
        if self.aux_head is not None:
            out.update(self._maps(self.aux_head(c3), size, "aux_"))
        return out

    @staticmethod
    def _maps(y: Tensor, size: tuple[int, int], prefix: str) -> dict[str, Tensor]:
        y = F.interpolate(y, size=size, mode="bilinear", align_corners=False)
        return {prefix + k: y[:, i : i + 1] for i, k in enumerate(MAP_KEYS)}

    def drop_aux(self) -> PSPGrasp:
        """Remove the auxiliary head in place (for export); returns self."""
        self.aux_head = None
        self.aux = False
        return self


# ---------------------------------------------------------------- ImageNet trunk
_RESNET_LAYOUTS = {
    ((2, 2, 2, 2), False): "resnet18",
    ((3, 4, 6, 3), False): "resnet34",
    ((3, 4, 6, 3), True): "resnet50",
    ((3, 4, 23, 3), True): "resnet101",
    ((3, 8, 36, 3), True): "resnet152",
}
_BLOCK_KEY = re.compile(r"^layer([1-4])\.(\d+)\.")


def _read_state(path: Path) -> dict[str, Tensor]:
    """The tensors of a ``.safetensors`` file, or of a ``.pth``/``.pt`` pickle read without running
    code (:func:`~singleshot.engine.weights.load_foreign_pth`); wrappers and ``module.`` stripped."""
    if path.suffix != ".safetensors":
        return load_foreign_pth(path)
    if not path.is_file():
        raise WeightsError(f"{path}: weights file not found")
    try:
        state = load_safetensors_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise WeightsError(f"{path}: not a readable safetensors file ({exc})") from exc
    return unwrap_state_dict(state, str(path))


def resnet_layout(state: Mapping[str, Tensor]) -> str | None:
    """The torchvision ResNet a state dict holds, from its blocks per layer and block type
    (``"resnet18"`` … ``"resnet152"``), ``"deep-stem"`` for a three-conv stem (``conv2``/``conv3``
    at the top level, as hszhao/semseg's ``resnet*_v2`` files), None when it is no ResNet."""
    if "conv2.weight" in state or "conv3.weight" in state:
        return "deep-stem"
    if "conv1.weight" not in state:
        return None
    blocks = [0, 0, 0, 0]
    for key in state:
        m = _BLOCK_KEY.match(key)
        if m:
            layer, index = int(m.group(1)) - 1, int(m.group(2))
            blocks[layer] = max(blocks[layer], index + 1)
    return _RESNET_LAYOUTS.get((tuple(blocks), "layer1.0.conv3.weight" in state), f"ResNet with blocks {blocks}")


def load_imagenet_trunk(model: PSPGrasp, source: str | Path) -> dict[str, str]:
    """Fill ``model.trunk`` (in place) with a torchvision ImageNet ResNet state dict.

    The file is a ``torchvision.models.resnet50()`` (or 18/101, matching ``model.backbone``)
    ``state_dict()`` saved with ``torch.save`` (read with ``torch.load(weights_only=True)``) or as
    ``.safetensors``. Loading is strict: every trunk tensor must be in the file with the trunk's
    shape (dilating layer3/4 changes no shape); the classifier ``fc.*`` is ignored;
    ``num_batches_tracked`` counters may be absent (files older than PyTorch 0.4.1). The adapter,
    pyramid pooling and heads keep their initialisation.

    Deep-stem ResNets (three 3×3 stem convs and 128 channels into layer1, e.g. hszhao/semseg's
    ``resnet50_v2.pth``) are not accepted: the trunk is torchvision's, with one 7×7 stem conv and
    64 channels into layer1, so neither the stem nor layer1's first block would fit.

    Returns:
        The trunk's origin for the weights metadata: ``{"file": file name, "kind": "torchvision resnet50"}``.

    Raises:
        WeightsError: unreadable or unsafe file, another depth, a deep stem, or a missing,
            unexpected or mis-shaped tensor; the message names the file and the first such key.
    """
    path = Path(source)
    state = _read_state(path)
    want = model.backbone
    layout = resnet_layout(state)
    if layout == "deep-stem":
        raise WeightsError(
            f"{path}: a deep-stem ResNet (stem convs conv1, conv2, conv3 as in hszhao/semseg's resnet*_v2 "
            "files) is not accepted: the PSP grasp trunk is torchvision's ResNet (one 7x7 stem conv, 64 "
            f"channels into layer1); pass torchvision's {want} ImageNet state dict"
        )
    if layout is None:
        raise WeightsError(
            f"{path}: not a torchvision ResNet state dict (no 'conv1.weight'); first keys {list(state)[:5]}"
        )
    if layout != want:
        raise WeightsError(
            f"{path}: holds a {layout} state dict, the model's trunk is a {want}: pass torchvision's "
            f"{want} weights or train model=psp_{layout}"
        )
    expected = model.trunk.state_dict()
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    if missing:
        raise WeightsError(f"{path}: no tensor for {len(missing)} trunk keys, first {missing[0]!r}")
    unexpected = [k for k in state if k not in expected and not k.startswith("fc.")]
    if unexpected:
        raise WeightsError(f"{path}: {len(unexpected)} keys a {want} trunk does not have, first {unexpected[0]!r}")
    loaded: dict[str, Tensor] = {}
    for key, ref in expected.items():
        got = state.get(key, ref)
        if tuple(got.shape) != tuple(ref.shape):
            raise WeightsError(
                f"{path}: {key!r} has shape {tuple(got.shape)}, the {want} trunk expects {tuple(ref.shape)}"
            )
        loaded[key] = got.to(ref.dtype)
    model.trunk.load_state_dict(loaded, strict=True)
    logger.info("%s: ImageNet %s trunk loaded (%d tensors; fc ignored)", path, want, len(loaded))
    return {"file": path.name, "kind": f"torchvision {want}"}


def _legacy_adapter_bias(module: nn.Module, state_dict: Mapping[str, Tensor], prefix: str, *args: Any) -> None:
    """Load-time hook of :class:`PSPGrasp`: weights written before the adapter lost its bias carry
    ``adapter.bias``; the adapter is rebuilt with a bias (before its tensors are read) so that they
    load strictly and give their old outputs."""
    adapter = getattr(module, "adapter", None)
    if isinstance(adapter, nn.Conv2d) and adapter.bias is None and f"{prefix}adapter.bias" in state_dict:
        logger.info("older PSP grasp weights: the 1x1 input adapter keeps its bias")
        biased = nn.Conv2d(adapter.in_channels, adapter.out_channels, 1, bias=True)
        module.adapter = biased.to(device=adapter.weight.device, dtype=adapter.weight.dtype)


def strip_aux(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """A copy of ``state_dict`` without the auxiliary head's entries (keys containing ``aux_head.``
    at the start or after a ``module.``-style prefix), for export of a model built with
    ``aux=True`` into one built with ``aux=False``."""
    return {k: v for k, v in state_dict.items() if not (k.startswith(AUX_PREFIX) or f".{AUX_PREFIX}" in k)}


@register_model("psp_resnet18", task="grasp", family="psp", from_meta=grasp_kwargs_from_meta)
def psp_grasp_resnet18(in_channels: int = 1, aux: bool = False, **kwargs: object) -> PSPGrasp:
    """PSPNet grasp net on a dilated ResNet-18 (small; for CPU runs and tests)."""
    return PSPGrasp("resnet18", in_channels, aux, **kwargs)  # type: ignore[arg-type]


@register_model("psp_resnet50", task="grasp", family="psp", from_meta=grasp_kwargs_from_meta)
def psp_grasp_resnet50(in_channels: int = 1, aux: bool = False, **kwargs: object) -> PSPGrasp:
    """PSPNet grasp net on a dilated ResNet-50 (the distillation student)."""
    return PSPGrasp("resnet50", in_channels, aux, **kwargs)  # type: ignore[arg-type]


@register_model("psp_resnet101", task="grasp", family="psp", from_meta=grasp_kwargs_from_meta)
def psp_grasp_resnet101(in_channels: int = 1, aux: bool = False, **kwargs: object) -> PSPGrasp:
    """PSPNet grasp net on a dilated ResNet-101 (the distillation teacher)."""
    return PSPGrasp("resnet101", in_channels, aux, **kwargs)  # type: ignore[arg-type]
