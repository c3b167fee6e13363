"""``detect val`` and ``detect score``: VOC / COCO metrics of a weights file over a dataset split,
or of prediction files against ground truth (no model).

:func:`load_predictor` reads ``weights=`` (a ``.safetensors`` file, or an ``.onnx`` file written by
``detect export``, run with onnxruntime); :func:`evaluate_dataset` runs a predictor over a dataset
and scores it (``metric=voc07``, ``voc12`` or ``coco``). ``voc07`` takes its recall thresholds from
``voc07_thresholds=`` (``exact`` k/10 by default, or ``arange`` as the Python ports) in ``val``,
``score`` and ``train``'s evaluation alike.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from torch.utils.data import DataLoader, Dataset

from singleshot.errors import ConfigError
from singleshot.tasks.common import make_config, require, run_dir
from singleshot.tasks.detect.config import DetectConfig
from singleshot.tasks.detect.data import build_dataset, class_names_for, collate_raw
from singleshot.tasks.detect.export import load_onnx_predictor
from singleshot.tasks.detect.predictor import DetectPredictor, load_detector, settings_from_meta

logger = logging.getLogger(__name__)

__all__ = ["evaluate_dataset", "load_predictor", "score", "val"]


def load_predictor(cfg: DetectConfig) -> DetectPredictor:
    """The model and thresholds of a ``.safetensors`` weights file (or an exported ``.onnx`` file)."""
    require(cfg, "weights")
    if cfg.weights.endswith(".onnx"):
        return load_onnx_predictor(cfg)
    model, meta = load_detector(cfg.weights)
    return DetectPredictor(model, meta, settings_from_meta(meta, cfg), cfg.device)


def evaluate_dataset(
    predictor: DetectPredictor, dataset: Dataset, cfg: DetectConfig, metric: str, classes: list[str]
) -> dict:
    """Run ``predictor`` over ``dataset`` and score it with the VOC or COCO evaluator.

    ``cfg`` gives the loader settings and the VOC ones (``plus_one``, ``voc07_thresholds``).
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
    return evaluator.compute()


# ---------------------------------------------------------------- modes
def score(args: dict[str, str]) -> dict:
    """Metrics of prediction files against ground truth (no model)."""
    from singleshot.metrics.scoring import score as score_files

    cfg = make_config(DetectConfig, args)
    require(cfg, "gt", "pred")
    gt = Path(cfg.gt)
    if gt.is_dir():
        from singleshot.data.voc import VOCDetection

        classes = class_names_for(cfg)
        ds = VOCDetection(gt, image_set=cfg.val_set, years=cfg.val_years or cfg.years, class_names=classes)
        targets = [ds.load_target(i) for i in range(len(ds))]
        return score_files(
            targets,
            cfg.pred,
            cfg.metric,
            classes,
            plus_one=cfg.plus_one,
            split=cfg.val_set,
            voc07_thresholds=cfg.voc07_thresholds,
        )
    return score_files(gt, cfg.pred, cfg.metric, plus_one=cfg.plus_one, voc07_thresholds=cfg.voc07_thresholds)


def val(args: dict[str, str]) -> dict:
    """Evaluate a weights file on a dataset split."""
    cfg = make_config(DetectConfig, args)
    predictor = load_predictor(cfg)
    classes = predictor.class_names or class_names_for(cfg)
    metrics = evaluate_dataset(predictor, build_dataset(cfg, cfg.val_set, classes), cfg, cfg.metric, classes)
    out = run_dir(cfg, "val")
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics
