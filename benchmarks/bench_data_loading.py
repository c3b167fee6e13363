"""Is data loading the bottleneck? Loader images/s (demo augmentation) against training speed.

Builds the ``detect demo`` recipe (``singleshot/tasks/detect/demo.py`` ``DEMO_DEFAULTS``): the
shapes dataset in VOC format, the SSD training augmentation (photometric distortion, zoom-out,
IoU crop, flip, resize; or flips only when the demo sets ``augment=false``) and the training loader (``build_train_loader``, per-sample seeding),
then measures

1. the loader alone: images per second for each ``--workers`` value, after the first batch
   (worker start-up is reported separately), with the demo's augmentation and, when the demo
   trains with flips only, also with the full SSD augmentation that ``detect train`` uses by
   default;
2. training alone: optimizer steps per second of the demo model, loss and optimizer on batches
   already in memory (no loading), and the images per second that this consumes;
3. both together: steps per second of training fed by the real loader (``workers`` of the demo),
   i.e. what ``singleshot detect demo`` sees. Loading is not the bottleneck when (3) is close to (2).

    .venv/bin/python benchmarks/bench_data_loading.py [--workers 0,1,2] [--batches 12] [--steps 8]

Prints a table and, on the last line, the numbers as JSON.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from singleshot.data.collate import collate_detection
from singleshot.data.shapes import SHAPES_CLASSES, write_shapes_dataset
from singleshot.data.transforms import build_train_transform
from singleshot.engine.sampler import build_train_loader
from singleshot.engine.train_config import TrainConfig, build_optimizer
from singleshot.losses.multibox import MultiBoxLoss
from singleshot.models import create_model
from singleshot.tasks.common import make_config
from singleshot.tasks.detect.config import DetectConfig
from singleshot.tasks.detect.data import build_dataset
from singleshot.tasks.detect.demo import DEMO_DEFAULTS
from singleshot.tasks.detect.predictor import IMAGENET_MEAN, arch_kwargs
from singleshot.tasks.detect.train import NormalizeToDevice


def loader_speed(train_set: Any, batch: int, workers: int, batches: int, seed: int) -> dict[str, float]:
    """Images/s of the training loader over ``batches`` batches after the first one."""
    loader = build_train_loader(
        train_set,
        batch,
        seed=seed,
        workers=workers,
        collate_fn=collate_detection,
        drop_last=True,
        persistent_workers=False,
    )
    t0 = time.perf_counter()
    it = iter(loader)
    next(it)
    first = time.perf_counter() - t0
    t1 = time.perf_counter()
    n = 0
    for _ in range(batches):
        try:
            images, _ = next(it)
        except StopIteration:
            loader.sampler.set_epoch(loader.sampler.epoch + 1)
            it = iter(loader)
            images, _ = next(it)
        n += images.shape[0]
    elapsed = time.perf_counter() - t1
    del it
    return {"workers": workers, "images_per_s": n / elapsed, "first_batch_s": first}


def augment_name(strong: bool) -> str:
    return "ssd" if strong else "flip"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="0,1,2", help="comma-separated worker counts for the loader alone")
    parser.add_argument("--batches", type=int, default=12, help="batches timed per loader setting")
    parser.add_argument("--steps", type=int, default=8, help="training steps timed (after 2 warm-up steps)")
    parser.add_argument("--data", default="", help="an existing shapes dataset root (default: write one to a temp dir)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads for training (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    cfg = make_config(DetectConfig, {}, **DEMO_DEFAULTS)
    tmp = tempfile.TemporaryDirectory()
    root = Path(args.data or tmp.name)
    if not args.data:
        write_shapes_dataset(root, cfg.n_train, 0, size=160, seed=cfg.seed)
    cfg.data, cfg.classes = str(root), tuple(SHAPES_CLASSES)
    model = create_model(cfg.model, len(SHAPES_CLASSES), **arch_kwargs(cfg.model, cfg.imgsz))
    size = int(model.image_size)
    train_set = build_dataset(
        cfg, cfg.train_set, list(SHAPES_CLASSES), build_train_transform(size, IMAGENET_MEAN, strong=cfg.augment)
    )
    print(
        f"demo recipe: model={cfg.model} input={size}x{size} batch={cfg.batch} workers={cfg.workers} "
        f"train images={len(train_set)} torch threads={torch.get_num_threads()}"
    )

    loaders = [
        dict(loader_speed(train_set, cfg.batch, int(w), args.batches, cfg.seed), augmentation=augment_name(cfg.augment))
        for w in args.workers.split(",")
    ]
    if not cfg.augment:  # the demo trains with flips only: also time the full SSD pipeline, `detect train`'s default
        strong_set = build_dataset(cfg, cfg.train_set, list(SHAPES_CLASSES), build_train_transform(size, IMAGENET_MEAN))
        loaders += [
            dict(loader_speed(strong_set, cfg.batch, int(w), args.batches, cfg.seed), augmentation="ssd")
            for w in args.workers.split(",")
        ]

    # training alone, on batches held in memory
    prepare = NormalizeToDevice()
    device = torch.device("cpu")
    memory_loader = build_train_loader(
        train_set, cfg.batch, seed=cfg.seed, collate_fn=collate_detection, drop_last=True
    )
    held = [b for _, b in zip(range(4), memory_loader)]
    loss_fn = MultiBoxLoss(model.priors)
    optimizer = build_optimizer(model.parameters(), TrainConfig(lr=cfg.lr, weight_decay=cfg.weight_decay))
    model.train()

    def step(batch: Any) -> None:
        images, targets = prepare(batch, device)
        total = sum(loss_fn(model(images), targets).values())
        total.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for b in held[:2]:
        step(b)
    t0 = time.perf_counter()
    for i in range(args.steps):
        step(held[i % len(held)])
    train_steps = args.steps / (time.perf_counter() - t0)

    # training fed by the demo's loader, as in `singleshot detect demo`
    fed_loader = build_train_loader(
        train_set, cfg.batch, seed=cfg.seed, workers=cfg.workers, collate_fn=collate_detection, drop_last=True
    )
    it = iter(fed_loader)
    for _ in range(2):
        step(next(it))
    t0 = time.perf_counter()
    done = 0
    for _ in range(args.steps):
        try:
            batch = next(it)
        except StopIteration:
            fed_loader.sampler.set_epoch(fed_loader.sampler.epoch + 1)
            it = iter(fed_loader)
            batch = next(it)
        step(batch)
        done += 1
    fed_steps = done / (time.perf_counter() - t0)
    del it

    need = train_steps * cfg.batch
    print(f"\n{'setting':<34}{'images/s':>10}{'steps/s':>10}{'loader/need':>13}")
    for r in loaders:
        label = f"loader, {r['augmentation']} aug, workers={r['workers']}"
        print(
            f"{label:<34}{r['images_per_s']:>10.1f}{r['images_per_s'] / cfg.batch:>10.2f}"
            f"{r['images_per_s'] / need:>12.1f}x   (first batch {r['first_batch_s']:.2f} s)"
        )
    print(f"{'training alone (batches in memory)':<34}{need:>10.1f}{train_steps:>10.2f}")
    print(
        f"{'training fed by the loader':<34}{fed_steps * cfg.batch:>10.1f}{fed_steps:>10.2f}"
        f"{'':>13}   ({fed_steps / train_steps:.0%} of training alone, workers={cfg.workers})"
    )
    print(
        json.dumps(
            {
                "recipe": {k: DEMO_DEFAULTS[k] for k in ("model", "imgsz", "batch", "workers")},
                "loader": loaders,
                "train_steps_per_s": train_steps,
                "train_images_per_s": need,
                "fed_steps_per_s": fed_steps,
                "torch_threads": torch.get_num_threads(),
            }
        )
    )
    tmp.cleanup()


if __name__ == "__main__":
    main()
