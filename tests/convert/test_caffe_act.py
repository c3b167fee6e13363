"""ACT Caffe import: a net definition with ACT's structure (K = 2 streams of VGG16 whose blobs are
shared by param name, per-stream Normalize, fc6 dilated 6·6^k in stream k as in the released
prototxts, Concat per source, cuboid heads) and a caffemodel are written here; an independent
layer-by-layer interpreter of the prototxt with Caffe's semantics (shared blob storage, ceil
pooling, eps inside the norm's square root) must give what the converted singleshot model gives."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from singleshot.convert._common import ConvertedWeights
from singleshot.convert.caffe import CaffeLayer, write_caffemodel
from singleshot.convert.caffe_act import StreamDilatedConv2d, act_caffe_layout, act_vgg16_caffe, convert_caffe_act
from singleshot.convert.prototxt import first, layers_of, parse_prototxt
from singleshot.data.action.readers import UCF24_CLASSES
from singleshot.errors import ConfigError, WeightsError

K = 2
NUM_LOGITS = 25  # UCF101-24 and background
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
# source, min size, max size, aspect ratios, step (ACT's PriorBox layers)
PRIORS = [
    ("conv4_3_norm", 30, 60, [2], 8),
    ("fc7", 60, 111, [2, 3], 16),
    ("conv6_2", 111, 162, [2, 3], 32),
    ("conv7_2", 162, 213, [2, 3], 64),
    ("conv8_2", 213, 264, [2], 100),
    ("conv9_2", 264, 315, [2], 300),
]


def _conv(name: str, bottom: str, out: int, k: int, s: int, p: int, d: int = 1, shared: str = "") -> str:
    params = (
        f'param {{ name: "{shared}_w" lr_mult: 0.5 }} param {{ name: "{shared}_b" lr_mult: 1 }}\n' if shared else ""
    )
    return (
        f'layer {{ name: "{name}" type: "Convolution" bottom: "{bottom}" top: "{name}"\n  {params}'
        f"  convolution_param {{ num_output: {out} pad: {p} kernel_size: {k} stride: {s} dilation: {d} }} }}\n"
        f'layer {{ name: "{name}_relu" type: "ReLU" bottom: "{name}" top: "{name}" }}\n'
    )


def act_prototxt(
    k: int = K,
    sfx: str = "",
    channels: int = 3,
    pool5: tuple[int, int, int] = (2, 1, 0),
    unshared: tuple[str, ...] = (),
    shared_norm: bool = False,
    seq: int = K,
    order: str = "",
) -> str:
    """ACT's deploy prototxt for K streams (``sfx="flow"``: the flow model's names)."""
    text = 'name: "ACTdetector_test_deploy"\n' + "".join(f'input: "data_stream{i}{sfx}"\n' for i in range(k))
    text += f"input_shape {{ dim: 1 dim: {channels} dim: 300 dim: 300 }}\n" * k
    prev = [f"data_stream{i}{sfx}" for i in range(k)]

    def conv(base: str, out: int, kk: int, s: int, p: int, d: int = 1, dil_growth: bool = False) -> None:
        nonlocal text
        for i in range(k):
            di = d * 6**i if dil_growth else d  # ACT's generator: fc6's dilation grows 6x per stream
            shared = "" if base in unshared else f"{base}{sfx}"
            text += _conv(f"{base}_stream{i}{sfx}", prev[i], out, kk, s, di if dil_growth else p, di, shared)
            prev[i] = f"{base}_stream{i}{sfx}"

    for item in VGG:
        if isinstance(item, str):
            for i in range(k):
                text += (
                    f'layer {{ name: "{item}_stream{i}{sfx}" type: "Pooling" bottom: "{prev[i]}" top: "{item}_stream{i}{sfx}"\n'
                    "  pooling_param { pool: MAX kernel_size: 2 stride: 2 } }\n"
                )
                prev[i] = f"{item}_stream{i}{sfx}"
        else:
            conv(item[0], item[1], 3, 1, 1)
    for i in range(k):
        text += (
            f'layer {{ name: "pool5_stream{i}{sfx}" type: "Pooling" bottom: "{prev[i]}" top: "pool5_stream{i}{sfx}"\n'
            f"  pooling_param {{ pool: MAX kernel_size: {pool5[0]} stride: {pool5[1]} pad: {pool5[2]} }} }}\n"
        )
        prev[i] = f"pool5_stream{i}{sfx}"
    conv("fc6", 1024, 3, 1, 6, 6, dil_growth=True)
    conv("fc7", 1024, 1, 1, 0)
    for name, out, kk, s, p in EXTRAS:
        conv(name, out, kk, s, p)
    for i in range(k):
        param = f'param {{ name: "conv4_3_norm{sfx}_scale" }}\n' if shared_norm else ""
        text += (
            f'layer {{ name: "conv4_3_norm_stream{i}{sfx}" type: "Normalize" bottom: "conv4_3_stream{i}{sfx}" '
            f'top: "conv4_3_norm_stream{i}{sfx}"\n  {param}  norm_param {{ across_spatial: false '
            'scale_filler { type: "constant" value: 20 } channel_shared: false } }\n'
        )
    flats: dict[str, list[str]] = {"loc": [], "conf": [], "priorbox": []}
    for src, smin, smax, ars, step in PRIORS:
        streams = [f"{src}_stream{i}{sfx}" for i in range(k)]
        bottoms = " ".join(f'bottom: "{b}"' for b in (streams[::-1] if order == "reversed" else streams))
        text += f'layer {{ name: "{src}_concat" type: "Concat" {bottoms} top: "{src}_concat" concat_param {{ axis: 1 }} }}\n'
        n = 2 + 2 * len(ars)
        for kind, per_prior in (("loc", 4 * k), ("conf", NUM_LOGITS)):
            name = f"{src}_concat_mbox_{kind}"
            text += (
                f'layer {{ name: "{name}" type: "Convolution" bottom: "{src}_concat" top: "{name}"\n'
                f"  convolution_param {{ num_output: {n * per_prior} pad: 1 kernel_size: 3 stride: 1 }} }}\n"
                f'layer {{ name: "{name}_perm" type: "Permute" bottom: "{name}" top: "{name}_perm"\n'
                "  permute_param { order: 0 order: 2 order: 3 order: 1 } }\n"
                f'layer {{ name: "{name}_flat" type: "Flatten" bottom: "{name}_perm" top: "{name}_flat"\n'
                "  flatten_param { axis: 1 } }\n"
            )
            flats[kind].append(f"{name}_flat")
        ar = " ".join(f"aspect_ratio: {a}" for a in ars)
        text += (
            f'layer {{ name: "{src}_concat_mbox_priorbox" type: "PriorBox" bottom: "{src}_concat" '
            f'bottom: "data_stream0{sfx}" top: "{src}_concat_mbox_priorbox"\n'
            f"  prior_box_param {{ min_size: {smin}.0 max_size: {smax}.0 {ar} flip: true clip: false\n"
            f"    variance: 0.1 variance: 0.1 variance: 0.2 variance: 0.2 step: {step} offset: 0.5 }} }}\n"
        )
        flats["priorbox"].append(f"{src}_concat_mbox_priorbox")
    for kind, names in flats.items():
        axis = 2 if kind == "priorbox" else 1
        bottoms = " ".join(f'bottom: "{b}"' for b in names)
        text += f'layer {{ name: "mbox_{kind}" type: "Concat" {bottoms} top: "mbox_{kind}" concat_param {{ axis: {axis} }} }}\n'
    text += (
        f'layer {{ name: "mbox_conf_reshape" type: "Reshape" bottom: "mbox_conf" top: "mbox_conf_reshape"\n'
        f"  reshape_param {{ shape {{ dim: 0 dim: -1 dim: {NUM_LOGITS} }} }} }}\n"
        'layer { name: "mbox_conf_softmax" type: "Softmax" bottom: "mbox_conf_reshape" top: "mbox_conf_softmax"\n'
        "  softmax_param { axis: 2 } }\n"
        'layer { name: "detection_out" type: "ACTDetectionOutput" bottom: "mbox_loc" bottom: "mbox_conf_softmax"\n'
        f'  bottom: "mbox_priorbox" top: "detection_out" include {{ phase: TEST }}\n'
        f"  detection_output_param {{ num_classes: {NUM_LOGITS} share_location: true background_label_id: 0\n"
        "    nms_param { nms_threshold: 0.4 top_k: 300 } code_type: CENTER_SIZE keep_top_k: 100\n"
        f"    confidence_threshold: 0.02 }}\n  act_detection_output_param {{ sequence_length: {seq} }} }}\n"
    )
    return text


def _param_names(layer: dict) -> list[str]:
    return [str(first(p, "name", "")) for p in layer.get("param", [])]


def random_blobs(net: dict, seed: int) -> dict[str, list[np.ndarray]]:
    """He-scaled random blobs for every Convolution and Normalize layer; a shared param name gets one value."""
    rng = np.random.default_rng(seed)
    channels = {name: int(shape["dim"][1]) for name, shape in zip(net["input"], net["input_shape"])}
    blobs: dict[str, list[np.ndarray]] = {}
    by_param: dict[str, list[np.ndarray]] = {}
    for layer in layers_of(net):
        kind, name, bottoms, top = (
            first(layer, "type"),
            first(layer, "name"),
            layer.get("bottom", []),
            first(layer, "top"),
        )
        shared = _param_names(layer)
        if shared and shared[0] in by_param:
            blobs[name] = by_param[shared[0]]
        elif kind == "Convolution":
            p = first(layer, "convolution_param")
            k, out, cin = first(p, "kernel_size"), first(p, "num_output"), channels[bottoms[0]]
            w = rng.standard_normal((out, cin, k, k), dtype=np.float32) * np.float32(math.sqrt(2.0 / (cin * k * k)))
            blobs[name] = [w, rng.standard_normal(out, dtype=np.float32) * np.float32(0.1)]
        elif kind == "Normalize":
            blobs[name] = [(20.0 + rng.standard_normal(channels[bottoms[0]])).astype(np.float32)]
        if shared and name in blobs:
            by_param.setdefault(shared[0], blobs[name])
        if kind == "Convolution":
            channels[top] = int(first(first(layer, "convolution_param"), "num_output"))
        elif kind == "Concat":
            channels[top] = sum(channels.get(b, 0) for b in bottoms)
        elif bottoms and bottoms[0] in channels:
            channels[top] = channels[bottoms[0]]
    return blobs


def run_caffe_net(
    net: dict, file_layers: dict[str, list[np.ndarray]], inputs: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Caffe's forward of a parsed prototxt, one layer at a time with torch ops.

    Weights as Caffe loads them: blobs with one param name share one storage, and each layer of
    the file is copied into its storage in file order (layers absent from the file read it).
    """
    names = {first(layer, "name"): _param_names(layer) for layer in layers_of(net)}

    def key(layer: str, j: int) -> str:
        return names[layer][j] if j < len(names[layer]) and names[layer][j] else f"{layer}#{j}"

    storage = {
        key(layer, j): torch.from_numpy(a) for layer, arrays in file_layers.items() for j, a in enumerate(arrays)
    }
    values = dict(inputs)
    skipped: set[str] = set()  # priors and what is computed from them (not compared here)
    for layer in layers_of(net):
        kind, name = first(layer, "type"), first(layer, "name")
        bottoms, top = layer.get("bottom", []), first(layer, "top")
        x = values.get(bottoms[0]) if bottoms else None
        if kind in ("PriorBox", "ACTDetectionOutput") or skipped & set(bottoms):
            skipped.add(top)
        elif kind == "Convolution":
            p = first(layer, "convolution_param")
            values[top] = F.conv2d(
                x,
                storage[key(name, 0)],
                storage[key(name, 1)],
                stride=first(p, "stride", 1),
                padding=first(p, "pad", 0),
                dilation=first(p, "dilation", 1),
            )
        elif kind == "ReLU":
            values[top] = x.clamp(min=0)
        elif kind == "Pooling":  # Caffe rounds the output size up
            p = first(layer, "pooling_param")
            values[top] = F.max_pool2d(
                x, first(p, "kernel_size"), first(p, "stride", 1), first(p, "pad", 0), ceil_mode=True
            )
        elif kind == "Normalize":  # across_spatial false: per position over channels, eps inside the root
            scale = storage[key(name, 0)].reshape(1, -1, 1, 1)
            values[top] = x / torch.sqrt((x * x).sum(1, keepdim=True) + 1e-10) * scale
        elif kind == "Concat":
            values[top] = torch.cat(
                [values[b] for b in bottoms], dim=first(first(layer, "concat_param", {}), "axis", 1)
            )
        elif kind == "Permute":
            values[top] = x.permute(*first(layer, "permute_param")["order"])
        elif kind == "Flatten":
            values[top] = x.reshape(x.shape[0], -1)
        elif kind == "Reshape":
            dims = first(first(layer, "reshape_param"), "shape")["dim"]
            values[top] = x.reshape([x.shape[i] if d == 0 else d for i, d in enumerate(dims)])
        elif kind == "Softmax":
            values[top] = x.softmax(dim=first(first(layer, "softmax_param"), "axis", 1))
        else:
            raise NotImplementedError(kind)
    return values


def _is_norm(name: str) -> bool:
    return re.fullmatch(r"conv4_3_norm_stream\d+(flow)?", name) is not None


def _write(path: Path, blobs: dict[str, list[np.ndarray]]) -> Path:
    write_caffemodel(path, [CaffeLayer(n, "Normalize" if _is_norm(n) else "Convolution", b) for n, b in blobs.items()])
    return path


@pytest.fixture(scope="module")
def caffe_act(tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("caffe_act")
    text = act_prototxt()
    net = parse_prototxt(text)
    blobs = random_blobs(net, seed=0)
    (tmp / "deploy_RGB.prototxt").write_text(text)
    owner = {n: b for n, b in blobs.items() if _is_norm(n) or not re.search(r"_stream[1-9]$", n)}
    return {
        "tmp": tmp,
        "prototxt": tmp / "deploy_RGB.prototxt",
        "net": net,
        "blobs": blobs,
        "owner": owner,
        "copies": _write(tmp / "copies.caffemodel", blobs),
        "owner_only": _write(tmp / "owner.caffemodel", owner),
    }


@pytest.fixture(scope="module")
def converted(caffe_act: dict) -> ConvertedWeights:
    return convert_caffe_act(caffe_act["prototxt"], caffe_act["copies"])


def test_converted_act_reproduces_the_caffe_forward(caffe_act: dict, converted: ConvertedWeights) -> None:
    meta = converted.metadata
    assert meta["architecture"] == "act_vgg16" and meta["K"] == K and meta["modality"] == "rgb"
    assert meta["arch_kwargs"] == {"k": K, "pool5": "2x2s1", "shared_l2norm": False, "fc6_dilations": [6, 36]}
    assert meta["num_classes"] == 24 and meta["classes"] == list(UCF24_CLASSES)
    assert meta["channel_order"] == "BGR" and meta["input_size"] == [300, 300]
    assert [m * 255 for m in meta["mean"]] == pytest.approx([104, 117, 123]) and meta["std"][0] * 255 == pytest.approx(
        1
    )
    assert meta["postprocess"] == {
        "score_thresh": 0.02,
        "nms_thresh": 0.4,
        "topk_candidates": 300,
        "max_detections": 100,
    }
    # per-stream conv4_3 scales land in StreamL2Norm's K rows, in stream order
    for k in range(K):
        assert torch.equal(
            converted.state_dict["backbone.l2norm.weight"][k],
            torch.from_numpy(caffe_act["blobs"][f"conv4_3_norm_stream{k}"][0]),
        )
    model = act_vgg16_caffe(24, **meta["arch_kwargs"]).eval()
    model.load_state_dict(converted.state_dict, strict=True)
    x = torch.randn(1, K, 3, 300, 300, generator=torch.Generator().manual_seed(1)) * 50
    with torch.no_grad():
        ours = model(x)
        ref = run_caffe_net(caffe_act["net"], caffe_act["blobs"], {f"data_stream{k}": x[:, k] for k in range(K)})
    loc, conf = ref["mbox_loc"].reshape(1, -1, 4 * K), ref["mbox_conf"].reshape(1, -1, NUM_LOGITS)
    assert loc.shape == ours["loc"].shape == (1, 8396, 4 * K)
    assert (ours["loc"] - loc).abs().max() <= 1e-4 * loc.abs().max()
    assert (ours["conf"] - conf).abs().max() <= 1e-4 * conf.abs().max()
    assert torch.allclose(ours["conf"].softmax(-1), ref["mbox_conf_softmax"], atol=1e-4)


def test_owner_only_caffemodel_gives_the_same_weights(caffe_act: dict, converted: ConvertedWeights) -> None:
    # Caffe's protobuf writer stores a shared blob once per layer instance; a file holding only the
    # owners' copies (stream 0) loads the same, the other streams sharing them by param name.
    owner = convert_caffe_act(caffe_act["prototxt"], caffe_act["owner_only"])
    assert owner.state_dict.keys() == converted.state_dict.keys()
    assert all(torch.equal(owner.state_dict[k], v) for k, v in converted.state_dict.items())


def test_streams_with_different_shared_weights_are_refused(caffe_act: dict) -> None:
    blobs = caffe_act["blobs"]
    w, b = blobs["conv1_1_stream0"]
    bad = {"conv1_1_stream0": [w, b], "conv1_1_stream1": [w + np.float32(1e-3), b]}
    path = _write(caffe_act["tmp"] / "differ.caffemodel", bad)
    with pytest.raises(WeightsError, match=r"differ\.caffemodel.*'conv1_1_stream0' and 'conv1_1_stream1'"):
        convert_caffe_act(caffe_act["prototxt"], path)


def test_missing_and_misshaped_layers_name_the_layer(caffe_act: dict) -> None:
    tmp, blobs = caffe_act["tmp"], caffe_act["blobs"]
    only_first = _write(tmp / "first.caffemodel", {"conv1_1_stream0": blobs["conv1_1_stream0"]})
    with pytest.raises(WeightsError, match=r"first\.caffemodel: no weights for layer 'conv1_2_stream0'"):
        convert_caffe_act(caffe_act["prototxt"], only_first)
    # owner-only file, but the prototxt does not share conv1_2 between the streams
    unshared = tmp / "unshared.prototxt"
    unshared.write_text(act_prototxt(unshared=("conv1_2",)))
    two = _write(tmp / "two.caffemodel", {n: blobs[n] for n in ("conv1_1_stream0", "conv1_2_stream0")})
    with pytest.raises(WeightsError, match=r"no weights for layer 'conv1_2_stream1', and the prototxt does not share"):
        convert_caffe_act(unshared, two)
    wide = _write(
        tmp / "wide.caffemodel", {"conv1_1_stream0": [np.zeros((64, 3, 5, 5), np.float32), np.zeros(64, np.float32)]}
    )
    with pytest.raises(WeightsError, match=r"wide\.caffemodel: layer 'conv1_1_stream0' has shape \(64, 3, 5, 5\)"):
        convert_caffe_act(caffe_act["prototxt"], wide)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"pool5": (3, 2, 0)}, r"bad\.prototxt: layer 'pool5_stream0' has \(kernel, stride, pad\) \(3, 2, 0\)"),
        ({"order": "reversed"}, r"Concat layer 'conv4_3_norm_concat' must join"),
        ({"seq": 3}, r"2 streams but layer 'detection_out' has sequence_length 3"),
    ],
)
def test_unsupported_prototxts_are_refused(tmp_path: Path, kwargs: dict, match: str) -> None:
    bad = tmp_path / "bad.prototxt"
    bad.write_text(act_prototxt(**kwargs))
    with pytest.raises(WeightsError, match=match):  # refused before the caffemodel is opened
        convert_caffe_act(bad, tmp_path / "never_read.caffemodel")


@pytest.fixture(scope="module")
def caffe_flow(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """ACT's FLOW5 net (``*_stream{k}flow`` layers, 15 input channels per stream) and its caffemodel."""
    tmp = tmp_path_factory.mktemp("caffe_act_flow")
    text = act_prototxt(sfx="flow", channels=15)
    net = parse_prototxt(text)
    blobs = random_blobs(net, seed=3)
    (tmp / "deploy_FLOW5.prototxt").write_text(text)
    return {"tmp": tmp, "prototxt": tmp / "deploy_FLOW5.prototxt", "net": net, "blobs": blobs}


def test_flow5_model_converts_and_reproduces_the_caffe_forward(caffe_flow: dict) -> None:
    converted = convert_caffe_act(
        caffe_flow["prototxt"], _write(caffe_flow["tmp"] / "flow.caffemodel", caffe_flow["blobs"])
    )
    meta = converted.metadata
    assert meta["modality"] == "flow" and meta["flow_stack"] == 5 and meta["channel_order"] == "BGR"
    assert meta["arch_kwargs"] == {
        "k": K,
        "pool5": "2x2s1",
        "shared_l2norm": False,
        "fc6_dilations": [6, 36],
        "in_channels": 15,
    }
    # the first convolution is the caffemodel's 15-channel conv1_1, as stored
    assert torch.equal(
        converted.state_dict["backbone.vgg.0.weight"], torch.from_numpy(caffe_flow["blobs"]["conv1_1_stream0flow"][0])
    )
    model = act_vgg16_caffe(24, **meta["arch_kwargs"]).eval()
    model.load_state_dict(converted.state_dict, strict=True)
    assert model.backbone.vgg[0].in_channels == 15
    x = torch.randn(1, K, 15, 300, 300, generator=torch.Generator().manual_seed(2)) * 50
    with torch.no_grad():
        ours = model(x)
        ref = run_caffe_net(caffe_flow["net"], caffe_flow["blobs"], {f"data_stream{k}flow": x[:, k] for k in range(K)})
    loc, conf = ref["mbox_loc"].reshape(1, -1, 4 * K), ref["mbox_conf"].reshape(1, -1, NUM_LOGITS)
    assert loc.shape == ours["loc"].shape == (1, 8396, 4 * K)
    assert (ours["loc"] - loc).abs().max() <= 1e-4 * loc.abs().max()
    assert (ours["conf"] - conf).abs().max() <= 1e-4 * conf.abs().max()
    with pytest.raises(ConfigError, match=r"\[B, 2, 15, 300, 300\]"):  # RGB frames do not fit a flow net
        model(torch.zeros(1, K, 3, 300, 300))


def test_input_channels_must_fit_the_modality(caffe_flow: dict, caffe_act: dict) -> None:
    tmp = caffe_flow["tmp"]
    w, b = caffe_flow["blobs"]["conv1_1_stream0flow"]
    rgb_net_flow_blob = _write(tmp / "rgb15.caffemodel", {"conv1_1_stream0": [w, b]})
    with pytest.raises(WeightsError, match=r"rgb15\.caffemodel: layer 'conv1_1_stream0' takes 15 channels; an RGB"):
        convert_caffe_act(caffe_act["prototxt"], rgb_net_flow_blob)
    odd = _write(tmp / "odd.caffemodel", {"conv1_1_stream0flow": [w[:, :14], b]})
    with pytest.raises(WeightsError, match=r"odd\.caffemodel: layer 'conv1_1_stream0flow' takes 14 channels"):
        convert_caffe_act(caffe_flow["prototxt"], odd)


def test_layout_variants() -> None:
    ssd_pool5 = act_caffe_layout(parse_prototxt(act_prototxt(pool5=(3, 1, 1))), "ssd_pool5")
    assert ssd_pool5.pool5 == "3x3s1p1" and ssd_pool5.fc6_dilations == [6, 36]  # priors checked for 19x19 fc7
    shared = act_caffe_layout(parse_prototxt(act_prototxt(k=3, seq=3, shared_norm=True)), "shared")
    assert shared.k == 3 and shared.shared_l2norm and shared.heads[1] == ("fc7_concat_mbox_loc", "fc7_concat_mbox_conf")
    assert not act_caffe_layout(parse_prototxt(act_prototxt()), "rgb").shared_l2norm


def test_stream_dilated_conv_equals_literal_dilated_convs() -> None:
    torch.manual_seed(0)
    dilations = [1, 3, 9, 40]  # 9 and 40 >= the 9x9 map: only the centre tap reaches it
    conv = StreamDilatedConv2d(4, 5, dilations)
    x = torch.randn(2 * len(dilations), 4, 9, 9)
    frames = x.view(2, len(dilations), 4, 9, 9)
    want = torch.stack(
        [F.conv2d(frames[:, s], conv.weight, conv.bias, padding=d, dilation=d) for s, d in enumerate(dilations)], dim=1
    ).flatten(0, 1)
    assert torch.allclose(conv(x), want, atol=1e-5)
    centre_only = F.conv2d(frames[:, 3], conv.weight[:, :, 1:2, 1:2], conv.bias)  # a 1x1 conv with the centre tap
    assert torch.allclose(want[3::4], centre_only, atol=1e-5)
