"""``action val`` writes its pictures beside metrics.json: the frame-level PR curves, the per-class
frame-AP bars and the key frames of the worst videos; ``plots=false`` writes none."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from singleshot.cli import main
from singleshot.data.action.synthetic import SYNTH_PICKLE, generate_action_dataset
from singleshot.engine.weights import save_weights
from singleshot.models import create_model
from singleshot.tasks.action.evaluate import val

CLASSES = ["Bounce", "Pulse", "Slide", "Spin"]
KW = {"clip_len": 4, "width": 4, "cfam_channels": 16}

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """An untrained yowo_tiny and 2 + 2 tiny videos in the YOWO layout."""
    root = tmp_path_factory.mktemp("action_pictures")
    data = root / "data"
    generate_action_dataset(data, 2, 2, size=(48, 64), num_frames=(12, 12), seed=0)
    torch.manual_seed(0)
    model = create_model("yowo_tiny", len(CLASSES), **KW)
    meta = {
        "task": "action",
        "family": "yowo",
        "architecture": "yowo_tiny",
        "arch_kwargs": KW,
        "num_classes": len(CLASSES),
        "classes": CLASSES,
        "anchors": model.anchors.tolist(),
        "clip_len": 4,
        "stride": 1,
        "input_size": [64, 64],
        "channel_order": "RGB",
        "mean": [0.485, 0.456, 0.406],
        "std": [0.229, 0.224, 0.225],
    }
    save_weights(root / "yowo.safetensors", model, meta)
    return root / "yowo.safetensors", data


def test_val_writes_the_pictures(setup: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    weights, data = setup
    args = ["action", "val", f"weights={weights}", f"data={data / SYNTH_PICKLE}", "workers=0", f"project={tmp_path}"]
    assert main(args) == 0
    got = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    out = Path(got["save_dir"])
    for name in ("PR_curve.png", "AP_per_class.png"):
        with Image.open(out / name) as im:
            assert im.format == "PNG", name
    worst = sorted((out / "worst").glob("*.jpg"))
    # an untrained model finds no box at show_conf 0.3: both test videos are drawn, three frames each
    assert len(worst) == got["n_videos"] == 2
    with Image.open(worst[0]) as im:
        assert im.size[0] > 3 * 64 * 4 and "__" in worst[0].stem  # three frames enlarged; "Class/video" flattened


def test_plots_false_writes_no_pictures(setup: tuple[Path, Path], tmp_path: Path) -> None:
    weights, data = setup
    args = {"weights": str(weights), "data": str(data / SYNTH_PICKLE), "workers": "0", "project": str(tmp_path)}
    got = val(dict(args, plots="false"))
    out = Path(got["save_dir"])
    assert (out / "metrics.json").is_file()
    assert not [p for p in out.rglob("*") if p.suffix in (".png", ".jpg")] and not (out / "worst").exists()
