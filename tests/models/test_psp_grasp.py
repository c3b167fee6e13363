"""PSPNet grasp net: output contract, dilated trunk (stride 8), pyramid pooling, auxiliary head and
its removal for export. ResNet-50/101 are checked on the meta device (shapes only, no compute)."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from singleshot.losses.grasp import GraspLoss
from singleshot.models.psp_grasp import (
    PSPGrasp,
    PyramidPooling,
    psp_grasp_resnet18,
    psp_grasp_resnet50,
    psp_grasp_resnet101,
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
