"""The paper recipes (``configs/*.yaml``), each against its reference.

For every recipe: ``singleshot TASK train cfg=configs/X.yaml ... dry_run=true`` through the command
line, on small data in the real on-disk format, checked against facts of the reference it names
(ssd.pytorch, the Caffe SSD, torchvision's SSD recipe, wei-tim/YOWO, ACT's Caffe solver, GG-CNN);
then the recipe's model and optimizer train two optimizer steps (``max_steps=2``, batch 1) and
evaluate once. The real architectures run (VGG16 SSD300/512, ACT's VGG16 over K = 6 frames, YOWO's
3D-ResNeXt-101 + Darknet-19): those runs are marked slow.

Data: the real samples in ``../shared/data`` (VOC, COCO, Cornell, Jacquard; the tests skip, saying
so, without them) and, for the action recipes, a few videos written here in the YOWO layout (JPEG
frames for UCF101-24, PNG for J-HMDB-21, the datasets' class lists, 320x240) plus an ACT pickle.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.models.detection.anchor_utils import DefaultBoxGenerator
from torchvision.models.detection.image_list import ImageList

from singleshot import cli
from singleshot.data.action.readers import write_act_pickle, write_yowo_labels
from singleshot.data.action.readers_yowo_gt import JHMDB_CLASSES, UCF24_CLASSES
from singleshot.engine.checkpoint import load_checkpoint
from singleshot.engine.train_config import train_config_for
from singleshot.models import create_model
from singleshot.ops.boxes import cxcywh_to_xyxy
from singleshot.structures import ActionAnnotations, Tube, VideoAnnotation
from singleshot.tasks.common import make_config
from singleshot.tasks.detect.config import DetectConfig
from singleshot.tasks.grasp.config import GraspConfig

pytestmark = pytest.mark.usefixtures("one_thread")

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
SMOKE = ("max_steps=2", "batch=1", "accumulate=1", "workers=0", "plot_every=0")


def run_cli(capsys: pytest.CaptureFixture[str], task: str, recipe: str, *keys: str) -> dict[str, Any]:
    """``singleshot TASK train cfg=configs/<recipe> KEYS``: its one stdout line, parsed."""
    rc = cli.main([task, "train", f"cfg={CONFIGS / recipe}", *keys])
    lines = capsys.readouterr().out.strip().splitlines()
    assert rc == 0 and len(lines) == 1, lines  # one result line, nothing printed after it
    return json.loads(lines[-1])


def dry(capsys: pytest.CaptureFixture[str], tmp_path: Path, task: str, recipe: str, *keys: str) -> dict[str, Any]:
    """The recipe's dry run; it writes no run folder."""
    summary = run_cli(capsys, task, recipe, *keys, f"project={tmp_path / 'runs'}", "dry_run=true")
    assert summary["dry_run"] is True and not (tmp_path / "runs").exists()
    return summary


def train_smoke(capsys: pytest.CaptureFixture[str], tmp_path: Path, task: str, recipe: str, *keys: str) -> dict:
    """Two optimizer steps of the recipe, one evaluation; returns the result and checks the run."""
    out = tmp_path / "runs" / "smoke"
    result = run_cli(capsys, task, recipe, *keys, *SMOKE, f"project={tmp_path / 'runs'}", "name=smoke")
    assert result["epochs"] == 1 and result["out"] == str(out)
    assert load_checkpoint(out / "last.pt")["iteration"] == 2  # exactly two optimizer steps
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 1 and any(k.startswith("metrics/") and rows[0][k] for k in rows[0])  # one evaluation
    return result


def assert_schedule_in_steps(summary: dict[str, Any], epochs: int, milestones: list[int]) -> None:
    """Epochs and milestones (in epochs) of the recipe, converted to optimizer steps."""
    s = summary["schedule"]
    steps = s["steps_per_epoch"]
    assert steps == math.ceil(s["batches_per_epoch"] / summary["accumulation"]["accumulate"])
    assert s["epochs"] == epochs and s["total_steps"] == epochs * steps
    assert s["milestones_steps"] == [m * steps for m in milestones]


def expand(prefixes: list[str], names: list[str]) -> set[str]:
    """The parameter names under the module-name ``prefixes`` (``""``: all of them)."""
    return {n for n in names for p in prefixes if p == "" or n == p or n.startswith(p + ".")}


# ---------------------------------------------------------------- data
@pytest.fixture()
def voc(shared_data: Callable[..., Path]) -> Path:
    return shared_data("voc", "VOCdevkit")


@pytest.fixture()
def coco(shared_data: Callable[..., Path]) -> tuple[str, ...]:
    folder = shared_data("coco")
    ann = folder / "test_coco.json"
    return f"data={ann}", f"images={folder}", f"gt={ann}"


def write_action_videos(
    root: Path, classes: list[str], frames: dict[str, int], suffix: str, test: str
) -> ActionAnnotations:
    """Videos of 320x240 frames (``suffix`` .jpg or .png) in the YOWO layout under ``root``: each video
    ``Class/name`` of ``frames`` holds one actor (a bright box moving right) over all its frames, the
    labels and lists are written by the project's YOWO writer; ``test`` is the test video."""
    tubes_of: dict[str, VideoAnnotation] = {}
    for name in classes:
        (root / "rgb-images" / name).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for video, n in frames.items():
        folder = root / "rgb-images" / video
        folder.mkdir(parents=True)
        boxes = np.array([[60 + 4 * f, 50, 160 + 4 * f, 210] for f in range(n)], np.float32)
        for f in range(n):
            img = rng.integers(0, 60, (240, 320, 3), dtype=np.uint8)
            x1, y1, x2, y2 = (int(v) for v in boxes[f])
            img[y1:y2, x1:x2] = 200
            Image.fromarray(img).save(folder / f"{f + 1:05d}{suffix}")
        label = classes.index(video.split("/")[0])
        tube = Tube(video, label, np.arange(1, n + 1, dtype=np.int64), boxes, 1.0, np.ones(n, np.float32))
        tubes_of[video] = VideoAnnotation(video, n, (240, 320), [tube])
    ann = ActionAnnotations(
        classes=list(classes),
        videos=tubes_of,
        train_videos=[v for v in frames if v != test],
        test_videos=[test],
        keyframes={v: list(range(1, n + 1)) for v, n in frames.items()},
        source=str(root),
    )
    write_yowo_labels(ann, root)
    return ann


@pytest.fixture()
def ucf24(tmp_path: Path) -> Path:
    """UCF101-24 in the YOWO layout (JPEG frames): one 2-frame training video, one 2-frame test video."""
    root = tmp_path / "ucf24"
    write_action_videos(
        root,
        list(UCF24_CLASSES),
        {"Basketball/v_Basketball_g01_c01": 2, "Fencing/v_Fencing_g01_c06": 2},
        ".jpg",
        "Fencing/v_Fencing_g01_c06",
    )
    return root


@pytest.fixture()
def jhmdb(tmp_path: Path) -> Path:
    """J-HMDB-21 in the YOWO layout (PNG frames, its 21 classes): 2 + 2 frames."""
    root = tmp_path / "jhmdb"
    write_action_videos(root, list(JHMDB_CLASSES), {"catch/v_a": 2, "walk/v_b": 2}, ".png", "walk/v_b")
    return root


@pytest.fixture()
def act_data(tmp_path: Path) -> tuple[str, str]:
    """UCF101-24 frames plus an ACT ``*-GT.pkl``: a 7-frame training video (two K = 6 windows) and a
    6-frame test video (one window)."""
    root = tmp_path / "ucf24act"
    ann = write_action_videos(
        root,
        list(UCF24_CLASSES),
        {"Basketball/v_Basketball_g01_c01": 7, "Fencing/v_Fencing_g01_c06": 6},
        ".jpg",
        "Fencing/v_Fencing_g01_c06",
    )
    write_act_pickle(ann, root / "UCF101v2-GT.pkl")
    return f"data={root / 'UCF101v2-GT.pkl'}", f"frames={root}"


# ---------------------------------------------------------------- SSD
def test_ssd300_voc_dry_run_is_ssd_pytorch_s_recipe(
    voc: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    s = dry(capsys, tmp_path, "detect", "ssd300_voc0712.yaml", f"data={voc}")
    assert s["model"] == "ssd300" and s["num_parameters"] == s["trainable_parameters"]
    assert s["frozen"] == [] and s["lr_zero"] == []
    # ssd.pytorch data/config.py voc: 8732 priors, conv4_3's min / max sizes 30 / 60 px, clipped
    p = s["priors"]
    assert (p["name"], p["spec"], p["count"], p["clip"]) == ("voc", "voc300", 8732, "all")
    assert p["first_map"] == {"size": 38, "min_size": 30.0, "max_size": 60.0}
    # ssd.pytorch train.py: SGD lr 1e-3, momentum 0.9, weight decay 5e-4 on every tensor, batch 32, gamma 0.1
    assert s["optimizer"] == {"name": "sgd", "momentum": 0.9}
    assert [(g["lr"], g["weight_decay"]) for g in s["param_groups"]] == [(0.001, 0.0005)]
    assert s["param_groups"][0]["parameters"] == s["num_parameters"]
    assert s["accumulation"] == {"accumulate": 1, "mode": "mean", "batch": 32, "images_per_step": 32}
    assert s["schedule"]["name"] == "multistep" and s["schedule"]["gamma"] == 0.1
    # lufficc/SSD's warm-up: 500 iterations from lr / 3 (this 232-step run scales it to a quarter of its steps)
    assert s["schedule"]["warmup_asked"] == 500 and s["schedule"]["warmup_steps"] == 58
    assert s["schedule"]["warmup_factor"] == pytest.approx(1 / 3, abs=1e-5)
    assert_schedule_in_steps(s, 232, [155, 193])
    # torchvision's vgg16 (the recipe's pretrained=) is an ImageNet RGB trunk; references resize plainly
    assert s["input"]["size"] == [300, 300] and s["input"]["channel_order"] == "RGB"
    assert s["input"]["mean"] == [0.485, 0.456, 0.406] and s["input"]["std"] == [0.229, 0.224, 0.225]
    assert s["input"]["resize"] == {"interpolation": "bilinear", "antialias": False}
    assert s["train_samples"] == 10  # VOC2007 + VOC2012 trainval of the sample devkit


def test_ssd512_voc_dry_run_is_the_caffe_ssd512_recipe(
    voc: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    s = dry(capsys, tmp_path, "detect", "ssd512_voc0712.yaml", f"data={voc}")
    p = s["priors"]
    assert s["model"] == "ssd512" and (p["name"], p["spec"], p["count"]) == ("voc", "voc512", 24564)
    assert p["first_map"] == {"size": 64, "min_size": 35.84, "max_size": 76.8}
    assert [m["size"] for m in p["maps"]] == [64, 32, 16, 8, 4, 2, 1]
    assert [(g["lr"], g["weight_decay"]) for g in s["param_groups"]] == [(0.001, 0.0005)]
    assert s["optimizer"] == {"name": "sgd", "momentum": 0.9} and s["accumulation"]["batch"] == 32
    assert_schedule_in_steps(s, 232, [155, 193])
    assert s["input"]["size"] == [512, 512] and s["input"]["resize"]["antialias"] is False


def test_ssd300_coco_dry_run_is_torchvision_s_recipe(
    coco: tuple[str, ...], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    s = dry(capsys, tmp_path, "detect", "ssd300_coco.yaml", *coco)
    p = s["priors"]
    assert (p["name"], p["spec"], p["count"], p["clip"]) == ("coco", "coco300", 8732, "wh")
    assert p["first_map"]["min_size"] == pytest.approx(0.07 * 300) and p["first_map"]["max_size"] == pytest.approx(45)
    # the priors, rebuilt from the printed maps (grid, step, one cell's boxes), equal torchvision's
    # DefaultBoxGenerator for ssd300_vgg16 (models/detection/ssd.py)
    ours = []
    for m in p["maps"]:
        centres = (torch.arange(m["size"], dtype=torch.float64) + 0.5) * m["step"]
        cy, cx = torch.meshgrid(centres, centres, indexing="ij")
        wh = torch.tensor(m["boxes_wh"], dtype=torch.float64)
        cxy = torch.stack((cx.reshape(-1), cy.reshape(-1)), 1)[:, None].expand(-1, len(wh), -1)
        ours.append(torch.cat((cxy, wh[None].expand(len(cxy), -1, -1)), -1).reshape(-1, 4))
    gen = DefaultBoxGenerator(
        [[2], [2, 3], [2, 3], [2, 3], [2], [2]],
        scales=[0.07, 0.15, 0.33, 0.51, 0.69, 0.87, 1.05],
        steps=[8, 16, 32, 64, 100, 300],
    )
    feats = [torch.zeros(1, 1, f, f) for f in (38, 19, 10, 5, 3, 1)]
    theirs = gen(ImageList(torch.zeros(1, 3, 300, 300), [(300, 300)]), feats)[0].double()
    torch.testing.assert_close(cxcywh_to_xyxy(torch.cat(ours)), theirs, atol=1e-3, rtol=0)
    # references/detection README: lr 0.002, 8 x 4 images, weight decay 5e-4, 120 epochs, drops at 80, 110;
    # engine.py: 1000 warm-up iterations from lr / 1000
    assert [(g["lr"], g["weight_decay"]) for g in s["param_groups"]] == [(0.002, 0.0005)]
    assert s["optimizer"] == {"name": "sgd", "momentum": 0.9} and s["accumulation"]["images_per_step"] == 32
    # (this 120-step run scales the warm-up to a quarter of its steps)
    assert s["schedule"]["warmup_asked"] == 1000 and s["schedule"]["warmup_steps"] == 30
    assert s["schedule"]["warmup_factor"] == 0.001
    assert_schedule_in_steps(s, 120, [80, 110])
    assert s["input"]["resize"]["antialias"] is False and s["train_samples"] == 4


def test_ssd_voc_schedules_equal_120k_iterations_on_voc07_12() -> None:
    """On the real VOC07+12 trainval (16,551 images, batches of 32, the last one dropped) the SSD
    recipes' epochs give ssd.pytorch's 120k iterations with drops at 80k and 100k (within 0.3 %)."""
    for recipe in ("ssd300_voc0712.yaml", "ssd512_voc0712.yaml"):
        cfg = make_config(DetectConfig, {"cfg": str(CONFIGS / recipe)})
        t = train_config_for(cfg, 16551 // cfg.batch, "out", "cpu")
        total = cfg.epochs * (16551 // cfg.batch)
        assert total == pytest.approx(120_000, rel=3e-3)
        assert t.milestones == pytest.approx((80_000, 100_000), rel=3e-3)


@pytest.mark.slow
@pytest.mark.parametrize("recipe", ["ssd300_voc0712.yaml", "ssd512_voc0712.yaml"])
def test_ssd_voc_recipes_train_two_steps_and_evaluate(
    recipe: str, voc: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = train_smoke(capsys, tmp_path, "detect", recipe, f"data={voc}")
    assert 0.0 <= result["map50"] <= 1.0


@pytest.mark.slow
def test_ssd300_coco_recipe_trains_two_steps_and_evaluates(
    coco: tuple[str, ...], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = train_smoke(capsys, tmp_path, "detect", "ssd300_coco.yaml", *coco)
    assert 0.0 <= result["map"] <= 1.0


# ---------------------------------------------------------------- YOWO
#: wei-tim/YOWO core/model.py get_fine_tuning_parameters with both backbones frozen: a parameter
#: trains when one of these names is a substring of its name.
YOWO_FINE_TUNED = ("cfam", "conv_final", "backbone_2d.models.29", "backbone_2d.models.30", "backbone_3d.layer4")


def pretrained_yowo(path: Path) -> str:
    """A stand-in for ``action convert from=kinetics`` output: YOWO's metadata (architecture, 0..1
    pixels with no mean/std) and one small tensor (the rest keeps its initial values)."""
    from singleshot.engine.weights import save_weights

    meta = {
        "task": "action",
        "family": "yowo",
        "architecture": "yowo",
        "arch_kwargs": {"backbone3d": "resnext101", "backbone2d": "darknet19", "cfam_channels": 1024},
        "input_size": [224, 224],
        "channel_order": "RGB",
        "mean": [0.0, 0.0, 0.0],
        "std": [1.0, 1.0, 1.0],
    }
    save_weights(path, {"backbone_3d.bn1.weight": torch.full((64,), 0.5)}, meta)
    return f"pretrained={path}"


def test_yowo_ucf24_dry_run_is_yowo_s_recipe(ucf24: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    s = dry(capsys, tmp_path, "action", "yowo_ucf24.yaml", f"data={ucf24}", pretrained_yowo(tmp_path / "init.st"))
    assert s["model"] == "yowo" and s["trainable"] == [""] and s["frozen"] == []  # FREEZE_BACKBONE_* False
    # cfg/ucf24.yaml: Adam lr 1e-4, weight decay 5e-4, batch 10 summed over 128 // 10 batches, 10 epochs,
    # lr x0.5 from (1-based) epochs 2, 3, 4, 5
    assert s["optimizer"] == {"name": "adam"}
    assert [(g["lr"], g["weight_decay"]) for g in s["param_groups"]] == [(0.0001, 0.0005)]
    assert s["accumulation"] == {"accumulate": 12, "mode": "sum", "batch": 10, "images_per_step": 120}
    assert s["schedule"]["gamma"] == 0.5 and s["schedule"]["warmup_steps"] == 0
    assert_schedule_in_steps(s, 10, [1, 2, 3, 4])
    assert s["anchors"]["count"] == 5 and s["anchors"]["stride"] == 32
    assert s["anchors"]["wh"][0] == [0.70458, 1.18803] and s["anchors"]["wh"][4] == [3.52332, 5.91979]
    # main.py: transforms.ToTensor() only -- 0..1 RGB, no mean/std, 224 x 224 (from the pretrained file)
    i = s["input"]
    assert (i["size"], i["channel_order"], i["value_range"]) == ([224, 224], "RGB", "0-1")
    assert i["mean"] == [0.0, 0.0, 0.0] and i["std"] == [1.0, 1.0, 1.0]
    assert s["train_samples"] == 2  # the key frames of the training video


def test_yowo_jhmdb_dry_run_trains_what_get_fine_tuning_parameters_trains(
    jhmdb: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    s = dry(capsys, tmp_path, "action", "yowo_jhmdb.yaml", f"data={jhmdb}", pretrained_yowo(tmp_path / "init.st"))
    model = create_model("yowo", 21, backbone3d="resnext101", backbone2d="darknet19", clip_len=32)
    names = [n for n, _ in model.named_parameters()]
    rule = {n for n in names if any(m in n for m in YOWO_FINE_TUNED)}
    assert expand(s["trainable"], names) == rule
    assert expand(s["frozen"], names) == set(names) - rule and s["lr_zero"] == []
    assert any(n.startswith("backbone_2d.models.29.") for n in rule) and any(".layer4." in n for n in rule)
    sizes = dict(model.named_parameters())
    assert s["trainable_parameters"] == sum(sizes[n].numel() for n in rule)
    assert s["num_parameters"] == sum(p.numel() for p in model.parameters())
    # cfg/jhmdb.yaml: batch 6 summed over 128 // 6 batches, lr 1e-4, x0.5 from epochs 3, 4, 5, 6, 10 epochs
    assert s["accumulation"] == {"accumulate": 21, "mode": "sum", "batch": 6, "images_per_step": 126}
    assert [(g["lr"], g["weight_decay"]) for g in s["param_groups"]] == [(0.0001, 0.0005)]
    assert_schedule_in_steps(s, 10, [2, 3, 4, 5])
    assert s["anchors"]["wh"][0] == [0.95878, 3.10197] and s["anchors"]["wh"][4] == [4.91803, 6.25225]
    assert s["input"]["mean"] == [0.0, 0.0, 0.0] and s["input"]["std"] == [1.0, 1.0, 1.0]


@pytest.mark.slow
@pytest.mark.parametrize("recipe", ["yowo_ucf24.yaml", "yowo_jhmdb.yaml"])
def test_yowo_recipes_train_two_steps_and_evaluate(
    recipe: str, ucf24: Path, jhmdb: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = ucf24 if recipe == "yowo_ucf24.yaml" else jhmdb
    result = train_smoke(capsys, tmp_path, "action", recipe, f"data={data}", pretrained_yowo(tmp_path / "init.st"))
    assert 0.0 <= result["frame_map"] <= 1.0


# ---------------------------------------------------------------- ACT
def pretrained_act(path: Path) -> str:
    """A stand-in for a Caffe-converted ACT / VGG16 file: the Caffe input convention in its
    metadata (BGR, 0..255 minus (104, 117, 123), plain bilinear warp) and one trunk tensor."""
    from singleshot.engine.weights import save_weights

    meta = {
        "task": "action",
        "family": "act",
        "architecture": "act_vgg16",
        "input_size": [300, 300],
        "channel_order": "BGR",
        "mean": [104 / 255, 117 / 255, 123 / 255],
        "std": [1 / 255] * 3,
        "resize": {"interpolation": "bilinear", "antialias": False},
    }
    save_weights(path, {"backbone.vgg.0.bias": torch.full((64,), 0.1)}, meta)
    return f"pretrained={path}"


def test_act_ucf24_dry_run_is_act_s_caffe_solver(
    act_data: tuple[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    s = dry(capsys, tmp_path, "action", "act_ucf24.yaml", *act_data, pretrained_act(tmp_path / "init.st"))
    p = s["priors"]
    # ACT's VGG16 (pool5 2x2 stride 1): maps 38, 18, 9, 5, 3, 1 -> 8396 anchor cuboids, SSD300's VOC
    # sizes (first map 30 / 60 px), not clipped
    assert s["model"] == "act_vgg16" and (p["name"], p["spec"], p["count"]) == ("voc", "act300_pool5_2x2", 8396)
    assert p["first_map"] == {"size": 38, "min_size": 30.0, "max_size": 60.0} and p["clip"] == "none"
    # solver_RGB.prototxt: SGD base_lr 1e-4, momentum 0.9, weight_decay 5e-4; train_RGB.prototxt: the
    # shared trunk's weights at lr_mult 1/6 and biases at 1/3 with decay_mult 0; the heads at 1 and 2
    assert s["optimizer"] == {"name": "sgd", "momentum": 0.9}
    got = sorted((round(g["lr"] / 1e-4, 6), g["weight_decay"]) for g in s["param_groups"])
    assert got == [(0.166667, 0.0005), (0.333333, 0.0), (1.0, 0.0005), (2.0, 0.0)]
    assert sum(g["parameters"] for g in s["param_groups"]) == s["num_parameters"] == s["trainable_parameters"]
    assert s["accumulation"] == {"accumulate": 1, "mode": "mean", "batch": 5, "images_per_step": 5}
    assert s["schedule"]["gamma"] == 0.1 and s["schedule"]["warmup_steps"] == 0
    assert_schedule_in_steps(s, 12, [8, 11])
    # ACT_datalayer.py: BGR frames minus (104, 117, 123), cv2.resize INTER_LINEAR (from the pretrained file)
    i = s["input"]
    assert (i["size"], i["channel_order"], i["value_range"]) == ([300, 300], "BGR", "0-255")
    assert i["mean"] == [104.0, 117.0, 123.0] and i["std"] == [1.0, 1.0, 1.0]
    assert i["resize"] == {"interpolation": "bilinear", "antialias": False}
    assert s["train_samples"] == 2  # the two K = 6 windows of the 7-frame training tube


@pytest.mark.slow
def test_act_recipe_trains_two_steps_and_evaluates(
    act_data: tuple[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = train_smoke(capsys, tmp_path, "action", "act_ucf24.yaml", *act_data, pretrained_act(tmp_path / "a.st"))
    assert 0.0 <= result["frame_map"] <= 1.0


# ---------------------------------------------------------------- GG-CNN
def test_ggcnn_cornell_dry_run_is_ggcnn_s_recipe(
    shared_data: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    s = dry(capsys, tmp_path, "grasp", "ggcnn_cornell.yaml", f"data={shared_data('cornell')}")
    # dougsm/ggcnn: 62,420 parameters; train_ggcnn.py Adam (torch defaults: lr 1e-3, no weight decay), batch 8
    assert s["model"] == "ggcnn" and s["num_parameters"] == s["trainable_parameters"] == 62420
    assert s["optimizer"] == {"name": "adam"}
    assert [(g["lr"], g["weight_decay"]) for g in s["param_groups"]] == [(0.001, 0.0)]
    assert s["schedule"]["name"] == "constant" and s["accumulation"]["batch"] == 8
    assert s["input"]["size"] == [300, 300] and s["input"]["input"] == "depth" and s["input"]["channels"] == 1
    assert "priors" not in s and "anchors" not in s
    assert s["train_samples"] == 2  # --split 0.9 by order: int(3 * 0.9) of the 3 samples train


def test_ggcnn2_jacquard_dry_run_is_ggcnn2_s_recipe(
    shared_data: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    s = dry(capsys, tmp_path, "grasp", "ggcnn2_jacquard.yaml", f"data={shared_data('jacquard')}")
    assert s["model"] == "ggcnn2" and s["num_parameters"] == 66676
    assert [(g["lr"], g["weight_decay"]) for g in s["param_groups"]] == [(0.001, 0.0)]
    assert s["input"]["size"] == [300, 300] and s["train_samples"] == 2


def test_grasp_recipes_split_and_run_as_ggcnn(shared_data: Callable[..., Path]) -> None:
    """train_ggcnn.py --split 0.9 splits the sorted file list by order (both datasets); 50 epochs of
    1000 batches of 8 are ~500 passes over Cornell's 796 training images and ~8 over Jacquard's ~48.6k."""
    cornell = make_config(GraspConfig, {"cfg": str(CONFIGS / "ggcnn_cornell.yaml")})
    jacquard = make_config(GraspConfig, {"cfg": str(CONFIGS / "ggcnn2_jacquard.yaml")})
    assert cornell.split == jacquard.split == "reference" and cornell.test_fraction == jacquard.test_fraction == 0.1
    assert cornell.epochs * (796 // cornell.batch) == pytest.approx(50 * 1000, rel=0.02)
    assert jacquard.epochs * (48_600 // jacquard.batch) == pytest.approx(50 * 1000, rel=0.05)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("recipe", "folder"), [("ggcnn_cornell.yaml", "cornell"), ("ggcnn2_jacquard.yaml", "jacquard")]
)
def test_grasp_recipes_train_two_steps_and_evaluate(
    recipe: str, folder: str, shared_data: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = train_smoke(capsys, tmp_path, "grasp", recipe, f"data={shared_data(folder)}")
    assert result["n"] == 1 and 0.0 <= result["success_rate"] <= 1.0
