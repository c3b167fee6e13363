"""The ``singleshot action MODE key=value ...`` modes: score, convert, predict, val, train, demo."""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path
from typing import Any

from singleshot.config import build_config
from singleshot.errors import ConfigError, DataError, WeightsError
from singleshot.structures import ActionAnnotations
from singleshot.tasks.action import ActionConfig, make_predictor, model_from_meta

logger = logging.getLogger(__name__)


def _cfg(args: dict[str, str], **defaults: Any) -> ActionConfig:
    yaml_path = args.pop("cfg", None)
    merged: dict[str, Any] = dict(defaults)
    merged.update(args)
    return build_config(ActionConfig, yaml_path, merged)


def _require(cfg: ActionConfig, *keys: str) -> None:
    missing = [k for k in keys if not getattr(cfg, k)]
    if missing:
        raise ConfigError(f"missing required key(s): {', '.join(k.rstrip('_') + '=...' for k in missing)}")


def run_dir(cfg: ActionConfig, mode: str) -> Path:
    """``project/name`` for training, ``project/<mode>`` otherwise; an existing folder is reused."""
    out = Path(cfg.project) / (cfg.name if mode == "train" else mode)
    out.mkdir(parents=True, exist_ok=True)
    return out


def load_data(cfg: ActionConfig) -> tuple[ActionAnnotations, Path]:
    """(ground truth of ``data``, the folder holding its ``rgb-images/``)."""
    from singleshot.data.action.readers import load_action_annotations

    _require(cfg, "data")
    path = Path(cfg.data)
    ann = load_action_annotations(path, split_list=cfg.split_list or None, split=cfg.split,
                                  classes=list(cfg.classes) or None)  # fmt: skip
    root = Path(cfg.frames) if cfg.frames else (path if path.is_dir() else path.parent)
    if not (root / "rgb-images").is_dir():
        raise DataError(f"{root / 'rgb-images'}: frame folder not found; pass frames=<folder holding rgb-images/>")
    return ann, root


def load_predictor(cfg: ActionConfig) -> Any:
    """The model and thresholds of a ``.safetensors`` weights file (or of an ``.onnx`` file written
    by ``action export``, run with onnxruntime), as its family's predictor."""
    from singleshot.engine.weights import load_state_into, load_weights

    _require(cfg, "weights")
    if Path(cfg.weights).suffix.lower() == ".onnx":
        from singleshot.export.action_export import load_onnx_action_model

        onnx_model, onnx_meta = load_onnx_action_model(cfg.weights, threads=getattr(cfg, "threads", 0) or None)
        if cfg.stride != ActionConfig.stride:
            onnx_meta = dict(onnx_meta, stride=cfg.stride)
        return make_predictor(onnx_model, onnx_meta, cfg)
    state, meta = load_weights(cfg.weights)
    model = load_state_into(model_from_meta(meta), state, cfg.weights, meta.get("architecture"))
    if cfg.stride != ActionConfig.stride:
        meta = dict(meta, stride=cfg.stride)
    return make_predictor(model, meta, cfg)


def check_classes(predictor: Any, ann: ActionAnnotations, weights: str) -> None:
    names = list(predictor.class_names)
    if len(names) != len(ann.classes):
        raise WeightsError(f"{weights}: the model has {len(names)} classes, the data {ann.source!r} has {len(ann.classes)}")
    if names != list(ann.classes):
        warnings.warn(f"{weights}: class names differ from those of {ann.source!r}; labels are matched by index",
                      stacklevel=2)  # fmt: skip


# ---------------------------------------------------------------- modes
def score(args: dict[str, str]) -> dict:
    """Frame-mAP and video-mAP of prediction files against ground truth (no model)."""
    from singleshot.metrics.action_score import score_action

    cfg = _cfg(args)
    _require(cfg, "gt")
    if not cfg.pred and not cfg.tubes:
        raise ConfigError("score needs pred=frames.json (frame detections) and/or tubes=tubes.json")
    return score_action(cfg.gt, cfg.pred or None, cfg.tubes or None, cfg.protocol, iou_thresh=cfg.match_iou,
                        split_list=cfg.split_list or None, split=cfg.split)  # fmt: skip


def convert(args: dict[str, str]) -> dict:
    """Weights of another project -> ``.safetensors`` with metadata (``from=yowo|kinetics|darknet``)."""
    from singleshot.tasks.action_train import convert_weights

    cfg = _cfg(args)
    if cfg.from_ == "caffe":  # an ACT Caffe model (prototxt= caffemodel= dst=)
        from singleshot.tasks.action_act import convert_caffe

        return convert_caffe(cfg)
    _require(cfg, "from_", "src", "dst")
    return convert_weights(cfg)


def predict(args: dict[str, str]) -> dict:
    """Online detection on a video file or a folder of frames: annotated video, frames JSON, tubes JSON."""
    from singleshot.tasks.action_predict import predict_source

    cfg = _cfg(args, batch=8)
    _require(cfg, "source")
    return predict_source(load_predictor(cfg), Path(cfg.source), run_dir(cfg, "predict"), cfg)


def val(args: dict[str, str]) -> dict:
    """Frame-mAP and video-mAP of a weights file on the test videos of ``data``; writes metrics.json,
    frames.json (every frame's detections) and tubes.json under ``project/val``."""
    from singleshot.metrics.action_files import write_frame_detections, write_tubes
    from singleshot.tasks.action_predict import evaluate_action

    from singleshot.tasks.action_act import explicit_keys

    given = explicit_keys(args)
    cfg = _cfg(args, batch=16)
    predictor = load_predictor(cfg)
    if "protocol" not in given:  # the family's own protocol unless one is asked for (ACT: act)
        cfg.protocol = getattr(predictor, "protocol", cfg.protocol)
    ann, root = load_data(cfg)
    check_classes(predictor, ann, cfg.weights)
    metrics, dets, tubes = evaluate_action(predictor, ann, root, cfg)
    out = run_dir(cfg, "val")
    write_frame_detections(out / "frames.json", dets)
    write_tubes(out / "tubes.json", tubes)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics


def train(args: dict[str, str]) -> dict | None:
    """Train a YOWO; writes ``last.pt``/``best.pt``, ``best.safetensors``, results.csv/png."""
    from singleshot.tasks.action_act import act_config, train_act
    from singleshot.tasks.action_train import train_action

    act = act_config(args)  # model=act (argument or cfg= YAML): ACT's defaults and trainer
    if act is not None:
        return train_act(act)
    return train_action(_cfg(args))


def demo(args: dict[str, str]) -> dict:
    """Synthetic action videos -> train a light YOWO -> frame/video-mAP (ACT protocol) -> annotated video."""
    from singleshot.tasks.action_train import run_demo

    if args.get("model") == "act":
        from singleshot.tasks.action_act_demo import run_act_demo

        return run_act_demo(args)
    return run_demo(args)


def export(args: dict[str, str]) -> dict:
    """``.safetensors`` -> ONNX (optionally int8): see :mod:`singleshot.export.action_export`."""
    from singleshot.export.action_export import export_mode

    return export_mode(args)


MODES = {"score": score, "convert": convert, "predict": predict, "val": val, "train": train, "demo": demo,
         "export": export}  # fmt: skip
