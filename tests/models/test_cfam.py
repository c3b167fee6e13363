"""CFAM: YOWO's key names, a functional reference forward, and the attention's zero-gamma identity."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import torch
from torch import nn

from singleshot.models.cfam import CFAM, ChannelAttention


def _load_reference() -> ModuleType:
    spec = importlib.util.spec_from_file_location("yowo_reference", Path(__file__).with_name("yowo_reference.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


R = _load_reference()  # independent key layouts and functional forwards (tests/models/yowo_reference.py)


def test_yowo_sized_cfam_has_yowo_keys() -> None:
    with torch.device("meta"):
        cfam = CFAM(2048 + 425, 1024, 1024)  # YOWO: ResNeXt-101 (2048) + YOLOv2 (425) channels
    assert {k: tuple(v.shape) for k, v in cfam.state_dict().items()} == R.cfam_keys("", 2473, 1024)
    assert isinstance(cfam.conv_out[0], nn.Dropout2d) and cfam.conv_out[0].p == 0.1


def test_cfam_matches_functional_reference() -> None:
    sd = R.random_state(R.cfam_keys("", 40, 24), seed=0)
    sd["sc.gamma"] = torch.tensor([0.7])
    cfam = CFAM(40, 24, 24)
    cfam.load_state_dict(sd, strict=True)
    x = torch.randn(3, 40, 5, 7)
    with torch.no_grad():
        out = cfam.eval()(x)
    assert out.shape == (3, 24, 5, 7)
    torch.testing.assert_close(out, R.cfam_forward(sd, "", x), rtol=1e-5, atol=1e-5)


def test_attention_starts_as_identity_and_uses_inverted_energy() -> None:
    att = ChannelAttention()
    x = torch.randn(2, 6, 3, 4)
    torch.testing.assert_close(att(x), x)  # gamma is initialised to 0
    with torch.no_grad():
        att.gamma.fill_(1.0)
    # two identical channels and one orthogonal one: the Gram energy max(G) - G favours the *less* correlated
    f = torch.zeros(1, 3, 1, 2)
    f[0, 0, 0] = torch.tensor([1.0, 0.0])
    f[0, 1, 0] = torch.tensor([1.0, 0.0])
    f[0, 2, 0] = torch.tensor([0.0, 1.0])
    gram = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    weights = torch.softmax(gram.max(dim=1, keepdim=True).values - gram, dim=1)  # row 0: (e^0, e^0, e^1) normalised
    expected = (weights @ f[0, :, 0]).reshape(1, 3, 1, 2) + f
    torch.testing.assert_close(att(f), expected)


def test_cfam_trains_in_autocast_with_float32_attention() -> None:
    cfam = CFAM(16, 8, 8).train()
    x = torch.randn(2, 16, 4, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = cfam(x)
    out.float().square().mean().backward()
    assert cfam.sc.gamma.grad is not None and torch.isfinite(cfam.sc.gamma.grad).all()
