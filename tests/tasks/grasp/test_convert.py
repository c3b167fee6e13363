"""``grasp convert``: a GG-CNN written here after the reference's layer list (dougsm/ggcnn
``models/ggcnn.py``) converts and predicts the same maps; GG-CNN2 and RGB-D are recognised; pickled
modules are refused; Cornell clouds become depth TIFFs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from singleshot.cli import main
from singleshot.data.grasp.depth import read_depth_tiff
from singleshot.engine.weights import load_weights
from singleshot.models import list_models, model_from_meta
from singleshot.models.ggcnn import ggcnn, ggcnn2
from singleshot.tasks.grasp.predictor import build_grasp_model

pytestmark = pytest.mark.usefixtures("one_thread")


class ReferenceGGCNN(nn.Module):
    """GG-CNN as the reference lists it: conv 9/3 (32), 5/2 (16), 3/2 (8), transposed 3/2 (8),
    5/2 (16), 9/3 (32), four 2x2 heads; paddings 3, 2, 1 and output padding 1."""

    def __init__(self, c: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c, 32, 9, stride=3, padding=3)
        self.conv2 = nn.Conv2d(32, 16, 5, stride=2, padding=2)
        self.conv3 = nn.Conv2d(16, 8, 3, stride=2, padding=1)
        self.convt1 = nn.ConvTranspose2d(8, 8, 3, stride=2, padding=1, output_padding=1)
        self.convt2 = nn.ConvTranspose2d(8, 16, 5, stride=2, padding=2, output_padding=1)
        self.convt3 = nn.ConvTranspose2d(16, 32, 9, stride=3, padding=3, output_padding=1)
        self.pos_output = nn.Conv2d(32, 1, 2)
        self.cos_output = nn.Conv2d(32, 1, 2)
        self.sin_output = nn.Conv2d(32, 1, 2)
        self.width_output = nn.Conv2d(32, 1, 2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        for layer in (self.conv1, self.conv2, self.conv3, self.convt1, self.convt2, self.convt3):
            x = F.relu(layer(x))
        return self.pos_output(x), self.cos_output(x), self.sin_output(x), self.width_output(x)


def _last_json(capsys: pytest.CaptureFixture[str]) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_reference_ggcnn_converts_to_the_same_maps(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    torch.manual_seed(0)
    ref = ReferenceGGCNN().eval()
    torch.save(ref.state_dict(), tmp_path / "ggcnn_statedict.pt")
    dst = tmp_path / "ggcnn.safetensors"
    assert (
        main(
            ["grasp", "convert", "from=ggcnn", f"src={tmp_path / 'ggcnn_statedict.pt'}", f"dst={dst}", "crop_size=300"]
        )
        == 0
    )
    got = _last_json(capsys)
    assert got["architecture"] == "ggcnn" and got["input"] == "depth" and got["tensors"] == 20
    state, meta = load_weights(dst)
    model = model_from_meta(meta)
    model.load_state_dict(state)
    assert meta["crop_size"] == 300 and meta["input_size"] == [300, 300]
    x = torch.randn(2, 1, 96, 96)
    with torch.no_grad():
        mine, theirs = model.eval()(x), ref(x)
    for key, t in zip(("pos", "cos", "sin", "width"), theirs):
        assert torch.allclose(mine[key], t, atol=1e-5), key


def test_ggcnn2_and_rgbd_are_recognised(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for model, arch, kind in ((ggcnn2(1), "ggcnn2", "depth"), (ggcnn(4), "ggcnn", "rgbd")):
        torch.save({"model": model.state_dict()}, tmp_path / "w.pt")  # a wrapper dict is unwrapped
        assert (
            main(["grasp", "convert", "from=ggcnn", f"src={tmp_path / 'w.pt'}", f"dst={tmp_path / 'w.safetensors'}"])
            == 0
        )
        got = _last_json(capsys)
        assert (got["architecture"], got["input"]) == (arch, kind)
        state, meta = load_weights(tmp_path / "w.safetensors")
        assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())


def test_pickled_module_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    torch.save(ReferenceGGCNN(), tmp_path / "epoch_30_iou_0.76")  # what the reference's training saves
    assert (
        main(
            [
                "grasp",
                "convert",
                "from=ggcnn",
                f"src={tmp_path / 'epoch_30_iou_0.76'}",
                f"dst={tmp_path / 'x.safetensors'}",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "epoch_30_iou_0.76" in err and "refused" in err
    assert not (tmp_path / "x.safetensors").exists()
    assert main(["grasp", "convert", "from=caffe", f"src={tmp_path}"]) == 2
    assert "expected pcd or ggcnn" in capsys.readouterr().err


def test_cornell_clouds_become_depth_tiffs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "01"
    folder.mkdir()
    header = "VERSION .7\nFIELDS x y z rgb index\nSIZE 4 4 4 4 4\nTYPE F F F F U\nCOUNT 1 1 1 1 1\nDATA ascii\n"
    pts = [(300.0, 400.0, 0.0, 0), (600.0, 0.0, 800.0, 640 * 10 + 20), (0.0, 0.0, 700.0, 640 * 479 + 639)]
    (folder / "pcd0100.txt").write_text(header + "\n".join(f"{x} {y} {z} 0 {i}" for x, y, z, i in pts) + "\n")
    assert main(["grasp", "convert", "from=pcd", f"src={tmp_path}"]) == 0
    assert _last_json(capsys)["written"] == 1
    d = read_depth_tiff(folder / "pcd0100d.tiff")
    assert d.shape == (480, 640) and np.isfinite(d).all() and (d > 0).all()  # holes filled
    assert d[0, 0] == pytest.approx(0.5) and d[10, 20] == pytest.approx(1.0) and d[479, 639] == pytest.approx(0.7)


def test_model_table_input_channels() -> None:
    assert set(list_models(task="grasp")) == {"ggcnn", "ggcnn2", "psp_resnet18", "psp_resnet50", "psp_resnet101"}
    assert sum(p.numel() for p in build_grasp_model("ggcnn").parameters()) == 62_420  # the paper's count
    assert sum(p.numel() for p in build_grasp_model("ggcnn2").parameters()) == 66_676
    assert build_grasp_model("ggcnn", "rgbd").conv1.in_channels == 4
    psp = build_grasp_model("psp_resnet18", "depth", aux=True)
    assert psp.adapter.in_channels == 1 and psp.aux_head is not None
    assert build_grasp_model("psp_resnet18", "rgb").adapter.__class__ is nn.Identity
