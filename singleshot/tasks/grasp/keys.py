"""The keys each ``grasp`` mode reads, and one line of help for each (``singleshot grasp MODE help``).

A key given to a mode that does not read it is an error (:func:`singleshot.config.check_mode_keys`):
nothing is silently ignored. The keys of ``convert`` depend on ``from=`` (``pcd`` rewrites a
Cornell root, ``ggcnn`` converts a state dict).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from singleshot.config import load_yaml_mapping
from singleshot.engine.train_config import ENGINE_HELP, ENGINE_TRAIN_KEYS

__all__ = ["CONVERT_KEYS", "HELP", "KEYS", "MODE_HELP"]

#: ``key -> (group, meaning)`` of every :class:`~singleshot.tasks.grasp.config.GraspConfig` key.
HELP: dict[str, tuple[str, str]] = {
    **ENGINE_HELP,
    # data
    "data": ("data", "a Cornell or Jacquard root"),
    "layout": ("data", "dataset layout: auto | cornell | jacquard"),
    "depth": ("data", "Jacquard depth images: perfect | stereo"),
    "object_map": ("data", "Cornell image -> object file (default: <data>/objects.txt when present)"),
    "split": ("data", "held-out images: image | object | reference (by order, GG-CNN) | kfold | all"),
    "k": ("data", "folds of the split (kfold: 5 unless given; none: one held-out fraction)"),
    "fold": ("data", "the fold held out (0-based)"),
    "test_fraction": ("data", "fraction of the images held out (without folds)"),
    "split_seed": ("data", "seed of the image / object shuffle of the split"),
    "cache": ("data", "keep decoded images in memory"),
    "n_images": ("data", "demo: generated images"),
    "image_height": ("data", "demo: height of the generated images"),
    "image_width": ("data", "demo: width of the generated images"),
    "data_seed": ("data", "demo: seed of the generated dataset (seed= varies the training only)"),
    # model
    "model": ("model", "ggcnn | ggcnn2 | psp_resnet18 | psp_resnet50 | psp_resnet101"),
    "weights": ("model", "a .safetensors (or exported .onnx) grasp net, or a run's last.pt; train: fine-tune from it"),
    "pretrained": ("model", "PSP nets: a torchvision ImageNet resnet18/50/101 state dict for the trunk"),
    "input": ("model", "network input: depth | rgb | rgbd (val, predict: must be the weights')"),
    "size": (
        "model",
        "network input side S (GG-CNN: a multiple of 12 keeps the maps exact; val, predict: the weights')",
    ),
    "crop": ("model", "center (honest) | gt_center (the reference's label-centred Cornell crop)"),
    "crop_size": ("model", "crop side in source pixels (none: the image's short side)"),
    # training
    "loss": ("training", "map loss: mse (GG-CNN) | smooth_l1 (GR-ConvNet)"),
    "aux": ("training", "PSPNet auxiliary head on layer3 (training only)"),
    "aux_weight": ("training", "weight of the auxiliary head's loss"),
    "augment": ("training", "augment the training views (rotations, zoom, flips below)"),
    "rotate90": ("training", "random multiple of 90 degrees (the reference)"),
    "max_angle": ("training", "plus a rotation uniform in [-max_angle, max_angle] degrees"),
    "zoom": ("training", "zoom range low,high (the reference: 0.5,1; none: off)"),
    "hflip": ("training", "probability of a horizontal flip"),
    "vflip": ("training", "probability of a vertical flip"),
    "threads": ("training", "torch intra-op threads (0: torch's default; demo: one per core the loader leaves)"),
    "channels_last": ("training", "channels-last model and inputs (none: on for CUDA)"),
    # distillation
    "teacher": ("distillation", "a trained grasp net (same input) whose four maps the student learns"),
    "kd_weight": ("distillation", "weight of the map distillation term"),
    "kd_loss": ("distillation", "mse | smooth_l1, per map against the teacher's"),
    # evaluation
    "num_grasps": ("evaluation", "grasps kept per image (val, predict: given, it replaces the weights')"),
    "min_distance": ("evaluation", "least distance between two grasp peaks, pixels (given, it wins)"),
    "threshold": ("evaluation", "least quality of a grasp peak (given, it wins)"),
    "iou": ("evaluation", "grasp IoU: polygon (exact) | raster (the reference's pixel count)"),
    "iou_thresh": ("evaluation", "IoU of a successful grasp with some ground-truth rectangle"),
    "angle_thresh": ("evaluation", "largest angle difference of a successful grasp, degrees"),
    "top_k": ("evaluation", "a success when one of the k best grasps matches"),
    "plots": ("evaluation", "write pictures beside metrics.json (success vs IoU threshold, worst images)"),
    "gt": ("evaluation", "score: the Cornell or Jacquard root of the ground truth"),
    "pred": (
        "evaluation",
        "score: predictions, a JSON list of {image, grasps: [[cx, cy, angle, opening, jaw, quality]]}",
    ),
    # prediction
    "source": ("prediction", "a depth TIFF (an RGB image for rgb models) or a folder"),
    "rgb": ("prediction", "the RGB image that goes with one depth image, or a folder of them paired by name"),
    "format": ("prediction", "json | jacquard (also jacquard_output.txt)"),
    # conversion
    "from_": ("conversion", "pcd (Cornell point clouds -> d.tiff) | ggcnn (a dougsm/ggcnn state dict)"),
    "src": ("conversion", "from=pcd: the Cornell root; from=ggcnn: the state dict file"),
    "dst": ("conversion", "from=ggcnn: the .safetensors written"),
    "overwrite": ("conversion", "from=pcd: rewrite existing d.tiff files"),
}

#: Help lines of the keys that mean something else in one mode (``export``: GraspExportOptions).
MODE_HELP: dict[str, dict[str, tuple[str, str]]] = {
    "export": {
        "weights": ("model", "the .safetensors to export"),
        "dst": ("export", "the .onnx written (default: beside the weights, <stem>.onnx / <stem>.int8.onnx)"),
        "format": ("export", "onnx"),
        "int8": ("export", "also quantize to int8 (onnxruntime static QDQ, calibrated)"),
        "calib": ("export", "calibration data: a Cornell / Jacquard root, a .npy/.npz of inputs (empty: random)"),
        "calib_samples": ("export", "calibration samples"),
        "calib_method": ("export", "minmax | entropy | percentile"),
        "per_channel": ("export", "per-channel weight quantization"),
        "opset": ("export", "ONNX opset"),
        "dynamic_batch": ("export", "a dynamic batch dimension"),
        "layout": ("export", "calib a dataset: auto | cornell | jacquard"),
        "depth": ("export", "calib a Jacquard root: perfect | stereo depth images"),
    },
    "val": {"batch": ("evaluation", "views per forward pass (at most 16)")},
    "predict": {"batch": ("prediction", "images per forward pass")},
}

DATA = ("data", "layout", "depth", "object_map")
SPLIT = ("split", "k", "fold", "test_fraction", "split_seed")
VIEW = ("input", "size", "crop", "crop_size")
PEAKS = ("num_grasps", "min_distance", "threshold")
METRIC = ("iou", "iou_thresh", "angle_thresh", "top_k")
RUN = ("project", "name", "exist_ok", "device")
AUGMENT = ("augment", "rotate90", "max_angle", "zoom", "hflip", "vflip")
# fmt: off
TRAIN = (
    *DATA, *SPLIT, "model", "pretrained", "weights", *VIEW, "cache", "threads", "channels_last", *AUGMENT, "loss", "aux",
    "aux_weight", *ENGINE_TRAIN_KEYS, "teacher", "kd_weight", "kd_loss", *PEAKS, *METRIC,
)
VAL = (
    "weights", *DATA, "check", "bad", *SPLIT, *VIEW, "cache", "threads", "workers", "batch", *PEAKS, *METRIC, "plots",
    *RUN,
)
EXPORT = (
    "weights", "dst", "format", "int8", "calib", "calib_samples", "calib_method", "per_channel", "opset",
    "dynamic_batch", "layout", "depth",
)
# fmt: on

#: ``from= -> the keys its conversion reads``.
CONVERT_KEYS: dict[str, tuple[str, ...]] = {
    "pcd": ("from_", "src", "overwrite"),
    "ggcnn": ("from_", "src", "dst", "size", "crop", "crop_size", *PEAKS),
}


def _convert_keys(args: Mapping[str, str]) -> tuple[str, ...]:
    given = {**(load_yaml_mapping(args["cfg"]) if args.get("cfg") else {}), **args}
    source = str(given.get("from", given.get("from_", "")))
    if source in CONVERT_KEYS:
        return CONVERT_KEYS[source]
    return tuple(dict.fromkeys(k for keys in CONVERT_KEYS.values() for k in keys))


#: mode -> the keys it reads (a tuple, or a function of the arguments).
KEYS: dict[str, tuple[str, ...] | Callable[[Mapping[str, str]], tuple[str, ...]]] = {
    "train": TRAIN,
    "demo": (*TRAIN, "n_images", "image_height", "image_width", "data_seed"),
    "val": VAL,
    "predict": ("weights", "source", "rgb", "format", "depth", *VIEW, "threads", "batch", *PEAKS, *RUN),
    "score": ("gt", "pred", *DATA[1:], *SPLIT, *METRIC),
    "convert": _convert_keys,
    "export": EXPORT,
    "check": (*DATA, "input"),
}
