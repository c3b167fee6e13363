"""``project=`` (or ``dst=``) naming a file, or a path under one: a one-line ConfigError naming the
file, in train, val, predict, export and the demos, never ``NotADirectoryError`` /
``FileExistsError`` from ``mkdir``."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from singleshot.cli import main
from singleshot.data.shapes import SHAPES_CLASSES, write_shapes_dataset
from singleshot.engine.train_config import EngineOptions
from singleshot.engine.weights import save_weights
from singleshot.errors import ConfigError
from singleshot.io.folders import file_in_the_way
from singleshot.models import create_model
from singleshot.tasks.common import run_dir
from singleshot.tasks.detect.predictor import model_meta
from singleshot.tasks.generated_data import ensure_dataset

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture()
def a_file(tmp_path: Path) -> Path:
    path = tmp_path / "runs.txt"
    path.write_text("not a folder")
    return path


def test_file_in_the_way(tmp_path: Path, a_file: Path) -> None:
    assert file_in_the_way(a_file) == a_file
    assert file_in_the_way(a_file / "sub" / "deeper") == a_file
    assert file_in_the_way(tmp_path / "new" / "sub") is None and file_in_the_way(tmp_path) is None
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    assert file_in_the_way(tmp_path / "dangling" / "x") == tmp_path / "dangling"


@pytest.mark.parametrize("mode", ["train", "val", "predict"])
@pytest.mark.parametrize("options", [{}, {"exist_ok": True}, {"resume": True}, {"create": False}])
def test_run_dir_names_the_file(a_file: Path, mode: str, options: dict) -> None:
    create = options.pop("create", True)
    for project in (a_file, a_file / "sub"):
        cfg = EngineOptions(project=str(project), **options)
        with pytest.raises(ConfigError, match=rf"project={project}: {a_file} is a file, not a folder"):
            run_dir(cfg, mode, resume=cfg.resume, create=create)


def test_a_demo_dataset_under_a_file(a_file: Path) -> None:
    with pytest.raises(ConfigError, match=rf"{a_file} is a file, not a folder"):
        ensure_dataset(a_file / "demo_data", "k", lambda root: None)


def test_every_mode_says_it_in_one_line(a_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "shapes"
    write_shapes_dataset(data, 4, 2, size=160, seed=0)
    torch.manual_seed(0)
    model = create_model("ssd_slim", len(SHAPES_CLASSES), image_size=160)
    weights = tmp_path / "slim.safetensors"
    save_weights(weights, model, model_meta(model, "ssd_slim", {"image_size": 160}, list(SHAPES_CLASSES)))
    image = next((data / "VOC2007" / "JPEGImages").glob("*.jpg"))
    calls = {
        "train": [
            "detect",
            "train",
            f"data={data}",
            "model=ssd_slim",
            "imgsz=160",
            "dry_run=true",
            f"project={a_file}",
        ],
        "val": ["detect", "val", f"weights={weights}", f"data={data}", f"project={a_file}"],
        "predict": ["detect", "predict", f"weights={weights}", f"source={image}", f"project={a_file / 'sub'}"],
        "export": ["detect", "export", f"weights={weights}", f"dst={a_file / 'model.onnx'}"],
    }
    for mode, argv in calls.items():
        capsys.readouterr()
        assert main(argv) == 2, mode
        err = capsys.readouterr().err.strip().splitlines()
        assert err and err[-1].startswith("error: ") and f"{a_file} is a file, not a folder" in err[-1], (mode, err)
        assert "Traceback" not in "\n".join(err)
    assert a_file.read_text() == "not a folder"
