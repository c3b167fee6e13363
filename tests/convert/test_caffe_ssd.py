"""Caffe SSD import: a Caffe net definition and weights written here, run by an independent
layer-by-layer interpreter of the prototxt, must give what the converted singleshot model gives."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from singleshot.convert.caffe import CaffeLayer, read_caffemodel, write_caffemodel
from singleshot.convert.caffe_proto import caffe_messages
from singleshot.convert.caffe_ssd import caffe_priors, convert_caffe_ssd, ssd_layout
from singleshot.convert.prototxt import first, layers_of, parse_prototxt
from singleshot.errors import WeightsError
from singleshot.models.ssd import ssd300
from singleshot.tasks.detect.predictor import DetectPredictor, settings_from_meta

# ---------------------------------------------------------------- a Caffe SSD300 written by hand
VGG = [
    ("conv1_1", 64),
    ("conv1_2", 64),
    "pool1",
    ("conv2_1", 128),
    ("conv2_2", 128),
    "pool2",
    ("conv3_1", 256),
    ("conv3_2", 256),
    ("conv3_3", 256),
    "pool3",
    ("conv4_1", 512),
    ("conv4_2", 512),
    ("conv4_3", 512),
    "pool4",
    ("conv5_1", 512),
    ("conv5_2", 512),
    ("conv5_3", 512),
]
# name, out, kernel, stride, pad of the extra layers of SSD300
EXTRAS = [
    ("conv6_1", 256, 1, 1, 0),
    ("conv6_2", 512, 3, 2, 1),
    ("conv7_1", 128, 1, 1, 0),
    ("conv7_2", 256, 3, 2, 1),
    ("conv8_1", 128, 1, 1, 0),
    ("conv8_2", 256, 3, 1, 0),
    ("conv9_1", 128, 1, 1, 0),
    ("conv9_2", 256, 3, 1, 0),
]
# source, min, max, aspect ratios, step (the VOC SSD300 model)
PRIORS = [
    ("conv4_3_norm", 30, 60, [2], 8),
    ("fc7", 60, 111, [2, 3], 16),
    ("conv6_2", 111, 162, [2, 3], 32),
    ("conv7_2", 162, 213, [2, 3], 64),
    ("conv8_2", 213, 264, [2], 100),
    ("conv9_2", 264, 315, [2], 300),
]


def _conv(name: str, bottom: str, out: int, k: int, s: int = 1, p: int = 0, d: int = 1) -> str:
    dil = f" dilation: {d}" if d != 1 else ""
    return (
        f'layer {{ name: "{name}" type: "Convolution" bottom: "{bottom}" top: "{name}"\n'
        f"  convolution_param {{ num_output: {out} kernel_size: {k} stride: {s} pad: {p}{dil} }} }}\n"
    )


def _relu(bottom: str) -> str:
    return f'layer {{ name: "relu_{bottom}" type: "ReLU" bottom: "{bottom}" top: "{bottom}" }}\n'


def ssd300_prototxt(num_logits: int) -> str:
    text = 'name: "VGG_VOC0712_SSD_300x300_deploy"\ninput: "data"\ninput_shape { dim: 1 dim: 3 dim: 300 dim: 300 }\n'
    prev = "data"
    for item in VGG:
        if isinstance(item, str):
            text += (
                f'layer {{ name: "{item}" type: "Pooling" bottom: "{prev}" top: "{item}"\n'
                f"  pooling_param {{ pool: MAX kernel_size: 2 stride: 2 }} }}\n"
            )
            prev = item
        else:
            text += _conv(item[0], prev, item[1], 3, 1, 1) + _relu(item[0])
            prev = item[0]
    text += 'layer { name: "pool5" type: "Pooling" bottom: "conv5_3" top: "pool5"\n  pooling_param { pool: MAX kernel_size: 3 stride: 1 pad: 1 } }\n'
    text += _conv("fc6", "pool5", 1024, 3, 1, 6, 6) + _relu("fc6") + _conv("fc7", "fc6", 1024, 1) + _relu("fc7")
    prev = "fc7"
    for name, out, k, s, p in EXTRAS:
        text += _conv(name, prev, out, k, s, p) + _relu(name)
        prev = name
    text += (
        'layer { name: "conv4_3_norm" type: "Normalize" bottom: "conv4_3" top: "conv4_3_norm"\n'
        '  norm_param { across_spatial: false scale_filler { type: "constant" value: 20 } channel_shared: false } }\n'
    )
    for kind in ("loc", "conf"):
        for src, smin, smax, ars, step in PRIORS:
            n = 2 + 2 * len(ars)
            name = f"{src}_mbox_{kind}"
            text += _conv(name, src, n * (4 if kind == "loc" else num_logits), 3, 1, 1)
            text += (
                f'layer {{ name: "{name}_perm" type: "Permute" bottom: "{name}" top: "{name}_perm"\n'
                "  permute_param { order: 0 order: 2 order: 3 order: 1 } }\n"
                f'layer {{ name: "{name}_flat" type: "Flatten" bottom: "{name}_perm" top: "{name}_flat"\n'
                "  flatten_param { axis: 1 } }\n"
            )
        bottoms = " ".join(f'bottom: "{src}_mbox_{kind}_flat"' for src, *_ in PRIORS)
        text += (
            f'layer {{ name: "mbox_{kind}" type: "Concat" {bottoms} top: "mbox_{kind}" concat_param {{ axis: 1 }} }}\n'
        )
    for src, smin, smax, ars, step in PRIORS:
        ar = " ".join(f"aspect_ratio: {a}" for a in ars)
        text += (
            f'layer {{ name: "{src}_mbox_priorbox" type: "PriorBox" bottom: "{src}" bottom: "data" top: "{src}_mbox_priorbox"\n'
            f"  prior_box_param {{ min_size: {smin}.0 max_size: {smax}.0 {ar} flip: true clip: false\n"
            f"    variance: 0.1 variance: 0.1 variance: 0.2 variance: 0.2 step: {step} offset: 0.5 }} }}\n"
        )
    text += (
        'layer { name: "detection_out" type: "DetectionOutput" bottom: "mbox_loc" top: "detection_out"\n'
        "  detection_output_param { num_classes: 21 share_location: true background_label_id: 0\n"
        "    nms_param { nms_threshold: 0.45 top_k: 400 } code_type: CENTER_SIZE keep_top_k: 200\n"
        "    confidence_threshold: 0.01 } }\n"
    )
    return text


def random_weights(net: dict, seed: int) -> dict[str, list[np.ndarray]]:
    """He-scaled random blobs for every Convolution and Normalize layer of a parsed prototxt."""
    rng = np.random.default_rng(seed)
    channels = {"data": 3}
    blobs: dict[str, list[np.ndarray]] = {}
    for layer in layers_of(net):
        kind, name = first(layer, "type"), first(layer, "name")
        bottom, top = first(layer, "bottom"), first(layer, "top")
        if kind == "Convolution":
            p = first(layer, "convolution_param")
            k, out, cin = first(p, "kernel_size"), first(p, "num_output"), channels[bottom]
            w = rng.standard_normal((out, cin, k, k)).astype(np.float32) * math.sqrt(2.0 / (cin * k * k))
            blobs[name] = [w, rng.standard_normal(out).astype(np.float32) * 0.1]
            channels[top] = out
        elif kind == "Normalize":
            blobs[name] = [(20.0 + rng.standard_normal(channels[bottom])).astype(np.float32)]
            channels[top] = channels[bottom]
        elif bottom in channels:
            channels[top] = channels[bottom]
    return blobs


def run_caffe_net(net: dict, blobs: dict[str, list[np.ndarray]], data: torch.Tensor) -> dict[str, torch.Tensor]:
    """Forward a parsed prototxt with Caffe's semantics, one layer at a time, with torch ops."""
    values = {"data": data}
    for layer in layers_of(net):
        kind, name = first(layer, "type"), first(layer, "name")
        bottoms, top = layer.get("bottom", []), first(layer, "top")
        x = values.get(bottoms[0]) if bottoms else None
        if kind == "Convolution":
            p = first(layer, "convolution_param")
            w, b = (torch.from_numpy(a) for a in blobs[name])
            values[top] = F.conv2d(
                x, w, b, stride=first(p, "stride", 1), padding=first(p, "pad", 0), dilation=first(p, "dilation", 1)
            )
        elif kind == "ReLU":
            values[top] = x.clamp(min=0)
        elif kind == "Pooling":
            p = first(layer, "pooling_param")  # Caffe rounds the output size up
            values[top] = F.max_pool2d(
                x, first(p, "kernel_size"), first(p, "stride", 1), first(p, "pad", 0), ceil_mode=True
            )
        elif kind == "Normalize":  # across_spatial false: per position over channels, eps 1e-10
            scale = torch.from_numpy(blobs[name][0])
            values[top] = x / torch.sqrt((x * x).sum(1, keepdim=True) + 1e-10) * scale[None, :, None, None]
        elif kind == "Permute":
            values[top] = x.permute(*first(layer, "permute_param")["order"])
        elif kind == "Flatten":
            values[top] = x.reshape(x.shape[0], -1)
        elif kind == "Concat":
            values[top] = torch.cat([values[b] for b in bottoms], dim=1)
    return values


@pytest.fixture(scope="module")
def caffe_ssd300(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict, dict]:
    tmp = tmp_path_factory.mktemp("caffe")
    text = ssd300_prototxt(21)
    net = parse_prototxt(text)
    blobs = random_weights(net, seed=0)
    (tmp / "deploy.prototxt").write_text(text)
    layers = [CaffeLayer(n, "Normalize" if n == "conv4_3_norm" else "Convolution", b) for n, b in blobs.items()]
    write_caffemodel(tmp / "VGG_SSD_300x300.caffemodel", layers)
    return tmp / "deploy.prototxt", tmp / "VGG_SSD_300x300.caffemodel", net, blobs


def test_converted_ssd300_reproduces_the_caffe_forward(caffe_ssd300: tuple) -> None:
    prototxt, caffemodel, net, blobs = caffe_ssd300
    converted = convert_caffe_ssd(prototxt, caffemodel)
    meta = converted.metadata
    assert meta["architecture"] == "ssd300" and meta["num_classes"] == 20
    assert meta["arch_kwargs"] == {"priors": "voc", "prior_clip": "none"}  # clip: false in the prototxt
    model = ssd300(20, priors="voc", prior_clip="none").eval()
    model.load_state_dict(converted.state_dict, strict=True)
    x = torch.randn(1, 3, 300, 300, generator=torch.Generator().manual_seed(1)) * 50
    with torch.no_grad():
        ours = model(x)
        ref = run_caffe_net(net, blobs, x)
    loc, conf = ref["mbox_loc"].reshape(1, -1, 4), ref["mbox_conf"].reshape(1, -1, 21)
    assert loc.shape == ours["bbox_regression"].shape == (1, 8732, 4)
    scale = loc.abs().max()
    assert (ours["bbox_regression"] - loc).abs().max() <= 1e-4 * scale
    assert (ours["cls_logits"] - conf).abs().max() <= 1e-4 * conf.abs().max()
    # priors built by Caffe's PriorBox rules from the prototxt equal the model's
    _, sources = ssd_layout(300)
    theirs = caffe_priors(net, sources, [38, 19, 10, 5, 3, 1], (300, 300), "test")
    assert torch.allclose(model.priors, theirs, atol=1e-6)
    assert meta["postprocess"]["nms_thresh"] == 0.45 and meta["postprocess"]["detections_per_img"] == 200


def test_caffe_preprocessing_is_bgr_minus_mean(caffe_ssd300: tuple) -> None:
    prototxt, caffemodel, _, _ = caffe_ssd300
    meta = convert_caffe_ssd(prototxt, caffemodel).metadata
    predictor = DetectPredictor(ssd300(20, "voc", "none"), meta, settings_from_meta(meta), channels_last=False)
    img = torch.randint(0, 256, (3, 300, 300), dtype=torch.uint8)
    expected = img.flip(0).float() - torch.tensor([104.0, 117.0, 123.0])[:, None, None]  # BGR 0..255 minus mean
    assert torch.allclose(predictor.preprocess([img])[0], expected, atol=1e-3)


def test_unpacked_blobs_and_v1_layers_are_read(tmp_path: Path) -> None:
    msgs = caffe_messages(raw=False)
    net = msgs["NetParameter"](name="old")
    v1 = net.layers.add(name="conv1", type=4)  # V1 enum CONVOLUTION
    w = np.arange(2 * 3 * 1 * 1, dtype=np.float32).reshape(2, 3, 1, 1)
    blob = v1.blobs.add(num=2, channels=3, height=1, width=1)
    blob.data.extend(w.reshape(-1).tolist())
    path = tmp_path / "old.caffemodel"
    path.write_bytes(net.SerializeToString())
    layers = read_caffemodel(path)
    assert layers["conv1"].type == "Convolution"
    np.testing.assert_array_equal(layers["conv1"].blobs[0], w)


def test_bad_files_name_the_problem(tmp_path: Path, caffe_ssd300: tuple) -> None:
    prototxt, caffemodel, net, blobs = caffe_ssd300
    junk = tmp_path / "junk.caffemodel"
    junk.write_bytes(b"\xff\xff\xff\xff not protobuf")
    with pytest.raises(WeightsError, match="junk.caffemodel"):
        read_caffemodel(junk)
    partial = tmp_path / "partial.caffemodel"
    write_caffemodel(partial, [CaffeLayer(n, "Convolution", b) for n, b in blobs.items() if n != "fc7"])
    with pytest.raises(WeightsError, match="fc7"):
        convert_caffe_ssd(prototxt, partial)
    bad = tmp_path / "bad.prototxt"
    bad.write_text(
        prototxt.read_text().replace(
            'kernel_size: 3 stride: 1 pad: 1 } }\nlayer { name: "fc6"',
            'kernel_size: 2 stride: 1 pad: 0 } }\nlayer { name: "fc6"',
        )
    )
    with pytest.raises(WeightsError, match="pool5"):
        convert_caffe_ssd(bad, caffemodel)


def test_cli_converts_a_caffe_model(caffe_ssd300: tuple, tmp_path: Path) -> None:
    from singleshot.engine.weights import load_weights
    from singleshot.tasks.detect.convert import convert

    prototxt, caffemodel, _, _ = caffe_ssd300
    dst = tmp_path / "ssd300_caffe.safetensors"
    out = convert({"from": "caffe", "prototxt": str(prototxt), "caffemodel": str(caffemodel), "dst": str(dst)})
    assert out["architecture"] == "ssd300" and out["num_classes"] == 20
    state, meta = load_weights(dst)
    assert meta["channel_order"] == "BGR" and meta["arch_kwargs"]["prior_clip"] == "none"
    assert meta["resize"] == {"interpolation": "bilinear", "antialias": False}  # Caffe's warp: cv2.resize INTER_LINEAR
    assert torch.equal(
        state["backbone.l2norm.weight"], torch.from_numpy(read_caffemodel(caffemodel)["conv4_3_norm"].blobs[0])
    )
