from __future__ import annotations

import math

import pytest
import torch
from torchvision.models.detection.anchor_utils import DefaultBoxGenerator
from torchvision.models.detection.image_list import ImageList

from singleshot.errors import ConfigError
from singleshot.ops.boxes import cxcywh_to_xyxy
from singleshot.ops.priors import PriorSpec, generate_priors, prior_spec, priors_per_cell


@pytest.mark.parametrize("name,count", [("voc300", 8732), ("coco300", 8732), ("voc512", 24564), ("coco512", 24564)])
def test_prior_counts(name: str, count: int) -> None:
    spec = prior_spec(name)
    priors = generate_priors(spec)
    assert priors.shape == (count, 4)
    assert spec.num_priors == count
    assert bool((priors >= 0).all())
    if spec.clip == "all":
        assert bool((priors <= 1).all())
    if spec.clip == "wh":
        assert bool((priors[:, 2:] <= 1).all())


def test_voc300_centres_clamped_like_ssd_pytorch() -> None:
    p = generate_priors(prior_spec("voc300"))
    # 10x10 map, step 32: the last column's centre (9.5 * 32 / 300 = 1.013) is clamped to 1
    start = 38 * 38 * 4 + 19 * 19 * 6
    last_col = p[start : start + 600].view(10, 10, 6, 4)[:, 9, :, 0]
    assert bool((last_col == 1.0).all())


def test_voc300_first_cell_by_hand() -> None:
    p = generate_priors(prior_spec("voc300"))
    c = 0.5 * 8 / 300
    s = 30 / 300
    s2 = math.sqrt(30 * 60) / 300
    r = math.sqrt(2)
    expected = torch.tensor([[c, c, s, s], [c, c, s2, s2], [c, c, s * r, s / r], [c, c, s / r, s * r]])
    torch.testing.assert_close(p[:4], expected)
    # second cell of the first map moves along x (row-major cells)
    torch.testing.assert_close(p[4, :2], torch.tensor([1.5 * 8 / 300, c]))
    # the last prior is the tall box of the 1x1 map, centred
    assert p[-1, 0] == pytest.approx(0.5) and p[-1, 1] == pytest.approx(0.5)


def test_coco300_matches_torchvision_default_boxes() -> None:
    spec = prior_spec("coco300")
    gen = DefaultBoxGenerator(
        [[2], [2, 3], [2, 3], [2, 3], [2], [2]],
        scales=[0.07, 0.15, 0.33, 0.51, 0.69, 0.87, 1.05],
        steps=[8, 16, 32, 64, 100, 300],
    )
    feats = [torch.zeros(1, 1, f, f) for f in spec.feature_maps]
    images = ImageList(torch.zeros(1, 3, 300, 300), [(300, 300)])
    theirs = gen(images, feats)[0]
    ours = cxcywh_to_xyxy(generate_priors(spec)) * 300
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=0)
    assert priors_per_cell(spec.aspect_ratios) == gen.num_anchors_per_location()


def test_unknown_spec_and_bad_lengths() -> None:
    with pytest.raises(ConfigError, match="voc300"):
        prior_spec("voc301")
    with pytest.raises(ConfigError, match="steps"):
        PriorSpec(300, [38, 19], [8], [30, 60], [60, 111], [[2], [2]])
