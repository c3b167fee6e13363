from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from torchvision.ops import box_iou

from singleshot.cli import main
from singleshot.data.input_spec import InputSpec
from singleshot.data.shapes import SHAPES_CLASSES, write_shapes_dataset
from singleshot.engine.weights import load_weights, save_weights
from singleshot.errors import ConfigError
from singleshot.losses.multibox import hard_negative_mask
from singleshot.models.small import ssd_slim
from singleshot.models.tiny import ssd_tiny
from singleshot.ops.boxes import cxcywh_to_xyxy
from singleshot.structures import BoxTarget
from singleshot.tasks.detect.distill import DetectKDMask, TeacherInput, load_teacher, prior_correspondence
from singleshot.tasks.detect.predictor import IMAGENET_MEAN, IMAGENET_STD, model_meta, normalize

SIZE = 96


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_shapes_dataset(tmp_path_factory.mktemp("shapes"), 16, 8, size=SIZE, seed=3)


def _teacher_file(folder: Path, name: str, arch: str, size: int, classes: list[str] | None = None) -> Path:
    torch.manual_seed(7)
    build = {"ssd_tiny": ssd_tiny, "ssd_slim": ssd_slim}[arch]
    model = build(len(SHAPES_CLASSES), image_size=size)
    path = folder / name
    save_weights(path, model, model_meta(model, arch, {"image_size": size}, classes or list(SHAPES_CLASSES)))
    return path


def _train_args(data: Path, project: Path, name: str, *extra: str) -> list[str]:
    return [
        "detect",
        "train",
        f"data={data}",
        f"classes={','.join(SHAPES_CLASSES)}",
        "train_set=train",
        "val_set=val",
        "model=ssd_tiny",
        f"imgsz={SIZE}",
        "epochs=1",
        "batch=8",
        "workers=0",
        "augment=false",
        "warmup=0",
        "lr=0.01",
        "schedule=constant",
        "plot_every=0",
        f"project={project}",
        f"name={name}",
        *extra,
    ]


def _csv_row(path: Path) -> dict[str, str]:
    with path.open() as f:
        return list(csv.DictReader(f))[-1]


def test_train_with_teacher_aux_and_features_saves_only_the_student(
    shapes: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    teacher = _teacher_file(tmp_path, "teacher.safetensors", "ssd_tiny", SIZE)
    args = _train_args(shapes, tmp_path, "kd", f"teacher={teacher}", "aux=true", "feat_weight=0.5", "kd_temperature=3")
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert 0.0 <= result["map50"] <= 1.0
    row = _csv_row(tmp_path / "kd" / "results.csv")
    for key in ("train/loc", "train/conf", "train/kd", "train/feat", "train/aux_loc", "train/aux_conf"):
        assert key in row and float(row[key]) >= 0.0, key
    assert float(row["train/kd"]) > 0.0 and float(row["train/feat"]) > 0.0
    state, meta = load_weights(result["weights"])
    plain = ssd_tiny(len(SHAPES_CLASSES), image_size=SIZE)
    assert set(state) == set(plain.state_dict())  # no teacher, adapter or auxiliary head keys
    plain.load_state_dict(state)  # strict
    assert meta["train_config"]["teacher"] == str(teacher) and meta["architecture"] == "ssd_tiny"
    # the checkpoint keeps the train-only parts, so resume continues with them
    assert (
        main(
            args[:-4]
            + ["epochs=2", "resume=true", f"teacher={teacher}", "aux=true", "feat_weight=0.5", "kd_temperature=3"]
        )
        == 0
    )
    assert _csv_row(tmp_path / "kd" / "results.csv")["epoch"] == "2"


def test_teacher_of_another_architecture_and_size(
    shapes: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    teacher = _teacher_file(tmp_path, "slim.safetensors", "ssd_slim", 160)
    assert main(_train_args(shapes, tmp_path, "slim", f"teacher={teacher}", "kd_mask=all")) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert float(_csv_row(tmp_path / "slim" / "results.csv")["train/kd"]) > 0.0
    state, _ = load_weights(result["weights"])
    assert set(state) == set(ssd_tiny(len(SHAPES_CLASSES), image_size=SIZE).state_dict())


def test_class_mismatch_and_bad_keys_fail_naming_the_problem(
    shapes: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wrong = _teacher_file(tmp_path, "wrong.safetensors", "ssd_tiny", SIZE, list(reversed(SHAPES_CLASSES)))
    assert main(_train_args(shapes, tmp_path, "bad", f"teacher={wrong}")) == 2
    err = capsys.readouterr().err
    assert "wrong.safetensors" in err and "classes" in err
    with pytest.raises(ConfigError, match="differ"):
        load_teacher(wrong, SHAPES_CLASSES)
    assert main(_train_args(shapes, tmp_path, "bad", "feat_weight=1")) == 2
    assert "teacher=" in capsys.readouterr().err
    assert main(_train_args(shapes, tmp_path, "bad", f"teacher={wrong}", "kd_mask=some")) == 2
    assert "kd_mask" in capsys.readouterr().err


def test_prior_correspondence_matches_torchvision_iou() -> None:
    student = ssd_tiny(5, image_size=SIZE).priors
    teacher = ssd_slim(5, image_size=160).priors
    assert prior_correspondence(student, student.clone()) == (None, None)
    index, valid = prior_correspondence(student, teacher, min_iou=0.5, chunk=100)
    iou = box_iou(cxcywh_to_xyxy(student), cxcywh_to_xyxy(teacher))
    best, _ = iou.max(dim=1)
    assert index is not None and valid is not None
    torch.testing.assert_close(iou.gather(1, index[:, None]).squeeze(1), best)  # an argmax (ties may differ)
    assert torch.equal(valid, best >= 0.5)


def test_kd_mask_modes() -> None:
    priors = ssd_tiny(5, image_size=SIZE).priors
    p = priors.shape[0]
    box = cxcywh_to_xyxy(priors[10:11]) * SIZE  # a ground truth exactly on prior 10
    targets = [
        BoxTarget(boxes=box, labels=torch.tensor([2]), difficult=torch.tensor([False]), size=(SIZE, SIZE)),
        BoxTarget(size=(SIZE, SIZE)),
    ]
    logits = torch.randn(2, p, 6)
    out = {"cls_logits": logits}
    assert DetectKDMask(priors, "all")(out, targets) is None
    pos = DetectKDMask(priors, "positive")(out, targets)
    assert pos is not None and bool(pos[0, 10]) and not bool(pos[1].any())
    iou = box_iou(box, cxcywh_to_xyxy(priors) * SIZE)[0]
    assert torch.equal(pos[0], (iou >= 0.5) | (torch.arange(p) == 10))
    matched = DetectKDMask(priors, "matched")(out, targets)
    assert matched is not None and int(matched[0].sum()) == 4 * int(pos[0].sum()) and not bool(matched[1].any())
    # the negatives are the 3:1 hardest by the student's background loss: -log softmax(x)[0]
    bg = -torch.log_softmax(logits, -1)[..., 0]
    assert torch.equal(matched & ~pos, hard_negative_mask(bg, pos, 3.0))
    with pytest.raises(ConfigError, match="kd_mask"):
        DetectKDMask(priors, "nope")


def test_teacher_input_renormalises_swaps_and_resizes() -> None:
    raw = torch.rand(2, 3, 40, 40)
    student_x = normalize(raw, IMAGENET_MEAN, IMAGENET_STD)
    mean_t, std_t = (0.4, 0.45, 0.5), (1 / 255, 1 / 255, 1 / 255)
    student = InputSpec((40, 40))
    t_in = TeacherInput(student, InputSpec((40, 40), "BGR", mean_t, std_t))
    torch.testing.assert_close(t_in(student_x), normalize(raw.flip(1), mean_t, std_t), rtol=1e-4, atol=1e-3)
    same = TeacherInput(student, InputSpec((20, 20), antialias=False))
    assert same.same_norm
    want = torch.nn.functional.interpolate(student_x, size=(20, 20), mode="bilinear", align_corners=False)
    torch.testing.assert_close(same(student_x), want)
    # the teacher's resize policy: antialiased when its metadata says so, from [0, 1] RGB pixels
    caffe = InputSpec.named("caffe", 20, antialias=True)
    shrunk = torch.nn.functional.interpolate(raw, size=(20, 20), mode="bilinear", align_corners=False, antialias=True)
    torch.testing.assert_close(TeacherInput(student, caffe)(student_x), caffe.normalize(shrunk), rtol=1e-4, atol=2e-3)
