"""SSD prior (default) boxes.

A prior configuration lists, per source feature map, its grid size, its step in input pixels, the
size of its square prior (``min_sizes``), the size whose geometric mean with it gives the second
square prior (``max_sizes``) and the extra aspect ratios (each ``ar`` adds ``ar`` and ``1/ar``).
Within a cell the priors come in the order: square ``s_k``, square ``sqrt(s_k s'_k)``, then for each
ratio the wide and the tall box. Cells are row-major. This is the order of ssd.pytorch's PriorBox and
of torchvision's ``DefaultBoxGenerator``, so heads trained by either line up with our priors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from singleshot.errors import ConfigError


@dataclass(frozen=True)
class PriorSpec:
    """Geometry of a set of SSD priors. Sizes and steps are in input pixels."""

    image_size: int
    feature_maps: list[int]
    steps: list[float]
    min_sizes: list[float]
    max_sizes: list[float]
    aspect_ratios: list[list[int]] = field(default_factory=list)
    clip: str = "wh"

    def __post_init__(self) -> None:
        n = len(self.feature_maps)
        if self.clip not in ("wh", "all", "none"):
            raise ConfigError(f"PriorSpec.clip must be 'wh', 'all' or 'none', got {self.clip!r}")
        for name in ("steps", "min_sizes", "max_sizes", "aspect_ratios"):
            if len(getattr(self, name)) != n:
                raise ConfigError(f"PriorSpec.{name} has {len(getattr(self, name))} entries, feature_maps has {n}")

    @property
    def num_priors(self) -> int:
        return sum(f * f * a for f, a in zip(self.feature_maps, priors_per_cell(self.aspect_ratios)))


def priors_per_cell(aspect_ratios: list[list[int]]) -> list[int]:
    """Number of priors per cell of each map: two squares plus two per extra aspect ratio."""
    return [2 + 2 * len(ar) for ar in aspect_ratios]


def spec_from_scales(
    image_size: int,
    feature_maps: list[int],
    steps: list[float],
    scales: list[float],
    aspect_ratios: list[list[int]],
    clip: str = "wh",
) -> PriorSpec:
    """Build a spec from relative scales (torchvision style): ``len(scales) == len(feature_maps) + 1``."""
    if len(scales) != len(feature_maps) + 1:
        raise ConfigError(f"need {len(feature_maps) + 1} scales for {len(feature_maps)} maps, got {len(scales)}")
    sizes = [s * image_size for s in scales]
    return PriorSpec(image_size, list(feature_maps), list(steps), sizes[:-1], sizes[1:], aspect_ratios, clip)


_AR6 = [[2], [2, 3], [2, 3], [2, 3], [2], [2]]
_AR7 = [[2], [2, 3], [2, 3], [2, 3], [2, 3], [2], [2]]

_SPECS: dict[str, PriorSpec] = {
    # ssd.pytorch data/config.py `voc` (the paper's SSD300 on VOC).
    "voc300": PriorSpec(
        300,
        [38, 19, 10, 5, 3, 1],
        [8, 16, 32, 64, 100, 300],
        [30, 60, 111, 162, 213, 264],
        [60, 111, 162, 213, 264, 315],
        _AR6,
        clip="all",
    ),
    # torchvision ssd300_vgg16 (COCO).
    "coco300": spec_from_scales(
        300, [38, 19, 10, 5, 3, 1], [8, 16, 32, 64, 100, 300], [0.07, 0.15, 0.33, 0.51, 0.69, 0.87, 1.05], _AR6
    ),
    # The original Caffe SSD512 VOC model (min_ratio 15, max_ratio 90, first map at 0.07).
    "voc512": PriorSpec(
        512,
        [64, 32, 16, 8, 4, 2, 1],
        [8, 16, 32, 64, 128, 256, 512],
        [35.84, 76.8, 153.6, 230.4, 307.2, 384.0, 460.8],
        [76.8, 153.6, 230.4, 307.2, 384.0, 460.8, 537.6],
        _AR7,
        clip="none",
    ),
    # The original Caffe SSD512 COCO model (min_ratio 15, max_ratio 90, first map at 0.04).
    "coco512": PriorSpec(
        512,
        [64, 32, 16, 8, 4, 2, 1],
        [8, 16, 32, 64, 128, 256, 512],
        [20.48, 51.2, 133.12, 215.04, 296.96, 378.88, 460.8],
        [51.2, 133.12, 215.04, 296.96, 378.88, 460.8, 542.72],
        _AR7,
        clip="none",
    ),
}


def prior_spec(name: str) -> PriorSpec:
    """The named published configuration: ``voc300``, ``coco300``, ``voc512`` or ``coco512``."""
    try:
        return _SPECS[name]
    except KeyError:
        raise ConfigError(f"unknown prior configuration {name!r}; choose one of {sorted(_SPECS)}") from None


def generate_priors(spec: PriorSpec) -> Tensor:
    """All priors of ``spec``.

    Returns:
        Tensor[P, 4] float32, cxcywh normalised by ``spec.image_size``. ``spec.clip`` clamps to
        [0, 1]: ``"wh"`` the widths and heights (torchvision), ``"all"`` every coordinate, centres
        too (ssd.pytorch, whose 10×10 map at step 32 puts centres past 1), ``"none"`` nothing (Caffe
        SSD512).
    """
    out = []
    for f, step, smin, smax, ars in zip(
        spec.feature_maps, spec.steps, spec.min_sizes, spec.max_sizes, spec.aspect_ratios
    ):
        s = smin / spec.image_size
        wh = [(s, s), (math.sqrt(s * smax / spec.image_size),) * 2]
        for ar in ars:
            r = math.sqrt(ar)
            wh += [(s * r, s / r), (s / r, s * r)]
        wh_t = torch.tensor(wh, dtype=torch.float32)
        if spec.clip != "none":
            wh_t = wh_t.clamp(0.0, 1.0)
        centres = (torch.arange(f, dtype=torch.float32) + 0.5) * (step / spec.image_size)
        if spec.clip == "all":
            centres = centres.clamp(0.0, 1.0)
        cy, cx = torch.meshgrid(centres, centres, indexing="ij")
        cxy = torch.stack((cx.reshape(-1), cy.reshape(-1)), dim=-1)  # [f*f, 2]
        a = wh_t.shape[0]
        out.append(
            torch.cat((cxy[:, None, :].expand(-1, a, -1), wh_t[None].expand(f * f, -1, -1)), dim=-1).reshape(-1, 4)
        )
    return torch.cat(out, dim=0)
