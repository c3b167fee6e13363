"""The ``grasp`` task's datasets: Cornell and Jacquard roots, their splits and their views.

:func:`find_samples` lists a root's annotated images (``layout``, ``depth``, ``object_map``),
:func:`split_of` splits them (image-wise, object-wise, the reference's order, k-fold or all),
:func:`make_dataset` gives the network's views (:class:`~singleshot.data.grasp.dataset.GraspDataset`,
augmented for training) and :class:`ViewsWithMatrices` adds each view's source -> view matrix, to
bring predictions back to the original image's pixels.
"""

from __future__ import annotations

import warnings
from collections.abc import Collection, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from singleshot.data.collate import collate_detection
from singleshot.data.grasp.augment import GraspAugment, choose_crop, view_matrix
from singleshot.data.grasp.dataset import GraspDataset, find_grasp_samples, load_sample
from singleshot.data.grasp.records import GraspSample
from singleshot.data.grasp.splits import split_samples
from singleshot.errors import ConfigError, DataError
from singleshot.structures import Grasps
from singleshot.tasks.grasp.config import GraspConfig

__all__ = ["SPLITS", "ViewsWithMatrices", "collate_views", "find_samples", "make_dataset", "split_of"]

SPLITS = ("image", "object", "reference", "kfold", "all")


def find_samples(cfg: GraspConfig, root: str, unread: Collection[str] = ()) -> list[GraspSample]:
    """The annotated images of a Cornell or Jacquard root (``layout``, ``depth``, ``object_map``);
    the ids in ``unread`` are listed without reading their files (see ``grasp.check.screened_split``)."""
    path = Path(root)
    layout = cfg.layout
    if layout == "auto":
        cornell = next(path.glob("pcd*cpos.txt"), None) or next(path.glob("*/pcd*cpos.txt"), None)
        layout = "cornell" if cornell is not None else "jacquard"
    if layout == "cornell":
        objects = Path(cfg.object_map) if cfg.object_map else path / "objects.txt"
        if cfg.object_map and not objects.is_file():
            raise DataError(f"{objects}: object map not found (object_map=...)")
        return find_grasp_samples(path, "cornell", object_map=objects if objects.is_file() else None, unread=unread)
    if layout == "jacquard":
        return find_grasp_samples(path, "jacquard", depth=cfg.depth, unread=unread)
    raise ConfigError(f"layout: expected auto, cornell or jacquard, got {layout!r}")


def split_of(cfg: GraspConfig, samples: Sequence[GraspSample]) -> tuple[list[GraspSample], list[GraspSample], str]:
    """(train samples, test samples, a description of the split for the report)."""
    n = len(samples)
    if cfg.split not in SPLITS:
        raise ConfigError(f"split: expected one of {', '.join(SPLITS)}, got {cfg.split!r}")
    if cfg.split == "all":
        return list(samples), list(samples), f"all {n} images"
    mode, k = ("image", cfg.k or 5) if cfg.split == "kfold" else (cfg.split, cfg.k)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train, test = split_samples(samples, mode, k, cfg.fold, cfg.test_fraction, cfg.split_seed)
    approx = any("contiguous" in str(w.message) for w in caught)
    for w in caught:
        warnings.warn(str(w.message), stacklevel=2)
    names = {
        "image": "image-wise",
        "object": "object-wise" + (" (contiguous blocks, no object ids)" if approx else ""),
        "reference": "reference (by order, GG-CNN)",
    }
    how = f"fold {cfg.fold + 1}/{k}" if k else f"{len(test)} of {n} images held out"
    seed = "" if mode == "reference" else f", seed {cfg.split_seed}"
    return train, test, f"{names[mode]} {how}{seed}: {len(train)} train / {len(test)} test images"


def make_dataset(cfg: GraspConfig, samples: Sequence[GraspSample], train: bool) -> GraspDataset:
    """The training views (augmented when ``augment``) or the plain evaluation views."""
    augment = None
    if train and cfg.augment:
        zoom = tuple(cfg.zoom) if cfg.zoom else None
        if zoom is not None and len(zoom) != 2:
            raise ConfigError(f"zoom: expected two numbers 'low,high' or none, got {cfg.zoom}")
        augment = GraspAugment(cfg.rotate90, cfg.max_angle, zoom, cfg.hflip, cfg.vflip)  # type: ignore[arg-type]
    return GraspDataset(samples, cfg.input, cfg.size, cfg.crop, cfg.crop_size, augment, cfg.cache)


class ViewsWithMatrices(Dataset):
    """Items of an un-augmented :class:`GraspDataset` plus each view's source -> view matrix
    (array[3, 3]) and source size, computed beside the image in the loader's workers."""

    def __init__(self, dataset: GraspDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, Grasps, np.ndarray, tuple[int, int]]:
        ds = self.dataset
        x, target = ds[i]
        sample = ds.samples[i]
        grasps = load_sample(sample, depth=False, rgb=False).grasps
        with Image.open(sample.depth_path or sample.rgb_path) as im:  # type: ignore[arg-type]
            w, h = im.size
        m = view_matrix(choose_crop((h, w), grasps, ds.crop, ds.crop_size), ds.size)
        return x, target, m, (h, w)


def collate_views(batch: list) -> tuple[torch.Tensor, list[Grasps], list[np.ndarray], list[tuple[int, int]]]:
    """Collate :class:`ViewsWithMatrices` items: (views Tensor[B, C, S, S], Grasps in view pixels,
    source -> view matrices array[3, 3], source sizes (H, W))."""
    x, targets = collate_detection([(b[0], b[1]) for b in batch])
    return x, targets, [b[2] for b in batch], [b[3] for b in batch]
