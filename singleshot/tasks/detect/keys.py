"""The keys each ``detect`` mode reads, and one line of help for each (``singleshot detect MODE help``).

A key given to a mode that does not read it is an error (:func:`singleshot.config.check_mode_keys`):
nothing is silently ignored.
"""

from __future__ import annotations

from singleshot.engine.train_config import ENGINE_HELP, ENGINE_TRAIN_KEYS

__all__ = ["HELP", "KEYS"]

#: ``key -> (group, meaning)`` of every :class:`~singleshot.tasks.detect.config.DetectConfig` key
#: and of the export keys.
HELP: dict[str, tuple[str, str]] = {
    **ENGINE_HELP,
    "data": ("data", "a VOC root (VOCdevkit), a COCO *.json or folder, or a YOLO data.yaml"),
    "images": ("data", "COCO: the folder of the images (default: the json's folder)"),
    "classes": (
        "data",
        "class names, comma-separated (default: from the data: VOC annotations, COCO categories, YOLO names)",
    ),
    "train_set": ("data", "training split: VOC image set / YOLO data.yaml key / COCO split (empty: the format's own)"),
    "val_set": ("data", "evaluation split: VOC image set / YOLO data.yaml key / COCO split (empty: the format's own)"),
    "years": ("data", "VOC years of the training split, e.g. 2007,2012"),
    "val_years": ("data", "VOC years of the evaluation split (default: years)"),
    "model": ("model", "ssd300 | ssd512 | ssd_tiny | ssd_mobilenet ... (see README: models)"),
    "weights": (
        "model",
        "a .safetensors detector (or exported .onnx, or a run's last.pt/best.pt); train: fine-tune from it",
    ),
    "imgsz": ("model", "network input side (0: the model's own, 300 / 512)"),
    "priors": ("model", "ssd300/ssd512 default boxes: voc (paper) | coco (torchvision 0.07-1.05); empty: voc"),
    "pretrained": ("model", "VGG16 trunk file: torchvision vgg16 or ssd.pytorch's vgg16_reducedfc.pth"),
    "input_norm": ("model", "input convention: auto (the pretrained file's) | imagenet | caffe | ssd_pytorch"),
    "antialias": ("model", "resize policy saved in the weights: antialiased when shrinking (false: plain bilinear)"),
    "channels_last": ("training", "channels-last model and inputs (none: on for CUDA)"),
    "augment": ("training", "SSD photometric + expand + crop augmentation (false: flips only)"),
    "teacher": ("distillation", "weights of a trained detector whose soft class scores the student learns"),
    "kd_weight": ("distillation", "weight of the distillation term"),
    "kd_temperature": ("distillation", "softmax temperature of the distillation term"),
    "kd_mask": ("distillation", "priors of the KD term: matched (positives + hard negatives) | positive | all"),
    "feat_weight": ("distillation", "feature imitation of the stride-8/16 maps through a 1x1 adapter (0: off)"),
    "aux": ("distillation", "auxiliary SSD head on intermediate maps, training only"),
    "aux_weight": ("distillation", "weight of the auxiliary head's loss"),
    "conf": ("evaluation", "score threshold of the detections kept"),
    "iou": ("evaluation", "NMS IoU threshold"),
    "topk": ("evaluation", "candidates per class entering NMS"),
    "max_det": ("evaluation", "detections kept per image"),
    "metric": ("evaluation", "voc07 (11-point) | voc12 (all points) | coco (AP@[.5:.95])"),
    "plus_one": ("evaluation", "VOC's +1 pixel in box areas and IoU"),
    "voc07_thresholds": ("evaluation", "metric=voc07 recall thresholds: exact k/10 | arange (the Python ports)"),
    "source": (
        "prediction",
        "an image, a folder of images, a video file, an rtsp:// or http:// stream, a camera index",
    ),
    "timeout": ("prediction", "seconds a stream or camera may stay silent before it counts as stalled"),
    "plots": ("output", "val: PR curves, AP per class, confusion matrix and the worst images beside metrics.json"),
    "show_conf": ("prediction", "score threshold of the boxes drawn"),
    "gt": ("evaluation", "score: ground truth (VOC root or COCO json); train on COCO: the validation json"),
    "pred": ("evaluation", "score: predictions (COCO results json or a folder of VOC comp4 files)"),
    "from_": ("conversion", "torchvision | ssd.pytorch | caffe (weights); voc | coco | yolo (datasets)"),
    "to": ("conversion", "from=voc|coco|yolo: the dataset format written, voc | coco | yolo"),
    "src": ("conversion", "the file (or dataset) to convert"),
    "dst": ("conversion", "the file (or folder) written"),
    "prototxt": ("conversion", "from=caffe: the net definition"),
    "caffemodel": ("conversion", "from=caffe: the weights"),
    "n_train": ("data", "demo: generated training images"),
    "n_val": ("data", "demo: generated validation images"),
    # export (singleshot.tasks.detect.export.ExportOptions)
    "format": ("export", "onnx"),
    "nms": ("export", "decoding and NMS inside the graph"),
    "int8": ("export", "int8 quantization (onnxruntime static, calibrated)"),
    "calib": ("export", "calibration images: VOC root, COCO *.json or a folder of images"),
    "calib_images": ("export", "calibration images used"),
    "calib_method": ("export", "minmax | entropy | percentile"),
    "per_channel": ("export", "per-channel weight quantization"),
    "opset": ("export", "ONNX opset"),
    "dynamic_batch": ("export", "a dynamic batch dimension"),
}

DATA = ("data", "images", "classes", "years", "val_years", "workers", "check", "bad")
SPLITS = ("train_set", "val_set")
MODEL = ("model", "imgsz", "priors", "pretrained", "input_norm", "antialias")
DISTILL = ("teacher", "kd_weight", "kd_temperature", "kd_mask", "feat_weight", "aux", "aux_weight")
POSTPROCESS = ("conf", "iou", "topk", "max_det")
METRIC = ("metric", "plus_one", "voc07_thresholds")
RUN = ("project", "name", "exist_ok", "device")
TRAIN = (
    *DATA,
    *SPLITS,
    "gt",
    *MODEL,
    "weights",
    "augment",
    "channels_last",
    *ENGINE_TRAIN_KEYS,
    *DISTILL,
    *POSTPROCESS,
    *METRIC,
)
EXPORT = ("format", "nms", "int8", "calib", "calib_images", "calib_method", "per_channel", "opset", "dynamic_batch")

#: mode -> the keys it reads.
KEYS: dict[str, tuple[str, ...]] = {
    "train": TRAIN,
    "demo": (*TRAIN, "n_train", "n_val"),
    "val": ("weights", *DATA, "val_set", *POSTPROCESS, *METRIC, "show_conf", "batch", "plots", *RUN),
    "predict": ("weights", "source", "timeout", *POSTPROCESS, "show_conf", "batch", *RUN),
    "score": ("gt", "pred", "classes", "val_set", "years", "val_years", *METRIC),
    "convert": (
        "from_",
        "to",
        "src",
        "dst",
        "prototxt",
        "caffemodel",
        "classes",
        "images",
        "years",
        "val_years",
        *SPLITS,
    ),
    "export": ("weights", "dst", *EXPORT, "images", "classes", "years", "val_set", *POSTPROCESS, "device"),
    "check": ("data", "images", "classes", "years", "val_years", *SPLITS, "workers"),
}
