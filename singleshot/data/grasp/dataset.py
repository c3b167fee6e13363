"""``GraspDataset``: network inputs and ground-truth grasps of Cornell / Jacquard samples.

Each item is one view of one image: the square crop (``crop``, ``crop_size``), optionally augmented
(:class:`~singleshot.data.grasp.augment.GraspAugment`), resampled to ``size × size``:

* ``input="depth"``: Tensor[1, S, S], depth minus its mean over the view, clipped to ``[−1, 1]``
  (GG-CNN's ``DepthImage.normalise``; the reference takes the mean over the crop before its zoom,
  we take it over the final view);
* ``input="rgb"``: Tensor[3, S, S], RGB / 255 minus the mean of all its values (GG-CNN's
  ``Image.normalise``: the mean is subtracted, not 0.5);
* ``input="rgbd"``: Tensor[4, S, S], depth channel first then RGB, as the reference concatenates.

The grasps come back as :class:`~singleshot.structures.Grasps` in the output's pixels (all of
them, like the reference, including those the view cuts off). :meth:`GraspDataset.view_matrix` gives
the un-augmented source -> output map, to bring predictions back to the original image's pixels.
Target maps are rendered elsewhere (``singleshot.losses.grasp.render_grasp_maps``).

Reference presets: Cornell ``crop="gt_center", crop_size=300, size=300``; Jacquard
``crop="center", crop_size=None`` (the whole 1024² view), ``size=300``. ``"gt_center"`` uses the
labels to place the crop, which helps test scores; ``"center"`` is the honest choice.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from singleshot.data.grasp.augment import AugmentParams, GraspAugment, choose_crop, transform_grasps, view_matrix, warp
from singleshot.data.grasp.cornell import find_cornell_samples, load_cornell
from singleshot.data.grasp.depth import normalise_depth, normalise_rgb
from singleshot.data.grasp.jacquard import find_jacquard_samples, load_jacquard
from singleshot.data.grasp.records import GraspImage, GraspSample
from singleshot.errors import ConfigError, DataError
from singleshot.structures import GRASP_INPUT_CHANNELS, Grasps

logger = logging.getLogger(__name__)

__all__ = ["GraspDataset", "find_grasp_samples", "load_sample"]


def find_grasp_samples(root: str | Path, format: str = "auto", **kwargs: object) -> list[GraspSample]:
    """List the samples of a Cornell or Jacquard root.

    Args:
        root: dataset folder.
        format: ``"cornell"``, ``"jacquard"`` or ``"auto"`` (Cornell when a ``pcd*cpos.txt`` is found
            in the root or one level down, else Jacquard when a ``*_grasps.txt`` is found).
        **kwargs: passed to :func:`find_cornell_samples` / :func:`find_jacquard_samples`.

    Raises:
        ConfigError: unknown format. DataError: neither layout found.
    """
    root = Path(root)
    if format == "auto":
        if next(root.glob("pcd*cpos.txt"), None) or next(root.glob("*/pcd*cpos.txt"), None):
            format = "cornell"
        elif next(root.rglob("*_grasps.txt"), None):
            format = "jacquard"
        else:
            raise DataError(f"{root}: neither a Cornell (pcdXXXXcpos.txt) nor a Jacquard (*_grasps.txt) dataset")
    if format == "cornell":
        return find_cornell_samples(root, **kwargs)  # type: ignore[arg-type]
    if format == "jacquard":
        return find_jacquard_samples(root, **kwargs)  # type: ignore[arg-type]
    raise ConfigError(f"format: expected 'auto', 'cornell' or 'jacquard', got {format!r}")


def load_sample(sample: GraspSample, depth: bool = True, rgb: bool = False) -> GraspImage:
    """Read a sample of either format (see :func:`load_cornell`, :func:`load_jacquard`)."""
    if sample.format == "cornell":
        return load_cornell(sample, depth=depth, rgb=rgb)
    if sample.format == "jacquard":
        return load_jacquard(sample, depth=depth, rgb=rgb)
    raise DataError(f"{sample.grasp_path}: unknown sample format {sample.format!r}")


class GraspDataset(Dataset[tuple[Tensor, Grasps]]):
    """Grasp images as network inputs with their grasps.

    Args:
        samples: from :func:`find_grasp_samples` (or a split of them).
        input: ``"depth"``, ``"rgb"`` or ``"rgbd"``.
        size: output side S in pixels.
        crop: ``"gt_center"``, ``"center"`` or ``(x0, y0, side)`` (see :func:`choose_crop`).
        crop_size: crop side in source pixels (None = ``min(H, W)``); a crop larger than the image
            is clamped to it. When it differs from ``size`` the view is resized (zoom factor ``size / crop``).
        augment: random augmentation, or None for the deterministic view.
        cache: keep loaded images in memory (worth it for small synthetic sets).

    Items: ``(image Tensor[C, S, S] float32, Grasps)`` with grasps ``(cx, cy, angle, opening, jaw)``
    in output pixels, ``scores`` ones, ``size = (S, S)``. Random draws use torch's generator (seed it,
    and DataLoader workers are seeded per worker).
    """

    def __init__(
        self,
        samples: Sequence[GraspSample],
        input: str = "depth",
        size: int = 300,
        crop: str | tuple[int, int, int] = "gt_center",
        crop_size: int | None = 300,
        augment: GraspAugment | None = None,
        cache: bool = False,
    ) -> None:
        if input not in GRASP_INPUT_CHANNELS:
            raise ConfigError(f"input: expected one of {sorted(GRASP_INPUT_CHANNELS)}, got {input!r}")
        if int(size) <= 0:
            raise ConfigError(f"size: must be positive, got {size}")
        if isinstance(crop, str) and crop not in ("gt_center", "center"):
            raise ConfigError(f"crop: expected 'gt_center', 'center' or (x0, y0, side), got {crop!r}")
        self.samples = list(samples)
        self.input = input
        self.size = int(size)
        self.crop = crop
        self.crop_size = crop_size
        self.augment = augment
        self.cache = cache
        self._cache: dict[int, GraspImage] = {}
        self._warned_clamp = False

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def channels(self) -> int:
        """C of the items' images."""
        return GRASP_INPUT_CHANNELS[self.input]

    def load(self, index: int) -> GraspImage:
        """The original image and grasps of item ``index`` (cached when ``cache=True``)."""
        if index in self._cache:
            return self._cache[index]
        img = load_sample(self.samples[index], depth=self.input != "rgb", rgb=self.input != "depth")
        if self.cache:
            self._cache[index] = img
        return img

    def _box(self, img: GraspImage) -> tuple[int, int, int]:
        h, w = img.size
        if self.crop_size is not None and self.crop_size > min(h, w) and not self._warned_clamp:
            logger.warning(
                "crop_size %d exceeds the %dx%d image of %s; cropping %d", self.crop_size, h, w, img.image_id, min(h, w)
            )
            self._warned_clamp = True
        return choose_crop(img.size, img.grasps, self.crop, self.crop_size)

    def view_matrix(self, index: int, params: AugmentParams = AugmentParams()) -> np.ndarray:
        """array[3, 3]: source -> output pixel map of item ``index`` (un-augmented by default).

        Map predictions back with ``transform_grasps(pred, np.linalg.inv(matrix))``.
        """
        return view_matrix(self._box(self.load(index)), self.size, params)

    def __getitem__(self, index: int) -> tuple[Tensor, Grasps]:
        img = self.load(index)
        params = AugmentParams()
        if self.augment is not None:
            seed = int(torch.randint(0, 2**31 - 1, ()).item())
            params = self.augment.sample(np.random.default_rng(seed))
        m = view_matrix(self._box(img), self.size, params)
        shape = (self.size, self.size)
        parts: list[np.ndarray] = []
        if img.depth is not None:
            parts.append(normalise_depth(warp(img.depth, m, shape))[None])
        if img.rgb is not None:
            parts.append(normalise_rgb(warp(img.rgb, m, shape)))
        x = torch.from_numpy(np.concatenate(parts, axis=0).astype(np.float32, copy=False))
        g = torch.from_numpy(transform_grasps(img.grasps, m))
        target = Grasps(grasps=g, scores=torch.ones(len(g), dtype=torch.float32), image_id=img.image_id, size=shape)
        return x, target
