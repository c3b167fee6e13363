"""torchvision ``ssd300_vgg16`` weights -> singleshot ``ssd300(num_classes=90, priors="coco")``.

Key mapping (torchvision -> ours):

* ``backbone.features.{i}`` (conv1_1 .. conv4_3, i <= 21) -> ``backbone.vgg.{i}``
* ``backbone.scale_weight`` -> ``backbone.l2norm.weight``
* ``backbone.extra.0.{1,3,5}`` (conv5_1..3) -> ``backbone.vgg.{24,26,28}``;
  ``backbone.extra.0.7.1`` (fc6) -> ``backbone.vgg.31``; ``backbone.extra.0.7.3`` (fc7) -> ``backbone.vgg.33``
* ``backbone.extra.{k}.{0,2}`` (k = 1..4) -> ``backbone.extras.{k-1}.{0,2}``
* ``head.regression_head.module_list.{i}`` -> ``head.loc.{i}``;
  ``head.classification_head.module_list.{i}`` -> ``head.conf.{i}``

Both heads lay out channels as ``anchor * columns + column`` and flatten cells row-major, and both
prior generators use the same order, so the head weights are copied unchanged. torchvision's 91
logits are background (0) plus the COCO category ids 1..90 (ids without a category are ``N/A``);
we keep them as 90 classes, so our 0-based label ``j`` is COCO category id ``j + 1``.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable
from typing import Any

from singleshot.convert._common import ConvertedWeights, StateSource, as_state_dict, load_strict, rename_keys, require
from singleshot.data.input_spec import resize_meta
from singleshot.errors import WeightsError
from singleshot.models.ssd import SSD, ssd300

logger = logging.getLogger(__name__)

#: torchvision's SSD300 input normalisation, in 0..1 pixel units: (x - mean) / std with std = 1/255,
#: i.e. the network sees 0..255 RGB values minus (123, 117, 104).
TV_MEAN = (0.48235, 0.45882, 0.40784)
TV_STD = (1.0 / 255.0, 1.0 / 255.0, 1.0 / 255.0)

_EXTRA0 = {"1": "24", "3": "26", "5": "28", "7.1": "31", "7.3": "33"}
_PATTERNS: list[tuple[re.Pattern[str], Callable[[re.Match[str]], str | None]]] = [
    (re.compile(r"backbone\.features\.(\d+)\.(weight|bias)"), lambda m: f"backbone.vgg.{m[1]}.{m[2]}"),
    (re.compile(r"backbone\.scale_weight"), lambda m: "backbone.l2norm.weight"),
    (
        re.compile(r"backbone\.extra\.0\.(\d+(?:\.\d+)?)\.(weight|bias)"),
        lambda m: f"backbone.vgg.{_EXTRA0[m[1]]}.{m[2]}" if m[1] in _EXTRA0 else None,
    ),
    (
        re.compile(r"backbone\.extra\.([1-9]\d*)\.(\d+)\.(weight|bias)"),
        lambda m: f"backbone.extras.{int(m[1]) - 1}.{m[2]}.{m[3]}",
    ),
    (re.compile(r"head\.regression_head\.module_list\.(\d+)\.(weight|bias)"), lambda m: f"head.loc.{m[1]}.{m[2]}"),
    (
        re.compile(r"head\.classification_head\.module_list\.(\d+)\.(weight|bias)"),
        lambda m: f"head.conf.{m[1]}.{m[2]}",
    ),
]


def map_key(key: str) -> str | None:
    """Our key for a torchvision ``ssd300_vgg16`` key, or None if it has no counterpart."""
    for pattern, target in _PATTERNS:
        m = pattern.fullmatch(key)
        if m:
            return target(m)
    return None


def coco_category_names() -> list[str]:
    """torchvision's 91 COCO names (``__background__`` first, ``N/A`` for unused ids), from its weights enum."""
    from torchvision.models.detection import SSD300_VGG16_Weights

    return list(SSD300_VGG16_Weights.COCO_V1.meta["categories"])


def torchvision_metadata(num_logits: int) -> dict[str, Any]:
    """What reproduces torchvision's ``SSD.forward`` in eval mode (pre-processing and post-processing)."""
    names = coco_category_names()
    classes = names[1:] if num_logits == len(names) else [f"class_{i}" for i in range(1, num_logits)]
    return {
        "source": "torchvision.models.detection.ssd300_vgg16",
        "architecture": "ssd300",
        "priors": "coco300",
        "num_classes": num_logits - 1,
        "classes": classes,
        "category_ids": list(range(1, num_logits)),
        "background_index": 0,
        "input_size": [300, 300],
        "resize": resize_meta(False),  # GeneralizedRCNNTransform: F.interpolate bilinear, no antialias
        "resize_note": "bilinear (align_corners=False, no antialias) to exactly 300x300, aspect ratio not kept",
        "channel_order": "RGB",
        "mean": list(TV_MEAN),
        "std": list(TV_STD),
        "normalisation": "pixels in 0..1, x' = (x - mean) / std (= 0..255 RGB minus 123, 117, 104)",
        "postprocess": {
            "score_thresh": 0.01,
            "nms_thresh": 0.45,
            "topk_candidates": 400,
            "detections_per_img": 200,
            "per_class_nms": True,
            "variances": [0.1, 0.2],
            "decode_clamp": math.log(1000.0 / 16),
            "clip_to_image": True,
        },
    }


def convert_torchvision_ssd300(source: StateSource) -> ConvertedWeights:
    """Rename a torchvision ``ssd300_vgg16`` state dict into singleshot's SSD300 layout.

    Args:
        source: path to a ``.pth`` state dict (read with ``torch.load(weights_only=True)``) or the dict.

    Returns:
        ``ConvertedWeights`` for ``ssd300(num_logits - 1, priors="coco")`` and torchvision's metadata.

    Raises:
        WeightsError: a key has no counterpart or the class head is malformed (the key is named).
    """
    sd, name = as_state_dict(source)
    out, origin = rename_keys(sd, map_key, name, "torchvision's ssd300_vgg16")
    cls0 = require(sd, "head.classification_head.module_list.0.weight", name, ndim=4)
    if cls0.shape[0] % 4:
        raise WeightsError(
            f"{name}: 'head.classification_head.module_list.0.weight' has {cls0.shape[0]} outputs, "
            "not a multiple of the 4 priors per cell of conv4_3"
        )
    num_logits = cls0.shape[0] // 4
    if num_logits < 2:
        raise WeightsError(f"{name}: the class head predicts {num_logits} logits; need background plus >= 1 class")
    return ConvertedWeights(out, torchvision_metadata(num_logits), origin, name)


def load_torchvision_ssd300(source: StateSource) -> tuple[SSD, dict[str, Any]]:
    """Build ``ssd300(C, priors="coco")`` and load torchvision ``ssd300_vgg16`` weights into it (strict).

    Returns:
        (model, metadata); see ``torchvision_metadata``.

    Raises:
        WeightsError: missing, unexpected or mis-shaped weights (the torchvision key is named).
    """
    converted = convert_torchvision_ssd300(source)
    model = ssd300(converted.metadata["num_classes"], priors="coco")
    load_strict(model, converted.state_dict, converted.source, converted.origin)
    return model, converted.metadata
