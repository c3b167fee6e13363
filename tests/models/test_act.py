from __future__ import annotations

import copy

import pytest
import torch
from torch import Tensor, nn

from singleshot.errors import ConfigError
from singleshot.models import model_from_meta
from singleshot.models.act import (
    ACT_PRIORS_2X2,
    ACT_PRIORS_3X3,
    ACTDetector,
    StreamL2Norm,
    act_slim,
    act_tiny,
    act_vgg16,
    first_conv,
    widen_first_conv,
)
from singleshot.models.l2norm import L2Norm
from singleshot.models.ssd import ssd300
from singleshot.models.tiny import ssd_tiny
from singleshot.ops.priors import PriorSpec, generate_priors, prior_spec


class _NormedTrunk(nn.Module):
    """A small two-map trunk whose first source goes through an ``l2norm`` attribute, like VGG's conv4_3."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU())
        self.l2norm = L2Norm(8, init_scale=20.0)
        self.down = nn.Sequential(nn.Conv2d(8, 6, 3, stride=2, padding=1), nn.ReLU())
        self.out_channels = [8, 6]

    def forward(self, x: Tensor) -> list[Tensor]:
        a = self.stem(x)
        return [self.l2norm(a), self.down(a)]


_SMALL_SPEC = PriorSpec(32, [16, 8], [2.0, 4.0], [4.0, 10.0], [10.0, 20.0], [[2], [2]])


def _normed_act(k: int, shared: bool, seed: int = 0) -> ACTDetector:
    torch.manual_seed(seed)
    return ACTDetector(_NormedTrunk(), k, 3, _SMALL_SPEC, shared_l2norm=shared).eval()


@pytest.mark.parametrize(
    "pool5, num_priors, maps", [("2x2s1", 8396, [38, 18, 9, 5, 3, 1]), ("3x3s1p1", 8732, [38, 19, 10, 5, 3, 1])]
)
@pytest.mark.parametrize("k", [6, 8])
def test_act_vgg16_output_shapes(pool5: str, num_priors: int, maps: list[int], k: int) -> None:
    # Shapes only: on the meta device nothing is computed, so the full VGG16 costs nothing.
    with torch.device("meta"):
        model = act_vgg16(24, k=k, pool5=pool5)
        out = model(torch.empty(2, k, 3, 300, 300))
    assert out["loc"].shape == (2, num_priors, 4 * k)
    assert out["conf"].shape == (2, num_priors, 25)
    assert model.prior_spec.feature_maps == maps
    assert generate_priors(model.prior_spec).shape == (num_priors, 4)
    # per-stream conv4_3 scales by default, K of them
    assert isinstance(model.backbone.l2norm, StreamL2Norm)
    assert model.backbone.l2norm.weight.shape == (k, 512)
    # the heads see K times the trunk's channels
    assert [c.in_channels for c in model.head.conf] == [k * c for c in (512, 1024, 512, 256, 256, 256)]


def test_act_priors_are_ssd300_voc_sizes_unclipped() -> None:
    # ACT: min_ratio 20, max_ratio 90 -> SSD300's VOC sizes; clip=False. On SSD300's maps the
    # priors must be ssd.pytorch's, up to ssd.pytorch clamping everything into [0, 1].
    ours = generate_priors(ACT_PRIORS_3X3)
    ref = generate_priors(prior_spec("voc300"))
    torch.testing.assert_close(ours.clamp(0, 1), ref)
    assert float(ours.max()) > 1.0  # ACT's are not clipped
    # pool5 2x2/s1 gives an 18x18 fc7 at step 16: last centre (17.5 * 16) / 300
    p = generate_priors(ACT_PRIORS_2X2)
    second_map = p[38 * 38 * 4 : 38 * 38 * 4 + 18 * 18 * 6]
    assert float(second_map[:, 0].max()) == pytest.approx(17.5 * 16 / 300)


def test_k1_act_equals_ssd300_with_the_same_weights() -> None:
    torch.manual_seed(0)
    ssd = ssd300(4).eval()
    shared = act_vgg16(4, k=1, pool5="3x3s1p1", shared_l2norm=True).eval()
    shared.backbone.load_state_dict(ssd.backbone.state_dict())
    shared.head.load_state_dict(ssd.head.state_dict())
    x = torch.randn(1, 3, 300, 300)
    with torch.no_grad():
        ref = ssd(x)
        out = shared(x[:, None])
    torch.testing.assert_close(out["loc"], ref["bbox_regression"], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(out["conf"], ref["cls_logits"], rtol=1e-4, atol=1e-5)
    assert shared.backbone.l2norm is not None and isinstance(shared.backbone.l2norm, L2Norm)


def test_shared_backbone_is_one_parameter_set() -> None:
    model = act_tiny(3, k=4, image_size=64, width=0.5)
    ref = ssd_tiny(3, image_size=64, width=0.5)
    ours = {n: p.shape for n, p in model.backbone.named_parameters()}
    theirs = {n: p.shape for n, p in ref.backbone.named_parameters()}
    assert ours == theirs  # no per-frame copies
    # head: 4K offsets per anchor from K x channels
    assert model.head.loc[0].out_channels == ref.head.loc[0].out_channels * 4
    assert model.head.loc[0].in_channels == 4 * ref.head.loc[0].in_channels


def test_forward_equals_per_frame_backbone_then_concat_and_gradients_add_up() -> None:
    torch.manual_seed(1)
    k = 3
    model = act_tiny(2, k=k, image_size=64, width=0.25).eval()
    frames = torch.randn(1, k, 3, 64, 64)
    out = model(frames)
    # reference: the same backbone on every frame separately, maps concatenated frame 0 first
    per_frame = [model.backbone(frames[:, j]) for j in range(k)]
    fused = [torch.cat([per_frame[j][s] for j in range(k)], dim=1) for s in range(len(per_frame[0]))]
    loc, conf = model.head(fused)
    torch.testing.assert_close(out["loc"], loc, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out["conf"], conf, rtol=1e-5, atol=1e-5)

    # Gradient of the shared first conv = sum of the contributions of each frame's stream.
    weight = model.backbone.stage8[0].weight

    def grad_with_only(j: int | None) -> Tensor:
        feats = [model.backbone(frames[:, i]) for i in range(k)]
        if j is not None:
            feats = [[f if i == j else f.detach() for f in fs] for i, fs in enumerate(feats)]
        maps = [torch.cat([feats[i][s] for i in range(k)], dim=1) for s in range(len(feats[0]))]
        lo, co = model.head(maps)
        (g,) = torch.autograd.grad(lo.square().sum() + co.square().sum(), weight)
        return g

    (full,) = torch.autograd.grad(out["loc"].square().sum() + out["conf"].square().sum(), weight)
    parts = [grad_with_only(j) for j in range(k)]
    assert all(float(p.abs().sum()) > 0 for p in parts)
    total = sum(parts)
    torch.testing.assert_close(full, total, rtol=1e-3, atol=1e-4 * float(total.abs().max()))


def test_stream_l2norm_matches_l2norm_per_stream() -> None:
    torch.manual_seed(2)
    k, c = 3, 5
    norm = StreamL2Norm(c, k)
    with torch.no_grad():
        norm.weight.uniform_(1, 30)
    x = torch.randn(2 * k, c, 4, 4)
    y = norm(x)
    for j in range(k):
        ref = L2Norm(c)
        with torch.no_grad():
            ref.weight.copy_(norm.weight[j])
        torch.testing.assert_close(y[j::k], ref(x[j::k]))
    assert torch.equal(StreamL2Norm(c, k).weight, torch.full((k, c), 20.0))


def test_per_stream_scales_change_only_their_stream() -> None:
    k = 3
    model = _normed_act(k, shared=False)
    assert isinstance(model.backbone.l2norm, StreamL2Norm)
    frames = torch.randn(2, k, 3, 32, 32)
    with torch.no_grad():
        before = model.fuse(model.backbone(frames.flatten(0, 1)), 2)[0]
        out_before = model(frames)
        model.backbone.l2norm.weight[1] *= 2.0
        after = model.fuse(model.backbone(frames.flatten(0, 1)), 2)[0]
        out_after = model(frames)
    c = 8
    torch.testing.assert_close(after[:, :c], before[:, :c])  # stream 0 untouched
    torch.testing.assert_close(after[:, c : 2 * c], 2.0 * before[:, c : 2 * c])  # stream 1 doubled
    torch.testing.assert_close(after[:, 2 * c :], before[:, 2 * c :])
    assert not torch.allclose(out_after["conf"], out_before["conf"])


def test_equal_stream_scales_reproduce_the_shared_model() -> None:
    k = 2
    shared = _normed_act(k, shared=True, seed=3)
    streams = _normed_act(k, shared=False, seed=3)
    assert isinstance(shared.backbone.l2norm, L2Norm) and shared.backbone.l2norm.weight.shape == (8,)
    with torch.no_grad():
        shared.backbone.l2norm.weight.uniform_(5, 25)
        streams.backbone.l2norm.weight.copy_(shared.backbone.l2norm.weight[None].expand(k, -1))
    frames = torch.randn(3, k, 3, 32, 32)
    with torch.no_grad():
        a, b = shared(frames), streams(frames)
    torch.testing.assert_close(a["loc"], b["loc"])
    torch.testing.assert_close(a["conf"], b["conf"])


def test_param_groups_trunk_at_lr_over_k() -> None:
    model = _normed_act(4, shared=False)
    groups = model.param_groups(0.1)
    ids = [id(p) for g in groups for p in g["params"]]
    assert sorted(ids) == sorted(id(p) for p in model.parameters())  # each parameter once
    trunk = {id(p) for n, p in model.backbone.named_parameters() if not n.startswith("l2norm")}
    for g in groups:
        expected = 0.1 / 4 if id(g["params"][0]) in trunk else 0.1
        assert g["lr"] == pytest.approx(expected)
        assert all((id(p) in trunk) == (id(g["params"][0]) in trunk) for p in g["params"])


def test_bad_inputs_raise_config_error() -> None:
    model = act_tiny(2, k=3, image_size=64, width=0.5)
    with pytest.raises(ConfigError, match="K=3"):
        model(torch.zeros(1, 2, 3, 64, 64))
    with pytest.raises(ConfigError, match="64"):
        model(torch.zeros(1, 3, 3, 96, 96))
    with pytest.raises(ConfigError, match="pool5"):
        act_vgg16(3, pool5="4x4")
    with pytest.raises(ConfigError):
        ACTDetector(_NormedTrunk(), 0, 3, _SMALL_SPEC)


def test_act_slim_builds_and_runs() -> None:
    model = act_slim(2, k=2, image_size=160, width=0.25).eval()
    with torch.no_grad():
        out = model(torch.zeros(1, 2, 3, 160, 160))
    assert out["loc"].shape == (1, model.priors.shape[0], 8)
    assert out["conf"].shape == (1, model.priors.shape[0], 3)


@pytest.mark.parametrize("builder", ["act_tiny", "act_slim", "act_vgg16"])
def test_flow5_streams_take_15_channels_and_are_rebuilt_from_metadata(builder: str) -> None:
    kwargs = {
        "act_vgg16": {},
        "act_tiny": {"image_size": 64, "width": 0.25},
        "act_slim": {"image_size": 160, "width": 0.25},
    }[builder]
    size = kwargs.get("image_size", 300)
    meta = {"architecture": builder, "num_classes": 2, "arch_kwargs": {"k": 2, "in_channels": 15, **kwargs}}
    with torch.device("meta"):  # VGG16 at 300 px: shapes only
        model = model_from_meta(meta, task="action")
        out = model(torch.empty(1, 2, 15, size, size))
    assert model.in_channels == 15 and first_conv(model.backbone)[2].weight.shape[1] == 15
    assert out["conf"].shape == (1, model.priors.shape[0], 3)
    with pytest.raises(ConfigError, match=rf"\[B, 2, 15, {size}, {size}\]"):
        model(torch.empty(1, 2, 3, size, size, device="meta"))


def test_widened_first_conv_keeps_the_response_to_a_stack_of_copies() -> None:
    torch.manual_seed(0)
    rgb = act_tiny(3, k=2, image_size=64, width=0.25).eval()
    flow = copy.deepcopy(rgb)
    widen_first_conv(flow.backbone, 15)
    flow.in_channels = 15
    x = torch.randn(1, 2, 3, 64, 64)
    with torch.no_grad():
        a, b = rgb(x), flow(x.repeat(1, 1, 5, 1, 1))
    assert torch.allclose(a["conf"], b["conf"], atol=1e-5) and torch.allclose(a["loc"], b["loc"], atol=1e-5)
    with pytest.raises(ConfigError, match="multiple of the trunk's 3"):
        widen_first_conv(act_tiny(3, k=2, image_size=64, width=0.25).backbone, 10)
