"""The slim CPU SSD: prior layout from a dummy forward, output layout, trainability."""

from __future__ import annotations

import pytest
import torch

from singleshot.errors import ConfigError
from singleshot.models import create_model
from singleshot.models.small import ssd_prior_sizes
from singleshot.ops.priors import prior_spec


def test_size_rule_reproduces_ssd_pytorch_voc_sizes() -> None:
    voc = prior_spec("voc300")
    sizes = [round(s * 300, 6) for s in ssd_prior_sizes(6)]
    assert sizes[:-1] == pytest.approx(voc.min_sizes)
    assert sizes[1:] == pytest.approx(voc.max_sizes)


@pytest.mark.parametrize("image_size", [160, 224, 300])
def test_slim_feature_maps_come_from_the_network(image_size: int) -> None:
    model = create_model("ssd_slim", 3, image_size=image_size)
    maps = [-(-image_size // 8)]
    maps.append(-(-maps[0] // 2))
    maps += [-(-maps[1] // 2), -(-maps[1] // 4)]
    maps.append(maps[-1] - 2)
    assert model.prior_spec.feature_maps == maps
    assert model.prior_spec.steps == pytest.approx([image_size / f for f in maps])
    expected_p = sum(f * f * n for f, n in zip(maps, [4, 6, 6, 4, 4]))
    assert model.priors.shape == (expected_p, 4)


def test_slim_outputs_match_priors_in_train_and_eval_and_train() -> None:
    torch.manual_seed(0)
    model = create_model("ssd_slim", 3, image_size=160)
    p = model.priors.shape[0]
    x = torch.randn(2, 3, 160, 160)
    model.train()
    out = model(x)
    assert out["cls_logits"].shape == (2, p, 4)
    assert out["bbox_regression"].shape == (2, p, 4)
    loss = out["cls_logits"].logsumexp(-1).mean() + out["bbox_regression"].pow(2).mean()
    loss.backward()
    assert all(q.grad is not None and torch.isfinite(q.grad).all() for q in model.parameters())
    model.eval()
    with torch.no_grad():
        out_eval = model(x)
    assert {k: v.shape for k, v in out_eval.items()} == {k: v.shape for k, v in out.items()}


def test_slim_train_mode_works_with_batch_one() -> None:
    model = create_model("ssd_slim", 2).train()
    out = model(torch.randn(1, 3, 160, 160))
    assert out["cls_logits"].shape[0] == 1


def test_slim_rejects_too_small_inputs() -> None:
    with pytest.raises(ConfigError, match="image_size"):
        create_model("ssd_slim", 2, image_size=96)
