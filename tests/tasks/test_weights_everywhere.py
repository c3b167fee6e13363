"""Weights everywhere: ``train weights=`` fine-tunes, checkpoints serve as weights, and weights or
models of another task are refused naming both families."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from singleshot.cli import main
from singleshot.data.shapes import write_shapes_dataset
from singleshot.engine.checkpoint import save_checkpoint
from singleshot.engine.weights import finetune_from, read_model_weights, save_weights
from singleshot.errors import ConfigError, WeightsError
from singleshot.models import create_model, list_models, model_from_meta
from singleshot.models.ggcnn import ggcnn
from singleshot.tasks.action.config import ActionConfig
from singleshot.tasks.action.predictor import action_meta, build_action_model
from singleshot.tasks.detect.predictor import build_detector, load_detector, model_meta
from singleshot.tasks.grasp.config import GraspConfig
from singleshot.tasks.grasp.predictor import model_meta as grasp_meta


def _detector(path: Path, classes: list[str], seed: int = 0) -> tuple[torch.nn.Module, dict]:
    torch.manual_seed(seed)
    model = create_model("ssd_tiny", len(classes), image_size=96)
    meta = model_meta(model, "ssd_tiny", {"image_size": 96}, classes)
    save_weights(path, model, meta)
    return model, meta


@pytest.fixture()
def family_weights(tmp_path: Path) -> dict[str, Path]:
    """One small weights file of each task: ``detect`` (ssd), ``action`` (yowo), ``grasp`` (ggcnn)."""
    _detector(tmp_path / "det.safetensors", ["a", "b", "c"])
    cfg = ActionConfig(arch="yowo_tiny", width=4, clip_len=4, imgsz=64)
    model, kwargs = build_action_model(cfg, 3)
    save_weights(tmp_path / "yowo.safetensors", model, action_meta(model, cfg, kwargs, ["a", "b", "c"]))
    save_weights(tmp_path / "grasp.safetensors", ggcnn(1), grasp_meta(GraspConfig()))
    return {
        "detect": tmp_path / "det.safetensors",
        "action": tmp_path / "yowo.safetensors",
        "grasp": tmp_path / "grasp.safetensors",
    }


def test_weights_of_another_task_are_refused_naming_both(family_weights: dict[str, Path]) -> None:
    families = {"detect": "ssd", "action": "yowo", "grasp": "ggcnn"}
    for task in families:
        for other, path in family_weights.items():
            if other == task:
                continue
            _, meta = read_model_weights(path)
            want = f"{path} holds {other} ({families[other]}) weights; {task} needs {task} weights"
            with pytest.raises(WeightsError) as err:
                model_from_meta(meta, task=task, source=path)
            assert str(err.value) == want


def test_cli_modes_refuse_another_tasks_weights(
    family_weights: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = tmp_path / "x.jpg"
    runs = tmp_path / "runs"
    commands = [
        ["detect", "predict", f"weights={family_weights['action']}", f"source={image}", f"project={runs}"],
        ["detect", "export", f"weights={family_weights['grasp']}", f"dst={tmp_path / 'x.onnx'}"],
        ["grasp", "export", f"weights={family_weights['detect']}", f"dst={tmp_path / 'y.onnx'}"],
    ]
    for argv in commands:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert f"needs {argv[0]} weights" in err and "Traceback" not in err


def test_a_model_of_another_task_is_refused_listing_only_this_tasks_models() -> None:
    with pytest.raises(ConfigError) as err:
        build_detector("act_tiny", 3)
    text = str(err.value)
    assert "act_tiny is an action (act) model; detect models: " in text
    assert all(name in text for name in list_models(task="detect"))
    assert not any(name in text.split("detect models: ")[1] for name in list_models(task="action"))


def test_finetune_loads_matching_tensors_and_reinitialises_class_heads(tmp_path: Path) -> None:
    old, _ = _detector(tmp_path / "old.safetensors", ["a", "b", "c"], seed=0)
    state, _ = read_model_weights(tmp_path / "old.safetensors")
    torch.manual_seed(1)
    same = create_model("ssd_tiny", 3, image_size=96)
    report = finetune_from(same, state, "old")
    assert not report["reinitialised"] and not report["dropped"]
    assert all(torch.equal(v, state[k]) for k, v in same.state_dict().items())
    torch.manual_seed(1)
    more = create_model("ssd_tiny", 5, image_size=96)
    fresh = {k: v.clone() for k, v in more.state_dict().items()}
    report = finetune_from(more, state, "old")
    assert report["reinitialised"] and sorted(report["reinitialised"]) == sorted(report["dropped"])  # class heads
    now = more.state_dict()
    assert all(torch.equal(now[k], state[k]) for k in report["loaded"])
    assert all(torch.equal(now[k], fresh[k]) for k in report["reinitialised"])


def test_train_weights_must_exist_and_be_of_the_task(
    family_weights: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nonexistent.safetensors"
    data = write_shapes_dataset(tmp_path / "shapes", 1, 1, size=96, seed=0)
    for weights, said in (
        (missing, "weights file not found"),
        (family_weights["action"], "detect needs detect weights"),
    ):
        argv = [
            "detect",
            "train",
            f"data={data}",
            "model=ssd_tiny",
            "imgsz=96",
            f"weights={weights}",
            f"project={tmp_path / 'r'}",
        ]
        assert main(argv) != 0
        err = capsys.readouterr().err
        assert str(weights) in err and said in err
    assert main(["grasp", "train", f"data={tmp_path}", f"weights={missing}", f"project={tmp_path / 'r'}"]) != 0
    assert "weights file not found" in capsys.readouterr().err


def _checkpoint(path: Path, model: torch.nn.Module, meta: dict | None, ema: torch.nn.Module | None = None) -> Path:
    """A checkpoint laid out as the trainer writes it, the model inside a training wrapper."""
    wrapper = torch.nn.ModuleDict({"student": model, "aux": torch.nn.Linear(2, 2)})
    state = {
        "model": wrapper.state_dict(),
        "ema": None if ema is None else {"model": torch.nn.ModuleDict({"student": ema}).state_dict(), "updates": 3},
        "epoch": 2,
        "weights_meta": None if meta is None else {"meta": meta, "prefix": "student"},
    }
    save_checkpoint(path, state)
    return path


def test_checkpoints_serve_as_weights(tmp_path: Path) -> None:
    model, meta = _detector(tmp_path / "w.safetensors", ["a", "b", "c"])
    last = _checkpoint(tmp_path / "last.pt", model, meta)
    loaded, got = load_detector(last)
    assert got["classes"] == ["a", "b", "c"] and got["epoch"] == 2
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in loaded.state_dict().items())
    torch.manual_seed(5)
    ema = create_model("ssd_tiny", 3, image_size=96)
    state, _ = read_model_weights(_checkpoint(tmp_path / "best.pt", model, meta, ema=ema))
    assert all(torch.equal(v, ema.state_dict()[k]) for k, v in state.items())  # the EMA is what is used
    with pytest.raises(WeightsError, match="holds no weights metadata"):
        read_model_weights(_checkpoint(tmp_path / "old.pt", model, None))
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(WeightsError, match="empty.pt"):
        read_model_weights(tmp_path / "empty.pt")


def test_cli_predict_with_a_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from PIL import Image

    model, meta = _detector(tmp_path / "w.safetensors", ["a", "b", "c"])
    last = _checkpoint(tmp_path / "last.pt", model, meta)
    Image.new("RGB", (64, 48), (120, 30, 200)).save(tmp_path / "x.jpg")
    argv = ["detect", "predict", f"weights={last}", f"source={tmp_path / 'x.jpg'}", f"project={tmp_path / 'r'}"]
    assert main(argv) == 0
    assert '"images": 1' in capsys.readouterr().out


def test_start_from_weights_for_action_and_grasp(family_weights: dict[str, Path]) -> None:
    from singleshot.tasks.common import start_from_weights

    cfg = ActionConfig(arch="yowo_tiny", width=4, clip_len=4, imgsz=64)
    model, _ = build_action_model(cfg, 5)  # other classes than the file's 3
    assert start_from_weights(model, family_weights["action"], "action", "yowo_tiny")["classes"] == ["a", "b", "c"]
    with pytest.raises(WeightsError, match="holds grasp \\(ggcnn\\) weights; action needs action weights"):
        start_from_weights(model, family_weights["grasp"], "action")
    with pytest.raises(WeightsError, match="holds action \\(yowo\\) weights; grasp needs grasp weights"):
        start_from_weights(ggcnn(1), family_weights["action"], "grasp")


def test_every_family_takes_weights_in_train() -> None:
    from singleshot.tasks.action.keys import TRAIN as ACTION_TRAIN
    from singleshot.tasks.detect.keys import KEYS as DETECT_KEYS
    from singleshot.tasks.grasp.keys import TRAIN as GRASP_TRAIN

    assert "weights" in ACTION_TRAIN and "weights" in DETECT_KEYS["train"] and "weights" in GRASP_TRAIN
