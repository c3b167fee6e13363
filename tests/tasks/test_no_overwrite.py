"""No mode writes over its inputs, and a run folder has one writer at a time (issue 20)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from singleshot.cli import main
from singleshot.data.shapes import SHAPES_CLASSES, write_shapes_dataset
from singleshot.engine.weights import save_weights
from singleshot.errors import ConfigError
from singleshot.models import create_model
from singleshot.tasks.common import refuse_overwrite
from singleshot.tasks.detect.predictor import model_meta

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture()
def tiny(tmp_path: Path) -> tuple[Path, Path]:
    """(weights of an untrained ssd_tiny, a two-image shapes VOC root)."""
    data = write_shapes_dataset(tmp_path / "shapes", 1, 2, size=64, seed=0)
    torch.manual_seed(0)
    model = create_model("ssd_tiny", len(SHAPES_CLASSES), image_size=64)
    weights = tmp_path / "tiny.safetensors"
    save_weights(weights, model, model_meta(model, "ssd_tiny", {"image_size": 64}, list(SHAPES_CLASSES)))
    return weights, data


def _bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def test_refuse_overwrite_resolves_links_and_folders(tmp_path: Path) -> None:
    src = tmp_path / "w.safetensors"
    src.write_bytes(b"x")
    (tmp_path / "link.safetensors").symlink_to(src)
    with pytest.raises(ConfigError, match=r"dst=.*link.safetensors.*weights=.*w.safetensors"):
        refuse_overwrite({"dst": tmp_path / "link.safetensors"}, {"weights": src})
    with pytest.raises(ConfigError, match="lies in .or is. the output folder"):
        refuse_overwrite({"out": tmp_path}, {"source": src}, folder=True)
    refuse_overwrite({"dst": tmp_path / "other.onnx"}, {"weights": src, "source": "rtsp://cam/1", "calib": ""})
    refuse_overwrite({"out": tmp_path / "sub"}, {"source": src}, folder=True)  # beside, not inside


def test_predict_into_its_own_source_folder_is_refused(
    tmp_path: Path, tiny: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    weights, data = tiny
    project = tmp_path / "P"
    images = project / "predict"
    images.mkdir(parents=True)
    for p in sorted((data / "VOC2007" / "JPEGImages").glob("*.jpg")):
        (images / p.name).write_bytes(p.read_bytes())
    before = _bytes(images)
    base = ["detect", "predict", f"weights={weights}", f"project={project}", "exist_ok=true"]
    assert main([*base, f"source={images}"]) == 2
    err = capsys.readouterr().err
    assert str(images) in err and "output folder" in err
    one = images / sorted(before)[0]
    assert main([*base, f"source={one}"]) == 2  # a single picture would be replaced by its drawing
    assert _bytes(images) == before


def test_export_onto_its_weights_is_refused(
    tmp_path: Path, tiny: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    weights, _ = tiny
    before = weights.read_bytes()
    assert main(["detect", "export", f"weights={weights}", "format=onnx", f"dst={weights}"]) == 2
    err = capsys.readouterr().err
    assert f"dst={weights}" in err and f"weights={weights}" in err
    assert weights.read_bytes() == before


@pytest.mark.parametrize("task", ["detect", "action", "grasp"])
def test_convert_onto_its_source_is_refused(tmp_path: Path, task: str, capsys: pytest.CaptureFixture[str]) -> None:
    from singleshot.tasks.grasp.predictor import build_grasp_model

    src = tmp_path / "foreign.pth"
    if task == "grasp":  # a convertible source: today's code replaced it with the .safetensors
        torch.save(build_grasp_model("ggcnn", "depth").state_dict(), src)
    else:
        src.write_bytes(b"precious")
    before = src.read_bytes()
    kind = {"detect": "torchvision", "action": "yowo", "grasp": "ggcnn"}[task]
    assert main([task, "convert", f"from={kind}", f"src={src}", f"dst={src}"]) == 2
    assert f"dst={src}" in capsys.readouterr().err and src.read_bytes() == before


HOLDER = """
import sys, time
from singleshot.io.runlock import acquire_run_lock
acquire_run_lock(sys.argv[1])
print("held", flush=True)
time.sleep(60)
"""


def test_a_second_train_on_a_locked_run_folder_names_the_holder(
    tmp_path: Path, tiny: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    _, data = tiny
    run = tmp_path / "runs" / "same"
    run.mkdir(parents=True)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(run)], stdout=subprocess.PIPE, text=True)
    train = [
        "detect", "train", f"data={data}", "model=ssd_tiny", "imgsz=64", "epochs=1", "batch=2", "workers=0",
        "augment=false", "warmup=0", "plot_every=0", f"project={tmp_path / 'runs'}", "name=same", "exist_ok=true",
    ]  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        assert main(train) == 2
        err = capsys.readouterr().err
        assert f"process {holder.pid}" in err and str(run) in err
        assert sorted(p.name for p in run.iterdir()) == [".lock"]  # nothing of the second run written
    finally:
        holder.kill()
        holder.wait()
