"""The one model table: every family's builders, looked up by name and rebuilt from metadata."""

from __future__ import annotations

import pytest
from torch import nn

from singleshot.errors import ConfigError, WeightsError
from singleshot.models import create_model, list_models, model_entry, model_from_meta, register_model
from singleshot.models.registry import ModelEntry


def test_every_family_is_in_the_one_table() -> None:
    assert list_models(task="detect") == ["ssd300", "ssd512", "ssd_slim", "ssd_tiny"]
    assert list_models(task="action", family="yowo") == ["yowo", "yowo_tiny"]
    assert list_models(task="action", family="act") == ["act_slim", "act_tiny", "act_vgg16"]
    assert list_models(task="grasp") == ["ggcnn", "ggcnn2", "psp_resnet101", "psp_resnet18", "psp_resnet50"]
    entry = model_entry("ggcnn2")
    assert isinstance(entry, ModelEntry) and (entry.task, entry.family) == ("grasp", "ggcnn")


def test_create_model_by_name_and_errors() -> None:
    model = create_model("ssd_tiny", 3, image_size=96)
    assert model.num_classes == 3 and int(model.image_size) == 96
    with pytest.raises(ConfigError, match="unknown model 'ssd301'; valid names: act_slim"):
        create_model("ssd301", 3)
    with pytest.raises(ConfigError, match="bad arguments"):
        create_model("ssd_tiny", 3, depth=4)


def test_model_from_meta_of_each_family() -> None:
    ssd = model_from_meta({"architecture": "ssd300", "num_classes": 2, "priors": "coco300"})
    assert ssd.priors.shape == (8732, 4) and ssd.prior_spec.min_sizes[0] == pytest.approx(21.0)  # COCO scale 0.07
    act = model_from_meta({"architecture": "act_tiny", "num_classes": 4, "arch_kwargs": {"k": 2, "image_size": 64}})
    assert act.k == 2
    grasp = model_from_meta({"architecture": "ggcnn", "input": "rgbd"}, task="grasp")
    assert grasp.conv1.in_channels == 4
    with pytest.raises(WeightsError, match="lacks 'architecture'"):
        model_from_meta({"num_classes": 2})
    with pytest.raises(WeightsError, match="unknown architecture 'vgg'"):
        model_from_meta({"architecture": "vgg", "num_classes": 2})
    with pytest.raises(WeightsError, match=r"holds grasp \(ggcnn\) weights; detect needs detect weights"):
        model_from_meta({"architecture": "ggcnn"}, task="detect")
    with pytest.raises(WeightsError, match="lacks 'num_classes'"):
        model_from_meta({"architecture": "ssd_tiny"})


def test_register_model_refuses_a_second_builder_of_one_name() -> None:
    def other(num_classes: int) -> nn.Module:
        return nn.Identity()

    with pytest.raises(ValueError, match="registered twice"):
        register_model("ssd300", task="detect", family="ssd")(other)
    assert model_entry("ssd300").builder is not other


def test_model_from_meta_names_the_weights_file() -> None:
    with pytest.raises(
        WeightsError, match=r"^runs/x/best.safetensors holds detect \(ssd\) weights; grasp needs grasp weights$"
    ):
        model_from_meta({"architecture": "ssd_tiny", "num_classes": 2}, task="grasp", source="runs/x/best.safetensors")
