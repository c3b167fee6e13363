"""InputSpec (a weights file's input convention) and the one resize every path uses."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from singleshot.data.input_spec import InputSpec, resize_image, resize_unit_float, to_unit_float
from singleshot.errors import WeightsError


def test_meta_round_trip_and_defaults() -> None:
    spec = InputSpec.named("caffe", 300, antialias=False)
    meta = spec.to_meta()
    assert meta == {
        "input_size": [300, 300],
        "channel_order": "BGR",
        "mean": pytest.approx([104 / 255, 117 / 255, 123 / 255]),
        "std": pytest.approx([1 / 255] * 3),
        "resize": {"interpolation": "bilinear", "antialias": False},
    }
    assert InputSpec.from_meta(meta) == spec
    # no resize dict (older files, converted weights, a pre-dict description string): the caller's default
    bare = {k: v for k, v in meta.items() if k != "resize"}
    assert InputSpec.from_meta(bare).antialias is False
    assert InputSpec.from_meta(bare, antialias=True).antialias is True
    assert InputSpec.from_meta(dict(bare, resize="warp to the input size")).antialias is False
    # no convention keys at all: ImageNet RGB, the size from the caller
    assert InputSpec.from_meta({}, size=160) == InputSpec((160, 160), antialias=False)
    with pytest.raises(WeightsError, match="bicubic"):
        InputSpec.from_meta(dict(meta, resize={"interpolation": "bicubic", "antialias": True}))
    with pytest.raises(WeightsError, match="input_size"):
        InputSpec.from_meta({"mean": [0, 0, 0]})
    with pytest.raises(WeightsError, match="channel_order"):
        InputSpec((8, 8), "GRB")
    with pytest.raises(WeightsError, match="convention"):
        InputSpec.named("bgr", 8)


def test_normalize_flips_to_bgr_then_subtracts_in_0_255_units() -> None:
    """A pixel (R, G, B) = (255, 128, 0) under Caffe's convention: B, G, R minus 104, 117, 123."""
    x = torch.tensor([1.0, 128 / 255, 0.0]).view(3, 1, 1)
    caffe = InputSpec.named("caffe", 1)
    torch.testing.assert_close(caffe.normalize(x).flatten(), torch.tensor([-104.0, 11.0, 132.0]), atol=1e-4, rtol=0)
    ssd_pytorch = InputSpec.named("ssd_pytorch", 1)  # what ssd.pytorch feeds: RGB minus 123, 117, 104
    torch.testing.assert_close(
        ssd_pytorch.normalize(x).flatten(), torch.tensor([132.0, 11.0, -104.0]), atol=1e-4, rtol=0
    )
    imagenet = InputSpec.named("imagenet", 1)
    want = (x.flatten() - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225])
    torch.testing.assert_close(imagenet.normalize(x).flatten(), want)
    assert caffe.rgb_mean() == pytest.approx((123 / 255, 117 / 255, 104 / 255))
    batch = torch.rand(2, 3, 4, 5)
    for spec in (caffe, ssd_pytorch, imagenet):
        torch.testing.assert_close(spec.denormalize(spec.normalize(batch)), batch, atol=1e-5, rtol=0)
    assert "BGR" in caffe.describe() and "antialiased" in caffe.describe()


def test_resize_image_is_interpolate_with_the_policy() -> None:
    torch.manual_seed(0)
    x = torch.rand(2, 3, 75, 100)
    for antialias in (True, False):
        want = F.interpolate(x, size=(30, 40), mode="bilinear", align_corners=False, antialias=antialias)
        torch.testing.assert_close(resize_image(x, (30, 40), antialias), want, atol=1e-6, rtol=0)
    assert (resize_image(x, 30, True) - resize_image(x, 30, False)).abs().max() > 0.05
    # growing: antialiasing changes nothing, so both policies give plain bilinear
    up = F.interpolate(x, size=(150, 200), mode="bilinear", align_corners=False)
    assert torch.equal(resize_image(x, (150, 200), True), up) and torch.equal(resize_image(x, (150, 200), False), up)
    assert resize_image(x, (75, 100), True) is x
    # uint8 stays uint8, within rounding of the float resize
    u8 = torch.randint(0, 256, (3, 75, 100), dtype=torch.uint8)
    out = resize_image(u8, 32, True)
    assert out.dtype == torch.uint8 and out.shape == (3, 32, 32)
    ref = F.interpolate(u8[None].float(), size=(32, 32), mode="bilinear", align_corners=False, antialias=True)[0]
    assert (out.float() - ref).abs().max() <= 1.0
    # the detect family's resize: /255 then float resize, clamped to [0, 1]
    unit = resize_unit_float(u8, 32, True)
    torch.testing.assert_close(unit, resize_image(to_unit_float(u8), 32, True).clamp(0, 1))
    assert float(unit.min()) >= 0.0 and float(unit.max()) <= 1.0


def test_size_hw_reads_every_spelling_of_a_size() -> None:
    from singleshot.data.input_spec import size_hw

    assert size_hw(300) == (300, 300)
    assert size_hw(300.0) == (300, 300)  # metadata read from JSON may hold floats
    assert size_hw([240, 320]) == (240, 320)
    assert size_hw((96, 128)) == (96, 128)
