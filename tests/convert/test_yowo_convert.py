"""YOWO checkpoints and Kinetics 3D backbones -> singleshot, with synthetic files in the sources' layouts.

Key layouts come from tests/models/yowo_reference.py (written from wei-tim/YOWO's module structure);
forwards are compared with functional references that read the *source* tensors directly.
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from singleshot.convert.yowo import (
    convert_kinetics_3d,
    convert_yowo_checkpoint,
    load_kinetics_3d,
    load_yowo_checkpoint,
)
from singleshot.data.action.readers import JHMDB_CLASSES as JHMDB21_CLASSES
from singleshot.data.action.readers import UCF24_CLASSES
from singleshot.errors import WeightsError
from singleshot.models.backbones3d import build_backbone3d, resnext3d
from singleshot.models.yowo import JHMDB21_ANCHORS, UCF24_ANCHORS, yowo


def _load_reference() -> ModuleType:
    path = Path(__file__).resolve().parents[1] / "models" / "yowo_reference.py"
    spec = importlib.util.spec_from_file_location("yowo_reference", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


R = _load_reference()

_CONV = "[convolutional]\nbatch_normalize=1\nfilters={}\nsize={}\nstride=1\npad=1\nactivation=leaky"
#: tiny2d(16, 128) in Darknet cfg syntax
TINY2D_CFG = "\n".join(
    [_CONV.format(16 * 2**k, 3) + "\n[maxpool]\nsize=2\nstride=2" for k in range(5)] + [_CONV.format(128, 1)]
)


def _meta(shapes: dict[str, tuple[int, ...]], prefix: str = "module.") -> dict[str, Tensor]:
    return {prefix + k: torch.empty(s, device="meta") for k, s in shapes.items()}


def _shapes(sd: dict[str, Tensor]) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in sd.items()}


def _yowo_wrapper(state: dict[str, Tensor]) -> dict[str, object]:
    """What YOWO's train.py saves: the DataParallel state dict plus epoch, optimizer and F-score."""
    optimizer = {
        "state": {},
        "param_groups": [{"lr": 1e-4, "betas": (0.9, 0.999), "weight_decay": 5e-4, "params": [0, 1]}],
    }
    return {"epoch": 5, "state_dict": state, "optimizer": optimizer, "fscore": 0.8123}


@pytest.mark.parametrize(
    ("b3", "kwargs"),
    [("resnext101", {}), ("resnet18", {"width": 1.0, "shortcut": "A"}), ("shufflenetv2", {"width_mult": 2.0})],
)
@pytest.mark.parametrize("counters", [True, False])
def test_every_yowo_key_maps_with_matching_shapes(b3: str, kwargs: dict[str, object], counters: bool) -> None:
    src = _meta(R.yowo_keys(24, b3, counters=counters))
    converted = convert_yowo_checkpoint(_yowo_wrapper(src))
    meta, arch = converted.metadata, converted.metadata["arch_kwargs"]
    assert meta["architecture"] == "yowo" and meta["num_classes"] == 24 and meta["classes"] == list(UCF24_CLASSES)
    assert (arch["backbone3d"], arch["backbone3d_kwargs"]) == (b3, kwargs)
    assert (arch["backbone2d"], arch["backbone2d_kwargs"]) == ("darknet19", {"num_outputs": 425})
    assert arch["anchors"] == [list(a) for a in UCF24_ANCHORS] and arch["cfam_channels"] == 1024
    with torch.device("meta"):
        model = yowo(24, b3, backbone3d_kwargs=kwargs)
    assert _shapes(converted.state_dict) == _shapes(model.state_dict())
    with torch.device("meta"):  # the metadata rebuilds the same architecture
        rebuilt = yowo(meta["num_classes"], **arch)
    assert _shapes(rebuilt.state_dict()) == _shapes(model.state_dict())


def test_jhmdb_checkpoint_gets_jhmdb_classes_and_anchors() -> None:
    converted = convert_yowo_checkpoint({"state_dict": _meta(R.yowo_keys(21))})
    assert converted.metadata["classes"] == list(JHMDB21_CLASSES)
    assert converted.metadata["arch_kwargs"]["anchors"] == [list(a) for a in JHMDB21_ANCHORS]


def _tiny_yowo_source(num_classes: int, seed: int = 0) -> dict[str, Tensor]:
    shapes = {
        **R.resnet_keys("backbone_3d.", (1, 1, 1, 1), (16, 32, 64, 128), stem=16, stem_kernel=(3, 7, 7)),
        **R.darknet_keys("backbone_2d.", R.parse_cfg(TINY2D_CFG)),
        **R.cfam_keys("cfam.", 256, 128),
        "conv_final.weight": (5 * (5 + num_classes), 128, 1, 1),
    }
    return {"module." + k: v for k, v in R.random_state(shapes, seed).items()}


def _reference_yowo(src: dict[str, Tensor], clip: Tensor) -> Tensor:
    """YOWO's forward (core/model.py) from the checkpoint's tensors."""
    f3 = R.resnet3d_forward(src, "module.backbone_3d.", clip, "basic", (3, 7, 7))
    f2 = R.darknet_forward(src, "module.backbone_2d.", R.parse_cfg(TINY2D_CFG), clip[:, :, -1])
    x = R.cfam_forward(src, "module.cfam.", torch.cat((f3, f2), dim=1))
    return F.conv2d(x, src["module.conv_final.weight"])


def test_checkpoint_file_loads_and_reproduces_the_source_forward(tmp_path: Path) -> None:
    src = _tiny_yowo_source(3)
    path = tmp_path / "yowo_ucf24_8f_best.pth"
    torch.save(_yowo_wrapper(src), path)
    model, meta = load_yowo_checkpoint(path, clip_len=8)
    arch = meta["arch_kwargs"]
    assert (arch["backbone3d"], arch["backbone2d"], arch["cfam_channels"]) == ("tiny3d", "tiny2d", 128)
    assert model.clip_len == 8 and not model.training
    clip = torch.randn(2, 3, 8, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = model(clip)["out"]
        expected = _reference_yowo(src, clip)
    assert out.shape == (2, 5 * 8, 2, 2)
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-4)


def test_files_with_pickled_objects_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "unsafe.pth"
    torch.save({"state_dict": _tiny_yowo_source(3), "opts": argparse.Namespace(lr=1e-4)}, path)
    with pytest.raises(WeightsError, match="refused"):
        load_yowo_checkpoint(path)


def test_foreign_keys_and_bad_heads_are_named() -> None:
    src = _tiny_yowo_source(3)
    with pytest.raises(WeightsError, match="extra.weight"):
        convert_yowo_checkpoint({"state_dict": {**src, "module.extra.weight": torch.zeros(1)}})
    bad = dict(src, **{"module.conv_final.weight": torch.zeros(144, 128, 1, 1)})
    with pytest.raises(WeightsError, match="conv_final"):
        convert_yowo_checkpoint({"state_dict": bad})
    wrong = dict(src, **{"module.cfam.conv_out.1.bias": torch.zeros(7)})
    with pytest.raises(WeightsError, match="conv_out.1.bias"):
        load_yowo_checkpoint({"state_dict": wrong})


KINETICS_CASES = [
    ("resnext101", {}, R.resnet_keys("", (3, 4, 23, 3), (128, 256, 512, 1024), "resnext", counters=False), "fc", 2048),
    (
        "resnet18",
        {"width": 1.0, "shortcut": "A"},
        R.resnet_keys("", (2, 2, 2, 2), (64, 128, 256, 512), shortcut="A", counters=False),
        "fc",
        512,
    ),
    (
        "shufflenetv2",
        {"width_mult": 2.0},
        R.shufflenet_keys("", (24, 224, 488, 976, 2048), counters=False),
        "classifier.1",
        2048,
    ),
]


@pytest.mark.parametrize(("name", "kwargs", "shapes", "head", "features"), KINETICS_CASES)
def test_kinetics_backbone_keys_map(
    name: str, kwargs: dict[str, object], shapes: dict[str, tuple[int, ...]], head: str, features: int
) -> None:
    shapes = {**shapes, f"{head}.weight": (400, features), f"{head}.bias": (400,)}
    converted = convert_kinetics_3d({"epoch": 200, "arch": name, "state_dict": _meta(shapes)})
    assert (converted.metadata["backbone3d"], converted.metadata["backbone3d_kwargs"]) == (name, kwargs)
    assert converted.metadata["kinetics_classes"] == 400
    assert converted.metadata["dropped"] == [f"{head}.bias", f"{head}.weight"]
    with torch.device("meta"):
        backbone = build_backbone3d(name, **kwargs)
    assert _shapes(converted.state_dict) == _shapes(backbone.state_dict())  # counters added for old files


def test_kinetics_file_loads_and_reproduces_the_source_forward(tmp_path: Path) -> None:
    planes, layers = (32, 64, 64, 128), (1, 2, 1, 1)
    shapes = {
        **R.resnet_keys("", layers, planes, "resnext", card=8, counters=False),
        "fc.weight": (400, 256),
        "fc.bias": (400,),
    }
    src = {"module." + k: v for k, v in R.random_state(shapes, seed=3).items()}
    path = tmp_path / "resnext-kinetics.pth"
    torch.save({"epoch": 1, "arch": "resnext", "state_dict": src, "optimizer": {"state": {}, "param_groups": []}}, path)
    backbone = resnext3d(layers, 8, planes)
    converted = load_kinetics_3d(backbone, path)
    assert converted.metadata["backbone3d_kwargs"] == {"layers": list(layers), "cardinality": 8, "planes": list(planes)}
    x = torch.randn(1, 3, 16, 32, 32, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        out = backbone.eval()(x)
    torch.testing.assert_close(out, R.resnet3d_forward(src, "module.", x, "resnext"), rtol=1e-4, atol=1e-4)
    with pytest.raises(WeightsError, match="no 3D backbone"):
        convert_kinetics_3d({"state_dict": {"module.fc.weight": torch.zeros(2, 2), "module.x.weight": torch.zeros(1)}})
