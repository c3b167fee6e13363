"""The ``singleshot detect MODE key=value ...`` modes."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from torch.utils.data import DataLoader, Dataset

from singleshot.config import build_config
from singleshot.errors import ConfigError
from singleshot.tasks.detect import (
    DetectConfig,
    DetectPredictor,
    collate_raw,
    model_from_meta,
    settings_from_meta,
)

logger = logging.getLogger(__name__)


def _cfg(args: dict[str, str], **defaults: Any) -> DetectConfig:
    yaml_path = args.pop("cfg", None)
    merged: dict[str, Any] = dict(defaults)
    merged.update(args)
    return build_config(DetectConfig, yaml_path, merged)


def _require(cfg: DetectConfig, *keys: str) -> None:
    missing = [k for k in keys if not getattr(cfg, k)]
    if missing:
        raise ConfigError(f"missing required key(s): {', '.join(k.rstrip('_') + '=...' for k in missing)}")


def run_dir(cfg: DetectConfig, mode: str) -> Path:
    """``project/name`` for training, ``project/<mode>`` otherwise; an existing folder is reused."""
    out = Path(cfg.project) / (cfg.name if mode == "train" else mode)
    out.mkdir(parents=True, exist_ok=True)
    return out


# ---------------------------------------------------------------- datasets
def class_names_for(cfg: DetectConfig) -> list[str]:
    from singleshot.data.voc import VOC_CLASSES

    if cfg.classes:
        return list(cfg.classes)
    if cfg.data.endswith(".json"):
        from singleshot.data.coco import COCODetection

        return list(COCODetection(cfg.images or Path(cfg.data).parent, cfg.data).class_names)
    return list(VOC_CLASSES)


def build_dataset(cfg: DetectConfig, split: str, classes: list[str], transforms: Any = None) -> Dataset:
    """A VOC image set (``data`` = VOC root) or a COCO annotation file (``data`` = ``*.json``)."""
    _require(cfg, "data")
    path = Path(cfg.data)
    if path.suffix == ".json":
        from singleshot.data.coco import COCODetection

        ann = path if split != cfg.val_set or not cfg.gt else Path(cfg.gt)
        return COCODetection(cfg.images or ann.parent, ann, transforms=transforms)
    from singleshot.data.voc import VOCDetection

    years = cfg.val_years or cfg.years if split == cfg.val_set else cfg.years
    return VOCDetection(path, image_set=split, years=years, class_names=classes, transforms=transforms)


def load_predictor(cfg: DetectConfig) -> DetectPredictor:
    """The model and thresholds of a ``.safetensors`` weights file (or an exported ``.onnx`` file)."""
    from singleshot.engine.weights import load_state_into, load_weights

    _require(cfg, "weights")
    if cfg.weights.endswith(".onnx"):
        from singleshot.export.detect_export import load_onnx_predictor

        return load_onnx_predictor(cfg)
    state, meta = load_weights(cfg.weights)
    model = load_state_into(model_from_meta(meta), state, cfg.weights, meta.get("architecture"))
    return DetectPredictor(model, meta, settings_from_meta(meta, cfg), cfg.device)


def evaluate_dataset(predictor: DetectPredictor, dataset: Dataset, cfg: DetectConfig, metric: str, classes: list[str]) -> dict:
    """Run ``predictor`` over ``dataset`` and score it with the VOC or COCO evaluator."""
    from singleshot.metrics.coco import COCOEvaluator
    from singleshot.metrics.voc import VOCEvaluator

    if metric == "coco":
        evaluator: Any = COCOEvaluator(classes)
    elif metric in ("voc07", "voc12"):
        evaluator = VOCEvaluator(classes, use_07=metric == "voc07", plus_one=cfg.plus_one)
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

    cfg = _cfg(args)
    _require(cfg, "gt", "pred")
    gt = Path(cfg.gt)
    if gt.is_dir():
        from singleshot.data.voc import VOCDetection

        classes = class_names_for(cfg)
        ds = VOCDetection(gt, image_set=cfg.val_set, years=cfg.val_years or cfg.years, class_names=classes)
        targets = [ds.load_target(i) for i in range(len(ds))]
        return score_files(targets, cfg.pred, cfg.metric, classes, plus_one=cfg.plus_one, split=cfg.val_set)
    return score_files(gt, cfg.pred, cfg.metric, plus_one=cfg.plus_one)


def convert(args: dict[str, str]) -> dict:
    """Weights of another project -> ``.safetensors`` with metadata."""
    from singleshot.convert import ssd_pytorch, torchvision_ssd
    from singleshot.engine.weights import save_weights

    cfg = _cfg(args)
    _require(cfg, "from_", "dst")
    if cfg.from_ == "caffe":
        from singleshot.convert.caffe_ssd import convert_caffe_ssd

        _require(cfg, "prototxt", "caffemodel")
        converted = convert_caffe_ssd(Path(cfg.prototxt), Path(cfg.caffemodel))
    elif cfg.from_ == "torchvision":
        _require(cfg, "src")
        converted = torchvision_ssd.convert_torchvision_ssd300(Path(cfg.src))
    elif cfg.from_ == "ssd.pytorch":
        _require(cfg, "src")
        converted = ssd_pytorch.convert_ssd_pytorch(Path(cfg.src))
    else:
        raise ConfigError(f"from={cfg.from_!r} is unknown; expected torchvision, ssd.pytorch or caffe")
    model = model_from_meta(converted.metadata)
    model.load_state_dict(converted.state_dict)  # proves the mapping before anything is written
    meta = dict(converted.metadata, task="detect")
    save_weights(Path(cfg.dst), model, meta)
    return {"dst": cfg.dst, "architecture": meta["architecture"], "num_classes": meta["num_classes"], "tensors": len(converted.state_dict)}


def predict(args: dict[str, str]) -> dict:
    """Detections on an image, a folder of images or a video: annotated pictures + COCO results JSON."""
    from singleshot.tasks.detect_predict import predict_source

    cfg = _cfg(args)
    _require(cfg, "source")
    return predict_source(load_predictor(cfg), Path(cfg.source), run_dir(cfg, "predict"), cfg.show_conf, cfg.batch)


def val(args: dict[str, str]) -> dict:
    """Evaluate a weights file on a dataset split."""
    cfg = _cfg(args)
    predictor = load_predictor(cfg)
    classes = predictor.class_names or class_names_for(cfg)
    metrics = evaluate_dataset(predictor, build_dataset(cfg, cfg.val_set, classes), cfg, cfg.metric, classes)
    out = run_dir(cfg, "val")
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics


def train(args: dict[str, str]) -> dict:
    """Train an SSD; writes ``last.pt``/``best.pt`` checkpoints, ``best.safetensors``, logs and plots."""
    from singleshot.tasks.detect_train import train_detector

    return train_detector(_cfg(args))


def demo(args: dict[str, str]) -> dict:
    """Generate the shapes dataset, train a small SSD on it, evaluate, draw predictions."""
    from singleshot.tasks.detect_train import run_demo

    return run_demo(args)


def export(args: dict[str, str]) -> dict:
    """Weights -> ONNX (``format=onnx``; ``nms=true`` decoding + NMS in the graph; ``int8=true calib=...``)."""
    from singleshot.export.detect_export import export_detector, split_export_args

    opts, rest = split_export_args(args)
    return export_detector(_cfg(rest), opts)


MODES = {"score": score, "export": export, "convert": convert, "predict": predict, "val": val, "train": train, "demo": demo}
