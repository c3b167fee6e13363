"""``grasp val`` writes its pictures beside metrics.json: the success rate against the IoU threshold
and the worst images; ``plots=false`` writes none."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from singleshot.cli import main
from singleshot.data.grasp.synthetic import generate_grasp_dataset
from singleshot.engine.weights import save_weights
from singleshot.models.ggcnn import ggcnn
from singleshot.tasks.grasp.config import GraspConfig
from singleshot.tasks.grasp.evaluate import val
from singleshot.tasks.grasp.predictor import model_meta

pytestmark = [pytest.mark.filterwarnings("ignore:.*inpainted"), pytest.mark.usefixtures("one_thread")]

COMMON = ["split=object", "test_fraction=0.5", "workers=0", "threshold=-1", "min_distance=4"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """An untrained GG-CNN and six small Cornell-layout images."""
    root = tmp_path_factory.mktemp("grasp_pictures")
    generate_grasp_dataset(root / "cornell", 6, seed=5, size=(60, 80))
    torch.manual_seed(0)
    save_weights(root / "w.safetensors", ggcnn(1).eval(), model_meta(GraspConfig(size=48, crop_size=60)))
    return root / "w.safetensors", root / "cornell"


def test_val_writes_the_pictures(setup: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    weights, data = setup
    assert main(["grasp", "val", f"weights={weights}", f"data={data}", *COMMON, f"project={tmp_path}"]) == 0
    got = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    out = Path(got["save_dir"])
    with Image.open(out / "success_vs_iou.png") as im:
        assert im.format == "PNG"
    worst = sorted((out / "worst").glob("*.png"))
    assert len(worst) == got["n"] - got["n_success"] > 0  # every failed image, up to 8
    with Image.open(worst[0]) as im:
        assert im.size == (480, 360)  # 80 x 60 enlarged six times


def test_plots_false_writes_no_pictures(setup: tuple[Path, Path], tmp_path: Path) -> None:
    weights, data = setup
    args = dict(a.split("=", 1) for a in COMMON)
    got = val(dict(args, weights=str(weights), data=str(data), project=str(tmp_path), plots="false"))
    out = Path(got["save_dir"])
    assert (out / "metrics.json").is_file()
    assert not [p for p in out.rglob("*") if p.suffix in (".png", ".jpg")] and not (out / "worst").exists()
