"""``DetectConfig``: every ``key=value`` the ``detect`` modes accept (each mode reads the keys it needs).

The training and run keys come from :class:`~singleshot.engine.train_config.EngineOptions`; this
class sets the SSD recipe's defaults for them (120 epochs, batch 32, weight decay 5e-4, multistep
schedule, 500 warm-up steps, ``runs/detect``) and adds the keys only ``detect`` has.
"""

from __future__ import annotations

from dataclasses import dataclass

from singleshot.data.input_spec import CONVENTIONS
from singleshot.engine.train_config import EngineOptions
from singleshot.errors import ConfigError
from singleshot.metrics.voc import check_voc07_thresholds

__all__ = ["DetectConfig"]


@dataclass
class DetectConfig(EngineOptions):
    """Every ``key=value`` the ``detect`` modes accept (each mode reads the keys it needs)."""

    # engine keys whose SSD defaults differ from EngineOptions'
    epochs: int = 120
    batch: int = 32
    weight_decay: float = 5e-4
    schedule: str = "multistep"
    warmup: int = 500
    project: str = "runs/detect"
    # model and data (``data``: a VOC root, a COCO ``*.json`` or folder, or a YOLO ``data.yaml``)
    model: str = "ssd300"
    weights: str = ""
    images: str = ""
    classes: tuple[str, ...] = ()
    train_set: str = ""  # training split ("": the format's: VOC trainval, else train; YOLO/COCO train)
    val_set: str = ""  # evaluation split ("": the format's: VOC test, else val; YOLO/COCO val)
    years: tuple[str, ...] = ("2007",)
    val_years: tuple[str, ...] = ()  # years of the evaluation split (default: ``years``)
    imgsz: int = 0
    priors: str = ""  # ssd300/ssd512 default boxes: voc (paper) | coco (torchvision 0.07-1.05); "": voc
    # training
    augment: bool = True
    channels_last: bool | None = None  # channels-last model and inputs (None: on for CUDA)
    pretrained: str = ""  # VGG16 trunk: torchvision vgg16 or ssd.pytorch's vgg16_reducedfc.pth
    # input convention of training, written into the weights for val/predict/export: auto = the
    # pretrained file's (torchvision vgg16: imagenet; reduced trunk: caffe; no file: imagenet) |
    # imagenet (RGB, ImageNet mean/std) | caffe (BGR 0..255 minus 104,117,123) |
    # ssd_pytorch (RGB 0..255 minus 123,117,104: what ssd.pytorch feeds the Caffe trunk)
    input_norm: str = "auto"
    # resize policy of train/val/predict/export, written into the weights: bilinear, antialiased
    # when shrinking; false: plain bilinear (torchvision's SSD, ssd.pytorch, Caffe)
    antialias: bool = True
    # distillation and auxiliary head (singleshot/tasks/detect/distill.py)
    teacher: str = ""  # weights of a trained detector whose soft class scores the student learns
    kd_weight: float = 1.0
    kd_temperature: float = 2.0
    kd_mask: str = "matched"  # priors of the KD term: matched (positives + hard negatives), positive, all
    feat_weight: float = 0.0  # feature imitation of the stride-8/16 maps through a 1x1 adapter
    aux: bool = False  # auxiliary SSD head on intermediate maps, training only
    aux_weight: float = 0.4
    # inference
    source: str = ""
    timeout: float = 10.0  # predict: seconds a stream or camera may stay silent before it counts as stalled
    conf: float = 0.01
    iou: float = 0.45
    topk: int = 400
    max_det: int = 200
    show_conf: float = 0.3
    metric: str = "voc07"
    plots: bool = True  # val: write pictures beside metrics.json (PR curves, AP bars, confusion matrix, worst images)
    plus_one: bool = True
    voc07_thresholds: str = "exact"  # metric=voc07 recall thresholds: exact k/10, or arange as the Python ports
    # score and convert
    gt: str = ""
    pred: str = ""
    from_: str = ""
    to: str = ""  # convert: the dataset format written (voc | coco | yolo) for from=voc|coco|yolo
    src: str = ""
    dst: str = ""
    prototxt: str = ""  # convert from=caffe: the net definition
    caffemodel: str = ""  # convert from=caffe: the weights
    # demo
    n_train: int = 800
    n_val: int = 200

    def __post_init__(self) -> None:
        check_voc07_thresholds(self.voc07_thresholds, "voc07_thresholds")
        if self.input_norm != "auto" and self.input_norm not in CONVENTIONS:
            raise ConfigError(f"input_norm={self.input_norm!r}: expected auto or one of {', '.join(CONVENTIONS)}")
