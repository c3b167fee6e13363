"""The ``singleshot grasp MODE key=value ...`` modes: score, val, predict, train, demo, convert.

Metrics (``score``, ``val``, ``train``, ``demo``) are the grasp success rate of the top-1 grasp
(:class:`~singleshot.metrics.grasp.GraspEvaluator`: IoU > 0.25 with a ground-truth rectangle within
30°), with ``n``, a Wilson 95 % interval ``ci95``, the split and the IoU mode. ``val`` scores the
network's views (the crop resized to the input size), as the reference does; its
``predictions.json`` is in the original pixels, and ``score`` on that file gives the same rate
with ``iou=polygon`` (the raster IoU depends on the pixel grid it counts on).
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from singleshot.config import build_config
from singleshot.data.collate import collate_detection
from singleshot.data.grasp.augment import GraspAugment, choose_crop, view_matrix
from singleshot.data.grasp.dataset import GraspDataset, find_grasp_samples, load_sample
from singleshot.data.grasp.records import GraspSample
from singleshot.data.grasp.splits import split_samples
from singleshot.errors import ConfigError, DataError, WeightsError
from singleshot.metrics.grasp import GraspEvaluator
from singleshot.structures import Grasps
from singleshot.tasks.grasp import GraspConfig, GraspPredictor, grasps_to_original, model_from_meta, postprocess_from

logger = logging.getLogger(__name__)

SPLITS = ("image", "object", "reference", "kfold", "all")


def _cfg(args: dict[str, str], **defaults: Any) -> GraspConfig:
    yaml_path = args.pop("cfg", None)
    merged: dict[str, Any] = dict(defaults)
    merged.update(args)
    return build_config(GraspConfig, yaml_path, merged)


def _require(cfg: GraspConfig, *keys: str) -> None:
    missing = [k for k in keys if not getattr(cfg, k)]
    if missing:
        raise ConfigError(f"missing required key(s): {', '.join(k.rstrip('_') + '=...' for k in missing)}")


def run_dir(cfg: GraspConfig, mode: str) -> Path:
    """``project/name`` for training, ``project/<mode>`` otherwise; an existing folder is reused."""
    out = Path(cfg.project) / (cfg.name if mode == "train" else mode)
    out.mkdir(parents=True, exist_ok=True)
    return out


# ---------------------------------------------------------------- data
def find_samples(cfg: GraspConfig, root: str) -> list[GraspSample]:
    """The annotated images of a Cornell or Jacquard root (``layout``, ``depth``, ``object_map``)."""
    path = Path(root)
    layout = cfg.layout
    if layout == "auto":
        cornell = next(path.glob("pcd*cpos.txt"), None) or next(path.glob("*/pcd*cpos.txt"), None)
        layout = "cornell" if cornell is not None else "jacquard"
    if layout == "cornell":
        objects = Path(cfg.object_map) if cfg.object_map else path / "objects.txt"
        if cfg.object_map and not objects.is_file():
            raise DataError(f"{objects}: object map not found (object_map=...)")
        return find_grasp_samples(path, "cornell", object_map=objects if objects.is_file() else None)
    if layout == "jacquard":
        return find_grasp_samples(path, "jacquard", depth=cfg.depth)
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
    names = {"image": "image-wise", "object": "object-wise" + (" (contiguous blocks, no object ids)" if approx else ""),
             "reference": "reference (by order, GG-CNN)"}  # fmt: skip
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


def _collate_views(batch: list) -> tuple[torch.Tensor, list[Grasps], list[np.ndarray], list[tuple[int, int]]]:
    x, targets = collate_detection([(b[0], b[1]) for b in batch])
    return x, targets, [b[2] for b in batch], [b[3] for b in batch]


def make_evaluator(cfg: GraspConfig, split: str) -> GraspEvaluator:
    if cfg.iou not in ("polygon", "raster"):
        raise ConfigError(f"iou: expected polygon or raster, got {cfg.iou!r}")
    return GraspEvaluator(cfg.iou_thresh, cfg.angle_thresh, cfg.iou, cfg.top_k, split)  # type: ignore[arg-type]


def evaluate_dataset(
    predictor: GraspPredictor, dataset: GraspDataset, cfg: GraspConfig, split: str, keep: bool = False
) -> tuple[dict, list[Grasps]]:
    """Score ``predictor`` on the views of ``dataset``; with ``keep``, also return the predictions
    in the original images' pixels."""
    evaluator = make_evaluator(cfg, split)
    source: Dataset = ViewsWithMatrices(dataset) if keep else dataset
    loader = DataLoader(source, batch_size=max(1, min(cfg.batch, 16)), num_workers=cfg.workers,
                        collate_fn=_collate_views if keep else collate_detection)  # fmt: skip
    kept: list[Grasps] = []
    for batch in loader:
        x, targets = batch[0], batch[1]
        preds = predictor.predict_views(x, [t.image_id for t in targets])
        evaluator.process(preds, targets)
        if keep:
            kept += [grasps_to_original(p, m, s) for p, m, s in zip(preds, batch[2], batch[3])]
    return evaluator.compute(), kept


def load_predictor(cfg: GraspConfig) -> GraspPredictor:
    """The model of a ``.safetensors`` weights file (or of an ``.onnx`` file written by ``grasp
    export``, run with onnxruntime) with the view settings of its metadata; keys given on the command line (``size``, ``crop``, ``crop_size``, thresholds) override them."""
    from singleshot.engine.weights import load_state_into, load_weights

    _require(cfg, "weights")
    onnx = Path(cfg.weights).suffix.lower() == ".onnx"
    if onnx:  # an exported graph run by onnxruntime, with the metadata it carries
        from singleshot.export.grasp_export import load_onnx_grasp_model

        model, meta = load_onnx_grasp_model(cfg.weights, threads=cfg.threads or None)
    else:
        state, meta = load_weights(cfg.weights)
        model = load_state_into(model_from_meta(meta), state, cfg.weights, meta.get("architecture"))
    base = GraspConfig()
    meta = dict(meta)
    if cfg.input != base.input and cfg.input != meta.get("input", "depth"):
        raise ConfigError(f"input={cfg.input}: {cfg.weights} was trained on {meta.get('input', 'depth')!r} input")
    for key, meta_key in (("size", "input_size"), ("crop", "crop"), ("crop_size", "crop_size")):
        if getattr(cfg, key) != getattr(base, key):
            if onnx and key == "size":
                raise ConfigError(f"size={cfg.size}: {cfg.weights} is a graph traced at {meta.get('input_size')}; "
                                  "export again at that size")  # fmt: skip
            meta[meta_key] = [cfg.size, cfg.size] if key == "size" else getattr(cfg, key)
    return GraspPredictor(model, meta, postprocess_from(cfg, meta), cfg.device, channels_last=not onnx)


def _view_cfg(cfg: GraspConfig, predictor: GraspPredictor) -> GraspConfig:
    """``cfg`` with the predictor's input kind, size and crop (for building datasets)."""
    cfg.input, cfg.size, cfg.crop, cfg.crop_size = predictor.input, predictor.size, predictor.crop, predictor.crop_size
    return cfg


# ---------------------------------------------------------------- modes
def score(args: dict[str, str]) -> dict:
    """Success rate of a prediction file (``pred=``) against a Cornell / Jacquard root (``gt=``),
    over the test side of ``split`` (``split=all``: every image). Test images without predictions fail.
    Everything is compared in the original pixels, so ``crop``/``size`` play no part here."""
    from singleshot.tasks.grasp_predict import read_grasp_predictions

    cfg = _cfg(args)
    _require(cfg, "gt", "pred")
    _, test, split = split_of(cfg, find_samples(cfg, cfg.gt))
    preds = read_grasp_predictions(cfg.pred)
    targets, chosen, missing = [], [], []
    for s in test:
        g = torch.from_numpy(load_sample(s, depth=False, rgb=False).grasps)
        targets.append(Grasps(grasps=g, scores=torch.ones(len(g)), image_id=s.image_id))
        if s.image_id not in preds:
            missing.append(s.image_id)
        chosen.append(preds.get(s.image_id, Grasps(image_id=s.image_id)))
    if missing:
        warnings.warn(f"{cfg.pred}: no prediction for {len(missing)} of {len(test)} test images "
                      f"(e.g. {missing[0]}); they count as failures", stacklevel=2)  # fmt: skip
    extra = len(set(preds) - {s.image_id for s in test})
    if extra:
        logger.info("%s: %d predicted images are not in the test split and were ignored", cfg.pred, extra)
    evaluator = make_evaluator(cfg, split)
    evaluator.process(chosen, targets)
    return dict(evaluator.compute(), missing=len(missing), ignored=extra)


def val(args: dict[str, str]) -> dict:
    """Evaluate a weights file on the test side of ``split`` of ``data``; writes predictions.json."""
    from singleshot.tasks.grasp_predict import write_grasp_predictions

    cfg = _cfg(args)
    _require(cfg, "data")
    predictor = load_predictor(cfg)
    cfg = _view_cfg(cfg, predictor)
    _, test, split = split_of(cfg, find_samples(cfg, cfg.data))
    metrics, preds = evaluate_dataset(predictor, make_dataset(cfg, test, train=False), cfg, split, keep=True)
    out = run_dir(cfg, "val")
    write_grasp_predictions(out / "predictions.json", preds)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return dict(metrics, predictions=str(out / "predictions.json"))


def predict(args: dict[str, str]) -> dict:
    """Grasps of a depth image (``source=``, optional ``rgb=``) or a folder: pictures + predictions.json."""
    from singleshot.tasks.grasp_predict import predict_source

    cfg = _cfg(args)
    _require(cfg, "source")
    predictor = load_predictor(cfg)
    return predict_source(predictor, Path(cfg.source), run_dir(cfg, "predict"), Path(cfg.rgb) if cfg.rgb else None,
                          cfg.format, cfg.depth, cfg.batch)  # fmt: skip


def train(args: dict[str, str]) -> dict:
    """Train a grasp net; writes checkpoints, ``best.safetensors``, logs and plots."""
    from singleshot.tasks.grasp_train import train_grasp

    return train_grasp(_cfg(args))


def demo(args: dict[str, str]) -> dict:
    """Generate the synthetic Cornell-layout dataset, train GG-CNN on it, evaluate, draw grasps."""
    from singleshot.tasks.grasp_train import run_demo

    return run_demo(args)


def convert(args: dict[str, str]) -> dict:
    """``from=pcd src=<cornell root>``: clouds -> ``pcdXXXXd.tiff``; ``from=ggcnn src=<state dict .pt>
    dst=<.safetensors>``: dougsm/ggcnn weights (GG-CNN or GG-CNN2, found from the layer names)."""
    cfg = _cfg(args)
    _require(cfg, "from_", "src")
    if cfg.from_ == "pcd":
        from singleshot.data.grasp.pcd import convert_cornell_pcd

        written = convert_cornell_pcd(cfg.src, overwrite=cfg.overwrite)
        return {"from": "pcd", "root": cfg.src, "written": len(written)}
    if cfg.from_ != "ggcnn":
        raise ConfigError(f"from={cfg.from_!r} is unknown; expected pcd or ggcnn")
    from singleshot.engine.weights import load_foreign_pth, load_state_into, save_weights
    from singleshot.tasks.grasp import build_grasp_model, model_meta

    _require(cfg, "dst")
    state = load_foreign_pth(cfg.src)
    first = "features.0.weight" if "features.0.weight" in state else "conv1.weight"
    if first not in state:
        raise WeightsError(f"{cfg.src}: not a GG-CNN / GG-CNN2 state dict (no conv1.weight or features.0.weight)")
    cfg.model = "ggcnn2" if first.startswith("features") else "ggcnn"
    kinds = {1: "depth", 3: "rgb", 4: "rgbd"}
    channels = int(state[first].shape[1])
    if channels not in kinds:
        raise WeightsError(f"{cfg.src}: {first} takes {channels} input channels; expected 1, 3 or 4")
    cfg.input = kinds[channels]
    model = load_state_into(build_grasp_model(cfg.model, cfg.input), state, cfg.src, cfg.model)
    save_weights(Path(cfg.dst), model, model_meta(cfg, source=str(cfg.src)))
    return {"from": "ggcnn", "dst": cfg.dst, "architecture": cfg.model, "input": cfg.input, "tensors": len(state),
            "input_size": cfg.size, "crop": cfg.crop, "crop_size": cfg.crop_size}  # fmt: skip


def export(args: dict[str, str]) -> dict:
    """``.safetensors`` -> ONNX (optionally int8): see :mod:`singleshot.export.grasp_export`."""
    from singleshot.export.grasp_export import export_mode

    return export_mode(args)


MODES = {"score": score, "val": val, "predict": predict, "train": train, "demo": demo, "convert": convert,
         "export": export}  # fmt: skip
