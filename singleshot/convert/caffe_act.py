"""ACT's released Caffe models (vkalogeiton/caffe, branch ``act-detector``) -> singleshot ``act_vgg16``.

ACT's deploy prototxt (``models/ACT-detector/<dataset>/deploy_RGB.prototxt``) unrolls the K frames
into K streams fed by K inputs ``data_stream{k}``. Layer mapping (Caffe layer -> ours):

* ``conv1_1_stream{k}`` … ``conv5_3_stream{k}``, ``fc6_stream{k}``, ``fc7_stream{k}`` ->
  ``backbone.vgg.{0, 2, …, 28, 31, 33}``; ``conv{n}_{1,2}_stream{k}`` (n = 6 … 9) ->
  ``backbone.extras.{n-6}.{0,2}``. The K instances of a trunk layer share their blobs through
  ``param { name: "conv1_1_w" }`` … and map onto *one* convolution: every instance the file holds
  must carry the same values (else ``WeightsError`` naming the layers).
* ``conv4_3_norm_stream{k}`` (Normalize, per position) -> row k of ``backbone.l2norm.weight``
  (:class:`~singleshot.models.act.StreamL2Norm`, Tensor[K, 512]); a scale shared by param name
  gives ``shared_l2norm=True`` (one ``L2Norm``).
* ``{source}_concat`` (the K streams along channels, stream 0 first), then
  ``{source}_concat_mbox_loc`` / ``_mbox_conf`` for the sources ``conv4_3_norm, fc7, conv6_2 …
  conv9_2`` -> ``head.loc.{s}`` / ``head.conf.{s}``, copied as they are: ACT's detection layer
  reads 4K offsets per prior frame-major, (dx, dy, dw, dh) of frame 0 then frame 1 …, our layout.

**fc6 of the released models.** ACT's prototxt generator multiplies fc6's dilation by 6 inside
its loop over streams, so stream k's fc6 has dilation and pad 6·6^k (6, 36, 216, …) in every
released train and deploy prototxt. On the 18x18 (or 19x19) pool5 map a dilation of 18 or more
leaves only the kernel's centre tap on the map: frames 1 … K-1 see fc6 as a 1x1 convolution.
The converter reads the K dilations into ``arch_kwargs["fc6_dilations"]`` (left out when all
are 6) and :func:`act_vgg16_caffe` builds the model with :class:`StreamDilatedConv2d` as fc6.

Shared blobs in a ``.caffemodel``: Caffe's ``Net::ToProto`` writes every layer instance with its
blobs, so a shared blob is stored once per instance (K equal copies); its HDF5 writer and some
tools keep the owner's only. Caffe fills an instance missing from the file from the layer it
shares the blob with; so does this converter, when the prototxt declares that sharing.

Inputs: each frame a BGR 0..255 image warped to 300x300 minus (104, 117, 123).

**Flow models** (``deploy_FLOW5.prototxt``: every layer ``*_stream{k}flow``, inputs
``data_stream{k}flow``) are the same net on 15 channels per frame: the 5 flow images t … t + 4
(clamped at the video's end), each read by OpenCV as BGR and minus the same (104, 117, 123), stacked
along channels (ACT's ``extract_tubelets``: ``NFLOWS = 5``, ``np.concatenate(..., axis=1)``). The
converter reads the input channels from ``conv1_1``'s blob into ``arch_kwargs["in_channels"]`` (15;
any multiple of 3 for a flow net, 3 for an RGB one) and writes ``modality: flow`` and
``flow_stack: 5`` into the metadata, so the file is a two-stream ACT's motion stream
(``action val ... flow_weights=<it> flow=<flow images>``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from singleshot.convert._common import ConvertedWeights
from singleshot.convert.caffe import CaffeLayer, input_size, layer_params, read_caffemodel
from singleshot.convert.caffe_ssd import CAFFE_MEAN_BGR, VGG_NAMES, caffe_priors
from singleshot.convert.prototxt import Message, first, read_prototxt
from singleshot.data.action.readers import JHMDB_CLASSES, UCF24_CLASSES
from singleshot.data.input_spec import resize_meta
from singleshot.errors import WeightsError
from singleshot.models.act import ACT_PRIORS_2X2, ACT_PRIORS_3X3, ACTDetector, act_vgg16
from singleshot.models.stream_conv import StreamDilatedConv2d
from singleshot.models.vgg import EXTRAS_300, FC6_INDEX, FC7_INDEX, VGG16_CONV_INDICES
from singleshot.ops.priors import generate_priors
from singleshot.postprocess.tubelet import TubeletPostprocess

logger = logging.getLogger(__name__)

__all__ = ["ACTCaffeLayout", "StreamDilatedConv2d", "act_caffe_layout", "act_vgg16_caffe", "convert_caffe_act"]

#: extra layers of ACT's VGG16 trunk, in order (two per block of ``EXTRAS_300``).
EXTRA_NAMES = tuple(f"conv{n}_{i}" for n in range(6, 10) for i in (1, 2))
#: per-stream maps concatenated over the K streams that feed the heads, in head order.
SOURCE_NAMES = ("conv4_3_norm", "fc7", "conv6_2", "conv7_2", "conv8_2", "conv9_2")
_TRUNK = VGG_NAMES + ("fc6", "fc7") + EXTRA_NAMES
_TRUNK_KEYS = [f"backbone.vgg.{i}" for i in (*VGG16_CONV_INDICES, FC6_INDEX, FC7_INDEX)]
_TRUNK_KEYS += [f"backbone.extras.{i // 2}.{2 * (i % 2)}" for i in range(len(EXTRA_NAMES))]
_POOL5 = {(2, 1, 0): "2x2s1", (3, 1, 1): "3x3s1p1"}  # (kernel, stride, pad) -> act_vgg16's pool5
_STREAM0 = re.compile(r"conv1_1_stream(\d+)(flow)?")


def act_vgg16_caffe(
    num_classes: int,
    k: int = 6,
    pool5: str = "2x2s1",
    shared_l2norm: bool = False,
    fc6_dilations: Sequence[int] | None = None,
    in_channels: int = 3,
) -> ACTDetector:
    """``act_vgg16`` whose fc6 is dilated per stream as in ACT's released models (kept for callers)."""
    return act_vgg16(
        num_classes,
        k=k,
        pool5=pool5,
        shared_l2norm=shared_l2norm,
        fc6_dilations=fc6_dilations,
        in_channels=in_channels,
    )


@dataclass
class ACTCaffeLayout:
    """What an ACT prototxt says: K streams, layer-name ``suffix`` ('' RGB, 'flow'), pool5, fc6's
    dilation per stream, whether the conv4_3 scale is shared, the per-source Concat tops and their
    (loc, conf) head layers, the input side."""

    k: int
    suffix: str
    pool5: str = "2x2s1"
    fc6_dilations: list[int] = field(default_factory=list)
    shared_l2norm: bool = False
    concat_tops: list[str] = field(default_factory=list)
    heads: list[tuple[str, str]] = field(default_factory=list)
    size: int = 300

    def stream(self, base: str, k: int) -> str:
        """Name of stream ``k``'s instance of layer ``base``."""
        return f"{base}_stream{k}{self.suffix}"


def _param_names(layer: Message) -> list[str]:
    """The ``param { name }`` of each blob of a layer ('' for an unshared blob)."""
    return [str(first(p, "name", "")) for p in layer.get("param", [])]


def _geometry(layer: Message) -> tuple[int, int, int, int]:
    """(kernel, stride, pad, dilation) of a Convolution or Pooling layer, with Caffe's defaults."""
    p = first(layer, "convolution_param") or first(layer, "pooling_param") or {}
    return tuple(
        int(first(p, key, default))
        for key, default in (("kernel_size", 0), ("stride", 1), ("pad", 0), ("dilation", 1))  # type: ignore[return-value]
    )


def _layer(params: dict[str, Message], name: str, kind: str, source: str) -> Message:
    layer = params.get(name)
    if layer is None or first(layer, "type") != kind:
        found = "no such layer" if layer is None else f"a {first(layer, 'type')}"
        raise WeightsError(f"{source}: expected a {kind} layer {name!r}, found {found}")
    return layer


def _check_trunk(params: dict[str, Message], lay: ACTCaffeLayout, source: str) -> None:
    """Every trunk layer of every stream has act_vgg16's geometry and a ReLU; reads fc6's dilations."""
    expect = {name: (3, 1, 1, 1) for name in VGG_NAMES}
    expect["fc7"] = (1, 1, 0, 1)
    for i, block in enumerate(EXTRAS_300):
        expect[EXTRA_NAMES[2 * i]] = (1, 1, 0, 1)
        expect[EXTRA_NAMES[2 * i + 1]] = (block.kernel, block.stride, block.padding, 1)
    relu_inputs = {str(first(layer, "bottom")) for layer in params.values() if first(layer, "type") == "ReLU"}
    for k in range(lay.k):
        fc6 = lay.stream("fc6", k)
        kernel, stride, pad, dilation = got = _geometry(_layer(params, fc6, "Convolution", source))
        if (kernel, stride) != (3, 1) or pad != dilation:
            raise WeightsError(
                f"{source}: layer {fc6!r} has (kernel, stride, pad, dilation) {got}; "
                "act_vgg16 has a 3x3 fc6 with pad = dilation"
            )
        lay.fc6_dilations.append(dilation)
        for base in _TRUNK:
            name = lay.stream(base, k)
            conv = _layer(params, name, "Convolution", source)
            if base in expect and _geometry(conv) != expect[base]:
                raise WeightsError(
                    f"{source}: layer {name!r} has (kernel, stride, pad, dilation) "
                    f"{_geometry(conv)}, act_vgg16 has {expect[base]}"
                )
            if str(first(conv, "top")) not in relu_inputs:
                raise WeightsError(f"{source}: layer {name!r} is not followed by a ReLU, as act_vgg16's is")
        for i in range(1, 5):
            if _geometry(_layer(params, lay.stream(f"pool{i}", k), "Pooling", source))[:3] != (2, 2, 0):
                raise WeightsError(f"{source}: layer {lay.stream(f'pool{i}', k)!r} is not a 2x2 stride-2 pooling")


def _find_heads(params: dict[str, Message], lay: ACTCaffeLayout, source: str) -> None:
    """Per source map: the Concat of its K streams (in stream order) and the loc/conf convolutions on it."""
    by_type: dict[str, list[Message]] = {}
    for layer in params.values():
        by_type.setdefault(str(first(layer, "type")), []).append(layer)
    for base in SOURCE_NAMES:
        want = [lay.stream(base, k) for k in range(lay.k)]
        concat = [layer for layer in by_type.get("Concat", []) if set(layer.get("bottom", [])) & set(want)]
        if len(concat) != 1:
            raise WeightsError(
                f"{source}: expected one Concat layer of {want[0]!r} … {want[-1]!r}, found {len(concat)}"
            )
        name, top, axis = first(concat[0], "name"), str(first(concat[0], "top")), first(concat[0], "concat_param", {})
        if list(concat[0].get("bottom", [])) != want or int(first(axis, "axis", 1)) != 1:
            raise WeightsError(f"{source}: Concat layer {name!r} must join {want} along channels in this order")
        convs = [str(first(c, "name")) for c in by_type.get("Convolution", []) if first(c, "bottom") == top]
        pair = []
        for kind in ("mbox_loc", "mbox_conf"):
            found = [conv for conv in convs if conv.endswith(kind)]
            if len(found) != 1 or _geometry(params[found[0]])[:3] != (3, 1, 1):
                raise WeightsError(f"{source}: expected one 3x3 pad-1 Convolution '*{kind}' on {top!r}, found {found}")
            pair.append(found[0])
        lay.concat_tops.append(top)
        lay.heads.append((pair[0], pair[1]))


def act_caffe_layout(net: Message, source: str) -> ACTCaffeLayout:
    """Read and check the structure of an ACT prototxt (nothing is read from the caffemodel).

    Raises:
        WeightsError: not an ACT VGG16 net this converter reproduces (names the file and the layer).
    """
    params = layer_params(net)
    streams = {int(m.group(1)): m.group(2) or "" for m in map(_STREAM0.fullmatch, params) if m}
    if not streams:
        raise WeightsError(f"{source}: no layer 'conv1_1_stream0': not an ACT prototxt (K streams of VGG16)")
    if sorted(streams) != list(range(len(streams))) or len(set(streams.values())) != 1:
        raise WeightsError(f"{source}: the streams conv1_1_stream* are not numbered 0 … K-1 alike: {sorted(streams)}")
    lay = ACTCaffeLayout(len(streams), streams[0])
    for layer in params.values():
        seq = first(first(layer, "act_detection_output_param", {}), "sequence_length")
        if seq is not None and int(seq) != lay.k:
            raise WeightsError(
                f"{source}: {lay.k} streams but layer {first(layer, 'name')!r} has sequence_length {seq}"
            )
    pool5 = lay.stream("pool5", 0)
    geometry = _geometry(_layer(params, pool5, "Pooling", source))[:3]
    if geometry not in _POOL5:
        raise WeightsError(
            f"{source}: layer {pool5!r} has (kernel, stride, pad) {geometry}; "
            "act_vgg16 supports 2x2/s1 (ACT) and 3x3/s1/p1 (SSD)"
        )
    lay.pool5 = _POOL5[geometry]
    try:
        height, width = input_size(net, source)
    except WeightsError:  # a train prototxt: a Python data layer gives the frames
        logger.warning("%s: no input shape; taking ACT's 300x300 (its PriorBox layers are checked)", source)
        height = width = 300
    if height != width or height != 300:
        raise WeightsError(f"{source}: input {height}x{width}; ACT's priors are laid out for 300x300")
    lay.size = height
    norm_params = []
    for k in range(lay.k):
        norm = _layer(params, lay.stream("conv4_3_norm", k), "Normalize", source)
        if first(first(norm, "norm_param", {}), "across_spatial", True) or first(norm, "bottom") != lay.stream(
            "conv4_3", k
        ):
            raise WeightsError(
                f"{source}: layer {first(norm, 'name')!r} must normalise {lay.stream('conv4_3', k)!r} "
                "per position (across_spatial: false), as SSD and ACT do"
            )
        norm_params.append(tuple(_param_names(norm)))
    lay.shared_l2norm = lay.k > 1 and len(set(norm_params)) == 1 and bool(norm_params[0]) and all(norm_params[0])
    _check_trunk(params, lay, source)
    _find_heads(params, lay, source)
    spec = ACT_PRIORS_2X2 if lay.pool5 == "2x2s1" else ACT_PRIORS_3X3
    theirs = caffe_priors(net, lay.concat_tops, spec.feature_maps, (height, width), source)
    ours = generate_priors(spec)
    if ours.shape != theirs.shape or not torch.allclose(ours, theirs, atol=1e-5):
        raise WeightsError(
            f"{source}: the PriorBox layers ({theirs.shape[0]} priors) differ from ACT's "
            f"({ours.shape[0]} priors for pool5 {lay.pool5}, not clipped)"
        )
    return lay


def _stream_blobs(
    base: str, lay: ACTCaffeLayout, params: dict[str, Message], layers: dict[str, CaffeLayer], source: str
) -> tuple[list[np.ndarray], str]:
    """The blobs of a layer shared by the K streams, and the instance they were read from.

    Every instance in the file must hold the same values; an absent one must share all its blobs
    (by param name) with the instance read, as Caffe then fills it from that one.
    """
    names = [lay.stream(base, k) for k in range(lay.k)]
    present = [n for n in names if n in layers]
    if not present:
        raise WeightsError(f"{source}: no weights for layer {names[0]!r} (nor for another of its {lay.k} streams)")
    ref = present[0]
    blobs, ref_params = layers[ref].blobs, _param_names(params[ref])
    for name in names:
        theirs = _param_names(params[name])
        shared = [
            j < min(len(theirs), len(ref_params)) and theirs[j] != "" and theirs[j] == ref_params[j]
            for j in range(len(blobs))
        ]
        if name not in layers:
            if not all(shared):
                raise WeightsError(
                    f"{source}: no weights for layer {name!r}, and the prototxt does not share its "
                    f"blobs with {ref!r} (param names {theirs} vs {ref_params})"
                )
            continue
        other = layers[name].blobs
        for j in range(max(len(blobs), len(other))):
            if (
                j >= min(len(blobs), len(other))
                or blobs[j].shape != other[j].shape
                or not np.array_equal(blobs[j], other[j])
            ):
                how = "declared shared" if j < len(shared) and shared[j] else "not shared"
                raise WeightsError(
                    f"{source}: layers {ref!r} and {name!r} hold different values in blob {j} "
                    f"({how} in the prototxt); singleshot's ACT runs the K streams through one "
                    "trunk, so the streams' weights must be identical"
                )
    return blobs, ref


def _conv(blobs: list[np.ndarray], name: str, params: dict[str, Message], source: str) -> tuple[Tensor, Tensor]:
    """(weight Tensor[O, I, kh, kw], bias Tensor[O]) of a convolution; a missing bias (bias_term: false) is 0."""
    if not blobs or blobs[0].ndim != 4:
        raise WeightsError(f"{source}: layer {name!r} is not a convolution (blob shapes {[b.shape for b in blobs]})")
    weight = torch.from_numpy(np.array(blobs[0], dtype=np.float32))
    if len(blobs) > 1:
        return weight, torch.from_numpy(np.array(blobs[1], dtype=np.float32).reshape(-1))
    if first(first(params[name], "convolution_param", {}), "bias_term", True):
        raise WeightsError(f"{source}: layer {name!r} has no bias blob")
    return weight, torch.zeros(weight.shape[0])


def _check_shapes(expected: dict[str, Tensor], state: dict[str, Tensor], origin: dict[str, str], source: str) -> None:
    """Shapes of the converted tensors present in ``expected`` (the model's state dict) against it."""
    for key, tensor in state.items():
        if key in expected and tuple(tensor.shape) != tuple(expected[key].shape):
            raise WeightsError(
                f"{source}: layer {origin[key]!r} has shape {tuple(tensor.shape)}, act_vgg16 "
                f"expects {tuple(expected[key].shape)} for {key!r}"
            )


def _norm_scales(
    lay: ACTCaffeLayout, params: dict[str, Message], layers: dict[str, CaffeLayer], source: str, channels: int
) -> Tensor:
    """conv4_3 scales: Tensor[K, C] (one row per stream), or Tensor[C] when the prototxt shares one."""
    if lay.shared_l2norm:
        scales = torch.from_numpy(
            np.array(_stream_blobs("conv4_3_norm", lay, params, layers, source)[0][0], np.float32)
        )
    else:
        names = [lay.stream("conv4_3_norm", k) for k in range(lay.k)]
        missing = [name for name in names if name not in layers]
        if missing:
            raise WeightsError(
                f"{source}: no weights for layer {missing[0]!r} (its scale is not shared in the prototxt)"
            )
        rows = [np.array(layers[name].blobs[0], dtype=np.float32).reshape(-1) for name in names]
        if len({r.size for r in rows}) != 1:
            raise WeightsError(f"{source}: the layers {names} hold scales of sizes {[r.size for r in rows]}")
        scales = torch.from_numpy(np.stack(rows))
    scales = scales.reshape(-1) if lay.shared_l2norm else scales
    if scales.shape[-1] == 1:  # channel_shared: true, one scale for all channels
        scales = scales.expand(*scales.shape[:-1], channels).contiguous()
    return scales


def _postprocess(net: Message) -> dict[str, Any]:
    """TubeletPostprocess thresholds from the prototxt's (ACT)DetectionOutput layer, ACT's defaults otherwise."""
    base = TubeletPostprocess()
    out = {
        "score_thresh": base.score_thresh,
        "nms_thresh": base.nms_thresh,
        "topk_candidates": base.topk_candidates,
        "max_detections": base.max_detections,
    }
    for layer in layer_params(net).values():
        if first(layer, "type") in ("ACTDetectionOutput", "DetectionOutput"):
            p = first(layer, "detection_output_param", {})
            nms = first(p, "nms_param", {})
            out["score_thresh"] = float(first(p, "confidence_threshold", out["score_thresh"]))
            out["nms_thresh"] = float(first(nms, "nms_threshold", out["nms_thresh"]))
            out["topk_candidates"] = int(first(nms, "top_k", out["topk_candidates"]))
            out["max_detections"] = int(first(p, "keep_top_k", out["max_detections"]))
    return out


def _input_channels(lay: ACTCaffeLayout, params: dict[str, Message], layers: dict[str, CaffeLayer], source: str) -> int:
    """Input channels per frame, from ``conv1_1``'s weight: 3 for an RGB net, a multiple of 3 (ACT's
    FLOW5: 15) for a flow net."""
    blobs, name = _stream_blobs("conv1_1", lay, params, layers, source)
    if not blobs or blobs[0].ndim != 4:
        raise WeightsError(f"{source}: layer {name!r} is not a convolution (blob shapes {[b.shape for b in blobs]})")
    channels = int(blobs[0].shape[1])
    if lay.suffix == "flow" and (channels < 3 or channels % 3):
        raise WeightsError(f"{source}: layer {name!r} takes {channels} channels, not 3 per stacked flow image")
    if lay.suffix != "flow" and channels != 3:
        raise WeightsError(f"{source}: layer {name!r} takes {channels} channels; an RGB ACT net takes 3")
    return channels


def convert_caffe_act(prototxt: str | Path, caffemodel: str | Path) -> ConvertedWeights:
    """Map an ACT Caffe model (deploy prototxt + caffemodel) onto ``act_vgg16_caffe(num_classes, **arch_kwargs)``.

    Returns:
        the state dict and metadata: architecture ``act_vgg16``, ``arch_kwargs`` {k, pool5,
        shared_l2norm, fc6_dilations unless all are 6, in_channels for a flow net}, classes, K,
        input size 300, BGR order (per flow image for a flow net), mean/std in 0..1 pixel units,
        modality (``rgb`` | ``flow``, with ``flow_stack``), the prototxt's postprocess thresholds.

    Raises:
        WeightsError: a missing or mis-shaped layer, streams whose shared weights differ, an
            unsupported variant (pool5, …); the file and the layer are named.
    """
    net = read_prototxt(prototxt)
    lay = act_caffe_layout(net, str(prototxt))
    params, layers, source = layer_params(net), read_caffemodel(caffemodel), str(caffemodel)
    arch_kwargs: dict[str, Any] = {"k": lay.k, "pool5": lay.pool5, "shared_l2norm": lay.shared_l2norm}
    if any(d != 6 for d in lay.fc6_dilations):
        arch_kwargs["fc6_dilations"] = list(lay.fc6_dilations)
    channels = _input_channels(lay, params, layers, source)
    if channels != 3:
        arch_kwargs["in_channels"] = channels
    state: dict[str, Tensor] = {}
    origin: dict[str, str] = {}

    with torch.device("meta"):  # shapes of the trunk (the heads' depend on the classes)
        expected = act_vgg16_caffe(1, **arch_kwargs).state_dict()

    def put(ours: str, blobs: list[np.ndarray], name: str) -> None:
        weight, bias = _conv(blobs, name, params, source)
        state[f"{ours}.weight"], state[f"{ours}.bias"] = weight, bias
        origin[f"{ours}.weight"] = origin[f"{ours}.bias"] = name
        _check_shapes(expected, {f"{ours}.weight": weight, f"{ours}.bias": bias}, origin, source)

    for ours, base in zip(_TRUNK_KEYS, _TRUNK):
        put(ours, *_stream_blobs(base, lay, params, layers, source))
    state["backbone.l2norm.weight"] = _norm_scales(
        lay, params, layers, source, int(state["backbone.vgg.21.weight"].shape[0])
    )
    origin["backbone.l2norm.weight"] = lay.stream("conv4_3_norm", 0)
    for s, (loc, conf) in enumerate(lay.heads):
        for ours, name in ((f"head.loc.{s}", loc), (f"head.conf.{s}", conf)):
            if name not in layers:
                raise WeightsError(f"{source}: no weights for layer {name!r}")
            state[f"{ours}.weight"], state[f"{ours}.bias"] = _conv(layers[name].blobs, name, params, source)
            origin[f"{ours}.weight"] = origin[f"{ours}.bias"] = name
    loc0, conf0 = state["head.loc.0.weight"].shape[0], state["head.conf.0.weight"].shape[0]
    anchors = loc0 // (4 * lay.k)
    if anchors == 0 or loc0 % (4 * lay.k) or conf0 % anchors or conf0 // anchors < 2:
        raise WeightsError(
            f"{source}: layer {lay.heads[0][0]!r} has {loc0} outputs and {lay.heads[0][1]!r} "
            f"{conf0}: not 4K={4 * lay.k} offsets and C+1 scores per prior"
        )
    num_classes = conf0 // anchors - 1
    with torch.device("meta"):
        expected = act_vgg16_caffe(num_classes, **arch_kwargs).state_dict()
    _check_shapes(expected, state, origin, source)
    if set(expected) != set(state):
        raise WeightsError(f"{source}: keys differ from act_vgg16's: {sorted(set(expected) ^ set(state))[:5]}")
    known = {len(UCF24_CLASSES): UCF24_CLASSES, len(JHMDB_CLASSES): JHMDB_CLASSES}
    meta = {
        "source": f"ACT Caffe model ({Path(caffemodel).name}, {first(net, 'name', 'unnamed net')})",
        "task": "action",
        "family": "act",
        "architecture": "act_vgg16",
        "arch_kwargs": arch_kwargs,
        "num_classes": num_classes,
        "classes": list(known.get(num_classes, [f"class_{i}" for i in range(1, num_classes + 1)])),
        "classes_from": "the conf head's size (24: UCF101-24, 21: J-HMDB-21, in ACT's order)"
        if num_classes in known
        else "placeholders: the caffemodel holds no class names",
        "K": lay.k,
        "modality": "flow" if lay.suffix == "flow" else "rgb",
        **({"flow_stack": channels // 3, "flow_images": {"method": "brox"}} if lay.suffix == "flow" else {}),
        "input_size": [lay.size, lay.size],
        "resize": resize_meta(False),  # Caffe's warp: cv2.resize INTER_LINEAR, no antialias
        "resize_note": "warp to the input size (aspect ratio not kept)",
        "channel_order": "BGR",
        "mean": [v / 255.0 for v in CAFFE_MEAN_BGR],
        "std": [1.0 / 255.0] * 3,
        "source_mean_bgr_0_255": list(CAFFE_MEAN_BGR),
        "postprocess": _postprocess(net),
    }
    return ConvertedWeights(state, meta, origin, source)
