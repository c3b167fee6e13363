"""torchvision ssd300_vgg16 -> singleshot SSD300: identical raw outputs and priors."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import torch
import torchvision
from torchvision.models.detection.image_list import ImageList

from singleshot.convert import convert_torchvision_ssd300, load_torchvision_ssd300
from singleshot.errors import WeightsError


@pytest.fixture(scope="module")
def tv_model() -> torch.nn.Module:
    torch.manual_seed(0)
    model = torchvision.models.detection.ssd300_vgg16(weights=None, weights_backbone=None, num_classes=91)
    with torch.no_grad():  # move the L2Norm scale off its init so that a dropped key would show
        model.backbone.scale_weight.uniform_(5.0, 30.0)
    return model.eval()


def test_converted_model_reproduces_torchvision(tv_model: torch.nn.Module, tmp_path: Path) -> None:
    path = tmp_path / "ssd300_vgg16.pth"
    torch.save(tv_model.state_dict(), path)
    ours, meta = load_torchvision_ssd300(path)
    ours.eval()
    assert ours.num_classes == 90 and meta["num_classes"] == 90

    torch.manual_seed(1)
    x = torch.randn(2, 3, 300, 300) * 60.0  # normalised input: (pixels - mean) / (1/255)
    with torch.no_grad():
        features = list(tv_model.backbone(x).values())
        expected = tv_model.head(features)
        got = ours(x)
    for key in ("cls_logits", "bbox_regression"):
        assert got[key].shape == expected[key].shape
        torch.testing.assert_close(got[key], expected[key], atol=1e-4, rtol=1e-4)

    # Priors: ours (cxcywh normalised) in pixel xyxy equal torchvision's DefaultBoxGenerator anchors.
    anchors = tv_model.anchor_generator(ImageList(x, [(300, 300)] * 2), features)[0]
    p = ours.priors
    xyxy = torch.cat((p[:, :2] - p[:, 2:] / 2, p[:, :2] + p[:, 2:] / 2), dim=1) * 300.0
    assert xyxy.shape == anchors.shape == (8732, 4)
    torch.testing.assert_close(xyxy, anchors, atol=1e-4, rtol=0.0)


def test_metadata_reproduces_torchvision_settings(tv_model: torch.nn.Module) -> None:
    meta = convert_torchvision_ssd300(tv_model.state_dict()).metadata
    assert meta["mean"] == pytest.approx(list(tv_model.transform.image_mean))
    assert meta["std"] == pytest.approx(list(tv_model.transform.image_std))
    assert meta["input_size"] == [300, 300] and tv_model.transform.fixed_size == (300, 300)
    # plain bilinear interpolate (tests/tasks/detect/test_convert.py checks it against torchvision's outputs)
    assert meta["resize"] == {"interpolation": "bilinear", "antialias": False}
    post = meta["postprocess"]
    assert post["score_thresh"] == tv_model.score_thresh
    assert post["nms_thresh"] == tv_model.nms_thresh
    assert post["topk_candidates"] == tv_model.topk_candidates
    assert post["detections_per_img"] == tv_model.detections_per_img
    assert post["decode_clamp"] == pytest.approx(tv_model.box_coder.bbox_xform_clip)
    assert list(tv_model.box_coder.weights) == [1 / post["variances"][0]] * 2 + [1 / post["variances"][1]] * 2
    cats = torchvision.models.detection.SSD300_VGG16_Weights.COCO_V1.meta["categories"]
    assert meta["classes"] == cats[1:] and meta["classes"][0] == "person"
    assert meta["category_ids"][:3] == [1, 2, 3] and len(meta["category_ids"]) == 90


def test_shape_mismatch_and_unknown_keys_name_the_key(tv_model: torch.nn.Module, tmp_path: Path) -> None:
    sd = dict(tv_model.state_dict())
    bad = dict(sd)
    bad["head.regression_head.module_list.2.weight"] = torch.zeros(20, 512, 3, 3)
    with pytest.raises(WeightsError, match=r"head\.regression_head\.module_list\.2\.weight"):
        load_torchvision_ssd300(bad)
    extra = dict(sd)
    extra["backbone.extra.0.9.weight"] = torch.zeros(1)
    with pytest.raises(WeightsError, match=r"backbone\.extra\.0\.9\.weight"):
        convert_torchvision_ssd300(extra)
    missing = {k: v for k, v in sd.items() if k != "backbone.scale_weight"}
    with pytest.raises(WeightsError, match="l2norm"):
        load_torchvision_ssd300(missing)
    unsafe = tmp_path / "unsafe.pth"
    torch.save({"config": argparse.Namespace(lr=0.1)}, unsafe)
    with pytest.raises(WeightsError, match="unsafe.pth"):
        load_torchvision_ssd300(unsafe)
    with pytest.raises(WeightsError, match="not found"):
        load_torchvision_ssd300(tmp_path / "absent.pth")
