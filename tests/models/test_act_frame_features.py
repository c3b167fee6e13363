"""Each frame through ACT's trunk once: windows assembled from per-frame maps give the predictions of
the windows run whole (:meth:`ACTDetector.forward`)."""

from __future__ import annotations

import pytest
import torch

from singleshot.models.act import act_tiny, act_vgg16


def _check(model, frames: torch.Tensor, starts: list[int], atol: float = 1e-5) -> None:
    model.eval()
    k = model.k
    index = torch.tensor(starts)[:, None] + torch.arange(k)[None]
    with torch.no_grad():
        whole = model(frames[index])
        feats = model.frame_features(frames)
        parts = model.window_outputs(feats, index)
    for key in ("loc", "conf"):
        torch.testing.assert_close(parts[key], whole[key], atol=atol, rtol=1e-5)


@pytest.mark.parametrize("k", [1, 2, 6])
def test_tiny_trunk(k: int) -> None:
    torch.manual_seed(0)
    model = act_tiny(3, k=k, image_size=64)
    frames = torch.randn(9, 3, 64, 64)
    _check(model, frames, [0, 1, 3, 9 - k])


def test_flow_input_tiny_trunk() -> None:
    torch.manual_seed(1)
    model = act_tiny(2, k=3, image_size=64, in_channels=15)
    _check(model, torch.randn(5, 15, 64, 64), [0, 2])


@pytest.mark.slow
def test_vgg16_with_per_stream_scales_and_dilations() -> None:
    """ACT's VGG16: per-stream conv4_3 scales (made different here) and, as in ACT's released models,
    fc6 dilated 6 * 6^k per stream (streams 1.. share one computation)."""
    torch.manual_seed(2)
    k = 2
    model = act_vgg16(3, k=k, fc6_dilations=[6 * 6**i for i in range(k)])
    with torch.no_grad():
        model.backbone.l2norm.weight.uniform_(5.0, 30.0)
    frames = torch.randn(2, 3, 300, 300)
    _check(model, frames, [0], atol=1e-4)
    feats = model.frame_features(frames)
    assert feats.scaled == 0 and len(feats.maps) == 2


def test_a_wrong_frame_shape_is_named() -> None:
    model = act_tiny(3, k=2, image_size=64)
    with pytest.raises(Exception, match=r"\[N, 3, 64, 64\]"):
        model.frame_features(torch.zeros(2, 3, 32, 32))
