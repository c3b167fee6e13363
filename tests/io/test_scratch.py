"""Temporaries live beside their destination and go away on success, error and ``SIGTERM``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from singleshot.export.quantize import write_onnx_graph
from singleshot.io.scratch import scratch_dir

REPO = Path(__file__).resolve().parents[2]


def test_scratch_is_hidden_beside_the_destination_and_removed_on_error(tmp_path: Path) -> None:
    dst = tmp_path / "out" / "model.onnx"
    seen: list[Path] = []
    with pytest.raises(RuntimeError), scratch_dir(dst) as tmp:
        seen.append(tmp)
        assert tmp.parent == dst.parent and tmp.name.startswith(".model.onnx.")
        assert Path(tempfile.gettempdir()) == tmp  # libraries' own temporaries land inside
        (tmp / "big.bin").write_bytes(b"0" * 1000)
        raise RuntimeError("boom")
    assert not seen[0].exists() and list(dst.parent.iterdir()) == []
    assert Path(tempfile.gettempdir()) != seen[0]


def test_int8_export_keeps_its_float_graph_beside_the_destination(tmp_path: Path) -> None:
    dst = tmp_path / "m.int8.onnx"
    where: list[Path] = []

    def write_float(path: Path) -> None:
        where.append(path)
        path.write_bytes(b"not yet a graph")
        raise KeyboardInterrupt  # as Ctrl-C in the middle of the export

    with pytest.raises(KeyboardInterrupt):
        write_onnx_graph(dst, write_float, int8=True, calibration=lambda: iter(()))
    assert where[0].parent.parent == tmp_path  # not the system temp folder
    assert not where[0].parent.exists() and list(tmp_path.iterdir()) == []


SLOW_EXPORT = """
import sys, time
import singleshot.export.quantize as q

def slow(*args, **kwargs):
    print("quantizing", flush=True)
    time.sleep(60)

q.quantize_static_onnx = slow
from singleshot.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow  # a subprocess imports torch and exports a small graph
def test_sigterm_during_int8_export_leaves_no_temporary(tmp_path: Path) -> None:
    import torch

    from singleshot.engine.weights import save_weights
    from singleshot.models import create_model
    from singleshot.tasks.detect.predictor import model_meta

    torch.manual_seed(0)
    model = create_model("ssd_tiny", 2, image_size=64)
    weights = tmp_path / "w" / "tiny.safetensors"
    weights.parent.mkdir()
    save_weights(weights, model, model_meta(model, "ssd_tiny", {"image_size": 64}, ["a", "b"]))
    calib = tmp_path / "calib"
    calib.mkdir()
    from PIL import Image

    Image.new("RGB", (64, 64), (120, 30, 200)).save(calib / "a.jpg")
    systmp = tmp_path / "systmp"
    systmp.mkdir()
    env = dict(os.environ, TMPDIR=str(systmp), PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    dst = tmp_path / "w" / "tiny.int8.onnx"
    args = ["detect", "export", f"weights={weights}", "int8=true", f"calib={calib}", "calib_images=1", f"dst={dst}"]
    proc = subprocess.Popen(
        [sys.executable, "-c", SLOW_EXPORT, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line == "quantizing", proc.stderr.read() if proc.stderr else ""
        hidden = [p for p in weights.parent.iterdir() if p.name.startswith(".")]
        assert hidden and any(p.is_dir() and any(p.iterdir()) for p in hidden)  # the float graph is beside dst
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert sorted(p.name for p in weights.parent.iterdir()) == ["tiny.safetensors"]
    assert list(systmp.iterdir()) == []
