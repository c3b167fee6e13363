from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from singleshot.cli import main
from singleshot.engine.weights import save_weights
from singleshot.models import create_model
from singleshot.tasks.detect.predictor import model_meta


def _last_json(capsys: pytest.CaptureFixture[str]) -> dict:
    out = capsys.readouterr().out.strip().splitlines()
    return json.loads(out[-1])


@pytest.fixture()
def slim_weights(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    model = create_model("ssd_slim", 3, image_size=160)
    path = tmp_path / "slim.safetensors"
    save_weights(path, model, model_meta(model, "ssd_slim", {"image_size": 160}, ["a", "b", "c"]))
    return path


def test_predict_folder_and_video(
    shared_data: Callable[..., Path], tmp_path: Path, slim_weights: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = shared_data("voc", "VOCdevkit", "VOC2007", "JPEGImages")
    assert (
        main(["detect", "predict", f"weights={slim_weights}", f"source={folder}", f"project={tmp_path}", "conf=0.2"])
        == 0
    )
    got = _last_json(capsys)
    out = Path(got["out"])
    n_images = len(list(folder.glob("*.jpg")))
    assert got["images"] == n_images and len(list(out.glob("*.jpg"))) == n_images
    results = json.loads((out / "predictions.json").read_text())
    assert len(results) == got["detections"]
    assert all(r["score"] > 0.2 and len(r["bbox"]) == 4 for r in results)
    video = shared_data("video", "v_Basketball_g01_c01.avi")
    assert (
        main(["detect", "predict", f"weights={slim_weights}", f"source={video}", f"project={tmp_path}", "batch=16"])
        == 0
    )
    got = _last_json(capsys)
    assert got["images"] == 141
    assert (Path(got["out"]) / "v_Basketball_g01_c01.mp4").stat().st_size > 10_000


def test_predict_missing_source_names_it(
    tmp_path: Path, slim_weights: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.jpg"
    assert main(["detect", "predict", f"weights={slim_weights}", f"source={missing}", f"project={tmp_path}"]) == 2
    assert str(missing) in capsys.readouterr().err
