"""``grasp train`` and ``grasp demo`` on tiny generated Cornell data (smoke runs of the real wiring:
readers, augmentation, engine, GraspLoss, GraspEvaluator, weights, plots); the recipes load."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import torch

from singleshot.cli import main
from singleshot.config import build_config
from singleshot.data.grasp.synthetic import generate_grasp_dataset
from singleshot.engine.weights import load_weights
from singleshot.tasks.grasp.config import GraspConfig

pytestmark = [
    pytest.mark.filterwarnings("ignore:.*inpainted"),  # the synthetic depth holes
    pytest.mark.usefixtures("one_thread"),
]

CONFIGS = Path(__file__).resolve().parents[3] / "configs"
TINY = [
    "size=36",
    "crop_size=48",
    "batch=4",
    "workers=0",
    "min_distance=4",
    "threshold=-1",
    "plot_every=1",
    "checkpoint_every=0",
]


def _last_json(capsys: pytest.CaptureFixture[str]) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def _wilson(k: int, n: int, z: float = 1.959963984540054) -> list[float]:
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return [max(0.0, centre - half), min(1.0, centre + half)]


def test_train_ggcnn_then_val(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    generate_grasp_dataset(data, 12, seed=0, size=(48, 64))
    args = [
        "grasp",
        "train",
        "model=ggcnn",
        f"data={data}",
        "epochs=2",
        "test_fraction=0.25",
        f"project={tmp_path}",
        *TINY,
    ]
    assert main(args) == 0
    got = _last_json(capsys)
    assert got["n"] == 3 and 0 <= got["success_rate"] <= 1 and got["epochs"] in (1, 2)
    assert got["ci95"] == pytest.approx(_wilson(got["n_success"], 3))
    assert "image-wise" in got["split"] and "9 train / 3 test" in got["split"]
    out = Path(got["out"])
    rows = list(csv.DictReader((out / "results.csv").read_text().splitlines()))
    assert len(rows) == 2 and {"train/pos", "train/cos", "train/sin", "train/width", "metrics/success_rate"} <= set(
        rows[0]
    )
    assert (out / "results.png").is_file()
    state, meta = load_weights(got["weights"])
    assert meta["task"] == "grasp" and meta["architecture"] == "ggcnn" and meta["input_size"] == [36, 36]
    assert meta["crop_size"] == 48 and "9 train / 3 test" in meta["split"]
    # val reads size and crop from the weights and scores the same held-out images
    assert (
        main(
            [
                "grasp",
                "val",
                f"weights={got['weights']}",
                f"data={data}",
                "test_fraction=0.25",
                "workers=0",
                "min_distance=4",
                "threshold=-1",
                f"project={tmp_path}",
            ]
        )
        == 0
    )
    again = _last_json(capsys)
    assert again["n"] == 3 and again["split"] == got["split"]


def test_train_psp_with_aux_head_saves_a_deployable_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    generate_grasp_dataset(data, 6, seed=1, size=(48, 64))
    args = [
        "grasp",
        "train",
        "model=psp_resnet18",
        "aux=true",
        "input=rgbd",
        f"data={data}",
        "epochs=1",
        "test_fraction=0.34",
        "loss=smooth_l1",
        f"project={tmp_path}",
        *TINY,
    ]
    assert main(args) == 0
    got = _last_json(capsys)
    rows = list(csv.DictReader((Path(got["out"]) / "results.csv").read_text().splitlines()))
    assert float(rows[0]["train/aux"]) > 0  # the auxiliary loss was trained
    state, meta = load_weights(got["weights"])
    assert not any("aux_head" in k for k in state) and meta["input"] == "rgbd"
    assert (
        main(
            [
                "grasp",
                "val",
                f"weights={got['weights']}",
                f"data={data}",
                "test_fraction=0.34",
                "workers=0",
                f"project={tmp_path}",
            ]
        )
        == 0
    )
    assert _last_json(capsys)["n"] == got["n"] == 3


def test_train_psp_from_an_imagenet_trunk_records_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import torchvision

    data = tmp_path / "data"
    generate_grasp_dataset(data, 6, seed=2, size=(48, 64))
    torch.manual_seed(5)
    trunk = torchvision.models.resnet18(weights=None).state_dict()
    file = tmp_path / "imagenet_resnet18.pth"
    torch.save(trunk, file)
    common = ["grasp", "train", f"data={data}", "epochs=1", "test_fraction=0.34", f"project={tmp_path}", *TINY]
    assert main([*common, "model=psp_resnet18", f"pretrained={file}", "name=psp"]) == 0
    got = _last_json(capsys)
    state, meta = load_weights(got["weights"])
    assert meta["pretrained"] == {"file": "imagenet_resnet18.pth", "kind": "torchvision resnet18"}
    assert meta["train_config"]["pretrained"] == str(file)
    # training (one Adam step here) moved the trunk a little from the file it started at: the stem's
    # filters are far closer to the file's than another initialisation's are
    start, trained = trunk["conv1.weight"], state["trunk.conv1.weight"]
    other = torchvision.models.resnet18(weights=None).state_dict()["conv1.weight"]
    assert (trained - start).abs().mean() < 0.25 * (other - start).abs().mean()
    assert state["adapter.weight"].shape == (3, 1, 1, 1) and "adapter.bias" not in state
    # GG-CNN has no trunk to fill; a ResNet-50 file does not fit a ResNet-18 trunk
    assert main([*common, "model=ggcnn", f"pretrained={file}"]) != 0
    assert "model=ggcnn has none" in capsys.readouterr().err
    r50 = tmp_path / "r50.pth"
    torch.save(torchvision.models.resnet50(weights=None).state_dict(), r50)
    assert main([*common, "model=psp_resnet18", f"pretrained={r50}"]) != 0
    assert "r50.pth: holds a resnet50 state dict" in capsys.readouterr().err


def test_demo_smoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = [
        "grasp",
        "demo",
        f"project={tmp_path}",
        "n_images=10",
        "image_height=48",
        "image_width=64",
        "epochs=1",
        "test_fraction=0.2",
        "eval_every=1",
        *TINY,
    ]
    assert main(args) == 0
    got = _last_json(capsys)
    assert {"success_rate", "n", "ci95", "split", "train_seconds", "total_seconds"} <= set(got) and got["n"] == 2
    data = tmp_path / "demo_data"
    assert (data / "01" / "pcd0100d.tiff").is_file() and (data / "01" / "pcd0109cpos.txt").is_file()
    assert (data / "objects.txt").is_file()
    assert len(list(Path(got["pictures"]).glob("pcd*_grasps.png"))) == 2
    assert (Path(got["out"]) / "results.png").is_file() and (Path(got["out"]) / "metrics.json").is_file()


@pytest.mark.parametrize("name", ["ggcnn_cornell.yaml", "ggcnn2_jacquard.yaml"])
def test_recipes_load(name: str) -> None:
    cfg = build_config(GraspConfig, CONFIGS / name, {"data": "x"})
    assert cfg.optimizer == "adam" and cfg.lr == 1e-3 and cfg.batch == 8 and cfg.zoom == (0.5, 1.0) and cfg.rotate90
    assert cfg.input == "depth" and cfg.size == 300


def test_train_with_a_teacher_adds_the_map_distillation_term(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``teacher=``: the kd term is trained and logged, the teacher stays frozen and out of the
    saved weights; a teacher of another input kind is refused."""
    from singleshot.engine.weights import save_weights
    from singleshot.losses.distill import StudentWithTeacher, map_distill_loss
    from singleshot.models.ggcnn import ggcnn2
    from singleshot.tasks.grasp.distill import build_training
    from singleshot.tasks.grasp.predictor import model_meta

    data = tmp_path / "data"
    generate_grasp_dataset(data, 8, seed=2, size=(48, 64))
    torch.manual_seed(1)
    teacher = ggcnn2(1).eval()
    t_path = tmp_path / "teacher.safetensors"
    save_weights(t_path, teacher, model_meta(GraspConfig(model="ggcnn2", size=36, crop_size=48)))
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    args = [
        "grasp",
        "train",
        "model=ggcnn",
        f"data={data}",
        "epochs=1",
        "test_fraction=0.25",
        f"project={tmp_path}",
        f"teacher={t_path}",
        "kd_weight=2.5",
        *TINY,
    ]
    assert main(args) == 0
    got = _last_json(capsys)
    rows = list(csv.DictReader((Path(got["out"]) / "results.csv").read_text().splitlines()))
    assert float(rows[0]["train/kd"]) > 0
    state, meta = load_weights(got["weights"])
    assert meta["architecture"] == "ggcnn" and not any(k.startswith(("teacher", "student", "_teacher")) for k in state)
    # the loss is the task loss plus kd_weight x the sum of the four map losses against the teacher
    from singleshot.losses.grasp import GraspLoss
    from singleshot.models.ggcnn import ggcnn

    student = ggcnn(1)
    cfg = GraspConfig(teacher=str(t_path), kd_weight=2.5)
    wrapped, loss = build_training(cfg, student, GraspLoss("mse"))
    assert isinstance(wrapped, StudentWithTeacher) and not any(
        p is q for p in wrapped.parameters() for q in wrapped.teacher.parameters()
    )
    x = torch.randn(2, 1, 36, 36)
    out = wrapped.train()(x)
    assert not wrapped.teacher.training
    with torch.no_grad():
        t_out = wrapped.teacher(x)
    from singleshot.structures import Grasps

    targets = [Grasps(grasps=torch.tensor([[18.0, 18.0, 0.3, 12.0, 6.0]]), scores=torch.ones(1), size=(36, 36))] * 2
    losses = loss(out, targets)
    expected = 2.5 * sum(map_distill_loss(out[k], t_out[k]) for k in ("pos", "cos", "sin", "width"))
    torch.testing.assert_close(losses["kd"], expected)
    losses["kd"].backward()
    assert all(p.grad is None for p in wrapped.teacher.parameters())
    for k, v in wrapped.teacher.state_dict().items():
        assert torch.equal(v, before[k])
    rgb = tmp_path / "rgb_teacher.safetensors"
    save_weights(rgb, ggcnn(3), model_meta(GraspConfig(input="rgb", size=36)))
    assert main([*args[: -len(TINY) - 2], f"teacher={rgb}", *TINY]) != 0
    assert "trained on 'rgb' input" in capsys.readouterr().err


def test_split_all_says_validation_reads_the_training_images(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    data = tmp_path / "data"
    generate_grasp_dataset(data, 4, seed=0, size=(48, 64))
    args = ["grasp", "train", "model=ggcnn", f"data={data}", "epochs=1", f"project={tmp_path}", *TINY]
    assert main([*args, "split=all", "plot_every=0"]) == 0
    got = _last_json(capsys)
    texts = [r.getMessage() for r in caplog.records if r.levelname == "WARNING" and "as training" in r.getMessage()]
    assert texts == [
        "validation reads the same 4 images as training: the metrics measure fit, not generalisation; "
        "hold images out with split=image, object, reference or kfold"
    ]
    assert got["warnings"] == texts and "all 4 images" in got["split"]
