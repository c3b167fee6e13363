"""PSPNet grasp net: output contract, dilated trunk (stride 8), pyramid pooling, auxiliary head and
its removal for export; the bias-free depth adapter (and older weights with a bias); the ImageNet
trunk from torchvision state dict files. ResNet-50/101 shapes are checked on the meta device."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

from singleshot.engine.weights import load_state_into
from singleshot.errors import WeightsError
from singleshot.losses.grasp import GraspLoss
from singleshot.models.psp_grasp import (
    PSPGrasp,
    PyramidPooling,
    load_imagenet_trunk,
    psp_grasp_resnet18,
    psp_grasp_resnet50,
    psp_grasp_resnet101,
    resnet_layout,
    strip_aux,
)
from singleshot.structures import Grasps

KEYS = {"pos", "cos", "sin", "width"}
AUX = {f"aux_{k}" for k in KEYS}


pytestmark = pytest.mark.usefixtures("one_thread")


def _trunk_features(m: PSPGrasp, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    t = m.trunk
    y = t.maxpool(t.relu(t.bn1(t.conv1(m.adapter(x)))))
    c3 = t.layer3(t.layer2(t.layer1(y)))
    return c3, t.layer4(c3)


def test_resnet18_outputs_and_stride() -> None:
    torch.manual_seed(0)
    m = psp_grasp_resnet18().eval()
    x = torch.randn(1, 1, 64, 64)
    with torch.no_grad():
        out = m(x)
        c3, c4 = _trunk_features(m, x)
    assert set(out) == KEYS and all(v.shape == (1, 1, 64, 64) for v in out.values())
    assert c3.shape == (1, 256, 8, 8) and c4.shape == (1, 512, 8, 8)  # output stride 8
    assert isinstance(m.adapter, nn.Conv2d) and m.adapter.kernel_size == (1, 1) and m.adapter.out_channels == 3
    assert not hasattr(m.trunk, "fc")


def test_aux_keys_only_when_built_and_in_both_modes() -> None:
    torch.manual_seed(0)
    m = psp_grasp_resnet18(in_channels=4, aux=True)
    x = torch.randn(2, 4, 48, 48)  # batch 2: BatchNorm in training needs more than one value
    train_out = m.train()(x)
    with torch.no_grad():
        eval_out = m.eval()(x)
    assert set(train_out) == set(eval_out) == KEYS | AUX
    assert all(v.shape == (2, 1, 48, 48) for v in train_out.values())
    # the loss uses the auxiliary maps in training only: main + 0.4 · aux
    gts = [Grasps(torch.tensor([[24.0, 24.0, 0.2, 20.0, 8.0]]))] * 2
    loss = GraspLoss()
    terms = loss(train_out, gts)
    aux_only = GraspLoss(aux_weight=1.0)({k[4:]: v for k, v in train_out.items() if k in AUX}, gts)
    expected = 0.4 * sum(float(v.detach()) for v in aux_only.values())
    assert float(terms["aux"].detach()) == pytest.approx(expected, rel=1e-5)
    sum(terms.values()).backward()  # type: ignore[union-attr]
    assert m.aux_head is not None and m.aux_head[0].weight.grad is not None
    assert "aux" not in loss.eval()(eval_out, gts)


def test_strip_aux_for_export() -> None:
    with_aux = psp_grasp_resnet18(aux=True)
    plain = psp_grasp_resnet18(aux=False)
    sd = with_aux.state_dict()
    assert any(k.startswith("aux_head.") for k in sd)
    stripped = strip_aux(sd)
    assert set(stripped) == set(plain.state_dict())
    plain.load_state_dict(stripped, strict=True)
    wrapped = strip_aux({f"module.{k}": v for k, v in sd.items()})
    assert not any("aux_head" in k for k in wrapped)
    with_aux.drop_aux().eval()
    with torch.no_grad():
        assert set(with_aux(torch.zeros(1, 1, 32, 32))) == KEYS


def test_rgb_input_has_no_adapter() -> None:
    with torch.device("meta"):
        m = psp_grasp_resnet18(in_channels=3)
    assert isinstance(m.adapter, nn.Identity)


def test_pyramid_pooling() -> None:
    ppm = PyramidPooling(64, (1, 2, 3, 6)).eval()
    pools = [s[0].output_size for s in ppm.stages]
    assert pools == [1, 2, 3, 6] and ppm.out_channels == 128
    x = torch.randn(1, 64, 9, 11)
    with torch.no_grad():
        y = ppm(x)
    assert y.shape == (1, 128, 9, 11) and torch.equal(y[:, :64], x)  # features pass through


@pytest.mark.parametrize(
    ("build", "tv"),
    [(psp_grasp_resnet50, torchvision.models.resnet50), (psp_grasp_resnet101, torchvision.models.resnet101)],
)
def test_deep_trunks_on_meta(build, tv) -> None:  # type: ignore[no-untyped-def]
    with torch.device("meta"):
        m = build(in_channels=1, aux=True)
        out = m(torch.zeros(2, 1, 64, 64))
        c3, c4 = _trunk_features(m, torch.zeros(2, 1, 64, 64))
        ref = tv(weights=None)
    assert set(out) == KEYS | AUX and all(v.shape == (2, 1, 64, 64) for v in out.values())
    assert c3.shape == (2, 1024, 8, 8) and c4.shape == (2, 2048, 8, 8)
    # dilation changes no weight: the trunk has torchvision's parameters less the classifier
    fc = sum(p.numel() for p in ref.fc.parameters())
    assert sum(p.numel() for p in m.trunk.parameters()) == sum(p.numel() for p in ref.parameters()) - fc
    for layer, d in ((m.trunk.layer3, 2), (m.trunk.layer4, 4)):
        for block in layer:
            assert block.conv2.dilation == (d, d) and block.conv2.stride == (1, 1)
    assert m.ppm.out_channels == 4096


def test_unknown_backbone() -> None:
    with pytest.raises(ValueError, match="backbone"):
        PSPGrasp("vgg16")


# ---------------------------------------------------------------- ImageNet trunk and depth adapter
def _param_count(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def test_adapter_has_no_bias_and_the_exact_parameter_count() -> None:
    """ResNet-18 trunk (torchvision's count less fc 512·1000 + 1000) + adapter 1·3 (no bias) +
    pyramid pooling 4·(512·128 + 2·128) + head (1024·128·9 + 2·128 + 128·4 + 4)."""
    with torch.device("meta"):
        m = psp_grasp_resnet18(in_channels=1)
        tv = torchvision.models.resnet18(weights=None)
    trunk = _param_count(tv) - (512 * 1000 + 1000)
    assert trunk == 11_176_512
    ppm = 4 * (512 * 128 + 2 * 128)
    head = 1024 * 128 * 9 + 2 * 128 + 128 * 4 + 4
    assert isinstance(m.adapter, nn.Conv2d) and m.adapter.bias is None
    assert _param_count(m.adapter) == 3
    assert _param_count(m) == trunk + 3 + ppm + head == 12_620_103  # 12_620_106 with the old adapter bias
    with torch.device("meta"):
        rgbd = psp_grasp_resnet18(in_channels=4)
    assert _param_count(rgbd.adapter) == 4 * 3 and _param_count(rgbd) - _param_count(m) == 9  # 4 → 3, no bias


def test_older_weights_with_an_adapter_bias_still_load_and_give_their_outputs() -> None:
    torch.manual_seed(0)
    old = psp_grasp_resnet18(in_channels=1).eval()
    old.adapter = nn.Conv2d(1, 3, 1, bias=True)  # the adapter as singleshot built it before
    nn.init.normal_(old.adapter.bias)
    state = old.state_dict()
    assert "adapter.bias" in state
    new = psp_grasp_resnet18(in_channels=1).eval()
    load_state_into(new, state, "old.safetensors", "psp_resnet18")  # strict
    assert new.adapter.bias is not None and torch.equal(new.adapter.bias, old.adapter.bias)
    x = torch.randn(1, 1, 40, 40)
    with torch.no_grad():
        want, got = old(x), new(x)
    assert all(torch.equal(want[k], got[k]) for k in KEYS)
    # and weights of the new layout still load into a fresh model without a bias
    fresh = psp_grasp_resnet18(in_channels=1)
    fresh.load_state_dict(psp_grasp_resnet18(in_channels=1).state_dict())
    assert fresh.adapter.bias is None


def _saved(tmp_path: Path, name: str, state: dict[str, torch.Tensor]) -> Path:
    path = tmp_path / name
    torch.save(state, path)
    return path


def test_torchvision_resnet50_file_fills_the_trunk(tmp_path: Path) -> None:
    torch.manual_seed(0)
    ref = torchvision.models.resnet50(weights=None)
    ref_state = ref.state_dict()
    path = _saved(tmp_path, "resnet50.pth", {"state_dict": ref_state})  # a wrapper dict is fine too
    m = psp_grasp_resnet50(in_channels=1)
    head_before = m.head[0].weight.clone()
    assert not torch.equal(m.trunk.conv1.weight, ref_state["conv1.weight"])
    origin = load_imagenet_trunk(m, path)
    assert origin == {"file": "resnet50.pth", "kind": "torchvision resnet50"}
    assert torch.equal(m.trunk.conv1.weight, ref_state["conv1.weight"])
    for key, value in m.trunk.layer1.state_dict().items():
        assert torch.equal(value, ref_state[f"layer1.{key}"]), key
    # dilated layer4 keeps torchvision's tensors; the head is untouched
    assert torch.equal(m.trunk.layer4[2].conv2.weight, ref_state["layer4.2.conv2.weight"])
    assert torch.equal(m.head[0].weight, head_before)


def test_resnet18_safetensors_file_without_batch_counters(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    torch.manual_seed(1)
    state = {k: v for k, v in torchvision.models.resnet18(weights=None).state_dict().items()}
    path = tmp_path / "r18.safetensors"
    save_file({k: v.contiguous() for k, v in state.items() if not k.endswith("num_batches_tracked")}, str(path))
    m = psp_grasp_resnet18(in_channels=4)
    assert load_imagenet_trunk(m, path)["kind"] == "torchvision resnet18"
    assert torch.equal(m.trunk.layer2[0].downsample[0].weight, state["layer2.0.downsample.0.weight"])


def test_a_resnet101_file_into_a_resnet50_model_says_so(tmp_path: Path) -> None:
    path = _saved(tmp_path, "resnet101.pth", torchvision.models.resnet101(weights=None).state_dict())
    with pytest.raises(WeightsError, match=r"resnet101\.pth: holds a resnet101 state dict.*trunk is a resnet50"):
        load_imagenet_trunk(psp_grasp_resnet50(), path)


def test_wrong_files_name_the_file_and_the_key(tmp_path: Path) -> None:
    state = torchvision.models.resnet18(weights=None).state_dict()
    m = psp_grasp_resnet18()
    missing = _saved(tmp_path, "missing.pth", {k: v for k, v in state.items() if k != "layer3.1.bn2.weight"})
    with pytest.raises(WeightsError, match=r"missing\.pth: no tensor for 1 trunk keys, first 'layer3.1.bn2.weight'"):
        load_imagenet_trunk(m, missing)
    shaped = _saved(tmp_path, "shape.pth", dict(state, **{"layer2.1.conv1.weight": torch.zeros(128, 128, 1, 1)}))
    with pytest.raises(WeightsError, match=r"shape\.pth: 'layer2.1.conv1.weight' has shape \(128, 128, 1, 1\)"):
        load_imagenet_trunk(m, shaped)
    extra = _saved(tmp_path, "extra.pth", dict(state, **{"layer1.0.se.weight": torch.zeros(3)}))
    with pytest.raises(WeightsError, match=r"extra\.pth: 1 keys a resnet18 trunk does not have, first 'layer1.0.se"):
        load_imagenet_trunk(m, extra)
    # hszhao/semseg's deep stem: conv1 3x3 (3 -> 64), conv2 (64 -> 64), conv3 (64 -> 128)
    deep = dict(state)
    deep["conv1.weight"] = torch.zeros(64, 3, 3, 3)
    deep["conv2.weight"], deep["conv3.weight"] = torch.zeros(64, 64, 3, 3), torch.zeros(128, 64, 3, 3)
    with pytest.raises(WeightsError, match=r"deep\.pth: a deep-stem ResNet .* is not accepted"):
        load_imagenet_trunk(m, _saved(tmp_path, "deep.pth", deep))
    with pytest.raises(WeightsError, match=r"vgg\.pth: not a torchvision ResNet"):
        load_imagenet_trunk(m, _saved(tmp_path, "vgg.pth", {"features.0.weight": torch.zeros(64, 3, 3, 3)}))
    with pytest.raises(WeightsError, match="absent.pth: weights file not found"):
        load_imagenet_trunk(m, tmp_path / "absent.pth")
    assert resnet_layout(state) == "resnet18" and resnet_layout(deep) == "deep-stem"
