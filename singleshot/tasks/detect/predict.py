"""``detect predict``: run a predictor over an image, a folder of images or a video; annotated
pictures (or an annotated video) and a COCO results JSON."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from singleshot.data.image_io import read_image_rgb
from singleshot.io.draw import draw_detections
from singleshot.io.video import VideoWriter, is_video, read_frames, video_fps
from singleshot.metrics.files import detections_to_coco_results
from singleshot.structures import Detections
from singleshot.tasks.common import chunks, make_config, require, run_dir
from singleshot.tasks.detect.config import DetectConfig
from singleshot.tasks.detect.data import list_images
from singleshot.tasks.detect.evaluate import load_predictor
from singleshot.tasks.detect.predictor import DetectPredictor

logger = logging.getLogger(__name__)

__all__ = ["predict", "predict_source"]


def predict_source(predictor: DetectPredictor, source: Path, out_dir: Path, show_conf: float, batch: int) -> dict:
    """Write annotated pictures (or an annotated video) and ``predictions.json`` (COCO results format,
    ``image_id`` = file stem, or frame number for a video) under ``out_dir``."""
    names = predictor.class_names
    all_dets: list[Detections] = []
    batch = max(1, min(batch, 16))
    if source.is_file() and is_video(source):
        frames = read_frames(source)
        writer: VideoWriter | None = None
        n = 0
        pending: list[np.ndarray] = []

        def flush() -> None:
            nonlocal writer, n
            dets = predictor(
                [torch.from_numpy(f).permute(2, 0, 1) for f in pending], [str(n + i + 1) for i in range(len(pending))]
            )
            for f, d in zip(pending, dets):
                if writer is None:
                    writer = VideoWriter(out_dir / f"{source.stem}.mp4", video_fps(source), f.shape[1], f.shape[0])
                writer.write(draw_detections(f, d, names, show_conf))
            all_dets.extend(dets)
            n += len(pending)
            pending.clear()

        for frame in frames:
            pending.append(frame)
            if len(pending) == batch:
                flush()
        if pending:
            flush()
        if writer is not None:
            writer.close()
        outputs = [str(out_dir / f"{source.stem}.mp4")]
    else:
        outputs = []
        for paths in chunks(list_images(source), batch):
            images = [read_image_rgb(p) for p in paths]
            dets = predictor(images, [p.stem for p in paths])
            for p, img, d in zip(paths, images, dets):
                drawn = draw_detections(img.permute(1, 2, 0).numpy(), d, names, show_conf)
                target = out_dir / f"{p.stem}.jpg"
                Image.fromarray(drawn).save(target, quality=92)
                outputs.append(str(target))
            all_dets.extend(dets)
    results = detections_to_coco_results(all_dets, predictor.category_ids)
    (out_dir / "predictions.json").write_text(json.dumps(results))
    logger.info("wrote %d annotated file(s) and %s", len(outputs), out_dir / "predictions.json")
    return {
        "images": len(all_dets),
        "detections": len(results),
        "out": str(out_dir),
        "predictions": str(out_dir / "predictions.json"),
    }


def predict(args: dict[str, str]) -> dict:
    """Detections on an image, a folder of images or a video: annotated pictures + COCO results JSON."""
    cfg = make_config(DetectConfig, args)
    require(cfg, "source")
    return predict_source(load_predictor(cfg), Path(cfg.source), run_dir(cfg, "predict"), cfg.show_conf, cfg.batch)
