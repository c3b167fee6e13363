"""The keys each ``action`` mode reads, and one line of help for each (``singleshot action MODE help``).

A key given to a mode that does not read it is an error (:func:`singleshot.config.check_mode_keys`):
nothing is silently ignored. The two members read keys of their own (YOWO's
:class:`~singleshot.tasks.action.config.YowoOptions`, ACT's
:class:`~singleshot.tasks.action.config.ActOptions`), so the keys of ``train`` and ``demo`` depend
on the member ``model=`` names (the command line, else the ``cfg=`` YAML, else ``yowo``); those of
``val`` and ``predict`` on the member of the weights (their metadata: both members' keys when the
weights cannot be read yet, or are an ``.onnx`` file); those of ``convert`` on ``from=``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping

from safetensors import SafetensorError, safe_open

from singleshot.config import load_yaml_mapping
from singleshot.engine.train_config import ENGINE_HELP, ENGINE_TRAIN_KEYS
from singleshot.engine.weights import META_KEY
from singleshot.errors import SingleshotError
from singleshot.tasks.action.config import ActionConfig
from singleshot.tasks.action.predictor import family_of

__all__ = ["CONVERT_KEYS", "HELP", "KEYS", "MODE_HELP", "MEMBER_KEYS", "member_of_args", "member_of_weights"]

#: ``key -> (group, meaning)`` of every :class:`~singleshot.tasks.action.config.ActionConfig` key.
HELP: dict[str, tuple[str, str]] = {
    **ENGINE_HELP,
    # data
    "data": ("data", "a YOWO root, or a ground-truth file (ACT *-GT.pkl, finalAnnots.mat, pyannot.pkl)"),
    "frames": ("data", "folder holding rgb-images/ (default: data when it is a folder, else its parent)"),
    "split": ("data", "1-based split: an ACT pickle's train/test lists, or testlist0N.txt of a YOWO root"),
    "split_list": ("data", "a test list (Class/video or key frames) replacing the data's own test split"),
    "classes": ("data", "class names, comma-separated or a file (for data that do not store them)"),
    "batch": ("training", "clips per optimizer step, over all processes (val, predict: clips run together)"),
    "keyframe_step": ("data", "YOWO: train on every k-th key frame of each training video"),
    "flow": ("data", "ACT rgb+flow: folder of precomputed flow images <Class>/<video>/<frame:05d>.jpg (action flow)"),
    "flow_method": ("data", "ACT demo, modality=rgb+flow: the flow computed for the demo videos, dis | tvl1"),
    "n_train": ("data", "demo: generated training videos"),
    "n_test": ("data", "demo: generated test videos"),
    "video_size": ("data", "demo: height,width of the generated videos"),
    "video_frames": ("data", "demo: fewest,most frames of a generated video"),
    # model
    "model": ("model", "the member: yowo | act (each has keys of its own: singleshot action train help model=act)"),
    "arch": ("model", "an architecture of the member: yowo, yowo_tiny | act_vgg16, act_tiny, act_slim"),
    "imgsz": ("model", "square network input side, divisible by 32"),
    "antialias": (
        "model",
        "resize policy saved in the weights: antialiased when shrinking (false: plain bilinear, as ACT)",
    ),
    "weights": (
        "model",
        "a .safetensors (or exported .onnx) YOWO or ACT, or a run's last.pt; train: fine-tune from it",
    ),
    "pretrained": ("model", "a .safetensors to start from (action convert output, or a model trained here)"),
    "backbone3d": ("model", "YOWO arch=yowo: the 3D backbone, resnext101 | resnet18 | shufflenetv2 | tiny3d"),
    "backbone2d": ("model", "YOWO arch=yowo: the 2D backbone, darknet19 | tiny2d"),
    "width": ("model", "YOWO: channel width of yowo_tiny (and of tiny2d / tiny3d)"),
    "out_stride": ("model", "YOWO tiny backbones: output stride 32 (published) | 16 | 8 (finer maps)"),
    "input_3d": ("model", "YOWO: what the 3D backbone sees, rgb | diff (consecutive-frame differences)"),
    "cfam_channels": ("model", "YOWO: CFAM channels (0: the builder's, 1024 for yowo, 128 for yowo_tiny)"),
    "clip_len": ("model", "YOWO: frames per clip (key frame last)"),
    "stride": ("model", "YOWO: temporal stride between clip frames at test time (val, predict: replaces the weights')"),
    "anchors": ("model", "YOWO: flat w1,h1,w2,h2,... in grid cells (empty: YOWO's UCF101-24 anchors)"),
    "K": ("model", "ACT: frames per tubelet"),
    "act_width": ("model", "ACT act_tiny / act_slim: trunk channel multiplier"),
    "modality": ("model", "ACT: rgb | rgb+diff | rgb+flow (a second, motion stream; scores fused at test time)"),
    "motion_weight": ("model", "ACT two streams: weight of the motion stream's class probabilities (ACT: 0.5)"),
    "flow_stack": ("model", "ACT rgb+flow: flow images per frame, t ... t+n-1 stacked (ACT's FLOW5: 5)"),
    "flow_weights": (
        "model",
        "ACT: the motion stream's weights (empty: the one inside two-stream weights, or the file they name; "
        "none: RGB only)",
    ),
    # training
    "augment": (
        "training",
        "the member's clip augmentation (YOWO: jitter crop, flip, HSV; ACT: zoom-out, flip, photometric)",
    ),
    "parallel_branches": ("training", "YOWO's 3D and 2D backbones / ACT's two streams in two threads (one process)"),
    "auto_anchors": ("training", "YOWO: 5 anchors by k-means (1 - IoU) of the training boxes, as YOLOv2"),
    "freeze_2d": ("training", "YOWO: freeze the 2D backbone, none | all | partial (YOWO on J-HMDB-21)"),
    "freeze_3d": ("training", "YOWO: freeze the 3D backbone, none | all | partial"),
    "jitter": ("training", "YOWO augmentation: crop jitter, a fraction of the frame side"),
    "hue": ("training", "YOWO augmentation: hue shift range"),
    "saturation": ("training", "YOWO augmentation: saturation scale range"),
    "exposure": ("training", "YOWO augmentation: exposure (value) scale range"),
    "max_zoom": ("training", "ACT augmentation: largest zoom-out (expand) ratio, 1 = none"),
    "photometric": ("training", "ACT augmentation: photometric distortion (the same for the K frames)"),
    "object_scale": ("training", "YOWO region loss: weight of objectness where an object is (YOWO: 5)"),
    "noobject_scale": ("training", "YOWO region loss: weight of objectness elsewhere"),
    "class_scale": ("training", "YOWO region loss: weight of the class term"),
    "coord_scale": ("training", "YOWO region loss: weight of the box term"),
    "prior_warmup": ("training", "YOWO: samples of the prior warm-up (its first release: 12800; 0: off)"),
    "loss_reduction": ("training", "YOWO region loss: sum (YOWO) | mean (divided by the batch size)"),
    "rescore": ("training", "YOWO: objectness target is the IoU with the ground truth (false: 1, darknet rescore=0)"),
    # distillation
    "teacher": ("distillation", "a trained model of the same member whose soft class scores the student learns"),
    "kd_weight": ("distillation", "weight of the soft-label term"),
    "kd_temperature": ("distillation", "softmax temperature of the soft-label term"),
    "kd_obj_thresh": ("distillation", "YOWO: class scores distilled where the teacher's objectness is at least this"),
    # evaluation
    "conf": ("evaluation", "score threshold of the detections kept (val, predict: given, it replaces the weights')"),
    "iou": ("evaluation", "NMS IoU threshold (val, predict: given, it replaces the weights')"),
    "max_det": ("evaluation", "detections per frame (YOWO, 0: all) / tubelets per window (ACT: 200); given, it wins"),
    "post_mode": ("evaluation", "YOWO decoding: yowo (class-agnostic NMS, YOWO's test path) | per_class"),
    "linking": (
        "evaluation",
        "tube linking: empty (the weights', else the member's: viterbi, act) | act | moc | viterbi",
    ),
    "trim": ("evaluation", "cut linked tubes to their best run of frame scores >= trim (0: no trimming)"),
    "pre_top": ("evaluation", "ACT: linking candidates per window entering the 0.7 NMS, the N best (0: all, as ACT)"),
    "cand_min_score": ("evaluation", "ACT: linking candidates' best class score floor (ACT's code: 0)"),
    "protocol": ("evaluation", "metric protocol: yowo | act (val: default the member's own)"),
    "match_iou": ("evaluation", "frame-mAP IoU threshold"),
    "feature_cache": ("evaluation", "ACT: each frame through the trunk once, windows from its maps (false: whole)"),
    "cache": ("evaluation", "ACT val: keep each video's tubelets under project/cache/tubelets (resumable)"),
    "plots": ("evaluation", "write pictures beside metrics.json (frame PR curves, AP bars, worst videos)"),
    "gt": ("evaluation", "score: ground truth (ACT *-GT.pkl, a YOWO root, finalAnnots.mat or pyannot.pkl)"),
    "pred": ("evaluation", "score: frame detections, a JSON list of {video, frame, label, score, box}"),
    "tubes": (
        "evaluation",
        "score: tubes, a JSON list of {video, label, score, frames, boxes} (default: linked from pred)",
    ),
    # prediction
    "source": (
        "prediction",
        "a video file, a folder of frames, a folder of videos or frame folders, a stream URL or a camera index",
    ),
    "timeout": ("prediction", "seconds a stream or camera may stay silent before it counts as stalled"),
    "video_name": ("prediction", "the video's name in the JSON files (default: the source's stem; one video only)"),
    "show_conf": ("prediction", "frame score threshold of the tube boxes drawn"),
    # conversion
    "from_": ("conversion", "yowo (checkpoint) | kinetics (3D backbone) | darknet (.weights) | caffe (ACT) | csv"),
    "src": ("conversion", "the file to convert (from=csv: a box table video, frame, x1, y1, x2, y2, label[, actor])"),
    "dst": ("conversion", "the .safetensors written (from=csv: the YOWO root written, with an ACT pickle)"),
    "test_fraction": ("conversion", "from=csv: fraction of each class's videos listed as test (0: all in both)"),
    "kinetics": ("conversion", "from=darknet: a Kinetics 3D backbone file to load too"),
    "darknet": ("conversion", "from=kinetics: a Darknet .weights file to load too"),
    "num_classes": ("conversion", "from=kinetics|darknet: classes of the head (0: 24, UCF101-24's)"),
    "prototxt": ("conversion", "from=caffe: ACT's deploy prototxt"),
    "caffemodel": ("conversion", "from=caffe: ACT's .caffemodel"),
}

#: Help lines of the keys that mean something else in one mode (``flow``: FlowOptions, ``export``:
#: ActionExportOptions), over :data:`HELP`.
MODE_HELP: dict[str, dict[str, tuple[str, str]]] = {
    "flow": {
        "src": ("data", "a video file, a folder of video files, or a frames root <Class>/<video>/<frame:05d>.jpg"),
        "dst": ("data", "the flow root written: <dst>/<Class>/<video>/<frame:05d>.jpg"),
        "method": ("data", "dis (OpenCV DIS, medium preset) | tvl1 (OpenCV-contrib dual TV-L1, ~80x slower)"),
        "workers": ("data", "videos computed at a time, one process each (0 or 1: in this process)"),
        "video_name": ("data", "src a single video: its name under dst (default: the file or folder name)"),
        "quality": ("data", "JPEG quality of the flow images"),
    },
    "export": {
        "weights": ("model", "the .safetensors to export (YOWO or ACT)"),
        "dst": ("export", "the .onnx written (default: beside the weights, <stem>.onnx / <stem>.int8.onnx)"),
        "format": ("export", "onnx"),
        "int8": ("export", "also quantize to int8 (onnxruntime static QDQ, calibrated)"),
        "calib": (
            "export",
            "calibration data: a YOWO root or ground-truth file, a .npy/.npz of inputs (empty: random)",
        ),
        "calib_samples": ("export", "calibration samples"),
        "calib_method": ("export", "minmax | entropy | percentile"),
        "per_channel": ("export", "per-channel weight quantization"),
        "opset": ("export", "ONNX opset"),
        "dynamic_batch": ("export", "a dynamic batch dimension"),
        "frames": ("export", "calib a dataset: folder holding its rgb-images/"),
        "split": ("export", "calib a dataset: its split number"),
    },
    "convert": {
        "frames": ("conversion", "from=csv: the videos: a folder of video files or of frame folders, a YOWO root"),
        "split_list": ("conversion", "from=csv: the test videos (else test_fraction)"),
        "classes": ("conversion", "the class names, comma-separated or a file (default: the source's)"),
    },
    "val": {"batch": ("evaluation", "clips (YOWO) or K-frame windows (ACT) run together")},
    "predict": {"batch": ("prediction", "clips (YOWO) or K-frame windows (ACT) run together")},
}

DATA = ("data", "frames", "split", "split_list", "classes")
MODEL = ("model", "arch", "imgsz", "antialias", "pretrained")
DISTILL = ("teacher", "kd_weight", "kd_temperature")
POSTPROCESS = ("conf", "iou", "max_det", "linking", "trim")
METRIC = ("protocol", "match_iou")
RUN = ("project", "name", "exist_ok", "device")
TRAIN = (*DATA, *MODEL, "weights", "augment", "parallel_branches", *ENGINE_TRAIN_KEYS, *DISTILL, *POSTPROCESS, *METRIC)
DEMO = ("n_train", "n_test", "video_size", "video_frames", "show_conf")
# fmt: off
VAL = (
    "weights", *DATA, "check", "bad", "workers", *POSTPROCESS, *METRIC, "plots", "show_conf", "batch",
    "parallel_branches", *RUN,
)
# fmt: on
PREDICT = ("weights", "source", "timeout", "video_name", *POSTPROCESS, "show_conf", "batch", "parallel_branches", *RUN)

# fmt: off
YOWO_TRAIN = (
    "backbone3d", "backbone2d", "width", "out_stride", "input_3d", "cfam_channels", "clip_len", "stride", "anchors",
    "auto_anchors", "freeze_2d", "freeze_3d", "keyframe_step", "jitter", "hue", "saturation", "exposure",
    "object_scale", "noobject_scale", "class_scale", "coord_scale", "prior_warmup", "loss_reduction", "rescore",
    "kd_obj_thresh", "post_mode",
)
EXPORT = (
    "weights", "dst", "format", "int8", "calib", "calib_samples", "calib_method", "per_channel", "opset",
    "dynamic_batch", "frames", "split",
)
# fmt: on

#: ``member -> mode -> the member's own keys`` that mode reads on top of the shared ones.
MEMBER_KEYS: dict[str, dict[str, tuple[str, ...]]] = {
    "yowo": {
        "train": YOWO_TRAIN,
        "demo": (),
        "val": ("stride", "post_mode"),
        "predict": ("stride", "post_mode"),
    },
    "act": {
        "train": ("K", "act_width", "modality", "motion_weight", "flow", "flow_stack", "max_zoom", "photometric"),
        # the demo's flow images (modality=rgb+flow), and its prediction of a test video
        "demo": ("flow_method", "pre_top", "cand_min_score", "feature_cache"),
        "val": ("flow", "flow_weights", "motion_weight", "pre_top", "cand_min_score", "feature_cache", "cache"),
        "predict": ("flow_weights", "motion_weight", "pre_top", "cand_min_score", "feature_cache"),
    },
}

#: The keys of the weights' metadata a YOWO converter writes from the config.
_YOWO_META = ("imgsz", "stride", "conf", "iou", "max_det", "post_mode", "linking")
_BACKBONES = ("num_classes", "backbone3d", "backbone2d", "width", "clip_len", "anchors", "cfam_channels")

#: ``from= -> the keys its converter reads`` (every converter of :mod:`~singleshot.tasks.action.members`,
#: and ``csv``: a box table to a YOWO root).
CONVERT_KEYS: dict[str, tuple[str, ...]] = {
    "yowo": ("from_", "src", "dst", "classes", "clip_len", "anchors", *_YOWO_META),
    "kinetics": ("from_", "src", "dst", "classes", "darknet", *_BACKBONES, *_YOWO_META),
    "darknet": ("from_", "src", "dst", "classes", "kinetics", *_BACKBONES, *_YOWO_META),
    "caffe": ("from_", "prototxt", "caffemodel", "dst", "classes", "linking"),
    "csv": ("from_", "src", "frames", "dst", "classes", "split_list", "test_fraction"),  # annotations, not weights
}


def _union(*groups: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(k for g in groups for k in g))


def _given(args: Mapping[str, str]) -> dict[str, object]:
    """The keys of the command line over those of its ``cfg=`` YAML."""
    return {**(load_yaml_mapping(args["cfg"]) if args.get("cfg") else {}), **args}


def member_of_args(args: Mapping[str, str]) -> str | None:
    """The member ``model=`` names (the command line, else the ``cfg=`` YAML, else ActionConfig's
    default); None for a name of no member (the mode itself then says so)."""
    name = str(_given(args).get("model", ActionConfig.model))
    return name if name in MEMBER_KEYS else None


def weights_meta(args: Mapping[str, str]) -> dict | None:
    """The metadata of the ``weights=`` file (only its header is read); None when there is none yet,
    it cannot be read (the mode itself reports that) or it is not a ``.safetensors`` file."""
    path = str(_given(args).get("weights") or "")
    if not path.endswith(".safetensors"):
        return None
    try:
        with safe_open(path, framework="pt") as f:
            meta = json.loads((f.metadata() or {}).get(META_KEY, "{}"))
    except (SafetensorError, OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def member_of_weights(args: Mapping[str, str]) -> str | None:
    """The member named by the ``weights=`` file's metadata (:func:`weights_meta`), or None."""
    meta = weights_meta(args)
    try:
        family = family_of(meta) if meta is not None else None
    except SingleshotError:
        return None
    return family if family in MEMBER_KEYS else None


def _member_keys(
    shared: tuple[str, ...], member: Callable[[Mapping[str, str]], str | None], *modes: str
) -> Callable[[Mapping[str, str]], tuple[str, ...]]:
    """``args -> keys``: ``shared`` plus the member's own keys of ``modes`` (every member's when the
    member is not known)."""

    def keys(args: Mapping[str, str]) -> tuple[str, ...]:
        name = member(args)
        names = [name] if name is not None else list(MEMBER_KEYS)
        return _union(shared, *(MEMBER_KEYS[n][m] for n in names for m in modes))

    return keys


def _convert_keys(args: Mapping[str, str]) -> tuple[str, ...]:
    source = str(_given(args).get("from", _given(args).get("from_", "")))
    return CONVERT_KEYS[source] if source in CONVERT_KEYS else _union(*CONVERT_KEYS.values())


#: mode -> the keys it reads (a tuple, or a function of the arguments).
KEYS: dict[str, tuple[str, ...] | Callable[[Mapping[str, str]], tuple[str, ...]]] = {
    "train": _member_keys(TRAIN, member_of_args, "train"),
    "demo": _member_keys(_union(TRAIN, DEMO), member_of_args, "train", "demo"),  # the demo trains
    "val": _member_keys(VAL, member_of_weights, "val"),
    "predict": _member_keys(PREDICT, member_of_weights, "predict"),
    "score": ("gt", "pred", "tubes", "protocol", "match_iou", "split", "split_list"),
    "convert": _convert_keys,
    "export": EXPORT,
    "flow": ("src", "dst", "method", "workers", "video_name", "quality"),
    "check": DATA,
}
