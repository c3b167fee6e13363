"""safetensors weights with JSON metadata, and safe reading of other projects' .pth files."""

from __future__ import annotations

import argparse
import json
import struct
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
from torch import nn

from singleshot.engine.weights import load_foreign_pth, load_state_into, load_weights, save_weights, unwrap_state_dict
from singleshot.errors import WeightsError


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.LazyLinear(2))


def test_round_trip_and_metadata(tmp_path: Path) -> None:
    model = _model()
    model(torch.randn(2, 3, 8, 8))  # materialise the lazy layer, update BN statistics
    meta = {
        "architecture": "toy",
        "classes": ["cat", "dog"],
        "mean": [0.5, 0.5, 0.5],
        "input_size": [8, 8],
        "metrics": {"mAP": 0.25},
    }
    path = tmp_path / "toy.safetensors"
    save_weights(path, model, meta)

    state, got_meta = load_weights(path)
    assert got_meta == meta
    ref = model.state_dict()
    assert state.keys() == ref.keys()
    for k in ref:
        assert torch.equal(state[k], ref[k]) and state[k].dtype == ref[k].dtype

    # the header is plain safetensors: 8-byte little-endian length, then JSON with __metadata__
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    assert json.loads(header["__metadata__"]["singleshot"]) == meta
    assert header["__metadata__"]["format"] == "pt"
    assert header["0.weight"]["shape"] == [4, 3, 3, 3]

    fresh = _model()
    fresh(torch.randn(1, 3, 8, 8))
    fresh.load_state_dict(state)
    x = torch.randn(2, 3, 8, 8)
    assert torch.equal(fresh.eval()(x), model.eval()(x))


def test_tied_weights_are_saved(tmp_path: Path) -> None:
    emb = nn.Embedding(5, 3)
    head = nn.Linear(3, 5, bias=False)
    head.weight = emb.weight  # tied
    model = nn.ModuleDict({"emb": emb, "head": head})
    save_weights(tmp_path / "t.safetensors", model, {})
    state, _ = load_weights(tmp_path / "t.safetensors")
    assert torch.equal(state["emb.weight"], state["head.weight"])


def test_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="not JSON-serialisable"):
        save_weights(tmp_path / "x.safetensors", nn.Linear(2, 2), {"bad": object()})
    with pytest.raises(WeightsError, match="nope.safetensors.*not found"):
        load_weights(tmp_path / "nope.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"\x05\x00\x00\x00\x00\x00\x00\x00{}")
    with pytest.raises(WeightsError, match="junk.safetensors"):
        load_weights(tmp_path / "junk.safetensors")


def test_foreign_pth_with_object_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other_project.pth"
    torch.save({"state_dict": nn.Linear(2, 2).state_dict(), "args": argparse.Namespace(lr=0.1)}, path)
    expected = r"other_project\.pth.*refused.*argparse\.Namespace.*arbitrary code execution"
    with pytest.raises(WeightsError, match=expected):
        load_foreign_pth(path)
    whole = tmp_path / "whole_module.pth"
    torch.save(nn.Linear(2, 2), whole)
    with pytest.raises(WeightsError, match="whole_module.pth"):
        load_foreign_pth(whole)


def test_foreign_pth_plain_wrappers(tmp_path: Path) -> None:
    ref = nn.Linear(3, 2).state_dict()
    wrapped = {"epoch": 7, "model": {f"module.{k}": v for k, v in ref.items()}, "lr": 0.1}
    path = tmp_path / "ddp.pth"
    torch.save(wrapped, path)
    state = load_foreign_pth(path)
    assert state.keys() == ref.keys()
    assert all(torch.equal(state[k], ref[k]) for k in ref)


def test_unwrap_state_dict_variants() -> None:
    t = torch.zeros(1)
    assert unwrap_state_dict(OrderedDict(a=t)) == {"a": t}
    assert unwrap_state_dict({"state_dict": {"module.a": t, "module.b": t}}).keys() == {"a", "b"}
    # a prefix only some keys carry is kept
    assert unwrap_state_dict({"module.a": t, "b": t}).keys() == {"module.a", "b"}
    assert unwrap_state_dict({"net": {"model": {"x": t}}}) == {"x": t}
    with pytest.raises(WeightsError, match="f.pth.*no tensor state dict"):
        unwrap_state_dict({"epoch": 3, "optimizer": {}}, source="f.pth")
    with pytest.raises(WeightsError, match="expected a dict"):
        unwrap_state_dict([t], source="g.pth")


def test_foreign_pth_with_numpy_score_is_read(tmp_path: Path) -> None:
    """YOWO saves ``fscore`` as a NumPy float beside the state dict: plain data, not code."""
    import numpy as np

    path = tmp_path / "yowo_ucf24_16f_best.pth"
    torch.save({"epoch": 5, "fscore": np.float64(0.87), "state_dict": {"module.w": torch.ones(3)}}, path)
    assert torch.equal(load_foreign_pth(path)["w"], torch.ones(3))


def test_load_state_into_names_the_source_and_architecture() -> None:
    model = nn.Linear(3, 2)
    other = nn.Linear(3, 2)
    assert load_state_into(model, other.state_dict(), "a.safetensors") is model
    torch.testing.assert_close(model.weight, other.weight)
    with pytest.raises(
        WeightsError, match=r"(?s)teacher=b\.safetensors: the tensors do not fit 'ssd_tiny'.*size mismatch"
    ):
        load_state_into(model, nn.Linear(4, 2).state_dict(), "teacher=b.safetensors", "ssd_tiny")
    with pytest.raises(WeightsError, match=r"(?s)c\.safetensors: .* 'Linear'.*Missing key"):
        load_state_into(model, {"weight": other.weight}, "c.safetensors")
