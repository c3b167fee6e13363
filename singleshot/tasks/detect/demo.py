"""``detect demo``: the generated shapes dataset (VOC layout) -> a small SSD trained on it ->
VOC07 mAP on its ``val`` split and annotated pictures of eight validation images.

Runs through :func:`singleshot.tasks.common.run_demo` (one process, ``demo_threads(workers)``
intra-op threads, ``metrics.json`` in the run folder); the dataset is written once under
``project/demo_data`` (:func:`singleshot.tasks.common.ensure_dataset`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from singleshot.data.shapes import SHAPES_CLASSES, write_shapes_dataset
from singleshot.tasks.common import ensure_dataset, make_config, run_demo
from singleshot.tasks.detect.config import DetectConfig
from singleshot.tasks.detect.evaluate import load_predictor
from singleshot.tasks.detect.predict import predict_source
from singleshot.tasks.detect.train import train_detector

logger = logging.getLogger(__name__)

__all__ = ["DEMO_DEFAULTS", "demo", "show_predictions", "write_demo_data"]

#: The CPU demo recipe: ssd_tiny on the 160x160 shapes, flip-only augmentation (the full SSD
#: pipeline costs ~10x more loader time and needs more epochs), batch 16 (twice the updates of batch
#: 32 for ~40% more compute per epoch; mAP 0.98/0.98 against 0.97/0.94 on seeds 0/1). The demo
#: trains on one intra-op thread per core left over by the loader worker (see
#: :func:`singleshot.tasks.common.demo_threads`).
#: Measured on the 2-core machine: about 2-2.5 minutes end to end (also with other jobs running),
#: VOC07 mAP@0.5 0.96-0.98 over seeds 0, 1, 2 (see BENCHMARKS.md).
DEMO_DEFAULTS: dict[str, Any] = {
    "model": "ssd_tiny",
    "imgsz": 160,
    "epochs": 10,
    "batch": 16,
    "lr": 0.05,
    "optimizer": "sgd",
    "schedule": "cosine",
    "warmup": 100,
    "weight_decay": 5e-4,
    "augment": False,
    "workers": 1,
    "train_set": "train",
    "val_set": "val",
    "metric": "voc07",
    "name": "demo",
    "eval_every": 5,
    "n_train": 800,
    "n_val": 200,
}


def write_demo_data(cfg: DetectConfig) -> None:
    """Write the shapes dataset (``n_train`` + ``n_val`` 160x160 images of ``seed``) under
    ``project/demo_data`` unless it is already there; point ``data`` and ``classes`` at it."""
    root = ensure_dataset(
        Path(cfg.project) / "demo_data",
        f"{cfg.n_train}-{cfg.n_val}-{cfg.seed}",
        lambda root: write_shapes_dataset(root, cfg.n_train, cfg.n_val, size=160, seed=cfg.seed),
    )
    cfg.data = str(root)
    cfg.classes = tuple(SHAPES_CLASSES)


def show_predictions(cfg: DetectConfig, result: dict[str, Any]) -> dict[str, Any]:
    """Annotated pictures of the first eight ``val_set`` images under ``<run>/predictions``, drawn
    from the saved ``best.safetensors`` (boxes scoring at least 0.5); adds nothing to the result."""
    cfg.weights = result["weights"]
    predictor = load_predictor(cfg)
    val_images = Path(cfg.data) / "VOC2007" / "JPEGImages"
    ids = (Path(cfg.data) / "VOC2007" / "ImageSets" / "Main" / f"{cfg.val_set}.txt").read_text().split()[:8]
    pictures = Path(result["out"]) / "predictions"
    pictures.mkdir(exist_ok=True)
    for image_id in ids:
        predict_source(predictor, val_images / f"{image_id}.jpg", pictures, 0.5, 1)
    (pictures / "predictions.json").unlink(missing_ok=True)
    return {}


def demo(args: dict[str, str]) -> dict:
    """Generate the shapes dataset, train a small SSD on it, evaluate, draw predictions."""
    cfg = make_config(DetectConfig, args, **DEMO_DEFAULTS)
    return run_demo(cfg, "singleshot detect train", write_demo_data, train_detector, show_predictions)
