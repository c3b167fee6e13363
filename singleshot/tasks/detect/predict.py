"""``detect predict``: run a predictor over an image, a folder of images or a video; annotated
pictures (or an annotated video) and a COCO results JSON."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from singleshot.atomic import save_image, write_text
from singleshot.data.image_io import read_image_rgb
from singleshot.errors import DataError
from singleshot.io.draw import draw_detections
from singleshot.io.jsonlines import json_from_lines
from singleshot.io.stream import FrameStream, source_kind
from singleshot.io.video import VideoWriter, is_video
from singleshot.metrics.files import detections_to_coco_results
from singleshot.structures import Detections
from singleshot.tasks.common import chunks, make_config, require, run_folder
from singleshot.tasks.detect.config import DetectConfig
from singleshot.tasks.detect.data import list_images
from singleshot.tasks.detect.evaluate import load_predictor
from singleshot.tasks.detect.predictor import DetectPredictor
from singleshot.tasks.predict_files import SkippedInputs, unique_ids

logger = logging.getLogger(__name__)

__all__ = ["predict", "predict_source"]


def predict_source(
    predictor: DetectPredictor, source: str | Path, out_dir: Path, show_conf: float, batch: int, timeout: float = 10.0
) -> dict:
    """Detections on ``source`` written under ``out_dir``: annotated pictures of an image or a folder of
    images, or, for a video file, an ``rtsp://``/``http://`` stream or a camera index (read as the frames
    arrive, :class:`~singleshot.io.stream.FrameStream`), an annotated video; and ``predictions.json``
    (COCO results format, ``image_id`` = file stem, or frame number of a video), of a video also
    ``predictions.jsonl``, appended as the frames are processed.

    In a folder, files sharing a stem (``x.jpg``, ``x.png``) get distinct ids (``x``, ``x_1``, said
    in the log) and an unreadable image is skipped, listed in ``skipped.txt`` and counted as
    ``skipped_inputs`` in the result; a folder of unreadable images, or one unreadable image given
    by name, is a :class:`~singleshot.errors.DataError`.

    A stream that breaks or stalls ends with everything so far written and closed, then a
    :class:`~singleshot.errors.DataError` saying why.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    text = str(source)
    kind = source_kind(text)
    if kind in ("url", "camera") or (kind == "file" and is_video(Path(text))):
        return _predict_stream(predictor, FrameStream(text, timeout=timeout), out_dir, show_conf, batch)
    return _predict_images(predictor, Path(text), out_dir, show_conf, batch)


def _predict_images(predictor: DetectPredictor, source: Path, out_dir: Path, show_conf: float, batch: int) -> dict:
    """An image or a folder of images: ``<id>.jpg`` pictures and ``predictions.json``. In a folder,
    ids are the file stems made unique (:func:`~singleshot.tasks.predict_files.unique_ids`) and an
    unreadable image is skipped and listed (:class:`~singleshot.tasks.predict_files.SkippedInputs`)."""
    names = predictor.class_names
    files = list_images(source)
    folder = source.is_dir()
    ids = unique_ids(files) if folder else [p.stem for p in files]
    skipped = SkippedInputs(source, "image")
    all_dets: list[Detections] = []
    outputs = []
    for chunk in chunks(list(zip(files, ids)), max(1, min(batch, 16))):
        images, kept = [], []
        for path, image_id in chunk:
            try:
                images.append(read_image_rgb(path))
            except DataError as exc:
                if not folder:
                    raise
                skipped.add(path, exc, image_id)
                continue
            kept.append(image_id)
        dets = predictor(images, kept)
        for image_id, img, d in zip(kept, images, dets):
            drawn = draw_detections(img.permute(1, 2, 0).numpy(), d, names, show_conf)
            target = out_dir / f"{image_id}.jpg"
            save_image(Image.fromarray(drawn), target, quality=92)
            outputs.append(str(target))
        all_dets.extend(dets)
    skipped.require_some(len(all_dets))
    results = detections_to_coco_results(all_dets, predictor.category_ids)
    write_text(out_dir / "predictions.json", json.dumps(results))
    logger.info("wrote %d annotated file(s) and %s", len(outputs), out_dir / "predictions.json")
    result = {
        "images": len(all_dets),
        "detections": len(results),
        "out": str(out_dir),
        "predictions": str(out_dir / "predictions.json"),
    }
    return skipped.report(out_dir, result)


def _predict_stream(
    predictor: DetectPredictor, stream: FrameStream, out_dir: Path, show_conf: float, batch: int
) -> dict:
    """Frames of ``stream`` ``batch`` at a time: the annotated video and the detections' lines
    written as they are processed (memory: one batch of frames)."""
    video, lines = out_dir / f"{stream.name}.mp4", out_dir / "predictions.jsonl"
    writer: VideoWriter | None = None
    count = detections = 0
    pending: list[np.ndarray] = []
    with open(lines, "w", encoding="utf-8") as f:

        def flush() -> None:
            nonlocal writer, count, detections
            ids = [str(count + i + 1) for i in range(len(pending))]
            dets = predictor([torch.from_numpy(x).permute(2, 0, 1) for x in pending], ids)
            for frame, d in zip(pending, dets):
                if writer is None:
                    writer = VideoWriter(video, stream.fps, frame.shape[1], frame.shape[0])
                writer.write(draw_detections(frame, d, predictor.class_names, show_conf))
            for record in detections_to_coco_results(dets, predictor.category_ids):
                f.write(json.dumps(record) + "\n")
                detections += 1
            f.flush()
            count += len(pending)
            pending.clear()

        try:
            for frame in stream:
                pending.append(frame)
                if len(pending) == max(1, min(batch, 16)):
                    flush()
            if pending:
                flush()
        finally:
            if writer is not None:
                writer.close()
    json_from_lines(lines, out_dir / "predictions.json")
    if stream.error:
        raise DataError(f"{stream.error}; the {count} frames before it were processed and written under {out_dir}")
    if count == 0:
        raise DataError(f"{stream.source}: no frames decoded")
    logger.info("wrote %s, %s and predictions.json", video, lines)
    return {
        "images": count,
        "detections": detections,
        "out": str(out_dir),
        "predictions": str(out_dir / "predictions.json"),
        "video": str(video),
        "skipped": stream.skipped,
    }


def predict(args: dict[str, str]) -> dict:
    """Detections on images, a video, a stream or a camera: annotated pictures or video + COCO results JSON."""
    cfg = make_config(DetectConfig, args)
    require(cfg, "source")
    predictor = load_predictor(cfg)
    with run_folder(cfg, "predict", reads={"source": cfg.source}) as out:
        result = predict_source(predictor, cfg.source, out, cfg.show_conf, cfg.batch, cfg.timeout)
        return dict(result, save_dir=str(out))
