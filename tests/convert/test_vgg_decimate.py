"""torchvision vgg16 -> SSD VGG16-reduced trunk: copied convs and decimated fc6/fc7."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision

from singleshot.convert import load_vgg16_base
from singleshot.errors import WeightsError
from singleshot.models.ssd import ssd300


@pytest.fixture(scope="module")
def vgg16_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    sd = torchvision.models.vgg16(weights=None).state_dict()
    path = tmp_path_factory.mktemp("vgg") / "vgg16.pth"
    torch.save(sd, path)
    return path, sd


def test_decimation_samples_the_right_weights(vgg16_file: tuple[Path, dict[str, torch.Tensor]]) -> None:
    path, sd = vgg16_file
    model = ssd300(20)
    assert load_vgg16_base(model, path) == "imagenet"  # torchvision's vgg16: ImageNet RGB mean/std
    vgg = model.backbone.vgg
    for i in (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28):
        assert torch.equal(vgg[i].weight, sd[f"features.{i}.weight"])
        assert torch.equal(vgg[i].bias, sd[f"features.{i}.bias"])
    fc6, fc7 = vgg[31], vgg[33]
    assert fc6.weight.shape == (1024, 512, 3, 3) and fc6.dilation == (6, 6)
    assert fc7.weight.shape == (1024, 1024, 1, 1)
    w6, w7 = sd["classifier.0.weight"], sd["classifier.3.weight"]
    gen = torch.Generator().manual_seed(1)
    # fc6 input index = channel * 49 + row * 7 + col over pool5's 7x7; kernel taps sample rows/cols 0, 3, 6.
    for _ in range(200):
        o, c, ky, kx = (int(torch.randint(n, (1,), generator=gen)) for n in (1024, 512, 3, 3))
        assert fc6.weight[o, c, ky, kx] == w6[4 * o, c * 49 + (3 * ky) * 7 + 3 * kx]
        i = int(torch.randint(1024, (1,), generator=gen))
        assert fc7.weight[o, i, 0, 0] == w7[4 * o, 4 * i]
    assert torch.equal(fc6.bias, sd["classifier.0.bias"][torch.arange(0, 4096, 4)])
    assert torch.equal(fc7.bias, sd["classifier.3.bias"][torch.arange(0, 4096, 4)])
    # corner taps of the 7x7 window: (0,0) and (6,6)
    assert fc6.weight[5, 7, 0, 0] == w6[20, 7 * 49]
    assert fc6.weight[5, 7, 2, 2] == w6[20, 7 * 49 + 48]


def test_reduced_trunk_roundtrip_and_errors(vgg16_file: tuple[Path, dict[str, torch.Tensor]], tmp_path: Path) -> None:
    path, sd = vgg16_file
    donor = ssd300(20)
    reduced = tmp_path / "vgg16_reducedfc.pth"
    torch.save(donor.backbone.vgg.state_dict(), reduced)  # ssd.pytorch's reduced-trunk layout: "0.weight".."33.bias"
    model = ssd300(20)
    assert load_vgg16_base(model, reduced) == "caffe"  # the Caffe trunk: BGR 0..255 minus (104, 117, 123)
    assert torch.equal(model.backbone.vgg[31].weight, donor.backbone.vgg[31].weight)
    small = {k: v for k, v in sd.items() if k != "classifier.3.weight"}
    with pytest.raises(WeightsError, match=r"classifier\.3\.weight"):
        load_vgg16_base(model, small)
    wrong = dict(sd)
    wrong["features.0.weight"] = torch.zeros(64, 1, 3, 3)
    with pytest.raises(WeightsError, match=r"'features\.0\.weight'"):
        load_vgg16_base(model, wrong)
