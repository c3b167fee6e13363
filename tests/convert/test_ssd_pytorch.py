"""ssd.pytorch checkpoint -> singleshot SSD300, checked by an independent functional forward pass."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from singleshot.convert import convert_ssd_pytorch, load_ssd_pytorch
from singleshot.errors import WeightsError

# amdegroot/ssd.pytorch build_ssd('train', 300, 21): base cfg, extras cfg and mbox counts.
BASE = [64, 64, "M", 128, 128, "M", 256, 256, 256, "C", 512, 512, 512, "M", 512, 512, 512]
EXTRAS = [
    (1024, 256, 1),
    (256, 512, 3),
    (512, 128, 1),
    (128, 256, 3),
    (256, 128, 1),
    (128, 256, 3),
    (256, 128, 1),
    (128, 256, 3),
]
MBOX = [4, 6, 6, 6, 4, 4]
SOURCE_CHANNELS = [512, 1024, 512, 256, 256, 256]


def _conv(sd: dict[str, Tensor], name: str, cin: int, cout: int, k: int, gen: torch.Generator) -> None:
    std = math.sqrt(2.0 / (cin * k * k))
    sd[f"{name}.weight"] = torch.randn(cout, cin, k, k, generator=gen) * std
    sd[f"{name}.bias"] = torch.randn(cout, generator=gen) * 0.1


def ssd_pytorch_state_dict(num_classes: int = 21, seed: int = 0) -> dict[str, Tensor]:
    """Random weights with the key names and shapes of ssd.pytorch's SSD300 (vgg 0..34, extras 0..7)."""
    gen = torch.Generator().manual_seed(seed)
    sd: dict[str, Tensor] = {}
    idx, cin = 0, 3
    for v in BASE:
        if isinstance(v, str):
            idx += 1
        else:
            _conv(sd, f"vgg.{idx}", cin, v, 3, gen)
            idx, cin = idx + 2, v
    assert idx == 30  # pool5 at 30, conv6 at 31, conv7 at 33
    _conv(sd, "vgg.31", 512, 1024, 3, gen)
    _conv(sd, "vgg.33", 1024, 1024, 1, gen)
    sd["L2Norm.weight"] = 20.0 + torch.randn(512, generator=gen)
    for k, (ci, co, ks) in enumerate(EXTRAS):
        _conv(sd, f"extras.{k}", ci, co, ks, gen)
    for i, (c, a) in enumerate(zip(SOURCE_CHANNELS, MBOX)):
        _conv(sd, f"loc.{i}", c, a * 4, 3, gen)
        _conv(sd, f"conf.{i}", c, a * num_classes, 3, gen)
    return sd


def reference_forward(sd: dict[str, Tensor], x: Tensor, num_classes: int) -> tuple[Tensor, Tensor]:
    """ssd.pytorch's SSD.forward in train phase, layer by layer with torch.nn.functional."""
    sources = []
    idx = 0
    for v in BASE:
        if v == "M":
            x = F.max_pool2d(x, 2, 2)
            idx += 1
        elif v == "C":
            x = F.max_pool2d(x, 2, 2, ceil_mode=True)
            idx += 1
        else:
            x = F.relu(F.conv2d(x, sd[f"vgg.{idx}.weight"], sd[f"vgg.{idx}.bias"], padding=1))
            idx += 2
        if idx == 23:  # after conv4_3's ReLU
            norm = x.pow(2).sum(1, keepdim=True).sqrt() + 1e-10
            sources.append(x / norm * sd["L2Norm.weight"].view(1, -1, 1, 1))
    x = F.max_pool2d(x, 3, 1, 1)
    x = F.relu(F.conv2d(x, sd["vgg.31.weight"], sd["vgg.31.bias"], padding=6, dilation=6))
    x = F.relu(F.conv2d(x, sd["vgg.33.weight"], sd["vgg.33.bias"]))
    sources.append(x)
    for k in range(len(EXTRAS)):
        stride, pad = (2, 1) if k in (1, 3) else (1, 0)
        x = F.relu(F.conv2d(x, sd[f"extras.{k}.weight"], sd[f"extras.{k}.bias"], stride=stride, padding=pad))
        if k % 2 == 1:
            sources.append(x)
    loc, conf = [], []
    for i, s in enumerate(sources):
        loc.append(F.conv2d(s, sd[f"loc.{i}.weight"], sd[f"loc.{i}.bias"], padding=1).permute(0, 2, 3, 1).flatten(1))
        conf.append(F.conv2d(s, sd[f"conf.{i}.weight"], sd[f"conf.{i}.bias"], padding=1).permute(0, 2, 3, 1).flatten(1))
    b = x.shape[0]
    return torch.cat(loc, 1).view(b, -1, 4), torch.cat(conf, 1).view(b, -1, num_classes)


def voc_priorbox() -> Tensor:
    """ssd.pytorch's PriorBox.forward for its `voc` config, written out in plain Python."""
    fmaps, steps = [38, 19, 10, 5, 3, 1], [8, 16, 32, 64, 100, 300]
    mins, maxs = [30, 60, 111, 162, 213, 264], [60, 111, 162, 213, 264, 315]
    ars = [[2], [2, 3], [2, 3], [2, 3], [2], [2]]
    out = []
    for k, f in enumerate(fmaps):
        for i, j in itertools.product(range(f), repeat=2):
            fk = 300 / steps[k]
            cx, cy = (j + 0.5) / fk, (i + 0.5) / fk
            sk = mins[k] / 300
            out.append([cx, cy, sk, sk])
            skp = math.sqrt(sk * maxs[k] / 300)
            out.append([cx, cy, skp, skp])
            for ar in ars[k]:
                out.append([cx, cy, sk * math.sqrt(ar), sk / math.sqrt(ar)])
                out.append([cx, cy, sk / math.sqrt(ar), sk * math.sqrt(ar)])
    return torch.tensor(out).clamp(0, 1)


def test_converted_checkpoint_matches_functional_reference(tmp_path: Path) -> None:
    sd = ssd_pytorch_state_dict()
    path = tmp_path / "ssd300_VOC.pth"
    torch.save({f"module.{k}": v for k, v in sd.items()}, path)  # as saved from nn.DataParallel
    model, meta = load_ssd_pytorch(path)
    model.eval()
    assert model.num_classes == 20 and meta["priors"] == "voc300"
    x = torch.randn(1, 3, 300, 300, generator=torch.Generator().manual_seed(3)) * 60.0
    with torch.no_grad():
        loc_ref, conf_ref = reference_forward(sd, x, 21)
        out = model(x)
    assert loc_ref.shape == (1, 8732, 4) and conf_ref.shape == (1, 8732, 21)
    scale = max(loc_ref.abs().max().item(), conf_ref.abs().max().item(), 1.0)
    torch.testing.assert_close(out["bbox_regression"], loc_ref, atol=1e-4 * scale, rtol=1e-4)
    torch.testing.assert_close(out["cls_logits"], conf_ref, atol=1e-4 * scale, rtol=1e-4)
    torch.testing.assert_close(model.priors, voc_priorbox(), atol=1e-6, rtol=0.0)


def test_metadata_records_channel_order_and_mean() -> None:
    meta = convert_ssd_pytorch(ssd_pytorch_state_dict()).metadata
    assert meta["channel_order"] == "RGB"
    # ssd.pytorch subtracts (104, 117, 123) from BGR pixels, then swaps to RGB: RGB mean 123, 117, 104.
    assert [round(m * 255) for m in meta["mean"]] == [123, 117, 104]
    assert meta["std"] == pytest.approx([1 / 255] * 3)
    assert meta["resize"] == {"interpolation": "bilinear", "antialias": False}  # cv2.resize INTER_LINEAR
    assert meta["classes"][0] == "aeroplane" and len(meta["classes"]) == 20
    assert meta["postprocess"]["nms_thresh"] == 0.45 and meta["postprocess"]["score_thresh"] == 0.01


def test_other_class_counts_use_coco_priors() -> None:
    sd = ssd_pytorch_state_dict(num_classes=81, seed=1)
    converted = convert_ssd_pytorch(sd)
    assert converted.metadata["priors"] == "coco300" and converted.metadata["num_classes"] == 80


def test_errors_name_the_key() -> None:
    sd = ssd_pytorch_state_dict()
    bad = dict(sd)
    bad["conf.2.weight"] = bad["conf.2.weight"][:-1]
    with pytest.raises(WeightsError, match=r"conf\.2\.weight"):
        load_ssd_pytorch(bad)
    odd = dict(sd)
    odd["priors"] = torch.zeros(8732, 4)
    with pytest.raises(WeightsError, match="'priors'"):
        convert_ssd_pytorch(odd)
