"""Grasp evaluation and the ``grasp score`` and ``grasp val`` modes.

Metrics (``score``, ``val``, and ``train`` / ``demo`` through :func:`evaluate_dataset`) are the
grasp success rate of the top-1 grasp (:class:`~singleshot.metrics.grasp.GraspEvaluator`: IoU > 0.25
with a ground-truth rectangle within 30°), with ``n``, a Wilson 95 % interval ``ci95``, the split and
the IoU mode. ``val`` scores the network's views (the crop resized to the input size), as the
reference does; its ``predictions.json`` is in the original pixels, and ``score`` on that file gives
the same rate with ``iou=polygon`` (the raster IoU depends on the pixel grid it counts on).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from singleshot.data.collate import collate_detection
from singleshot.data.grasp.dataset import GraspDataset, load_sample
from singleshot.errors import ConfigError
from singleshot.metrics.grasp import GraspEvaluator
from singleshot.metrics.grasp_files import read_grasp_predictions, write_grasp_predictions
from singleshot.metrics.mismatch import prediction_mismatches
from singleshot.models import model_from_meta
from singleshot.structures import Grasps
from singleshot.tasks.common import (
    explicit_keys,
    make_config,
    require,
    run_dir,
    settings_from_training,
    write_metrics_json,
    write_skipped,
)
from singleshot.tasks.grasp.check import screened_split
from singleshot.tasks.grasp.config import GraspConfig
from singleshot.tasks.grasp.data import ViewsWithMatrices, collate_views, find_samples, make_dataset, split_of
from singleshot.tasks.grasp.export import load_onnx_grasp_model
from singleshot.tasks.grasp.pictures import write_grasp_pictures
from singleshot.tasks.grasp.predictor import GraspPredictor, grasps_to_original, postprocess_from

logger = logging.getLogger(__name__)

#: The evaluation settings ``val`` takes from the training run of its weights unless they are given.
VAL_SETTINGS = (
    "split",
    "k",
    "fold",
    "test_fraction",
    "split_seed",
    "layout",
    "depth",
    "object_map",
    "iou",
    "iou_thresh",
    "angle_thresh",
    "top_k",
)

__all__ = ["evaluate_dataset", "load_predictor", "make_evaluator", "score", "val"]


def make_evaluator(cfg: GraspConfig, split: str) -> GraspEvaluator:
    """The success-rate evaluator of ``iou``, ``iou_thresh``, ``angle_thresh`` and ``top_k``."""
    if cfg.iou not in ("polygon", "raster"):
        raise ConfigError(f"iou: expected polygon or raster, got {cfg.iou!r}")
    return GraspEvaluator(cfg.iou_thresh, cfg.angle_thresh, cfg.iou, cfg.top_k, split)  # type: ignore[arg-type]


def evaluate_dataset(
    predictor: GraspPredictor,
    dataset: GraspDataset,
    cfg: GraspConfig,
    split: str,
    keep: bool = False,
    evaluator: GraspEvaluator | None = None,
) -> tuple[dict, list[Grasps]]:
    """Score ``predictor`` on the views of ``dataset``; with ``keep``, also return the predictions
    in the original images' pixels. ``evaluator``: the one to fill (None: a new
    :func:`make_evaluator`), for a caller that reads its per-image IoUs afterwards."""
    evaluator = make_evaluator(cfg, split) if evaluator is None else evaluator
    source: Dataset = ViewsWithMatrices(dataset) if keep else dataset
    loader = DataLoader(
        source,
        batch_size=max(1, min(cfg.batch, 16)),
        num_workers=cfg.workers,
        collate_fn=collate_views if keep else collate_detection,
    )
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
    from singleshot.engine.weights import load_state_into, read_model_weights

    require(cfg, "weights")
    onnx = Path(cfg.weights).suffix.lower() == ".onnx"
    if onnx:  # an exported graph run by onnxruntime, with the metadata it carries
        model, meta = load_onnx_grasp_model(cfg.weights, threads=cfg.threads or None)
    else:
        state, meta = read_model_weights(cfg.weights)
        model = load_state_into(
            model_from_meta(meta, task="grasp", source=cfg.weights), state, cfg.weights, meta.get("architecture")
        )
    base = GraspConfig()
    meta = dict(meta)
    if cfg.input != base.input and cfg.input != meta.get("input", "depth"):
        raise ConfigError(f"input={cfg.input}: {cfg.weights} was trained on {meta.get('input', 'depth')!r} input")
    for key, meta_key in (("size", "input_size"), ("crop", "crop"), ("crop_size", "crop_size")):
        if getattr(cfg, key) != getattr(base, key):
            if onnx and key == "size":
                raise ConfigError(
                    f"size={cfg.size}: {cfg.weights} is a graph traced at {meta.get('input_size')}; "
                    "export again at that size"
                )
            meta[meta_key] = [cfg.size, cfg.size] if key == "size" else getattr(cfg, key)
    return GraspPredictor(model, meta, postprocess_from(cfg, meta), cfg.device, channels_last=not onnx)


def _view_cfg(cfg: GraspConfig, predictor: GraspPredictor) -> GraspConfig:
    """``cfg`` with the predictor's input kind, size and crop (for building datasets)."""
    cfg.input, cfg.size, cfg.crop, cfg.crop_size = predictor.input, predictor.size, predictor.crop, predictor.crop_size
    return cfg


# ---------------------------------------------------------------- modes
def score(args: dict[str, str]) -> dict:
    """Success rate of a prediction file (``pred=``) against a Cornell / Jacquard root (``gt=``),
    over the test side of ``split`` (``split=all``: every image). Test images without predictions fail;
    they and the predicted images outside the test side are counted (``missing``, ``ignored``) and
    named in a warning and in ``mismatches`` (:func:`~singleshot.metrics.mismatch.prediction_mismatches`).
    Everything is compared in the original pixels, so ``crop``/``size`` play no part here."""
    cfg = make_config(GraspConfig, args)
    require(cfg, "gt", "pred")
    _, test, split = split_of(cfg, find_samples(cfg, cfg.gt))
    preds = read_grasp_predictions(cfg.pred)
    targets, chosen = [], []
    for s in test:
        g = torch.from_numpy(load_sample(s, depth=False, rgb=False).grasps)
        targets.append(Grasps(grasps=g, scores=torch.ones(len(g)), image_id=s.image_id))
        chosen.append(preds.get(s.image_id, Grasps(image_id=s.image_id)))
    mismatches = prediction_mismatches(
        [s.image_id for s in test], preds, cfg.pred, "images", outside="ignored (not in the test split)"
    )
    evaluator = make_evaluator(cfg, split)
    evaluator.process(chosen, targets)
    missing = mismatches.get("gt_without_predictions", {}).get("count", 0)
    ignored = mismatches.get("predictions_not_in_gt", {}).get("count", 0)
    return dict(evaluator.compute(), missing=missing, ignored=ignored, mismatches=mismatches)


def val(args: dict[str, str]) -> dict:
    """Evaluate a weights file on the test side of ``split`` of ``data``.

    The split and metric settings of its training run apply unless given (``val`` of a run's weights
    prints the run's numbers); writes predictions.json and metrics.json."""
    cfg = make_config(GraspConfig, args)
    require(cfg, "data")
    predictor = load_predictor(cfg)
    settings_from_training(cfg, predictor.meta, VAL_SETTINGS, explicit_keys(args))
    cfg = _view_cfg(cfg, predictor)
    _, test, split, skipped = screened_split(cfg, cfg.data)
    evaluator = make_evaluator(cfg, split)
    metrics, preds = evaluate_dataset(predictor, make_dataset(cfg, test, train=False), cfg, split, True, evaluator)
    out = run_dir(cfg, "val")
    if skipped:
        write_skipped(out, skipped)
    write_grasp_predictions(out / "predictions.json", preds)
    write_metrics_json(out, metrics)
    if cfg.plots:
        write_grasp_pictures(out, evaluator, test, preds, metrics)
    return dict(metrics, predictions=str(out / "predictions.json"), save_dir=str(out))
