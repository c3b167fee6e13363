"""SSD300 / SSD512 architecture: prior counts, output layout, parameter counts against torchvision."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torchvision.models.detection.ssd import SSDHead as TVSSDHead
from torchvision.models.detection.ssd import _vgg_extractor

from singleshot.errors import ConfigError
from singleshot.models import create_model, list_models
from singleshot.models.heads import flatten_predictions
from singleshot.models.l2norm import L2Norm
from singleshot.models.ssd import ssd300, ssd512


def _num_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.fixture(scope="module")
def ssd300_voc() -> torch.nn.Module:
    torch.manual_seed(0)
    return ssd300(20, priors="voc")


def test_ssd300_priors_match_head_outputs_and_train_eval_agree(ssd300_voc: torch.nn.Module) -> None:
    model = ssd300_voc
    assert model.priors.shape == (8732, 4)
    assert model.num_classes == 20
    assert "priors" not in model.state_dict()  # non-persistent buffer
    x = torch.randn(1, 3, 300, 300)
    with torch.no_grad():
        model.train()
        out_train = model(x)
        model.eval()
        out_eval = model(x)
    assert set(out_train) == set(out_eval) == {"cls_logits", "bbox_regression"}
    assert out_eval["cls_logits"].shape == (1, 8732, 21)
    assert out_eval["bbox_regression"].shape == (1, 8732, 4)
    for key in out_eval:  # no dropout / batch norm: identical values as well
        torch.testing.assert_close(out_train[key], out_eval[key])


def test_ssd300_source_maps_are_the_papers(ssd300_voc: torch.nn.Module) -> None:
    with torch.no_grad():
        maps = ssd300_voc.backbone(torch.randn(1, 3, 300, 300))
    assert [tuple(m.shape[1:]) for m in maps] == [
        (512, 38, 38),
        (1024, 19, 19),
        (512, 10, 10),
        (256, 5, 5),
        (256, 3, 3),
        (256, 1, 1),
    ]


def test_wrong_input_size_is_a_clear_error(ssd300_voc: torch.nn.Module) -> None:
    with pytest.raises(ConfigError, match=r"expected \[B, 3, 300, 300\]"):
        with torch.no_grad():
            ssd300_voc(torch.randn(1, 3, 256, 256))


def test_ssd512_gives_24564_priors_and_paper_maps() -> None:
    model = ssd512(20).eval()
    assert model.priors.shape == (24564, 4)
    with torch.no_grad():
        maps = model.backbone(torch.randn(1, 3, 512, 512))
        out = model.head(maps)
    assert [m.shape[-1] for m in maps] == [64, 32, 16, 8, 4, 2, 1]
    assert out[0].shape == (1, 24564, 4) and out[1].shape == (1, 24564, 21)
    # Every extra conv has the same weight shapes as torchvision's highres extractor (which differs
    # only in strides/paddings of conv10_2/conv11_2), and the head has 4,6,6,6,6,4,4 priors per cell.
    tv_backbone = _vgg_extractor(torchvision.models.vgg16(), True, 5)
    tv_head = TVSSDHead([512, 1024, 512, 256, 256, 256, 256], [4, 6, 6, 6, 6, 4, 4], 21)
    assert _num_params(model) == _num_params(tv_backbone) + _num_params(tv_head)


def test_param_count_equals_torchvision_ssd300_coco() -> None:
    torch.manual_seed(0)
    tv = torchvision.models.detection.ssd300_vgg16(weights=None, weights_backbone=None, num_classes=91)
    ours = ssd300(90, priors="coco")
    assert _num_params(ours) == _num_params(tv)
    # torchvision's published figure for this architecture (35.6M, REFERENCES.md section 1).
    assert _num_params(ours) == torchvision.models.detection.SSD300_VGG16_Weights.COCO_V1.meta["num_params"]


def test_flatten_order_is_cell_major_then_anchor() -> None:
    b, a, cols = 2, 3, 5
    maps = [torch.randn(b, a * cols, 4, 3), torch.randn(b, a * cols, 2, 2)]
    flat = flatten_predictions(maps, cols)
    assert flat.shape == (b, 4 * 3 * a + 2 * 2 * a, cols)
    offset = 0
    for m in maps:
        h, w = m.shape[-2:]
        for y in range(h):
            for x in range(w):
                for k in range(a):
                    p = offset + (y * w + x) * a + k
                    torch.testing.assert_close(flat[:, p, :], m[:, k * cols : (k + 1) * cols, y, x])
        offset += h * w * a


def test_l2norm_matches_torch_normalize() -> None:
    layer = L2Norm(6)
    assert torch.equal(layer.weight.detach(), torch.full((6,), 20.0))
    with torch.no_grad():
        layer.weight.uniform_(1.0, 3.0)
    x = torch.randn(2, 6, 5, 4)
    expected = F.normalize(x, dim=1) * layer.weight.view(1, -1, 1, 1)
    torch.testing.assert_close(layer(x), expected)
    assert torch.all(torch.isfinite(layer(torch.zeros(1, 6, 2, 2))))


def test_build_model_lookup_and_errors() -> None:
    assert {"ssd300", "ssd512", "ssd_slim"} <= set(list_models())
    with pytest.raises(ConfigError, match="ssd300"):
        create_model("ssd301", 20)
    with pytest.raises(ConfigError, match="coco"):
        create_model("ssd300", 20, priors="kitti")
    with pytest.raises(ConfigError, match="bad arguments"):
        create_model("ssd_slim", 3, depth=7)
    with pytest.raises(ConfigError, match="num_classes"):
        create_model("ssd_slim", 0)
