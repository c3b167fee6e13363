from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from singleshot.cli import main
from singleshot.data.shapes import SHAPES_CLASSES, write_shapes_dataset
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


@pytest.mark.slow  # six CLI calls, two of them val (with its pictures)
def test_predict_val_and_train_number_their_folders_and_take_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A run folder is never overwritten: predict, predict2, predict3; ``name=`` for every mode;
    ``exist_ok=true`` reuses the folder; a failed predict leaves no folder."""
    data = write_shapes_dataset(tmp_path / "shapes", 1, 2, size=160, seed=0)
    torch.manual_seed(0)
    model = create_model("ssd_tiny", len(SHAPES_CLASSES), image_size=160)
    weights = tmp_path / "tiny.safetensors"
    save_weights(weights, model, model_meta(model, "ssd_tiny", {"image_size": 160}, list(SHAPES_CLASSES)))
    project = tmp_path / "runs"
    image = data / "VOC2007" / "JPEGImages" / "000001.jpg"
    predict = ["detect", "predict", f"weights={weights}", f"source={image}", f"project={project}"]
    seen = []
    for _ in range(3):
        assert main(predict) == 0
        got = _last_json(capsys)
        seen.append(got["save_dir"])
        assert got["out"] == got["save_dir"] and (Path(got["save_dir"]) / "000001.jpg").is_file()
    assert seen == [str(project / n) for n in ("predict", "predict2", "predict3")]
    assert main([*predict, "name=mine"]) == 0 and _last_json(capsys)["save_dir"] == str(project / "mine")
    (project / "mine" / "note.txt").write_text("kept")
    assert main([*predict, "name=mine", "exist_ok=true"]) == 0
    assert _last_json(capsys)["save_dir"] == str(project / "mine") and (project / "mine" / "note.txt").is_file()
    assert (
        main(["detect", "predict", f"weights={weights}", f"source={tmp_path / 'nope.jpg'}", f"project={project}"]) == 2
    )
    assert not (project / "predict4").exists()  # the failed call used up no number

    val = ["detect", "val", f"weights={weights}", f"data={data}", "val_set=val", "workers=0", f"project={project}"]
    for expected in ("val", "check"):
        assert main([*val, "name=check"] if expected == "check" else val) == 0
        got = _last_json(capsys)
        assert got["save_dir"] == str(project / expected) and "map50" in got
        assert json.loads((project / expected / "metrics.json").read_text())["map50"] == got["map50"]

    train = ["detect", "train", f"data={data}", "train_set=train", "val_set=val", "model=ssd_tiny", "imgsz=160"]
    train += [f"classes={','.join(SHAPES_CLASSES)}", "workers=0", "batch=1", f"project={project}", "dry_run=true"]
    assert main([*train, "name=mine"]) == 0 and _last_json(capsys)["out"] == str(project / "mine2")
    assert main(train) == 0 and _last_json(capsys)["out"] == str(project / "train")
    assert not (project / "train").exists() and not (project / "mine2").exists()  # a dry run writes nothing


def _image(path: Path, seed: int) -> None:
    import numpy as np
    from PIL import Image

    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(path)


def test_predict_folder_ids_unique_and_unreadable_images_skipped_and_listed(
    tmp_path: Path, slim_weights: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """``x.jpg`` and ``x.png`` get ids ``x`` and ``x_1`` (two pictures, said in the log); a corrupt
    image is skipped, listed in skipped.txt, and the exit status is 3; a folder of corrupt images is
    an error (2) that leaves no run folder; one corrupt image given by name is an error naming it."""
    folder = tmp_path / "images"
    folder.mkdir()
    _image(folder / "x.jpg", 0)
    _image(folder / "x.png", 1)
    _image(folder / "y.jpg", 2)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    args = ["detect", "predict", f"weights={slim_weights}", f"project={tmp_path / 'runs'}", "conf=0", "batch=2"]
    assert main([*args, f"source={folder}"]) == 3
    got = _last_json(capsys)
    out = Path(got["out"])
    assert got["images"] == 3 and got["skipped_inputs"] == 1
    assert sorted(p.name for p in out.glob("*.jpg")) == ["x.jpg", "x_1.jpg", "y.jpg"]
    ids = {r["image_id"] for r in json.loads((out / "predictions.json").read_text())}
    assert ids == {"x", "x_1", "y"}  # conf=0: every image has detections
    assert "share the id 'x'" in caplog.text and f"x_1 ({folder / 'x.png'})" in caplog.text
    listed = (out / "skipped.txt").read_text()
    assert got["skipped_list"] == str(out / "skipped.txt") and "broken.jpg" in listed and "x.png" not in listed

    bad = tmp_path / "all_bad"
    bad.mkdir()
    for name in ("a.jpg", "b.png"):
        (bad / name).write_bytes(b"garbage")
    assert main([*args, f"source={bad}", "name=bad"]) == 2
    err = capsys.readouterr().err
    assert f"{bad}: none of its 2 image file(s) could be read" in err and "a.jpg" in err
    assert not (tmp_path / "runs" / "bad").exists()
    assert main([*args, f"source={folder / 'broken.jpg'}", "name=one"]) == 2
    assert f"{folder / 'broken.jpg'}: cannot decode image" in capsys.readouterr().err
