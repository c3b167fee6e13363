"""amdegroot/ssd.pytorch SSD300 checkpoints -> singleshot ``ssd300(C, priors="voc"|"coco")``.

Key mapping (ssd.pytorch -> ours):

* ``vgg.{i}`` (i = 0..33, conv1_1 .. fc7) -> ``backbone.vgg.{i}`` (same layer indices)
* ``L2Norm.weight`` -> ``backbone.l2norm.weight``
* ``extras.{2k}`` (1x1) -> ``backbone.extras.{k}.0``; ``extras.{2k+1}`` (3x3) -> ``backbone.extras.{k}.2``
* ``loc.{i}`` -> ``head.loc.{i}``; ``conf.{i}`` -> ``head.conf.{i}``

ssd.pytorch selects its prior config by class count: 21 logits -> ``voc`` (sizes 30..315), anything
else -> its ``coco`` config, whose sizes (21..315) equal torchvision's COCO scales.

Input: ssd.pytorch reads images with OpenCV (BGR), subtracts its mean (104, 117, 123) in BGR order on
0..255 pixels, then flips the channels to RGB before the network (``VOCDetection.pull_item``). So the
network sees RGB 0..255 minus (123, 117, 104) with no std: in 0..1 units mean = (123, 117, 104) / 255
and std = 1/255. Post-processing (``Detect``): softmax, per class score > 0.01, top 200 candidates,
NMS 0.45, up to 200 kept per class; its intended cap of 200 per image is a no-op (it fills a copy).
"""

from __future__ import annotations

import logging
import re
from typing import Any

from singleshot.convert._common import ConvertedWeights, StateSource, as_state_dict, load_strict, rename_keys, require
from singleshot.data.input_spec import resize_meta
from singleshot.data.voc import VOC_CLASSES
from singleshot.errors import ConfigError, WeightsError
from singleshot.models.ssd import SSD, ssd300

logger = logging.getLogger(__name__)

#: ssd.pytorch's MEANS in BGR order on 0..255 pixels.
SSD_PYTORCH_MEAN_BGR = (104.0, 117.0, 123.0)


def map_key(key: str) -> str | None:
    """Our key for an ssd.pytorch key, or None if it has no counterpart."""
    m = re.fullmatch(r"vgg\.(\d+)\.(weight|bias)", key)
    if m:
        return f"backbone.vgg.{m[1]}.{m[2]}"
    if key == "L2Norm.weight":
        return "backbone.l2norm.weight"
    m = re.fullmatch(r"extras\.(\d+)\.(weight|bias)", key)
    if m:
        i = int(m[1])
        return f"backbone.extras.{i // 2}.{2 * (i % 2)}.{m[2]}"
    m = re.fullmatch(r"(loc|conf)\.(\d+)\.(weight|bias)", key)
    if m:
        return f"head.{m[1]}.{m[2]}.{m[3]}"
    return None


def ssd_pytorch_metadata(num_logits: int, priors: str) -> dict[str, Any]:
    """What reproduces ssd.pytorch's test-phase output (pre-processing and ``Detect``)."""
    classes = list(VOC_CLASSES) if num_logits == 21 else [f"class_{i}" for i in range(1, num_logits)]
    bgr = SSD_PYTORCH_MEAN_BGR
    return {
        "source": "amdegroot/ssd.pytorch build_ssd(300)",
        "architecture": "ssd300",
        "priors": f"{priors}300",
        "num_classes": num_logits - 1,
        "classes": classes,
        "background_index": 0,
        "input_size": [300, 300],
        "resize": resize_meta(False),  # cv2.resize INTER_LINEAR: no antialias
        "resize_note": "cv2.resize (bilinear) to exactly 300x300, aspect ratio not kept",
        "channel_order": "RGB",
        "mean": [bgr[2] / 255.0, bgr[1] / 255.0, bgr[0] / 255.0],
        "std": [1.0 / 255.0] * 3,
        "source_mean_bgr_0_255": list(bgr),
        "normalisation": "pixels in 0..1, x' = (x - mean) / std (= 0..255 RGB minus 123, 117, 104)",
        "postprocess": {
            "score_thresh": 0.01,
            "nms_thresh": 0.45,
            "topk_candidates": 200,
            "detections_per_class": 200,
            "detections_per_img": None,
            "per_class_nms": True,
            "variances": [0.1, 0.2],
            "decode_clamp": None,
            "clip_to_image": False,
        },
    }


def convert_ssd_pytorch(source: StateSource, priors: str | None = None) -> ConvertedWeights:
    """Rename an ssd.pytorch SSD300 state dict into singleshot's layout.

    Args:
        source: path to a ``.pth`` state dict (read with ``torch.load(weights_only=True)``; a
            ``module.`` prefix is stripped) or the dict itself.
        priors: ``"voc"`` or ``"coco"``; default as ssd.pytorch: ``voc`` for 21 logits, else ``coco``.

    Raises:
        WeightsError: a key has no counterpart or the class head is malformed (the key is named).
    """
    if priors is not None and priors not in ("voc", "coco"):
        raise ConfigError(f"priors must be 'voc' or 'coco' for an ssd.pytorch SSD300, got {priors!r}")
    sd, name = as_state_dict(source)
    out, origin = rename_keys(sd, map_key, name, "an ssd.pytorch SSD300")
    conf0 = require(sd, "conf.0.weight", name, ndim=4)
    if conf0.shape[0] % 4:
        raise WeightsError(f"{name}: 'conf.0.weight' has {conf0.shape[0]} outputs, not a multiple of 4 priors per cell")
    num_logits = conf0.shape[0] // 4
    if num_logits < 2:
        raise WeightsError(f"{name}: 'conf.0.weight' predicts {num_logits} logits; need background plus >= 1 class")
    if priors is None:
        priors = "voc" if num_logits == 21 else "coco"
    return ConvertedWeights(out, ssd_pytorch_metadata(num_logits, priors), origin, name)


def load_ssd_pytorch(source: StateSource, priors: str | None = None) -> tuple[SSD, dict[str, Any]]:
    """Build ``ssd300(C, priors)`` and load an ssd.pytorch checkpoint into it (strict).

    Returns:
        (model, metadata); see ``ssd_pytorch_metadata``.

    Raises:
        WeightsError: missing, unexpected or mis-shaped weights (the ssd.pytorch key is named).
    """
    converted = convert_ssd_pytorch(source, priors)
    meta = converted.metadata
    model = ssd300(meta["num_classes"], priors=meta["priors"][: -len("300")])
    load_strict(model, converted.state_dict, converted.source, converted.origin)
    return model, meta
