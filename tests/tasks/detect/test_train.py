"""``detect train``'s model building: the recipes' prior sets reach the model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torchvision.models.detection.anchor_utils import DefaultBoxGenerator
from torchvision.models.detection.image_list import ImageList

from singleshot.errors import ConfigError
from singleshot.ops.boxes import cxcywh_to_xyxy
from singleshot.tasks.common import make_config
from singleshot.tasks.detect.config import DetectConfig
from singleshot.tasks.detect.predictor import build_detector

CONFIGS = Path(__file__).resolve().parents[3] / "configs"


def test_the_coco_recipe_builds_torchvisions_default_boxes() -> None:
    cfg = make_config(DetectConfig, {"cfg": str(CONFIGS / "ssd300_coco.yaml")})
    model, kwargs = build_detector(cfg.model, 80, cfg.imgsz, cfg.priors)
    assert kwargs == {"priors": "coco"}
    gen = DefaultBoxGenerator(
        [[2], [2, 3], [2, 3], [2, 3], [2], [2]],
        scales=[0.07, 0.15, 0.33, 0.51, 0.69, 0.87, 1.05],
        steps=[8, 16, 32, 64, 100, 300],
    )
    feats = [torch.zeros(1, 1, f, f) for f in (38, 19, 10, 5, 3, 1)]
    theirs = gen(ImageList(torch.zeros(1, 3, 300, 300), [(300, 300)]), feats)[0]
    torch.testing.assert_close(cxcywh_to_xyxy(model.priors) * 300, theirs, atol=1e-4, rtol=0)


def test_the_voc_recipes_keep_the_papers_sizes() -> None:
    for recipe in ("ssd300_voc0712.yaml", "ssd512_voc0712.yaml"):
        cfg = make_config(DetectConfig, {"cfg": str(CONFIGS / recipe)})
        model, kwargs = build_detector(cfg.model, 20, cfg.imgsz, cfg.priors)
        assert kwargs == {}
        first = float(model.priors[0, 2] * model.image_size)  # conv4_3's square prior: its min size
        assert first == pytest.approx(30.0 if cfg.model == "ssd300" else 35.84, abs=0.01)  # the Caffe VOC models


def test_priors_apply_to_ssd300_and_ssd512_only() -> None:
    with pytest.raises(ConfigError, match="priors=coco: a prior set is chosen for ssd300 and ssd512 only"):
        build_detector("ssd_tiny", 3, 128, "coco")
    with pytest.raises(ConfigError, match="unknown priors"):
        build_detector("ssd300", 3, 0, "kitti")


# --- a validation split that is the training split is named ------------------------------------


def _overlap_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelname == "WARNING" and "as training" in r.getMessage()]


@pytest.mark.usefixtures("one_thread")
def test_training_on_one_coco_json_says_validation_reads_the_training_images(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    import json

    from singleshot.cli import main
    from singleshot.data.shapes import write_shapes_dataset
    from singleshot.tasks.detect.convert import convert

    voc = write_shapes_dataset(tmp_path / "voc", n_train=4, n_val=2, size=64, seed=2)
    coco = Path(convert({"from": "voc", "to": "coco", "src": str(voc), "dst": str(tmp_path / "coco")})["data"])
    common = ["model=ssd_tiny", "imgsz=64", "batch=2", "workers=0", "augment=false", "warmup=0", "plot_every=0"]
    one_json = [f"data={coco / 'annotations' / 'instances_train.json'}", f"images={coco / 'images' / 'train'}"]
    argv = ["detect", "train", *one_json, *common, "epochs=1", "max_steps=1", f"project={tmp_path / 'runs'}"]
    assert main(argv) == 0, capsys.readouterr().err
    got = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    (text,) = _overlap_warnings(caplog)
    assert text.startswith("validation reads the same 4 images as training: the metrics measure fit")
    assert "gt=" in text and got["warnings"] == [text]
    # the COCO folder's own train / val files: nothing to say (a dry run builds the same plan)
    caplog.clear()
    assert main(["detect", "train", f"data={coco}", *common, "dry_run=true"]) == 0, capsys.readouterr().err
    assert not _overlap_warnings(caplog)
