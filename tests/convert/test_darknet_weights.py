"""Darknet ``.weights`` reader: files written with NumPy in Darknet's order (parser.c), both header versions."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
from torch import Tensor

from singleshot.convert.darknet_weights import darknet_weights_floats, read_darknet_header, read_darknet_weights
from singleshot.errors import WeightsError
from singleshot.models.darknet import ConvSpec, Darknet2D, PoolSpec, ReorgSpec, RouteSpec, darknet19_yolov2


def _load_reference() -> ModuleType:
    path = Path(__file__).resolve().parents[1] / "models" / "yowo_reference.py"
    spec = importlib.util.spec_from_file_location("yowo_reference", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


R = _load_reference()

CFG = "\n".join(
    [
        "[convolutional]\nbatch_normalize=1\nfilters=8\nsize=3\nstride=1\npad=1\nactivation=leaky",
        "[maxpool]\nsize=2\nstride=2",
        "[convolutional]\nbatch_normalize=1\nfilters=16\nsize=3\nstride=1\npad=1\nactivation=leaky",
        "[maxpool]\nsize=2\nstride=2",
        "[convolutional]\nbatch_normalize=1\nfilters=16\nsize=1\nstride=1\npad=1\nactivation=leaky",
        "[route]\nlayers=-3",
        "[convolutional]\nbatch_normalize=1\nfilters=4\nsize=1\nstride=1\npad=1\nactivation=leaky",
        "[reorg]\nstride=2",
        "[route]\nlayers=-1,-4",
        "[convolutional]\nfilters=15\nsize=1\nstride=1\npad=1\nactivation=linear",
    ]
)
SPEC = [
    ConvSpec(8),
    PoolSpec(),
    ConvSpec(16),
    PoolSpec(),
    ConvSpec(16, 1),
    RouteSpec((-3,)),
    ConvSpec(4, 1),
    ReorgSpec(2),
    RouteSpec((-1, -4)),
    ConvSpec(15, 1, bn=False, act="linear"),
]


def _darknet_arrays(seed: int = 0) -> list[dict[str, np.ndarray]]:
    """Per conv layer of CFG, in file order: (bias, scale, mean, variance, weights) or (bias, weights)."""
    rng = np.random.default_rng(seed)
    layers, c, channels = [], 3, []
    for i, block in enumerate(R.parse_cfg(CFG)):
        if block["type"] == "convolutional":
            n, k = int(block["filters"]), int(block["size"])
            layer = {"bias": rng.normal(0, 0.1, n)}
            if int(block.get("batch_normalize", "0")):
                layer |= {
                    "scale": rng.normal(1, 0.1, n),
                    "mean": rng.normal(0, 0.1, n),
                    "var": rng.uniform(0.5, 1.5, n),
                }
            layer["weights"] = rng.normal(0, np.sqrt(2 / (c * k * k)), (n, c, k, k))
            layers.append({name: a.astype(np.float32) for name, a in layer.items()})
            c = n
        elif block["type"] == "reorg":
            c *= 4
        elif block["type"] == "route":
            c = sum(channels[i + int(j)] for j in block["layers"].split(","))
        channels.append(c)
    return layers


def _write(
    path: Path,
    layers: list[dict[str, np.ndarray]],
    version: tuple[int, int, int],
    seen: int,
    drop_floats: int = 0,
    extra: int = 0,
) -> None:
    major, minor, revision = version
    head = np.array([major, minor, revision], dtype="<i4").tobytes()
    head += np.array([seen], dtype="<i8" if major * 10 + minor >= 2 else "<i4").tobytes()
    order = ("bias", "scale", "mean", "var", "weights")
    body = np.concatenate(
        [layer[k].ravel() for layer in layers for k in order if k in layer] + [np.ones(extra, np.float32)]
    )
    if drop_floats:
        body = body[:-drop_floats]
    path.write_bytes(head + body.astype("<f4").tobytes())


def _source_state(layers: list[dict[str, np.ndarray]]) -> dict[str, Tensor]:
    """The arrays under YOWO's Darknet names (models.{i}.conv{n} / bn{n})."""
    sd: dict[str, Tensor] = {}
    conv_blocks = [i for i, b in enumerate(R.parse_cfg(CFG)) if b["type"] == "convolutional"]
    for n, (i, layer) in enumerate(zip(conv_blocks, layers), start=1):
        q = f"models.{i}."
        sd[f"{q}conv{n}.weight"] = torch.from_numpy(layer["weights"])
        if "scale" in layer:
            for ours, darknet in (
                ("bias", "bias"),
                ("weight", "scale"),
                ("running_mean", "mean"),
                ("running_var", "var"),
            ):
                sd[f"{q}bn{n}.{ours}"] = torch.from_numpy(layer[darknet])
        else:
            sd[f"{q}conv{n}.bias"] = torch.from_numpy(layer["bias"])
    return sd


@pytest.mark.parametrize(("version", "header_bytes"), [((0, 1, 0), 16), ((0, 2, 0), 20), ((1, 0, 0), 20)])
def test_reads_darknet_files_and_reproduces_the_source_forward(
    tmp_path: Path, version: tuple[int, int, int], header_bytes: int
) -> None:
    layers = _darknet_arrays()
    path = tmp_path / "net.weights"
    _write(path, layers, version, seen=3_200_000)
    model = Darknet2D(SPEC)
    header = read_darknet_weights(path, model)
    assert (header.major, header.minor, header.revision, header.seen) == (*version, 3_200_000)
    assert header.nbytes == header_bytes
    assert path.stat().st_size == header_bytes + 4 * darknet_weights_floats(model)
    src = _source_state(layers)
    ours = model.state_dict()
    for key, value in src.items():
        torch.testing.assert_close(ours[key], value, rtol=0, atol=0)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        out = model.eval()(x)
    torch.testing.assert_close(out, R.darknet_forward(src, "", R.parse_cfg(CFG), x), rtol=1e-5, atol=1e-5)


def test_size_mismatches_are_named(tmp_path: Path) -> None:
    layers = _darknet_arrays()
    short, long, partial = tmp_path / "short.weights", tmp_path / "long.weights", tmp_path / "partial.weights"
    _write(short, layers, (0, 2, 0), 0, drop_floats=5)
    _write(long, layers, (0, 2, 0), 0, extra=3)
    _write(partial, layers[:3], (0, 1, 0), 0)
    with pytest.raises(WeightsError, match=r"short.weights: data ends inside conv layer 5 \(models.9"):
        read_darknet_weights(short, Darknet2D(SPEC))
    with pytest.raises(WeightsError, match="different cfg"):
        read_darknet_weights(long, Darknet2D(SPEC))
    with pytest.raises(WeightsError, match="conv layer 4"):
        read_darknet_weights(partial, Darknet2D(SPEC))
    model = Darknet2D(SPEC)
    untouched = model.models[6].conv4.weight.detach().clone()
    with pytest.warns(UserWarning, match="first 3 of 5 conv layers"):
        read_darknet_weights(partial, model, allow_partial=True)
    torch.testing.assert_close(model.models[4].bn3.weight.detach(), torch.from_numpy(layers[2]["scale"]))
    torch.testing.assert_close(model.models[6].conv4.weight.detach(), untouched)
    (tmp_path / "tiny.weights").write_bytes(b"\x00" * 10)
    with pytest.raises(WeightsError, match="too short"):
        read_darknet_header(tmp_path / "tiny.weights")


def test_a_file_of_yolov2_weights_size_fills_darknet19_exactly(tmp_path: Path) -> None:
    path = tmp_path / "yolov2.weights"
    with path.open("wb") as f:  # header of version 0.1 (int32 seen), then zeros up to the published size
        f.write(np.array([0, 1, 0, 32013312], dtype="<i4").tobytes())
        f.truncate(203_934_260)
    with torch.device("meta"):
        model = darknet19_yolov2()
    assert read_darknet_weights(path, model).seen == 32013312
    with path.open("ab") as f:
        f.write(b"\x00" * 4)
    with pytest.raises(WeightsError, match="different cfg"):
        read_darknet_weights(path, model)
