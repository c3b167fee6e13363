"""The original Caffe SSD300/SSD512 models (weiliu89/caffe, VOC and COCO) -> singleshot ``ssd300``/``ssd512``.

Layer mapping (Caffe layer -> ours):

* ``conv1_1`` … ``conv5_3`` -> ``backbone.vgg.{0, 2, 5, …, 28}``; ``fc6`` -> ``backbone.vgg.31`` (3×3,
  dilation 6); ``fc7`` -> ``backbone.vgg.33``
* ``conv4_3_norm`` (Normalize, one scale per channel) -> ``backbone.l2norm.weight``
* ``conv{n}_1`` / ``conv{n}_2`` (n = 6 … 9, … 10 for SSD512) -> ``backbone.extras.{n-6}.0`` / ``.2``
* ``{source}_mbox_loc`` / ``{source}_mbox_conf`` for the sources ``conv4_3_norm, fc7, conv6_2, …``
  -> ``head.loc.{k}`` / ``head.conf.{k}``; Caffe permutes these maps to (N, H, W, C) and flattens
  them, the order of our heads.

The prototxt is read to check what the tensors cannot tell: the input size, pool5 (3×3/s1 here),
fc6's dilation, the extra layers' kernels, and the priors. Priors are rebuilt from each
``PriorBox`` layer with Caffe's rules and must equal one of our configurations (``voc``/``coco``)
up to clipping (the released models use ``clip: false``, kept as ``prior_clip="none"``), so the
converted model decodes exactly like the original. Inputs: Caffe SSD feeds BGR pixels 0..255 minus
(104, 117, 123) warped to the input size; the metadata carries this.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from singleshot.convert._common import ConvertedWeights
from singleshot.convert.caffe import CaffeLayer, conv_tensors, input_size, layer_params, read_caffemodel
from singleshot.convert.prototxt import Message, first, read_prototxt
from singleshot.data.input_spec import resize_meta
from singleshot.data.voc import VOC_CLASSES
from singleshot.errors import WeightsError
from singleshot.models.vgg import FC6_INDEX, FC7_INDEX, VGG16_CONV_INDICES
from singleshot.ops.priors import generate_priors, prior_spec

VGG_NAMES = (
    "conv1_1",
    "conv1_2",
    "conv2_1",
    "conv2_2",
    "conv3_1",
    "conv3_2",
    "conv3_3",
    "conv4_1",
    "conv4_2",
    "conv4_3",
    "conv5_1",
    "conv5_2",
    "conv5_3",
)
#: BGR mean on 0..255 pixels of the Caffe SSD models (and of ACT).
CAFFE_MEAN_BGR = (104.0, 117.0, 123.0)


def ssd_layout(size: int) -> tuple[list[str], list[str]]:
    """(extra conv names, prediction source names) of the Caffe SSD300 (size 300) or SSD512."""
    last = 9 if size == 300 else 10
    extras = [f"conv{n}_{k}" for n in range(6, last + 1) for k in (1, 2)]
    sources = ["conv4_3_norm", "fc7"] + [f"conv{n}_2" for n in range(6, last + 1)]
    return extras, sources


def caffe_priors(net: Message, sources: list[str], maps: list[int], size: tuple[int, int], source: str) -> torch.Tensor:
    """Priors of the prototxt's ``PriorBox`` layers, Tensor[P, 4] cxcywh normalised, by Caffe's rules.

    Per cell (row-major), per ``min_size``: the square ``min``, the square ``sqrt(min·max)``, then
    one box per aspect ratio of the list ``[1, ar, 1/ar (flip), …]`` other than 1; ``clip`` clamps
    the corners to [0, 1].
    """
    by_bottom = {}
    for layer in layer_params(net).values():
        if first(layer, "type") == "PriorBox":
            by_bottom[str(first(layer, "bottom"))] = first(layer, "prior_box_param", {})
    height, width = size
    out = []
    for name, fmap in zip(sources, maps):
        if name not in by_bottom:
            raise WeightsError(f"{source}: no PriorBox layer on {name!r}")
        p = by_bottom[name]
        ratios = [1.0]
        for ar in p.get("aspect_ratio", []):
            for r in [float(ar), 1.0 / float(ar)] if first(p, "flip", True) else [float(ar)]:
                if all(abs(r - q) > 1e-6 for q in ratios):
                    ratios.append(r)
        step = float(first(p, "step", width / fmap))
        offset = float(first(p, "offset", 0.5))
        wh: list[tuple[float, float]] = []
        maxes = p.get("max_size", [])
        for i, smin in enumerate(float(v) for v in p.get("min_size", [])):
            wh.append((smin, smin))
            if i < len(maxes):
                s = math.sqrt(smin * float(maxes[i]))
                wh.append((s, s))
            wh += [(smin * math.sqrt(r), smin / math.sqrt(r)) for r in ratios[1:]]
        whn = torch.tensor(wh, dtype=torch.float64) / torch.tensor([width, height], dtype=torch.float64)
        centres = (torch.arange(fmap, dtype=torch.float64) + offset) * step
        cy, cx = torch.meshgrid(centres / height, centres / width, indexing="ij")
        cxy = torch.stack((cx.reshape(-1), cy.reshape(-1)), -1)[:, None, :].expand(-1, len(wh), -1)
        boxes = torch.cat((cxy - whn / 2, cxy + whn / 2), -1).reshape(-1, 4)
        if first(p, "clip", False):
            boxes = boxes.clamp(0.0, 1.0)
        out.append(torch.cat(((boxes[:, :2] + boxes[:, 2:]) / 2, boxes[:, 2:] - boxes[:, :2]), -1))
    return torch.cat(out).float()


def _check_layer(params: dict[str, Message], name: str, source: str, **expected: Any) -> None:
    layer = params.get(name)
    if layer is None:
        raise WeightsError(f"{source}: the prototxt has no layer {name!r}")
    conv = first(layer, "convolution_param") or first(layer, "pooling_param") or {}
    for key, want in expected.items():
        got = first(conv, key, 1 if key in ("stride", "dilation") else 0)
        if got != want:
            raise WeightsError(f"{source}: layer {name!r} has {key} {got}, this converter supports {want}")


def _match_priors(net: Message, arch_size: int, sources: list[str], source: str) -> tuple[str, str]:
    """The (priors, prior_clip) of our configurations that reproduce the prototxt's priors."""
    spec0 = prior_spec(f"voc{arch_size}")
    theirs = caffe_priors(net, sources, spec0.feature_maps, input_size(net, source), source)
    for name in ("voc", "coco"):
        for clip in ("none", "all", "wh"):
            spec = prior_spec(f"{name}{arch_size}")
            ours = generate_priors(replace(spec, clip=clip))
            if ours.shape == theirs.shape and torch.allclose(ours, theirs, atol=1e-5):
                return name, clip
    raise WeightsError(
        f"{source}: the PriorBox layers ({theirs.shape[0]} priors) match none of the voc/coco SSD{arch_size} "
        "prior configurations; this converter reproduces those only"
    )


def _postprocess(net: Message) -> dict[str, Any]:
    out = {"score_thresh": 0.01, "nms_thresh": 0.45, "topk_candidates": 400, "detections_per_img": 200}
    for layer in layer_params(net).values():
        if first(layer, "type") == "DetectionOutput":
            p = first(layer, "detection_output_param", {})
            nms = first(p, "nms_param", {})
            out["score_thresh"] = float(first(p, "confidence_threshold", out["score_thresh"]))
            out["nms_thresh"] = float(first(nms, "nms_threshold", out["nms_thresh"]))
            out["topk_candidates"] = int(first(nms, "top_k", out["topk_candidates"]))
            out["detections_per_img"] = int(first(p, "keep_top_k", out["detections_per_img"]))
    return out


def convert_caffe_ssd(prototxt: str | Path, caffemodel: str | Path) -> ConvertedWeights:
    """Map a Caffe SSD300/SSD512 (VOC or COCO) onto singleshot's ``ssd300``/``ssd512``.

    Raises:
        WeightsError: a layer is missing or mis-shaped, or the prototxt describes a variant this
            converter does not reproduce (the file and layer are named).
    """
    source = str(caffemodel)
    net = read_prototxt(prototxt)
    layers = read_caffemodel(caffemodel)
    height, width = input_size(net, str(prototxt))
    if height != width or height not in (300, 512):
        raise WeightsError(f"{prototxt}: input {height}x{width}; the Caffe SSD models are 300x300 or 512x512")
    size = height
    extras, sources = ssd_layout(size)
    params = layer_params(net)
    _check_layer(params, "pool5", str(prototxt), kernel_size=3, stride=1, pad=1)
    _check_layer(params, "fc6", str(prototxt), kernel_size=3, dilation=6, pad=6)
    priors, clip = _match_priors(net, size, sources, str(prototxt))

    def get(name: str) -> CaffeLayer:
        if name not in layers:
            raise WeightsError(f"{source}: no weights for layer {name!r}")
        return layers[name]

    state: dict[str, torch.Tensor] = {}
    origin: dict[str, str] = {}

    def put(ours: str, name: str) -> None:
        weight, bias = conv_tensors(get(name), source)
        state[f"{ours}.weight"], origin[f"{ours}.weight"] = weight, name
        if bias is None:
            raise WeightsError(f"{source}: layer {name!r} has no bias blob")
        state[f"{ours}.bias"], origin[f"{ours}.bias"] = bias, name

    for idx, name in zip(VGG16_CONV_INDICES, VGG_NAMES):
        put(f"backbone.vgg.{idx}", name)
    put(f"backbone.vgg.{FC6_INDEX}", "fc6")
    put(f"backbone.vgg.{FC7_INDEX}", "fc7")
    norm = get("conv4_3_norm")
    state["backbone.l2norm.weight"] = torch.from_numpy(norm.blobs[0].reshape(-1).copy())
    origin["backbone.l2norm.weight"] = "conv4_3_norm"
    for i, name in enumerate(extras):
        put(f"backbone.extras.{i // 2}.{2 * (i % 2)}", name)
    for k, src in enumerate(sources):
        put(f"head.loc.{k}", f"{src}_mbox_loc")
        put(f"head.conf.{k}", f"{src}_mbox_conf")
    conf0 = state["head.conf.0.weight"].shape[0]
    loc0 = state["head.loc.0.weight"].shape[0]
    if loc0 % 4 or conf0 % (loc0 // 4):
        raise WeightsError(f"{source}: conv4_3_norm_mbox_conf has {conf0} outputs for {loc0 // 4} priors per cell")
    num_logits = conf0 // (loc0 // 4)
    classes = list(VOC_CLASSES) if num_logits == 21 else [f"class_{i}" for i in range(1, num_logits)]
    meta = {
        "source": f"Caffe SSD{size} ({Path(caffemodel).name})",
        "architecture": f"ssd{size}",
        "arch_kwargs": {"priors": priors, "prior_clip": clip},
        "priors": f"{priors}{size}",
        "num_classes": num_logits - 1,
        "classes": classes,
        "background_index": 0,
        "input_size": [size, size],
        "resize": resize_meta(False),  # Caffe's warp: cv2.resize INTER_LINEAR, no antialias
        "resize_note": "warp to the input size (aspect ratio not kept)",
        "channel_order": "BGR",
        "mean": [v / 255.0 for v in CAFFE_MEAN_BGR],
        "std": [1.0 / 255.0] * 3,
        "source_mean_bgr_0_255": list(CAFFE_MEAN_BGR),
        "postprocess": _postprocess(net),
    }
    return ConvertedWeights(state, meta, origin, source)
