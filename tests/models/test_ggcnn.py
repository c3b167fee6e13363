"""GG-CNN / GG-CNN2: parameter counts and layer sizes of the reference (dougsm/ggcnn), the output
contract, and an overfit run through loss, post-processing and metric."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from singleshot.losses.grasp import GraspLoss
from singleshot.metrics.grasp import grasp_success_batch
from singleshot.models.ggcnn import GGCNN, GGCNN2, ggcnn, ggcnn2
from singleshot.ops.grasp import points_in_grasps
from singleshot.postprocess.grasp import maps_to_grasps
from singleshot.structures import Grasps

KEYS = {"pos", "cos", "sin", "width"}


pytestmark = pytest.mark.usefixtures("one_thread")


def _count(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def test_parameter_counts() -> None:
    assert _count(ggcnn()) == 62_420
    assert _count(ggcnn2()) == 66_676
    # extra input channels only widen the first conv
    assert _count(ggcnn(4)) == 62_420 + 3 * 32 * 9 * 9
    assert _count(ggcnn2(3)) == 66_676 + 2 * 16 * 11 * 11


def test_reference_state_dict_layout() -> None:
    names = ["conv1", "conv2", "conv3", "convt1", "convt2", "convt3"]
    heads = ["pos_output", "cos_output", "sin_output", "width_output"]
    sd = ggcnn().state_dict()
    assert set(sd) == {f"{n}.{p}" for n in names + heads for p in ("weight", "bias")}
    assert sd["convt3.weight"].shape == (16, 32, 9, 9) and sd["pos_output.weight"].shape == (1, 32, 2, 2)
    sd2 = ggcnn2().state_dict()
    idx = [0, 2, 5, 7, 10, 12, 14, 16]  # the conv layers of the reference's nn.Sequential
    assert set(sd2) == {f"features.{i}.{p}" for i in idx for p in ("weight", "bias")} | {
        f"{h}.{p}" for h in heads for p in ("weight", "bias")
    }
    assert sd2["features.10.weight"].shape == (32, 16, 5, 5) and sd2["features.14.weight"].shape == (32, 16, 3, 3)
    m2 = ggcnn2()
    assert m2.features[10].dilation == (2, 2) and m2.features[12].dilation == (4, 4)


def test_layer_sizes_at_300() -> None:
    m = GGCNN()
    sizes: dict[str, int] = {}
    for name in ("conv1", "conv2", "conv3", "convt1", "convt2", "convt3"):
        getattr(m, name).register_forward_hook(lambda _m, _i, o, name=name: sizes.__setitem__(name, o.shape[-1]))
    with torch.no_grad():
        out = m(torch.zeros(1, 1, 300, 300))
    assert sizes == {"conv1": 100, "conv2": 50, "conv3": 25, "convt1": 50, "convt2": 100, "convt3": 301}
    assert set(out) == KEYS and all(v.shape == (1, 1, 300, 300) for v in out.values())
    with torch.no_grad():
        out2 = GGCNN2()(torch.zeros(1, 1, 300, 300))
    assert set(out2) == KEYS and all(v.shape == (1, 1, 300, 300) for v in out2.values())


@pytest.mark.parametrize("build", [ggcnn, ggcnn2])
@pytest.mark.parametrize(("channels", "size"), [(1, 96), (3, 72), (4, 64)])
def test_outputs(build, channels: int, size: int) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    m = build(channels)
    x = torch.randn(2, channels, size, size)
    with torch.no_grad():
        train_out = m.train()(x)
        eval_out = m.eval()(x)
    assert set(train_out) == set(eval_out) == KEYS
    for k in KEYS:
        assert train_out[k].shape == (2, 1, size, size)
        assert torch.allclose(train_out[k], eval_out[k])  # never depends on the mode


@pytest.mark.parametrize("net", [GGCNN, GGCNN2])
def test_fused_heads_equal_separate_heads(net: type) -> None:
    torch.manual_seed(1)
    m = net().eval()
    x = torch.randn(1, 1, 96, 96)
    with torch.no_grad():
        if isinstance(m, GGCNN):
            feat = x
            for layer in (m.conv1, m.conv2, m.conv3, m.convt1, m.convt2, m.convt3):
                feat = F.relu(layer(feat))
        else:
            feat = m.features(x)
        out = m(x)
        heads = (m.pos_output, m.cos_output, m.sin_output, m.width_output)
        for key, head in zip(("pos", "cos", "sin", "width"), heads):
            assert torch.allclose(out[key], head(feat), atol=1e-6)


def _scene(rects: torch.Tensor, size: int) -> torch.Tensor:
    """A depth-like image: one box-shaped object under each grasp (narrower than the opening)."""
    axis = torch.arange(size, dtype=torch.float32)
    yy, xx = torch.meshgrid(axis, axis, indexing="ij")
    img = torch.zeros(size, size)
    for cx, cy, th, opening, jaw in rects.tolist():
        obj = torch.tensor([cx, cy, th, 0.6 * opening, 2.0 * jaw])
        img += 0.5 * points_in_grasps(obj, xx, yy).float()
    return img[None]


def test_overfit_two_samples() -> None:
    """GG-CNN learns the target maps of two images (loss / 10) and its grasps then succeed."""
    torch.manual_seed(0)
    size = 72
    c = size / 2
    g1 = torch.tensor([[c - 8, c - 4, 0.5, 30.0, 14.0], [c + 10, c + 10, -1.0, 28.0, 12.0]])
    g2 = torch.tensor([[c, c, 1.2, 34.0, 16.0]])
    gts = [Grasps(g1, torch.ones(2), size=(size, size)), Grasps(g2, torch.ones(1), size=(size, size))]
    x = torch.stack([_scene(g1, size), _scene(g2, size)])
    x = (x - x.mean(dim=(1, 2, 3), keepdim=True)) * 2  # zero-mean depth, as the reference normalises
    model = ggcnn()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    loss_fn = GraspLoss()
    first = last = math.nan
    for step in range(100):
        total = sum(loss_fn(model(x), gts).values())
        opt.zero_grad()
        total.backward()  # type: ignore[union-attr]
        opt.step()
        first = float(total.detach()) if step == 0 else first  # type: ignore[union-attr]
        last = float(total.detach())  # type: ignore[union-attr]
    assert first / last > 10, (first, last)
    model.eval()
    with torch.no_grad():
        preds = maps_to_grasps(model(x), 1)  # the reference's settings: top-1, 20 px, 0.2
    assert all(len(p) == 1 for p in preds)
    assert grasp_success_batch(preds, gts).tolist() == [True, True]
    # a prediction that is not a grasp fails, so the metric is not trivially satisfied
    moved = [Grasps(p.grasps + torch.tensor([25.0, 0, 0, 0, 0]), p.scores, size=p.size) for p in preds]
    assert grasp_success_batch(moved, gts).tolist() == [False, False]
