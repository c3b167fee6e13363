"""``detect val`` writes its pictures beside metrics.json: PR curves, AP bars, the confusion matrix
(picture and counts) and the worst images; ``plots=false`` writes none."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from singleshot.cli import main
from singleshot.data.shapes import SHAPES_CLASSES, write_shapes_dataset
from singleshot.data.voc import VOCDetection
from singleshot.engine.weights import save_weights
from singleshot.models import create_model
from singleshot.tasks.detect.evaluate import val
from singleshot.tasks.detect.predictor import model_meta

SIZE = 96
PICTURES = ("PR_curve.png", "AP_per_class.png", "confusion_matrix.png")

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """An untrained ssd_tiny with confident class scores, and six held-out shapes images."""
    root = tmp_path_factory.mktemp("pictures")
    data = write_shapes_dataset(root / "data", n_train=1, n_val=6, size=SIZE, seed=0)
    torch.manual_seed(0)
    model = create_model("ssd_tiny", len(SHAPES_CLASSES), image_size=SIZE)
    with torch.no_grad():
        for conv in model.head.conf:
            conv.weight.mul_(6.0)
    meta = model_meta(model, "ssd_tiny", {"image_size": SIZE}, SHAPES_CLASSES)
    meta["postprocess"]["score_thresh"] = 0.2
    save_weights(root / "tiny.safetensors", model, meta)
    return root / "tiny.safetensors", data


def test_val_writes_the_pictures(setup: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    weights, data = setup
    args = ["detect", "val", f"weights={weights}", f"data={data}", "val_set=val", "workers=0", f"project={tmp_path}"]
    assert main(args) == 0
    got = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    out = Path(got["save_dir"])
    for name in (*PICTURES, "metrics.json"):
        assert (out / name).is_file(), name
    for name in PICTURES:
        with Image.open(out / name) as im:
            assert im.format == "PNG"
    counts = json.loads((out / "confusion_matrix.json").read_text())
    assert counts["classes"] == [*SHAPES_CLASSES, "background"] and (counts["conf"], counts["iou"]) == (0.25, 0.45)
    matrix = np.asarray(counts["matrix"])
    assert matrix.shape == (6, 6) and matrix[-1, -1] == 0
    # every non-difficult box is counted once: found (as some class) or missed (background row)
    ds = VOCDetection(data, image_set="val", class_names=list(SHAPES_CLASSES))
    boxes = [ds.load_target(i) for i in range(len(ds))]
    per_class = np.bincount(torch.cat([t.labels[~t.difficult] for t in boxes]).numpy(), minlength=5)
    assert matrix[:, :5].sum(axis=0).tolist() == per_class.tolist()
    worst = sorted((out / "worst").glob("*.jpg"))
    assert 0 < len(worst) <= 6  # an untrained model errs on every image; at most one picture per image
    assert worst[0].name.startswith("01_")
    with Image.open(worst[0]) as im:
        assert im.size == (SIZE * 5, SIZE * 5)  # enlarged towards 480 pixels


def test_plots_false_writes_only_the_numbers(setup: tuple[Path, Path], tmp_path: Path) -> None:
    weights, data = setup
    args = {"weights": str(weights), "data": str(data), "val_set": "val", "workers": "0", "project": str(tmp_path)}
    got = val(dict(args, plots="false"))
    out = Path(got["save_dir"])
    assert (out / "metrics.json").is_file()
    assert not [p for p in out.rglob("*") if p.suffix in (".png", ".jpg")] and not (out / "worst").exists()
