"""An empty (0 bytes) or truncated ``last.pt`` / ``.safetensors`` given to resume, val, predict or
export: a one-line error naming the file and saying it is empty or truncated, not ``not a readable
checkpoint ()`` or ``[Errno 22] Invalid argument``."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
import torch

from singleshot.cli import main
from singleshot.data.shapes import SHAPES_CLASSES, write_shapes_dataset
from singleshot.engine.checkpoint import load_checkpoint, save_checkpoint
from singleshot.engine.damaged_files import is_truncated
from singleshot.engine.weights import load_foreign_pth, load_weights, read_model_weights, save_weights
from singleshot.errors import WeightsError
from singleshot.models import create_model
from singleshot.tasks.detect.predictor import model_meta

pytestmark = pytest.mark.usefixtures("one_thread")


def _cut(path: Path, keep: int, to: Path) -> Path:
    to.write_bytes(path.read_bytes()[:keep])
    return to


def test_empty_and_truncated_checkpoints(tmp_path: Path) -> None:
    whole = tmp_path / "whole.pt"
    save_checkpoint(whole, {"model": {"w": torch.ones(2000)}, "epoch": 1})
    size = whole.stat().st_size
    assert not is_truncated(whole)
    empty = _cut(whole, 0, tmp_path / "last.pt")
    for load in (load_checkpoint, read_model_weights, load_foreign_pth):
        with pytest.raises(WeightsError, match=rf"^{empty}: empty file \(0 bytes\), not a .*cut short"):
            load(empty)
    for keep in (10, size // 2, size - 10):  # torch: not a ZIP / no central directory / Errno 22
        cut = _cut(whole, keep, tmp_path / f"cut{keep}.pt")
        assert is_truncated(cut)
        with pytest.raises(WeightsError, match=rf"^{cut}: truncated checkpoint \({keep} bytes; its end is missing\)"):
            load_checkpoint(cut)


def test_empty_and_truncated_safetensors(tmp_path: Path) -> None:
    whole = tmp_path / "whole.safetensors"
    save_weights(whole, {"w": torch.ones(2000)}, {"task": "detect"})
    size = whole.stat().st_size
    assert not is_truncated(whole)
    with pytest.raises(WeightsError, match=r"empty file \(0 bytes\), not a safetensors file"):
        load_weights(_cut(whole, 0, tmp_path / "empty.safetensors"))
    for keep in (5, 60, size // 2, size - 1):
        cut = _cut(whole, keep, tmp_path / f"cut{keep}.safetensors")
        with pytest.raises(WeightsError, match=rf"truncated safetensors file \({keep} bytes"):
            read_model_weights(cut)


def test_a_damaged_file_that_is_whole_keeps_the_readers_reason(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pt"
    with zipfile.ZipFile(junk, "w") as z:  # a whole zip, but not torch.save's
        z.writestr("notes.txt", "not a checkpoint")
    assert not is_truncated(junk)
    with pytest.raises(WeightsError, match=r"junk\.pt: not a readable checkpoint \(.+\)"):
        load_checkpoint(junk)


def test_every_mode_names_the_empty_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "shapes"
    write_shapes_dataset(data, 4, 2, size=160, seed=0)
    image = next((data / "VOC2007" / "JPEGImages").glob("*.jpg"))
    run = tmp_path / "p" / "run"
    run.mkdir(parents=True)
    empty = run / "last.pt"
    empty.write_bytes(b"")
    torch.manual_seed(0)
    model = create_model("ssd_slim", len(SHAPES_CLASSES), image_size=160)
    whole = tmp_path / "w.safetensors"
    save_weights(whole, model, model_meta(model, "ssd_slim", {"image_size": 160}, list(SHAPES_CLASSES)))
    half = _cut(whole, whole.stat().st_size // 2, tmp_path / "half.safetensors")
    calls = {
        "resume": ["detect", "train", f"data={data}", "model=ssd_slim", "imgsz=160", "resume=true"]
        + [f"project={tmp_path / 'p'}", "name=run", "epochs=1", "workers=0"],
        "val": ["detect", "val", f"weights={empty}", f"data={data}", f"project={tmp_path}"],
        "predict": ["detect", "predict", f"weights={empty}", f"source={image}", f"project={tmp_path}"],
        "export": ["detect", "export", f"weights={empty}", f"dst={tmp_path / 'm.onnx'}"],
        "predict (truncated)": ["detect", "predict", f"weights={half}", f"source={image}", f"project={tmp_path}"],
    }
    for mode, argv in calls.items():
        capsys.readouterr()
        assert main(argv) == 2, mode
        err = capsys.readouterr().err.strip().splitlines()
        assert err and "Traceback" not in "\n".join(err), (mode, err)
        want = f"{half}: truncated safetensors file" if "truncated" in mode else f"{empty}: empty file (0 bytes)"
        assert err[-1].startswith("error: ") and want in err[-1], (mode, err[-1])
