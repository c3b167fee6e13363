"""Streaming ``action predict`` / ``detect predict``: frames per second, latency from a frame's arrival
to its boxes, and resident memory over a long generated stream.

A 320x240 video of ``--frames`` frames (moving squares on a textured background, MPEG-4) is written
once to a temporary folder; each model then runs :func:`~singleshot.tasks.action.predict.predict_source`
on it as a user's ``action predict source=...`` would (PyAV decoding, online linking, JSON Lines and
the annotated video written as frames are processed). A wrapper around the frame source records
each frame's arrival time and the resident memory (``VmRSS``) after frame 100 and at its largest;
the latency of frame t is the time from its arrival to the moment its detections are written (the
frame event), averaged.

Models: weights files given with ``--weights`` (e.g. the demos' ``best.safetensors``), and/or
untrained architectures with ``--archs`` (``act_tiny,yowo_tiny,act_vgg16,yowo``) whose score
thresholds are raised (``--conf``) so that the post-processing of near-uniform random scores does not
dominate. Prints one JSON line per model and the list on the last line.

    .venv/bin/python benchmarks/bench_stream.py --frames 5000 --weights runs/action/demo_act/best.safetensors
    .venv/bin/python benchmarks/bench_stream.py --frames 60 --archs act_vgg16,yowo
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

import singleshot.tasks.action.predict as action_predict
from singleshot.io.stream import FrameStream
from singleshot.tasks.action.config import ActionConfig


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def write_video(path: Path, frames: int) -> None:
    import av

    rng = np.random.default_rng(0)
    background = rng.integers(40, 120, (240, 320, 3)).astype(np.uint8)
    container = av.open(str(path), mode="w")
    stream = container.add_stream("mpeg4", rate=Fraction(25))
    stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
    for t in range(frames):
        im = background.copy()
        x = 20 + (3 * t) % 240
        im[60:140, x : x + 50] = (230, 200, 40)
        y = 40 + (2 * t) % 150
        im[y : y + 40, 200:260] = (40, 90, 230)
        for packet in stream.encode(av.VideoFrame.from_ndarray(im, format="rgb24")):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()


class Probe:
    """Arrival times and memory of the frames of one run."""

    def __init__(self) -> None:
        self.arrival: list[float] = []
        self.done: dict[int, float] = {}
        self.rss_100 = float("nan")
        self.rss_max = 0.0


def probed_stream(probe: Probe) -> type:
    class ProbedStream(FrameStream):
        def __iter__(self) -> Iterator[np.ndarray]:
            for frame in super().__iter__():
                probe.arrival.append(time.perf_counter())
                n = len(probe.arrival)
                if n == 100:
                    probe.rss_100 = rss_mb()
                if n % 50 == 0:
                    probe.rss_max = max(probe.rss_max, rss_mb())
                yield frame

    return ProbedStream


def probed_events(probe: Probe, events: Any) -> Any:
    def wrapped(*args: Any, **kwargs: Any) -> Iterator[Any]:
        for event in events(*args, **kwargs):
            if hasattr(event, "frame") and hasattr(event, "image"):
                probe.done[event.frame] = time.perf_counter()
            yield event

    return wrapped


def untrained(arch: str, tmp: Path) -> str:
    """A weights file of an untrained ``arch`` (24 classes) with the metadata training writes."""
    import torch

    from singleshot.engine.weights import save_weights
    from singleshot.models import create_model
    from singleshot.tasks.action.act_predictor import act_meta
    from singleshot.tasks.action.predictor import action_meta

    torch.manual_seed(0)
    classes = [f"class{i}" for i in range(24)]
    if arch.startswith("act"):
        cfg = ActionConfig(model="act", arch=arch, imgsz=300 if arch == "act_vgg16" else 128)
        kwargs = {"k": cfg.K} if arch == "act_vgg16" else {"k": cfg.K, "image_size": cfg.imgsz}
        model = create_model(arch, 24, **kwargs)
        meta = act_meta(cfg, kwargs, classes)
    else:
        cfg = ActionConfig(model="yowo", arch=arch, imgsz=224)
        kwargs = {} if arch == "yowo" else {"clip_len": cfg.clip_len}
        model = create_model(arch, 24, **kwargs)
        meta = action_meta(model, cfg, kwargs, classes)
    path = tmp / f"{arch}.safetensors"
    save_weights(path, model, meta)
    return str(path)


def run(weights: str, video: Path, out: Path, batch: int, conf: float | None) -> dict[str, Any]:
    from singleshot.engine.weights import load_weights
    from singleshot.tasks.action.evaluate import load_predictor
    from singleshot.tasks.common import make_config

    args = {"weights": weights, "batch": str(batch), "source": str(video), "project": str(out)}
    if conf is not None:  # untrained weights: thresholds that keep post-processing realistic
        args.update(conf=str(conf), cand_min_score=str(conf))
    cfg = make_config(ActionConfig, args)
    predictor = load_predictor(cfg)
    probe = Probe()
    saved = action_predict.FrameStream, action_predict.online_events
    action_predict.FrameStream = probed_stream(probe)
    action_predict.online_events = probed_events(probe, saved[1])
    try:
        start = time.perf_counter()
        out.mkdir(parents=True, exist_ok=True)
        result = action_predict.predict_source(predictor, str(video), out, cfg)
        seconds = time.perf_counter() - start
    finally:
        action_predict.FrameStream, action_predict.online_events = saved
    latency = [probe.done[t] - probe.arrival[t - 1] for t in probe.done if t - 1 < len(probe.arrival)]
    return {
        "weights": Path(weights).name if "/tmp" in weights else weights,
        "architecture": load_weights(weights)[1].get("architecture"),
        "batch": batch,
        "frames": result["frames"],
        "fps": round(result["frames"] / seconds, 2),
        "latency_ms_mean": round(1000 * float(np.mean(latency)), 1),
        "latency_ms_p95": round(1000 * float(np.percentile(latency, 95)), 1),
        "rss_mb_after_100": round(probe.rss_100, 1),
        "rss_mb_max": round(probe.rss_max, 1),
        "rss_growth_mb": round(probe.rss_max - probe.rss_100, 1),
        "tubes": result["tubes"],
        "detections": result["detections"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=600)
    parser.add_argument("--weights", default="", help="comma-separated weights files")
    parser.add_argument("--archs", default="", help="comma-separated untrained architectures")
    parser.add_argument("--conf", type=float, default=0.3, help="score threshold of untrained models")
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        video = tmp / "stream.mp4"
        write_video(video, args.frames)
        jobs = [(w, None) for w in args.weights.split(",") if w]
        jobs += [(untrained(a, tmp), args.conf) for a in args.archs.split(",") if a]
        for i, (weights, conf) in enumerate(jobs):
            row = run(weights, video, tmp / f"out{i}", args.batch, conf)
            print(json.dumps(row), flush=True)
            rows.append(row)
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
