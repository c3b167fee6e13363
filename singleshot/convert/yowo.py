"""wei-tim/YOWO checkpoints and Kinetics-pretrained 3D backbones -> singleshot YOWO.

YOWO's training script saves ``{"epoch", "state_dict", "optimizer", "fscore"}`` (later versions:
``"score"``) with the model wrapped in ``nn.DataParallel``, so every key starts with ``module.``.
Under that prefix the names are those of ``singleshot.models.yowo.YOWO``: ``backbone_3d.*`` (the 3D
ResNeXt / ResNet / ShuffleNetV2 of kenshohara / okankop), ``backbone_2d.models.{i}.conv{n}`` /
``bn{n}`` (YOLOv2 Darknet), ``cfam.*`` and ``conv_final.weight``. The converter strips the prefix,
checks that every key belongs to one of those parts, adds ``num_batches_tracked`` counters missing
from files of old PyTorch versions, and infers the architecture from the keys and shapes.

Kinetics files (kenshohara 3D-ResNets-PyTorch, okankop Efficient-3DCNNs) are ``{"epoch", "arch",
"state_dict", "optimizer"}`` with ``module.`` keys such as ``module.conv1.weight``,
``module.layer1.0.conv1.weight`` plus a classifier (``fc.*`` or ``classifier.*``), which is dropped.

Input YOWO's UCF101-24 / J-HMDB-21 models expect: PIL RGB frames resized to 224x224, ``ToTensor``
only (0..1, no mean/std), the clip ending at the key frame; decoding uses conf 0.005 and NMS 0.4.
Files are read with ``torch.load(weights_only=True)`` (``as_state_dict`` ->
:func:`singleshot.engine.weights.load_foreign_pth`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from singleshot.convert._common import ConvertedWeights, as_state_dict, load_strict
from singleshot.data.action.readers import JHMDB_CLASSES, UCF24_CLASSES
from singleshot.errors import WeightsError
from singleshot.models.backbones3d_shufflenet import SHUFFLENETV2_CHANNELS
from singleshot.models.yowo import JHMDB21_ANCHORS, UCF24_ANCHORS, YOWO, yowo

logger = logging.getLogger(__name__)

__all__ = [
    "convert_kinetics_3d",
    "convert_yowo_checkpoint",
    "infer_backbone3d",
    "load_kinetics_3d",
    "load_yowo_checkpoint",
]

Source = str | Path | Mapping[str, Any]

_PARTS = ("backbone_3d.", "backbone_2d.", "cfam.", "conv_final.")
_CLASSIFIER = re.compile(r"^(fc|classifier)\.")
YOWO_NUM_ANCHORS = 5


def _add_bn_counters(sd: dict[str, Tensor]) -> int:
    """Add a zero ``num_batches_tracked`` next to every ``running_mean`` that lacks one; returns how many."""
    added = 0
    for key in [k for k in sd if k.endswith(".running_mean")]:
        counter = key[: -len("running_mean")] + "num_batches_tracked"
        if counter not in sd:
            sd[counter] = torch.zeros((), dtype=torch.long)
            added += 1
    return added


def _blocks(sd: Mapping[str, Tensor], prefix: str, layer: int) -> int:
    pat = re.compile(rf"^{re.escape(prefix)}layer{layer}\.(\d+)\.")
    return len({int(m[1]) for k in sd if (m := pat.match(k))})


def infer_backbone3d(
    sd: Mapping[str, Tensor], prefix: str = "", source: str = "<state dict>"
) -> tuple[str, dict[str, Any]]:
    """The ``build_backbone3d`` name and arguments whose weights have the keys and shapes of ``sd``.

    Raises:
        WeightsError: the keys match none of the supported 3D backbones.
    """
    p = prefix
    if f"{p}features.0.banch1.0.weight" in sd:
        stage2 = 2 * sd[f"{p}features.0.banch1.2.weight"].shape[0]
        last = sd[f"{p}conv_last.0.weight"].shape[0] if f"{p}conv_last.0.weight" in sd else -1
        for mult, ch in SHUFFLENETV2_CHANNELS.items():
            if ch[1] == stage2 and ch[4] == last:
                return "shufflenetv2", {"width_mult": mult}
        raise WeightsError(
            f"{source}: ShuffleNetV2 keys with stage-2 width {stage2} and {last} output channels match no width multiplier"
        )
    layers = tuple(_blocks(sd, p, i) for i in range(1, 5))
    stem = sd.get(f"{p}conv1.weight")
    if stem is None or stem.dim() != 5 or min(layers) == 0:
        raise WeightsError(
            f"{source}: no 3D backbone found under {p or 'the top level'!r} (need conv1 and layer1..layer4)"
        )
    if f"{p}layer1.0.conv3.weight" in sd:
        conv2 = sd[f"{p}layer1.0.conv2.weight"]
        cardinality = conv2.shape[0] // conv2.shape[1]
        if cardinality == 1:
            raise WeightsError(f"{source}: 3D ResNets with plain bottlenecks (ResNet-50/101) are not supported")
        planes = tuple(sd[f"{p}layer{i}.0.conv3.weight"].shape[0] // 2 for i in range(1, 5))
        if layers == (3, 4, 23, 3) and cardinality == 32 and planes == (128, 256, 512, 1024):
            return "resnext101", {}
        return "resnext", {"layers": list(layers), "cardinality": cardinality, "planes": list(planes)}
    width = stem.shape[0]
    if tuple(stem.shape[2:]) == (7, 7, 7) and layers == (2, 2, 2, 2):
        shortcut = "B" if f"{p}layer2.0.downsample.0.weight" in sd else "A"
        return "resnet18", {"width": width / 64, "shortcut": shortcut}
    if tuple(stem.shape[2:]) == (3, 7, 7) and len(set(layers)) == 1:
        return "tiny3d", {"width": width, "blocks": layers[0]}
    raise WeightsError(
        f"{source}: 3D ResNet with stem {tuple(stem.shape)} and blocks {layers} is not a supported backbone"
    )


def _infer_backbone2d(sd: Mapping[str, Tensor], source: str) -> tuple[str, dict[str, Any]]:
    if "backbone_2d.models.30.conv23.weight" in sd:
        return "darknet19", {"num_outputs": sd["backbone_2d.models.30.conv23.weight"].shape[0]}
    if "backbone_2d.models.10.conv6.weight" in sd and "backbone_2d.models.11.conv7.weight" not in sd:
        first = sd["backbone_2d.models.0.conv1.weight"].shape[0]
        return "tiny2d", {"width": first, "out_channels": sd["backbone_2d.models.10.conv6.weight"].shape[0]}
    raise WeightsError(f"{source}: backbone_2d keys match neither YOLOv2 Darknet-19 (models.30.conv23) nor tiny2d")


def convert_yowo_checkpoint(
    source: Source, clip_len: int = 16, anchors: list[list[float]] | None = None
) -> ConvertedWeights:
    """Rename a YOWO checkpoint into singleshot's ``YOWO`` layout and describe its architecture.

    Args:
        source: path to a YOWO ``.pth`` or the loaded checkpoint / state dict.
        clip_len: frames per clip the checkpoint was trained with (not stored in the file; YOWO's
            UCF101-24 recipe uses 16).
        anchors: override the anchors; default YOWO's J-HMDB-21 anchors for 21 classes, else UCF101-24's.

    Returns:
        ``ConvertedWeights`` whose ``metadata`` has ``architecture="yowo"``, ``num_classes`` and
        ``arch_kwargs`` (``yowo(num_classes, **arch_kwargs)`` rebuilds the model: ``backbone3d``,
        ``backbone2d``, ``clip_len``, ``anchors``, ``cfam_channels`` and the backbones' arguments),
        plus ``classes`` and YOWO's pre/post-processing.

    Raises:
        WeightsError: a key belongs to no part of YOWO, or the architecture is not recognised.
    """
    sd, name = as_state_dict(source)
    stray = [k for k in sd if not k.startswith(_PARTS)]
    if stray:
        raise WeightsError(f"{name}: {len(stray)} keys are not part of a YOWO model, first {stray[:5]}")
    if "conv_final.weight" not in sd or "cfam.conv_bn_relu1.0.weight" not in sd:
        raise WeightsError(f"{name}: missing key 'conv_final.weight' or 'cfam.conv_bn_relu1.0.weight'")
    out = dict(sd)
    added = _add_bn_counters(out)
    if added:
        logger.info("%s: added %d BatchNorm num_batches_tracked counters (older PyTorch file)", name, added)
    b3, b3_kwargs = infer_backbone3d(sd, "backbone_3d.", name)
    b2, b2_kwargs = _infer_backbone2d(sd, name)
    outputs = sd["conv_final.weight"].shape[0]
    if outputs % YOWO_NUM_ANCHORS or outputs // YOWO_NUM_ANCHORS <= 5:
        raise WeightsError(f"{name}: 'conv_final.weight' has {outputs} outputs, not 5 anchors x (5 + classes)")
    num_classes = outputs // YOWO_NUM_ANCHORS - 5
    if anchors is None:
        anchors = [list(a) for a in (JHMDB21_ANCHORS if num_classes == 21 else UCF24_ANCHORS)]
    classes = {24: UCF24_CLASSES, 21: JHMDB_CLASSES}.get(num_classes, tuple(f"class_{i}" for i in range(num_classes)))
    arch_kwargs: dict[str, Any] = {
        "backbone3d": b3,
        "backbone2d": b2,
        "clip_len": clip_len,
        "anchors": anchors,
        "cfam_channels": sd["cfam.conv_bn_relu1.0.weight"].shape[0],
        "backbone3d_kwargs": b3_kwargs,
        "backbone2d_kwargs": b2_kwargs,
    }
    meta: dict[str, Any] = {
        "source": "wei-tim/YOWO checkpoint",
        "architecture": "yowo",
        "arch_kwargs": arch_kwargs,
        "num_classes": num_classes,
        "classes": list(classes),
        "clip_len": clip_len,
        "input_size": [224, 224],
        "channel_order": "RGB",
        "mean": [0.0, 0.0, 0.0],
        "std": [1.0, 1.0, 1.0],
        "normalisation": "frames resized to 224x224, pixels in 0..1 (ToTensor), no mean/std",
        "output": "per anchor raw (tx, ty, tw, th, conf, class logits)",
        "postprocess": {"conf_thresh": 0.005, "nms_thresh": 0.4},
    }
    return ConvertedWeights(out, meta, {}, name)


def load_yowo_checkpoint(
    source: Source, clip_len: int = 16, anchors: list[list[float]] | None = None
) -> tuple[YOWO, dict[str, Any]]:
    """Build the matching ``yowo(...)`` and load a YOWO checkpoint into it strictly.

    Returns:
        (model in eval mode, metadata of ``convert_yowo_checkpoint``).

    Raises:
        WeightsError: missing, unexpected or mis-shaped weights (the key is named).
    """
    converted = convert_yowo_checkpoint(source, clip_len, anchors)
    meta = converted.metadata
    model = yowo(meta["num_classes"], **meta["arch_kwargs"])
    load_strict(model, converted.state_dict, converted.source, converted.origin)
    return model.eval(), meta


def convert_kinetics_3d(source: Source) -> ConvertedWeights:
    """A Kinetics-pretrained 3D backbone file -> the state dict of the matching singleshot backbone.

    The classifier (``fc.*`` / ``classifier.*``) is dropped; missing ``num_batches_tracked`` counters
    are added. ``metadata`` holds ``backbone3d`` and ``backbone3d_kwargs`` for ``build_backbone3d`` and
    ``kinetics_classes`` (the dropped classifier's outputs, when present).

    Raises:
        WeightsError: the keys match no supported 3D backbone.
    """
    sd, name = as_state_dict(source)
    dropped = sorted(k for k in sd if _CLASSIFIER.match(k))
    out = {k: v for k, v in sd.items() if not _CLASSIFIER.match(k)}
    if dropped:
        logger.info("%s: dropped the Kinetics classifier %s", name, dropped)
    b3, kwargs = infer_backbone3d(out, "", name)
    _add_bn_counters(out)
    classes = next((sd[k].shape[0] for k in dropped if k.endswith("weight")), None)
    meta = {
        "source": "Kinetics-pretrained 3D backbone",
        "backbone3d": b3,
        "backbone3d_kwargs": kwargs,
        "kinetics_classes": classes,
        "dropped": dropped,
    }
    return ConvertedWeights(out, meta, {}, name)


def load_kinetics_3d(backbone: nn.Module, source: Source) -> ConvertedWeights:
    """Load a Kinetics-pretrained file into ``backbone`` (e.g. ``model.backbone_3d``) strictly.

    Raises:
        WeightsError: missing, unexpected or mis-shaped weights (the key is named).
    """
    converted = convert_kinetics_3d(source)
    load_strict(backbone, converted.state_dict, converted.source, converted.origin)
    return converted
