"""``detect train`` and ``detect demo``: SSD training on the engine."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from singleshot.config import config_to_dict
from singleshot.data.collate import collate_detection
from singleshot.engine.distributed import cleanup, get_world_size, init_distributed
from singleshot.engine.run import train_and_restore_best
from singleshot.engine.sampler import build_train_loader
from singleshot.engine.seed import seed_everything
from singleshot.engine.train_config import train_config_for
from singleshot.engine.trainer import Trainer
from singleshot.engine.weights import save_weights
from singleshot.errors import ConfigError
from singleshot.losses.multibox import MultiBoxLoss
from singleshot.models import build_model
from singleshot.models.aux_heads import deployable
from singleshot.structures import BoxTarget
from singleshot.tasks.detect import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    DetectConfig,
    DetectPredictor,
    arch_kwargs,
    model_meta,
    normalize,
    postprocess_settings,
)
from singleshot.tasks.detect_distill import build_training
from singleshot.tasks.detect_modes import _cfg, build_dataset, class_names_for, evaluate_dataset, run_dir

logger = logging.getLogger(__name__)


class PrepareBatch:
    """Move a collated ``(images [B,3,S,S] in [0,1], targets)`` batch to the device and normalise."""

    def __call__(self, batch: tuple[Tensor, list[BoxTarget]], device: torch.device) -> tuple[Tensor, list[BoxTarget]]:
        images, targets = batch
        images = normalize(images.to(device, non_blocking=True), IMAGENET_MEAN, IMAGENET_STD)
        return images, [t.to(device) for t in targets]


def _floats(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def train_detector(cfg: DetectConfig) -> dict | None:
    """Train ``cfg.model`` on ``cfg.data``; returns the final metrics plus the output paths.

    Under ``torchrun`` every process calls this; ``batch`` is the global batch, split evenly
    across the processes. Only rank 0 writes the weights and returns the result (others: None).
    """
    device = init_distributed(cfg.device)
    world = get_world_size()
    if cfg.batch % world:
        raise ConfigError(f"batch={cfg.batch}: the global batch must be divisible by the {world} processes")
    seed_everything(cfg.seed)
    classes = class_names_for(cfg)
    kwargs = arch_kwargs(cfg.model, cfg.imgsz)
    model = build_model(cfg.model, len(classes), **kwargs)
    if cfg.pretrained:
        from singleshot.convert.vgg_decimate import load_vgg16_base

        load_vgg16_base(model, Path(cfg.pretrained))
    size = int(model.image_size)
    from singleshot.data.transforms import build_train_transform

    train_set = build_dataset(cfg, cfg.train_set, classes, build_train_transform(size, IMAGENET_MEAN, strong=cfg.augment))
    val_set = build_dataset(cfg, cfg.val_set, classes)
    loader = build_train_loader(
        train_set, cfg.batch // world, seed=cfg.seed, drop_last=len(train_set) > cfg.batch, workers=cfg.workers,
        collate_fn=collate_detection, device=device,
    )  # fmt: skip
    out = run_dir(cfg, "train")
    tcfg = train_config_for(cfg, len(loader), out, device)
    meta = model_meta(model, cfg.model, kwargs, classes, train_config=config_to_dict(cfg))
    settings = postprocess_settings(cfg)
    metric_key = "map" if cfg.metric == "coco" else "map50"

    def evaluate(m: nn.Module) -> dict[str, float]:
        predictor = DetectPredictor(deployable(m), meta, settings, device, channels_last=False)
        return _floats(evaluate_dataset(predictor, val_set, cfg, cfg.metric, classes))

    # teacher= / aux=true wrap `model` in train-only parts; `model` itself stays the saved student
    train_model, loss_fn = build_training(cfg, model, classes, MultiBoxLoss(model.priors))
    trainer = Trainer(train_model, loss_fn, loader, tcfg, PrepareBatch(), evaluate, metric_key,
                      run_config=config_to_dict(cfg))
    run = train_and_restore_best(trainer)  # the best weights are back in `model`
    if run is None:  # not the first process of a torchrun job
        return None
    best_metrics = _floats(run.metrics)
    weights = out / "best.safetensors"
    save_weights(weights, model, dict(meta, metrics=best_metrics, epoch=run.epoch))
    cleanup()
    return dict(best_metrics, epochs=run.epoch, train_seconds=run.seconds, weights=str(weights), out=str(out))


#: The CPU demo recipe: ssd_tiny on the 160x160 shapes, flip-only augmentation (the full SSD
#: pipeline costs ~10x more loader time and needs more epochs), batch 16 (twice the updates of batch
#: 32 for ~40% more compute per epoch; mAP 0.98/0.98 against 0.97/0.94 on seeds 0/1). ``run_demo``
#: trains on one intra-op thread per core left over by the loader worker (see ``demo_threads``).
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


def demo_threads(workers: int) -> int:
    """Intra-op threads for the demo: the cores ``torch`` would use minus one per loader worker.

    On a small machine shared with other jobs, OpenMP threads that busy-wait at every parallel
    region make a 2-thread run up to ~8x slower whenever another process holds a core; one compute
    thread plus one loader worker is ~20% slower on an idle 2-core machine and steady on a busy one.
    """
    return max(1, torch.get_num_threads() - max(0, int(workers)))


def run_demo(args: dict[str, str]) -> dict:
    """Shapes dataset -> train -> evaluate -> pictures; returns the metrics.

    Runs with ``torch.set_num_threads(demo_threads(workers))`` and restores the thread count after.
    """
    cfg = _cfg(dict(args), **DEMO_DEFAULTS)
    threads = torch.get_num_threads()
    torch.set_num_threads(demo_threads(cfg.workers))
    try:
        return _run_demo(cfg)
    finally:
        torch.set_num_threads(threads)


def _run_demo(cfg: DetectConfig) -> dict:
    from singleshot.data.shapes import SHAPES_CLASSES, write_shapes_dataset
    from singleshot.tasks.detect_predict import predict_source

    if get_world_size() > 1 or int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ConfigError("the demo runs in one process; under torchrun use `singleshot detect train`")
    if not cfg.data:
        data_root = Path(cfg.project) / "demo_data"
        marker = data_root / f".complete-{cfg.n_train}-{cfg.n_val}-{cfg.seed}"
        if not marker.exists():
            logger.info("writing the shapes dataset to %s", data_root)
            write_shapes_dataset(data_root, cfg.n_train, cfg.n_val, size=160, seed=cfg.seed)
            marker.touch()
        cfg.data = str(data_root)
        cfg.classes = tuple(SHAPES_CLASSES)
    result = train_detector(cfg)
    assert result is not None  # one process: rank 0
    out = Path(result["out"])
    from singleshot.tasks.detect_modes import load_predictor

    cfg.weights = result["weights"]
    predictor = load_predictor(cfg)
    val_images = Path(cfg.data) / "VOC2007" / "JPEGImages"
    ids = (Path(cfg.data) / "VOC2007" / "ImageSets" / "Main" / f"{cfg.val_set}.txt").read_text().split()[:8]
    pictures = out / "predictions"
    pictures.mkdir(exist_ok=True)
    for image_id in ids:
        predict_source(predictor, val_images / f"{image_id}.jpg", pictures, 0.5, 1)
    (pictures / "predictions.json").unlink(missing_ok=True)
    (out / "metrics.json").write_text(json.dumps(result, indent=2))
    return result
