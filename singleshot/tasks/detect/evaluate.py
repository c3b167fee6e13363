"""``detect val`` and ``detect score``: VOC / COCO metrics of a weights file over a dataset split,
or of prediction files against ground truth (no model).

:func:`load_predictor` reads ``weights=`` (a ``.safetensors`` file, or an ``.onnx`` file written by
``detect export``, run with onnxruntime); :func:`evaluate_dataset` runs a predictor over a dataset
and scores it (``metric=voc07``, ``voc12`` or ``coco``). ``voc07`` takes its recall thresholds from
``voc07_thresholds=`` (``exact`` k/10 by default, or ``arange`` as the Python ports) in ``val``,
``score`` and ``train``'s evaluation alike.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

from torch.utils.data import DataLoader, Dataset

from singleshot.errors import ConfigError
from singleshot.metrics.box_diagnostics import BoxDiagnostics
from singleshot.metrics.mismatch import class_name_differences
from singleshot.tasks.common import (
    explicit_keys,
    make_config,
    require,
    run_dir,
    settings_from_training,
    write_metrics_json,
)
from singleshot.tasks.detect.config import DetectConfig
from singleshot.tasks.detect.data import class_names_for, collate_raw, screened_dataset, split_for
from singleshot.tasks.detect.export import load_onnx_predictor
from singleshot.tasks.detect.pictures import write_detect_pictures
from singleshot.tasks.detect.predictor import DetectPredictor, load_detector, settings_from_meta

logger = logging.getLogger(__name__)

#: The evaluation settings ``val`` takes from the training run of its weights unless they are given.
VAL_SETTINGS = ("val_set", "years", "val_years", "metric", "plus_one", "voc07_thresholds")

__all__ = ["class_differences", "evaluate_dataset", "load_predictor", "score", "val"]


def load_predictor(cfg: DetectConfig) -> DetectPredictor:
    """The model and thresholds of a ``.safetensors`` weights file (or an exported ``.onnx`` file)."""
    require(cfg, "weights")
    if cfg.weights.endswith(".onnx"):
        return load_onnx_predictor(cfg)
    model, meta = load_detector(cfg.weights)
    return DetectPredictor(model, meta, settings_from_meta(meta, cfg), cfg.device)


def evaluate_dataset(
    predictor: DetectPredictor,
    dataset: Dataset,
    cfg: DetectConfig,
    metric: str,
    classes: list[str],
    diagnostics: BoxDiagnostics | None = None,
) -> dict:
    """Run ``predictor`` over ``dataset`` and score it with the VOC or COCO evaluator.

    ``cfg`` gives the loader settings and the VOC ones (``plus_one``, ``voc07_thresholds``).
    ``diagnostics`` (``val``'s pictures), when given, sees every image too and gets the evaluator's
    precision-recall curves.
    """
    from singleshot.metrics.coco import COCOEvaluator
    from singleshot.metrics.voc import VOCEvaluator

    if metric == "coco":
        evaluator: Any = COCOEvaluator(classes)
    elif metric in ("voc07", "voc12"):
        evaluator = VOCEvaluator(
            classes, use_07=metric == "voc07", plus_one=cfg.plus_one, thresholds=cfg.voc07_thresholds
        )
    else:
        raise ConfigError(f"metric={metric!r} is unknown; expected voc07, voc12 or coco")
    loader = DataLoader(dataset, batch_size=max(1, min(cfg.batch, 16)), num_workers=cfg.workers, collate_fn=collate_raw)
    for images, targets in loader:
        preds = predictor(images, [t.image_id for t in targets])
        evaluator.process(preds, targets)
        if diagnostics is not None:
            diagnostics.process(preds, targets)
    metrics = evaluator.compute()
    if diagnostics is not None:
        diagnostics.curves = evaluator.curves
    return metrics


def class_differences(cfg: DetectConfig, predictor: DetectPredictor) -> str | None:
    """The warning (logged) when the evaluation split of ``cfg.data`` has classes the weights lack,
    naming them and both lists, else None. Labels are matched by name, so a permutation or a subset
    of the weights' classes is no difference; weights without class names are not compared."""
    if not predictor.class_names:
        return None
    data_names = class_names_for(dataclasses.replace(cfg, classes=()), role="val")
    return class_name_differences(predictor.class_names, data_names, cfg.weights, cfg.data, by="name")


# ---------------------------------------------------------------- modes
def score(args: dict[str, str]) -> dict:
    """Metrics of prediction files against ground truth (no model)."""
    from singleshot.metrics.scoring import score as score_files

    cfg = make_config(DetectConfig, args)
    require(cfg, "gt", "pred")
    gt = Path(cfg.gt)
    if gt.is_dir():
        from singleshot.data.voc import VOC_CLASSES, VOCDetection

        classes = class_names_for(cfg, data=str(gt), role="val")
        if not cfg.classes and set(classes) <= set(VOC_CLASSES):  # Pascal VOC itself: its 20 classes
            classes = list(VOC_CLASSES)
        split = split_for(cfg, "val", str(gt))
        ds = VOCDetection(gt, image_set=split, years=cfg.val_years or cfg.years, class_names=classes)
        targets = [ds.load_target(i) for i in range(len(ds))]
        return score_files(
            targets,
            cfg.pred,
            cfg.metric,
            classes,
            plus_one=cfg.plus_one,
            split=split,
            voc07_thresholds=cfg.voc07_thresholds,
        )
    return score_files(gt, cfg.pred, cfg.metric, plus_one=cfg.plus_one, voc07_thresholds=cfg.voc07_thresholds)


def val(args: dict[str, str]) -> dict:
    """Evaluate a weights file on a dataset split.

    The split and metric settings of its training run apply unless given (``val`` of a run's weights
    prints the run's numbers). Data classes the weights lack are named first (:func:`class_differences`;
    the dataset check then stops at, or with ``bad=skip`` leaves out, their images) and listed under
    ``warnings``."""
    cfg = make_config(DetectConfig, args)
    predictor = load_predictor(cfg)
    settings_from_training(cfg, predictor.meta, VAL_SETTINGS, explicit_keys(args))
    classes = predictor.class_names or class_names_for(cfg, role="val")
    differences = class_differences(cfg, predictor)
    dataset, _ = screened_dataset(cfg, "val", classes)
    diagnostics = BoxDiagnostics(len(classes), conf=cfg.show_conf) if cfg.plots else None
    metrics = evaluate_dataset(predictor, dataset, cfg, cfg.metric, classes, diagnostics)
    if differences:
        metrics["warnings"] = [differences]
    out = run_dir(cfg, "val")
    write_metrics_json(out, metrics)
    if diagnostics is not None:
        write_detect_pictures(out, classes, cfg.metric, metrics, diagnostics, dataset)
    return dict(metrics, save_dir=str(out))
