"""``action val`` and ``action score``: frame-mAP and video-mAP of a weights file on a dataset, or of
prediction files against ground truth.

``val`` loads the weights (:func:`load_predictor`: a ``.safetensors``, or an ``.onnx`` written by
``action export`` run with onnxruntime), looks up their member
(:func:`~singleshot.tasks.action.members.member_of_meta`) and runs the member's evaluation over the
test videos of ``data`` (YOWO: :func:`~singleshot.tasks.action.yowo_evaluate.evaluate_yowo`; ACT:
:func:`~singleshot.tasks.action.act_evaluate.val_act`); ``score`` needs no model.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from torch import nn

from singleshot.errors import ConfigError, WeightsError
from singleshot.metrics.action_files import write_frame_detections, write_tubes
from singleshot.metrics.action_score import score_action
from singleshot.metrics.mismatch import class_name_differences
from singleshot.postprocess.tube_link_viterbi import link_viterbi
from singleshot.structures import ActionAnnotations
from singleshot.tasks.action.check import checked_data
from singleshot.tasks.action.config import ActionConfig
from singleshot.tasks.action.export import load_onnx_action_model
from singleshot.tasks.action.members import member_of_meta
from singleshot.tasks.action.pictures import write_action_pictures
from singleshot.tasks.action.predictor import ActionPredictor, load_action_weights
from singleshot.tasks.common import (
    explicit_keys,
    make_config,
    require,
    run_dir,
    settings_from_training,
    write_metrics_json,
    write_skipped,
)

logger = logging.getLogger(__name__)

#: The evaluation settings ``val`` takes from the training run of its weights unless they are given:
#: the protocol, linking and trimming, thresholds and the split.
VAL_SETTINGS = (
    "protocol",
    "linking",
    "trim",
    "match_iou",
    "split",
    "split_list",
    "conf",
    "iou",
    "max_det",
    "post_mode",
    "cand_min_score",
    "pre_top",
)
#: The settings ``predict`` takes from the training run of its weights unless they are given.
PREDICT_SETTINGS = ("linking", "trim", "conf", "iou", "max_det", "post_mode", "cand_min_score", "pre_top")

__all__ = ["apply_val_settings", "check_classes", "load_model", "load_predictor", "score", "val"]


def load_model(cfg: ActionConfig) -> tuple[nn.Module, dict[str, Any]]:
    """``(model, metadata)`` of ``weights=``: a ``.safetensors`` file, or an ``.onnx`` file written by
    ``action export`` (run with onnxruntime); ``stride=``, when given, replaces the weights' temporal
    stride."""
    require(cfg, "weights")
    if Path(cfg.weights).suffix.lower() == ".onnx":
        model, meta = load_onnx_action_model(cfg.weights)
    else:
        model, meta = load_action_weights(cfg.weights)
    if cfg.stride != ActionConfig.stride:
        meta = dict(meta, stride=cfg.stride)
    return model, meta


def load_predictor(cfg: ActionConfig, given: set[str] | None = None) -> ActionPredictor:
    """The model and thresholds of ``weights=`` (:func:`load_model`) as its member's predictor; with
    ``given`` (the keys the user typed), the linking, trimming and thresholds of the training run
    fill the others first (:data:`PREDICT_SETTINGS`)."""
    model, meta = load_model(cfg)
    if given is not None:
        settings_from_training(cfg, meta, PREDICT_SETTINGS, given)
    return member_of_meta(meta).predictor(model, meta, cfg)


def apply_val_settings(cfg: ActionConfig, meta: dict[str, Any], given: set[str]) -> None:
    """``val``'s evaluation settings for weights of metadata ``meta``: the training run's
    (:data:`VAL_SETTINGS`) unless ``given``, then, when the run recorded no protocol, the member's
    own (ACT: act)."""
    settings_from_training(cfg, meta, VAL_SETTINGS, given)
    if "protocol" not in given and "protocol" not in (meta.get("train_config") or {}):
        cfg.protocol = member_of_meta(meta).protocol


def check_classes(predictor: ActionPredictor, ann: ActionAnnotations, weights: str) -> str | None:
    """Fail when the model and the data have different class counts; when only the names differ,
    warn naming the differing pairs and both lists (labels are matched by index) and return the
    warning (None: the names agree)."""
    names = list(predictor.class_names)
    if len(names) != len(ann.classes):
        raise WeightsError(
            f"{weights}: the model has {len(names)} classes ({', '.join(names)}), the data {ann.source!r} "
            f"has {len(ann.classes)} ({', '.join(ann.classes)})"
        )
    return class_name_differences(names, list(ann.classes), weights, repr(ann.source), by="index")


# ---------------------------------------------------------------- modes
def score(args: dict[str, str]) -> dict:
    """Frame-mAP and video-mAP of prediction files against ground truth (no model)."""
    cfg = make_config(ActionConfig, args)
    require(cfg, "gt")
    if not cfg.pred and not cfg.tubes:
        raise ConfigError("score needs pred=frames.json (frame detections) and/or tubes=tubes.json")
    # Without tubes=, frame detections are Viterbi-linked under either protocol (a frames file holds
    # no K-frame tubelets for ACT's linking; the result's "linking" entry says so).
    return score_action(
        cfg.gt,
        cfg.pred or None,
        cfg.tubes or None,
        cfg.protocol,
        iou_thresh=cfg.match_iou,
        split_list=cfg.split_list or None,
        split=cfg.split,
        link=link_viterbi,
        link_name="viterbi",
    )


def val(args: dict[str, str]) -> dict:
    """Frame-mAP and video-mAP of a weights file on the test videos of ``data``.

    The evaluation settings of its training run apply unless given (``val`` of a run's weights prints
    the run's numbers). Writes metrics.json,
    frames.json (every frame's detections) and tubes.json in the run folder (``project/name``, name
    ``val`` by default; :func:`~singleshot.tasks.common.run_dir`), returned as ``save_dir``."""
    cfg = make_config(ActionConfig, args, batch=16)
    model, meta = load_model(cfg)
    member = member_of_meta(meta)
    apply_val_settings(cfg, meta, explicit_keys(args))
    predictor = member.predictor(model, meta, cfg)
    ann, root, skipped = checked_data(cfg)  # the dataset check first (check=, bad=)
    differences = check_classes(predictor, ann, cfg.weights)
    metrics, dets, tubes = member.evaluate(predictor, ann, root, cfg)
    if differences:
        metrics["warnings"] = [differences]
    out = run_dir(cfg, "val")
    if skipped:  # bad=skip: the videos the dataset check left out
        write_skipped(out, skipped)
    write_frame_detections(out / "frames.json", dets)
    write_tubes(out / "tubes.json", tubes)
    write_metrics_json(out, metrics)
    if cfg.plots:
        write_action_pictures(out, ann, root, dets, metrics, cfg.protocol, cfg.match_iou, cfg.show_conf)
    return dict(metrics, trim=cfg.trim, save_dir=str(out))
