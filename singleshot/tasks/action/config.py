"""The keys of the ``action`` modes: a shared part and one part per member (YOWO, ACT).

:class:`ActionOptions` holds the keys both members read (data, evaluation, prediction files,
conversion, demo) and the training defaults that differ from :class:`EngineOptions`';
:class:`YowoOptions` and :class:`ActOptions` add each member's own keys. :class:`ActionConfig`
combines them: it is the one config the CLI builds (each mode reads the keys it needs). A member's
other defaults (ACT's optimizer, input size, ...) are data of its record in
:mod:`singleshot.tasks.action.members`.
"""

from __future__ import annotations

from dataclasses import dataclass

from singleshot.engine.train_config import EngineOptions

__all__ = ["ActionOptions", "YowoOptions", "ActOptions", "ActionConfig"]


@dataclass
class ActionOptions(EngineOptions):
    """The keys of both members, and YOWO's published training recipe as the engine defaults."""

    # model
    model: str = "yowo"  # the member: yowo | act (see singleshot.tasks.action.members)
    arch: str = "yowo_tiny"  # an architecture of the member: yowo, yowo_tiny | act_vgg16, act_tiny, act_slim
    imgsz: int = 224  # square network input, divisible by 32
    antialias: bool = True  # train: resize policy saved in the weights (false: plain bilinear, as ACT)
    weights: str = ""
    pretrained: str = ""  # a .safetensors from `action convert` to start training from
    # data
    data: str = ""  # a YOWO root, or a ground-truth file (ACT *-GT.pkl, finalAnnots.mat, pyannot.pkl)
    frames: str = ""  # folder holding rgb-images/ (default: data when it is a folder, else its parent)
    split: int = 1
    split_list: str = ""  # a test list replacing the data's own
    classes: tuple[str, ...] = ()
    # training
    epochs: int = 5
    batch: int = 10
    lr: float = 1e-4
    weight_decay: float = 5e-4
    optimizer: str = "adam"
    schedule: str = "multistep"
    milestones: tuple[int, ...] = (1, 2, 3, 4)  # completed epochs after which lr *= gamma
    gamma: float = 0.5
    augment: bool = True  # the member's clip augmentation (YOWO: jitter crop, flip, HSV; ACT: zoom-out, flip, photometric); false: resize only
    # distillation (train): a trained model of the same member; see singleshot/tasks/action/distill.py
    teacher: str = ""
    kd_weight: float = 1.0  # weight of the soft-label term
    kd_temperature: float = 2.0
    parallel_branches: bool = False  # two-stream ACT's streams / YOWO's 3D and 2D backbones in two threads (train, eval, predict; one process)
    project: str = "runs/action"
    # inference and evaluation
    source: str = ""
    timeout: float = 10.0  # predict: seconds a stream or camera may stay silent before it counts as stalled
    video_name: str = ""  # name of a predicted video in the JSON files (default: the source's stem)
    conf: float = 0.005
    iou: float = 0.4  # NMS IoU
    max_det: int = 0  # YOWO: detections kept per frame (0: all, as YOWO); ACT: tubelets per window (200)
    show_conf: float = 0.3
    protocol: str = "yowo"  # yowo | act
    plots: bool = True  # val: write pictures beside metrics.json (frame PR curves, AP bars, worst videos)
    match_iou: float = 0.5  # frame-mAP IoU threshold
    trim: float = (
        0.0  # cut linked tubes (YOWO's Viterbi or ACT's) to their best run of frame scores >= trim (0: no trimming)
    )
    linking: str = ""  # "": the member's own (yowo: viterbi, act: act) | act (ACT's parameters) | moc (MOC-Detector's) | viterbi (yowo only)
    # score and convert
    gt: str = ""
    pred: str = ""
    tubes: str = ""
    from_: str = ""
    src: str = ""
    dst: str = ""
    test_fraction: float = 0.0  # convert from=csv: fraction of each class's videos listed as test (0: every video in train and test; split_list= wins)
    # demo
    n_train: int = 40
    n_test: int = 16
    video_size: tuple[int, ...] = (120, 160)
    video_frames: tuple[int, ...] = (24, 40)


@dataclass
class YowoOptions(ActionOptions):
    """YOWO's own keys (``model=yowo``): backbones, clips, anchors, region loss, augmentation, decoding."""

    backbone3d: str = "resnext101"  # arch=yowo: resnext101 | resnet18 | shufflenetv2 | tiny3d
    backbone2d: str = "darknet19"  # arch=yowo: darknet19 | tiny2d
    width: int = 16  # yowo_tiny (and tiny2d / tiny3d) channel width
    out_stride: int = 32  # yowo_tiny (and tiny2d + tiny3d): output stride 32 as published, or 16 / 8 (finer maps)
    input_3d: str = "rgb"  # what the 3D backbone sees, rgb (YOWO) | diff (consecutive-frame differences)
    cfam_channels: int = 0  # 0: the builder's default (1024 for yowo, 128 for yowo_tiny)
    clip_len: int = 16  # frames per clip T (key frame last)
    stride: int = 1  # temporal stride between clip frames at test time
    anchors: tuple[float, ...] = ()  # flat w1,h1,w2,h2,... in grid cells; () = YOWO's UCF101-24 anchors
    auto_anchors: bool = False  # train: 5 anchors by k-means (1 - IoU) on the training boxes, as YOLOv2
    freeze_2d: str = "none"  # none | all | partial (YOWO freezes the 2D backbone on J-HMDB-21)
    freeze_3d: str = "none"
    jitter: float = 0.2
    hue: float = 0.1
    saturation: float = 1.5
    exposure: float = 1.5
    keyframe_step: int = 1  # train on every k-th key frame of each training video
    object_scale: float = 5.0  # region loss weights (YOWO: 5, 1, 1, 1)
    noobject_scale: float = 1.0
    class_scale: float = 1.0
    coord_scale: float = 1.0
    prior_warmup: int = 0  # samples of YOWO's prior warm-up (its first release: 12800); 0: off
    loss_reduction: str = "sum"  # sum (YOWO) | mean (divided by the batch size)
    rescore: bool = (
        True  # region loss confidence target: IoU with the ground truth (YOWO) | false: 1 (darknet rescore=0)
    )
    kd_obj_thresh: float = 0.5  # teacher=: class scores distilled where the teacher's objectness is at least this
    post_mode: str = "yowo"  # yowo (class-agnostic NMS, YOWO's test path) | per_class
    kinetics: str = ""  # convert: a Kinetics 3D backbone file to load too
    darknet: str = ""  # convert: a Darknet .weights file to load too
    num_classes: int = 0  # convert from=kinetics|darknet: classes of the head (0: 24, UCF101-24's)


@dataclass
class ActOptions(ActionOptions):
    """ACT's own keys (``model=act``): tubelet length, trunk width, the two-stream modality, its
    clip augmentation, the tubelet cache and the Caffe conversion."""

    K: int = 6  # frames per tubelet
    act_width: float = 1.0  # act_tiny / act_slim trunk channel multiplier
    modality: str = "rgb"  # rgb | rgb+diff | rgb+flow (two streams, scores averaged at test time)
    motion_weight: float = 0.5  # two-stream: weight of the motion stream's class probabilities (ACT: 0.5)
    flow: str = ""  # rgb+flow: folder of precomputed flow images <Class>/<video>/<frame:05d>.jpg (`action flow`)
    flow_stack: int = (
        5  # rgb+flow: flow images per frame, t … t+n-1 stacked (ACT's FLOW5: 5, 15 channels; 1: one image)
    )
    flow_method: str = "dis"  # demo modality=rgb+flow: the flow computed for the demo videos, dis | tvl1
    flow_weights: str = (
        ""  # val/predict: the motion stream's weights ("": the one inside or named by weights; none: RGB only)
    )
    max_zoom: float = 4.0  # clip augmentation: largest zoom-out (expand) ratio, 1 = none
    photometric: bool = True  # clip augmentation: photometric distortion (same for the K frames)
    feature_cache: bool = (
        True  # val/predict: each frame through the trunk once, windows from per-frame maps (false: every window whole)
    )
    cache: bool = True  # val: keep each video's tubelets under project/cache/tubelets (resumable)
    pre_top: int = 0  # val/predict: linking candidates entering the 0.7 NMS per window, the N best (0: all, as ACT)
    cand_min_score: float = 0.01  # val/predict: linking candidates' best class score floor (ACT's code: 0)
    prototxt: str = ""  # convert from=caffe: ACT deploy prototxt
    caffemodel: str = ""  # convert from=caffe: ACT .caffemodel


@dataclass
class ActionConfig(YowoOptions, ActOptions):
    """Every ``key=value`` the ``action`` modes accept: the shared keys and both members' (each mode
    reads the keys it needs)."""
