"""Independent references for the YOWO tests (not collected by pytest; test files load it by path).

* Key/shape generators written from the structure of wei-tim/YOWO's modules (``backbones_3d``
  from kenshohara's 3D-ResNets and okankop's Efficient-3DCNNs, ``backbones_2d/darknet.py`` driven
  by ``cfg/yolo.cfg``, ``core/cfam.py``, ``core/model.py``): the names a YOWO checkpoint has.
* Functional forwards with ``torch.nn.functional`` that read those source tensors directly.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

Shapes = dict[str, tuple[int, ...]]


# ----------------------------------------------------------------------------- key layouts
def bn_keys(prefix: str, c: int, counters: bool = True) -> Shapes:
    keys: Shapes = {
        f"{prefix}.weight": (c,),
        f"{prefix}.bias": (c,),
        f"{prefix}.running_mean": (c,),
        f"{prefix}.running_var": (c,),
    }
    if counters:
        keys[f"{prefix}.num_batches_tracked"] = ()
    return keys


def resnet_keys(
    p: str,
    layers: tuple[int, ...],
    planes: tuple[int, ...],
    kind: str = "basic",
    card: int = 32,
    shortcut: str = "B",
    stem: int = 64,
    stem_kernel: tuple[int, int, int] = (7, 7, 7),
    counters: bool = True,
) -> Shapes:
    """kenshohara's ResNet (``kind="basic"``) / ResNeXt (``kind="resnext"``, expansion 2) keys."""
    keys: Shapes = {f"{p}conv1.weight": (stem, 3, *stem_kernel), **bn_keys(f"{p}bn1", stem, counters)}
    inplanes = stem
    for li, (n, pl) in enumerate(zip(layers, planes), start=1):
        out = pl * (2 if kind == "resnext" else 1)
        for b in range(n):
            q = f"{p}layer{li}.{b}."
            cin = inplanes if b == 0 else out
            if kind == "resnext":
                mid = card * (pl // 32)
                keys[q + "conv1.weight"] = (mid, cin, 1, 1, 1)
                keys.update(bn_keys(q + "bn1", mid, counters))
                keys[q + "conv2.weight"] = (mid, mid // card, 3, 3, 3)
                keys.update(bn_keys(q + "bn2", mid, counters))
                keys[q + "conv3.weight"] = (out, mid, 1, 1, 1)
                keys.update(bn_keys(q + "bn3", out, counters))
            else:
                keys[q + "conv1.weight"] = (out, cin, 3, 3, 3)
                keys.update(bn_keys(q + "bn1", out, counters))
                keys[q + "conv2.weight"] = (out, out, 3, 3, 3)
                keys.update(bn_keys(q + "bn2", out, counters))
            stride = 2 if (li > 1 and b == 0) else 1
            if b == 0 and (stride != 1 or cin != out) and shortcut == "B":
                keys[q + "downsample.0.weight"] = (out, cin, 1, 1, 1)
                keys.update(bn_keys(q + "downsample.1", out, counters))
        inplanes = out
    return keys


def shufflenet_keys(p: str, ch: tuple[int, ...], counters: bool = True) -> Shapes:
    """okankop's 3D ShuffleNetV2 keys; ``ch`` = (stem, stage2, stage3, stage4, last)."""
    keys: Shapes = {f"{p}conv1.0.weight": (ch[0], 3, 3, 3, 3), **bn_keys(f"{p}conv1.1", ch[0], counters)}
    i, cin = 0, ch[0]
    for repeats, cout in zip((4, 8, 4), ch[1:4]):
        half = cout // 2
        for r in range(repeats):
            q = f"{p}features.{i}."
            if r == 0:
                keys[q + "banch1.0.weight"] = (cin, 1, 3, 3, 3)
                keys.update(bn_keys(q + "banch1.1", cin, counters))
                keys[q + "banch1.2.weight"] = (half, cin, 1, 1, 1)
                keys.update(bn_keys(q + "banch1.3", half, counters))
                first_in = cin
            else:
                first_in = half
            keys[q + "banch2.0.weight"] = (half, first_in, 1, 1, 1)
            keys.update(bn_keys(q + "banch2.1", half, counters))
            keys[q + "banch2.3.weight"] = (half, 1, 3, 3, 3)
            keys.update(bn_keys(q + "banch2.4", half, counters))
            keys[q + "banch2.5.weight"] = (half, half, 1, 1, 1)
            keys.update(bn_keys(q + "banch2.6", half, counters))
            i, cin = i + 1, cout
    keys[f"{p}conv_last.0.weight"] = (ch[4], cin, 1, 1, 1)
    keys.update(bn_keys(f"{p}conv_last.1", ch[4], counters))
    return keys


#: the layers of YOWO's cfg/yolo.cfg (YOLOv2, COCO) after [net], in Darknet cfg syntax.
YOLO_CFG = "\n".join(
    [
        f"[convolutional]\nbatch_normalize=1\nfilters={f}\nsize={s}\nstride=1\npad=1\nactivation=leaky"
        if f
        else "[maxpool]\nsize=2\nstride=2"
        for f, s in [
            (32, 3),
            (0, 0),
            (64, 3),
            (0, 0),
            (128, 3),
            (64, 1),
            (128, 3),
            (0, 0),
            (256, 3),
            (128, 1),
            (256, 3),
            (0, 0),
            (512, 3),
            (256, 1),
            (512, 3),
            (256, 1),
            (512, 3),
            (0, 0),
            (1024, 3),
            (512, 1),
            (1024, 3),
            (512, 1),
            (1024, 3),
            (1024, 3),
            (1024, 3),
        ]
    ]
    + [
        "[route]\nlayers=-9",
        "[convolutional]\nbatch_normalize=1\nsize=1\nstride=1\npad=1\nfilters=64\nactivation=leaky",
        "[reorg]\nstride=2",
        "[route]\nlayers=-1,-4",
        "[convolutional]\nbatch_normalize=1\nsize=3\nstride=1\npad=1\nfilters=1024\nactivation=leaky",
        "[convolutional]\nsize=1\nstride=1\npad=1\nfilters=425\nactivation=linear",
        "[region]\nanchors = 0.57273, 0.677385, 1.87446, 2.06253, 3.33843, 5.47434, 7.88282, 3.52778, 9.77052, 9.16828\nclasses=80\nnum=5",
    ]
)


def parse_cfg(text: str) -> list[dict[str, str]]:
    """Darknet cfg text -> list of blocks (``type`` plus the block's options)."""
    blocks: list[dict[str, str]] = []
    for line in text.splitlines():
        line = line.split("#")[0].strip()
        if not line:
            continue
        if line.startswith("["):
            blocks.append({"type": line.strip("[]")})
        else:
            k, v = line.split("=", 1)
            blocks[-1][k.strip()] = v.strip()
    return [b for b in blocks if b["type"] != "region"]


def darknet_keys(p: str, blocks: list[dict[str, str]], counters: bool = True) -> Shapes:
    """YOWO's Darknet names: block ``i`` is ``models.{i}``, the ``n``-th conv ``conv{n}`` / ``bn{n}``."""
    keys: Shapes = {}
    channels: list[int] = []
    c, n = 3, 0
    for i, b in enumerate(blocks):
        if b["type"] == "convolutional":
            n += 1
            f, s = int(b["filters"]), int(b["size"])
            keys[f"{p}models.{i}.conv{n}.weight"] = (f, c, s, s)
            if int(b.get("batch_normalize", "0")):
                keys.update(bn_keys(f"{p}models.{i}.bn{n}", f, counters))
            else:
                keys[f"{p}models.{i}.conv{n}.bias"] = (f,)
            c = f
        elif b["type"] == "reorg":
            c *= int(b["stride"]) ** 2
        elif b["type"] == "route":
            c = sum(channels[int(j) + i if int(j) < 0 else int(j)] for j in b["layers"].split(","))
        channels.append(c)
    return keys


def cfam_keys(p: str, cin: int, inter: int = 1024, counters: bool = True) -> Shapes:
    keys: Shapes = {f"{p}conv_bn_relu1.0.weight": (inter, cin, 1, 1), **bn_keys(f"{p}conv_bn_relu1.1", inter, counters)}
    for j in (2, 3):
        keys[f"{p}conv_bn_relu{j}.0.weight"] = (inter, inter, 3, 3)
        keys.update(bn_keys(f"{p}conv_bn_relu{j}.1", inter, counters))
    keys[f"{p}sc.gamma"] = (1,)
    keys[f"{p}conv_out.1.weight"] = (inter, inter, 1, 1)
    keys[f"{p}conv_out.1.bias"] = (inter,)
    return keys


def yowo_keys(num_classes: int, backbone: str = "resnext101", counters: bool = True) -> Shapes:
    """Keys and shapes of YOWO's ``model.state_dict()`` (before DataParallel's ``module.``)."""
    if backbone == "resnext101":
        k3, c3 = resnet_keys("backbone_3d.", (3, 4, 23, 3), (128, 256, 512, 1024), "resnext", counters=counters), 2048
    elif backbone == "resnet18":
        k3, c3 = resnet_keys("backbone_3d.", (2, 2, 2, 2), (64, 128, 256, 512), shortcut="A", counters=counters), 512
    else:
        k3, c3 = shufflenet_keys("backbone_3d.", (24, 224, 488, 976, 2048), counters), 2048
    keys = {
        **k3,
        **darknet_keys("backbone_2d.", parse_cfg(YOLO_CFG), counters),
        **cfam_keys("cfam.", c3 + 425, counters=counters),
    }
    keys["conv_final.weight"] = (5 * (num_classes + 5), 1024, 1, 1)
    return keys


def random_state(shapes: Shapes, seed: int = 0) -> dict[str, Tensor]:
    """Random tensors for ``shapes``: He-scaled weights, varied BatchNorm statistics, gamma 0.5."""
    gen = torch.Generator().manual_seed(seed)
    sd: dict[str, Tensor] = {}
    for k, s in shapes.items():
        if k.endswith("num_batches_tracked"):
            sd[k] = torch.tensor(100, dtype=torch.long)
        elif k.endswith("running_var"):
            sd[k] = 0.5 + torch.rand(s, generator=gen)
        elif k.endswith("running_mean") or k.endswith(".bias"):
            sd[k] = 0.1 * torch.randn(s, generator=gen)
        elif k.endswith("gamma"):
            sd[k] = torch.full(s, 0.5)
        elif len(s) == 1:  # BatchNorm weight
            sd[k] = 1.0 + 0.1 * torch.randn(s, generator=gen)
        else:
            fan_in = math.prod(s[1:])
            sd[k] = torch.randn(s, generator=gen) * math.sqrt(2.0 / fan_in)
    return sd


# ----------------------------------------------------------------------------- functional forwards
def bn(x: Tensor, sd: dict[str, Tensor], p: str) -> Tensor:
    return F.batch_norm(
        x, sd[p + ".running_mean"], sd[p + ".running_var"], sd[p + ".weight"], sd[p + ".bias"], False, 0.0, 1e-5
    )


def resnet3d_forward(
    sd: dict[str, Tensor], p: str, x: Tensor, kind: str = "basic", stem_kernel: tuple[int, int, int] = (7, 7, 7)
) -> Tensor:
    """kenshohara's 3D ResNet / ResNeXt trunk followed by YOWO's time reduction (T = 2 averaged, T = 1 squeezed)."""
    pad = tuple(k // 2 for k in stem_kernel)
    x = F.relu(bn(F.conv3d(x, sd[p + "conv1.weight"], stride=(1, 2, 2), padding=pad), sd, p + "bn1"))
    x = F.max_pool3d(x, 3, 2, 1)
    for li in range(1, 5):
        b = 0
        while f"{p}layer{li}.{b}.conv1.weight" in sd:
            q = f"{p}layer{li}.{b}."
            stride = 2 if (li > 1 and b == 0) else 1
            if kind == "resnext":
                w2 = sd[q + "conv2.weight"]
                y = F.relu(bn(F.conv3d(x, sd[q + "conv1.weight"]), sd, q + "bn1"))
                y = F.relu(
                    bn(F.conv3d(y, w2, stride=stride, padding=1, groups=w2.shape[0] // w2.shape[1]), sd, q + "bn2")
                )
                y = bn(F.conv3d(y, sd[q + "conv3.weight"]), sd, q + "bn3")
            else:
                y = F.relu(bn(F.conv3d(x, sd[q + "conv1.weight"], stride=stride, padding=1), sd, q + "bn1"))
                y = bn(F.conv3d(y, sd[q + "conv2.weight"], padding=1), sd, q + "bn2")
            if q + "downsample.0.weight" in sd:
                short = bn(F.conv3d(x, sd[q + "downsample.0.weight"], stride=stride), sd, q + "downsample.1")
            elif stride != 1 or y.shape[1] != x.shape[1]:  # type A: subsample, pad channels with zeros
                short = F.avg_pool3d(x, kernel_size=1, stride=stride)
                zeros = short.new_zeros(short.shape[0], y.shape[1] - short.shape[1], *short.shape[2:])
                short = torch.cat([short, zeros], dim=1)
            else:
                short = x
            x = F.relu(y + short)
            b += 1
    return yowo_time_reduce(x)


def yowo_time_reduce(x: Tensor) -> Tensor:
    if x.shape[2] == 2:
        x = F.avg_pool3d(x, (2, 1, 1), stride=1)
    assert x.shape[2] == 1, "YOWO only handles 1 or 2 remaining time steps"
    return x.squeeze(2)


def shufflenet3d_forward(sd: dict[str, Tensor], p: str, x: Tensor) -> Tensor:
    def pw(z: Tensor, q: str, relu: bool = True) -> Tensor:
        z = bn(F.conv3d(z, sd[q + ".weight"]), sd, _next(q))
        return F.relu(z) if relu else z

    def _next(q: str) -> str:  # the BatchNorm right after conv ``q`` (index + 1)
        head, idx = q.rsplit(".", 1)
        return f"{head}.{int(idx) + 1}"

    def dw(z: Tensor, q: str, stride: int) -> Tensor:
        return bn(F.conv3d(z, sd[q + ".weight"], stride=stride, padding=1, groups=z.shape[1]), sd, _next(q))

    x = F.relu(bn(F.conv3d(x, sd[p + "conv1.0.weight"], stride=(1, 2, 2), padding=1), sd, p + "conv1.1"))
    x = F.max_pool3d(x, 3, 2, 1)
    i = 0
    while f"{p}features.{i}.banch2.0.weight" in sd:
        q = f"{p}features.{i}."
        if q + "banch1.0.weight" in sd:
            left = pw(dw(x, q + "banch1.0", 2), q + "banch1.2")
            right = pw(dw(pw(x, q + "banch2.0"), q + "banch2.3", 2), q + "banch2.5")
        else:
            c = x.shape[1]
            left = x[:, : c // 2]
            right = pw(dw(pw(x[:, c // 2 :], q + "banch2.0"), q + "banch2.3", 1), q + "banch2.5")
        out = torch.cat([left, right], dim=1)
        c = out.shape[1]
        order = [g * (c // 2) + k for k in range(c // 2) for g in range(2)]  # new channel k*2+g <- old g*(C/2)+k
        x = out[:, order]
        i += 1
    x = pw(x, p + "conv_last.0")
    return yowo_time_reduce(x)


def reorg_reference(x: Tensor, s: int = 2) -> Tensor:
    """YOWO's reorg by its definition: offset (i, j) blocks of all channels, i-major."""
    return torch.cat([x[:, :, i::s, j::s] for i in range(s) for j in range(s)], dim=1)


def darknet_forward(sd: dict[str, Tensor], p: str, blocks: list[dict[str, str]], x: Tensor) -> Tensor:
    outputs: list[Tensor] = []
    n = 0
    for i, b in enumerate(blocks):
        t = b["type"]
        if t == "convolutional":
            n += 1
            size = int(b["size"])
            pad = (size - 1) // 2 if int(b.get("pad", "0")) else 0
            q = f"{p}models.{i}."
            has_bn = int(b.get("batch_normalize", "0"))
            x = F.conv2d(
                x, sd[f"{q}conv{n}.weight"], None if has_bn else sd[f"{q}conv{n}.bias"], int(b.get("stride", "1")), pad
            )
            if has_bn:
                x = bn(x, sd, f"{q}bn{n}")
            if b["activation"] == "leaky":
                x = F.leaky_relu(x, 0.1)
        elif t == "maxpool":
            x = F.max_pool2d(x, int(b["size"]), int(b["stride"]))
        elif t == "reorg":
            x = reorg_reference(x, int(b["stride"]))
        elif t == "route":
            idx = [int(j) + i if int(j) < 0 else int(j) for j in b["layers"].split(",")]
            x = torch.cat([outputs[j] for j in idx], dim=1)
        outputs.append(x)
    return x


def cfam_forward(sd: dict[str, Tensor], p: str, x: Tensor) -> Tensor:
    x = F.relu(bn(F.conv2d(x, sd[p + "conv_bn_relu1.0.weight"]), sd, p + "conv_bn_relu1.1"))
    x = F.relu(bn(F.conv2d(x, sd[p + "conv_bn_relu2.0.weight"], padding=1), sd, p + "conv_bn_relu2.1"))
    gram = torch.einsum("bchw,bdhw->bcd", x, x)
    attention = torch.softmax(gram.max(dim=-1, keepdim=True).values - gram, dim=-1)
    x = sd[p + "sc.gamma"] * torch.einsum("bcd,bdhw->bchw", attention, x) + x
    x = F.relu(bn(F.conv2d(x, sd[p + "conv_bn_relu3.0.weight"], padding=1), sd, p + "conv_bn_relu3.1"))
    return F.conv2d(x, sd[p + "conv_out.1.weight"], sd[p + "conv_out.1.bias"])
