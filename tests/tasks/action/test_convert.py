"""``singleshot action convert``: synthetic files in the layouts of wei-tim/YOWO checkpoints, Kinetics 3D
backbones (kenshohara) and Darknet ``.weights``; key layouts and functional forwards from
tests/models/yowo_reference.py (written from the sources' module structure), loaded by path."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from singleshot.cli import main
from singleshot.engine.weights import load_weights
from singleshot.models import model_from_meta
from singleshot.tasks.action.config import ActionConfig
from singleshot.tasks.action.evaluate import load_predictor


def _load_reference() -> ModuleType:
    path = Path(__file__).resolve().parents[2] / "models" / "yowo_reference.py"
    spec = importlib.util.spec_from_file_location("yowo_reference", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


R = _load_reference()
_CONV = "[convolutional]\nbatch_normalize=1\nfilters={}\nsize={}\nstride=1\npad=1\nactivation=leaky"
#: tiny2d(width=8, out_channels=64) in Darknet cfg syntax
TINY2D_CFG = "\n".join(
    [_CONV.format(8 * 2**k, 3) + "\n[maxpool]\nsize=2\nstride=2" for k in range(5)] + [_CONV.format(64, 1)]
)
TINY3D = dict(layers=(1, 1, 1, 1), planes=(8, 16, 32, 64), stem=8, stem_kernel=(3, 7, 7))


def _last_json(capsys: pytest.CaptureFixture[str]) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def _yowo_source(num_classes: int) -> dict[str, Tensor]:
    shapes = {
        **R.resnet_keys("backbone_3d.", TINY3D["layers"], TINY3D["planes"], stem=8, stem_kernel=(3, 7, 7)),
        **R.darknet_keys("backbone_2d.", R.parse_cfg(TINY2D_CFG)),
        **R.cfam_keys("cfam.", 128, 32),
        "conv_final.weight": (5 * (5 + num_classes), 32, 1, 1),
    }
    return {"module." + k: v for k, v in R.random_state(shapes, seed=1).items()}


def test_yowo_checkpoint_converts_and_predicts_like_the_source(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = _yowo_source(3)
    torch.save({"epoch": 4, "state_dict": src, "fscore": 0.5}, tmp_path / "yowo.pth")
    dst = tmp_path / "yowo.safetensors"
    args = [
        "action",
        "convert",
        "from=yowo",
        f"src={tmp_path / 'yowo.pth'}",
        f"dst={dst}",
        "clip_len=4",
        "imgsz=64",
        "classes=run,jump,walk",
    ]
    assert main(args) == 0
    assert _last_json(capsys)["num_classes"] == 3
    state, meta = load_weights(dst)
    for key in (
        "architecture",
        "arch_kwargs",
        "classes",
        "anchors",
        "clip_len",
        "input_size",
        "mean",
        "std",
        "postprocess",
    ):
        assert key in meta
    assert meta["classes"] == ["run", "jump", "walk"] and meta["clip_len"] == 4 and meta["input_size"] == [64, 64]
    assert meta["mean"] == [0.0, 0.0, 0.0] and meta["std"] == [1.0, 1.0, 1.0]
    assert meta["postprocess"]["conf_thresh"] == 0.005 and meta["postprocess"]["nms_thresh"] == 0.4
    predictor = load_predictor(ActionConfig(weights=str(dst)))
    frames = torch.randint(0, 256, (6, 3, 64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    clip = predictor.clips(predictor.prepare(frames), [6])  # key frame 6: frames 3..6
    with torch.no_grad():
        got = predictor.model(clip)["out"]
        x = (frames[2:6].float() / 255).permute(1, 0, 2, 3)[None]  # YOWO: ToTensor only
        f3 = R.resnet3d_forward(src, "module.backbone_3d.", x, "basic", (3, 7, 7))
        f2 = R.darknet_forward(src, "module.backbone_2d.", R.parse_cfg(TINY2D_CFG), x[:, :, -1])
        ref = F.conv2d(R.cfam_forward(src, "module.cfam.", torch.cat((f3, f2), 1)), src["module.conv_final.weight"])
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-4)


def _darknet_file(path: Path, seed: int = 0) -> list[dict[str, np.ndarray]]:
    """A ``.weights`` file for TINY2D_CFG in Darknet's order (header v0.2 with an int64 ``seen``)."""
    rng = np.random.default_rng(seed)
    layers, c = [], 3
    for block in R.parse_cfg(TINY2D_CFG):
        if block["type"] != "convolutional":
            continue
        n, k = int(block["filters"]), int(block["size"])
        layers.append(
            {
                "bias": rng.normal(0, 0.1, n),
                "scale": rng.normal(1, 0.1, n),
                "mean": rng.normal(0, 0.1, n),
                "var": rng.uniform(0.5, 1.5, n),
                "weights": rng.normal(0, 0.1, (n, c, k, k)),
            }
        )
        c = n
    body = np.concatenate([layer[k].ravel() for layer in layers for k in ("bias", "scale", "mean", "var", "weights")])
    head = np.array([0, 2, 0], "<i4").tobytes() + np.array([12800], "<i8").tobytes()
    path.write_bytes(head + body.astype("<f4").tobytes())
    return layers


def test_kinetics_and_darknet_backbones_initialise_a_yowo(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shapes = {
        **R.resnet_keys("", TINY3D["layers"], TINY3D["planes"], stem=8, stem_kernel=(3, 7, 7), counters=False),
        "fc.weight": (400, 64),
        "fc.bias": (400,),
    }
    kin = {"module." + k: v for k, v in R.random_state(shapes, seed=2).items()}
    torch.save({"epoch": 200, "arch": "resnet-18", "state_dict": kin, "optimizer": {}}, tmp_path / "kinetics.pth")
    layers = _darknet_file(tmp_path / "tiny.weights")
    dst = tmp_path / "init.safetensors"
    args = [
        "action",
        "convert",
        "from=kinetics",
        f"src={tmp_path / 'kinetics.pth'}",
        f"darknet={tmp_path / 'tiny.weights'}",
        f"dst={dst}",
        "backbone2d=tiny2d",
        "width=8",
        "cfam_channels=32",
        "num_classes=21",
    ]
    assert main(args) == 0
    assert _last_json(capsys)["loaded"] == ["backbone_3d", "backbone_2d"]
    state, meta = load_weights(dst)
    assert meta["arch_kwargs"]["backbone3d"] == "tiny3d" and len(meta["classes"]) == 21  # J-HMDB-21 names
    assert meta["classes"][0] == "brush_hair" and meta["anchors"][0] == pytest.approx([0.95878, 3.10197])
    for k, v in kin.items():
        if not k.startswith("module.fc."):
            torch.testing.assert_close(state["backbone_3d." + k[len("module.") :]], v)
    conv_blocks = [i for i, b in enumerate(R.parse_cfg(TINY2D_CFG)) if b["type"] == "convolutional"]
    for n, (i, layer) in enumerate(zip(conv_blocks, layers), start=1):
        q = f"backbone_2d.models.{i}."
        np.testing.assert_allclose(state[f"{q}conv{n}.weight"].numpy(), layer["weights"], rtol=1e-6)
        np.testing.assert_allclose(state[f"{q}bn{n}.weight"].numpy(), layer["scale"], rtol=1e-6)
        np.testing.assert_allclose(state[f"{q}bn{n}.running_var"].numpy(), layer["var"], rtol=1e-6)
    model_from_meta(meta).load_state_dict(state)  # the metadata rebuilds the architecture


def test_darknet_alone_and_bad_sources(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _darknet_file(tmp_path / "tiny.weights", seed=3)
    dst = tmp_path / "d.safetensors"
    args = [
        "action",
        "convert",
        "from=darknet",
        f"src={tmp_path / 'tiny.weights'}",
        f"dst={dst}",
        "backbone2d=tiny2d",
        "backbone3d=tiny3d",
        "width=8",
        "cfam_channels=32",
    ]
    assert main(args) == 0 and _last_json(capsys)["loaded"] == ["backbone_2d"]
    assert main(["action", "convert", "from=mxnet", f"src={tmp_path / 'x'}", f"dst={dst}"]) == 2
    assert "from='mxnet' is unknown" in capsys.readouterr().err
    (tmp_path / "bad.pth").write_bytes(b"not a torch file")
    assert main(["action", "convert", "from=yowo", f"src={tmp_path / 'bad.pth'}", f"dst={dst}"]) == 2
    assert "bad.pth" in capsys.readouterr().err
