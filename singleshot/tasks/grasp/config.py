"""The ``grasp`` task's configuration: :class:`GraspConfig`, every ``key=value`` its modes accept.

The training and run keys come from :class:`~singleshot.engine.train_config.EngineOptions`; this
class sets the defaults that differ (50 epochs, Adam, ``project=runs/grasp``) and adds the grasp
keys. Pixel conventions are the project's (:class:`~singleshot.structures.Grasps`).
"""

from __future__ import annotations

from dataclasses import dataclass

from singleshot.engine.train_config import EngineOptions

__all__ = ["GraspConfig"]


@dataclass
class GraspConfig(EngineOptions):
    """Every ``key=value`` the ``grasp`` modes accept (each mode reads the keys it needs).

    ``data`` is a Cornell or Jacquard root.
    """

    # training defaults that differ from EngineOptions
    epochs: int = 50
    optimizer: str = "adam"
    project: str = "runs/grasp"
    # model and data
    model: str = "ggcnn"
    weights: str = ""
    pretrained: str = ""  # train, PSP nets: torchvision ImageNet resnet18/50/101 state dict for the trunk
    layout: str = "auto"  # dataset layout: auto, cornell or jacquard
    depth: str = "perfect"  # Jacquard depth images: perfect or stereo
    object_map: str = ""  # Cornell image -> object file (default: <data>/objects.txt when present)
    input: str = "depth"  # depth, rgb or rgbd
    size: int = 300  # network input side S (GG-CNN: a multiple of 12 keeps the maps exact)
    crop: str = "center"  # center (honest) or gt_center (the reference's label-centred Cornell crop)
    crop_size: int | None = None  # crop side in source pixels (None: the image's short side)
    # split (train, val, score)
    split: str = "image"  # image, object, reference, kfold or all
    k: int | None = None  # folds (kfold defaults to 5)
    fold: int = 0
    test_fraction: float = 0.1
    split_seed: int = 0
    # training
    loss: str = "mse"  # mse (GG-CNN) or smooth_l1 (GR-ConvNet)
    aux: bool = False  # PSPNet auxiliary head on layer3 (training only)
    aux_weight: float = 0.4
    # distillation (train): a trained grasp net's .safetensors; see singleshot/tasks/grasp/distill.py
    teacher: str = ""
    kd_weight: float = 1.0  # weight of the map distillation term
    kd_loss: str = "mse"  # mse or smooth_l1, per map against the teacher's
    augment: bool = True
    rotate90: bool = True  # random multiple of 90 degrees (the reference)
    max_angle: float = 0.0  # plus a rotation uniform in [-max_angle, max_angle] degrees
    zoom: tuple[float, ...] | None = (0.5, 1.0)  # zoom range (the reference: uniform(0.5, 1))
    hflip: float = 0.0
    vflip: float = 0.0
    cache: bool = False  # keep decoded images in memory
    threads: int = 0  # intra-op threads (0: torch's default)
    data_seed: int = 0  # demo: seed of the generated dataset (seed= varies the training only)
    channels_last: bool | None = None
    # inference and evaluation
    source: str = ""  # predict: a depth TIFF (or RGB image for rgb models) or a folder
    rgb: str = ""  # predict: the RGB image (or folder) that goes with source
    format: str = "json"  # predict output: json, or jacquard (also jacquard_output.txt)
    num_grasps: int = 1
    min_distance: int = 20
    threshold: float = 0.2
    iou: str = "polygon"  # polygon (exact) or raster (the reference's pixel count)
    iou_thresh: float = 0.25
    angle_thresh: float = 30.0
    top_k: int = 1
    plots: bool = True  # val: write pictures beside metrics.json (success vs IoU threshold, worst images)
    # score and convert
    gt: str = ""
    pred: str = ""
    from_: str = ""  # convert: pcd (Cornell clouds -> d.tiff) or ggcnn (dougsm/ggcnn state dict)
    src: str = ""
    dst: str = ""
    overwrite: bool = False
    # demo
    n_images: int = 400
    image_height: int = 120
    image_width: int = 160
