"""ACT's feature cache: each frame through the trunk once against every K-frame window run whole.

Part 1, per-frame cost: ``act_vgg16`` (300x300, K = 6, random weights) or another architecture
over a video of random frames, through :meth:`ACTPredictor.detect_video` with
``feature_cache`` on and off in the same run; prints ms per frame of each and their ratio, and the
largest difference of the two runs' candidate scores.

Part 2 (``--weights W --data D``), ``action val`` end to end on a trained model (e.g. the ACT demo's
``runs/action/demo_act/best.safetensors`` on ``runs/action/demo_data``), both ways, each in a fresh
project folder (no tubelet cache); prints the seconds and the metrics of each, the seconds spent in
the network (ACTDetector's methods) and the bound on the speed-up of ``val`` that removing the
network's time entirely would give.

    .venv/bin/python benchmarks/bench_act_feature_cache.py [--arch act_vgg16] [--frames 30] [--batch 8]
        [--weights W --data D [--frames-root F]]
    .venv/bin/python benchmarks/bench_act_feature_cache.py --steady [--arch act_vgg16] [--batch 4]

Part 1b (``--steady``): the network alone in the steady state of a long video, where each new frame
closes one window (see :func:`steady_state`).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import numpy as np
import torch

from singleshot.models import create_model
from singleshot.postprocess.tubelet import TubeletPostprocess
from singleshot.tasks.action.act_predictor import ACTPredictor
from singleshot.tasks.action.act_tubelets import CandidateSettings


def per_frame(arch: str, k: int, frames: int, batch: int, size: int) -> dict:
    torch.manual_seed(0)
    kwargs = {} if arch == "act_vgg16" else {"image_size": size}
    model = create_model(arch, num_classes=24, k=k, **kwargs).eval()
    side = int(model.image_size)
    # thresholds that keep the post-processing of random weights' near-uniform scores negligible:
    # this part measures the network's cost per frame
    predictor = ACTPredictor(
        model,
        {"input_size": [side, side], "classes": [str(i) for i in range(24)]},
        TubeletPostprocess(score_thresh=0.5, topk_candidates=50, max_detections=20),
        candidates=CandidateSettings(keep=20, min_score=0.5),
    )
    video = torch.randint(0, 256, (frames, 3, 240, 320), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    stored = predictor.prepare(video)
    out, runs = {"arch": arch, "k": k, "frames": frames, "batch": batch, "input": side}, {}
    for cache in (True, False):
        predictor.feature_cache = cache
        predictor.detect_video(stored[: k + 1], (240, 320), "warm-up", batch)
        start = time.perf_counter()
        runs[cache] = predictor.detect_video(stored, (240, 320), "v", batch)
        out[f"ms_per_frame_{'cache' if cache else 'whole'}"] = round(1000 * (time.perf_counter() - start) / frames, 1)
    out["speedup"] = round(out["ms_per_frame_whole"] / out["ms_per_frame_cache"], 2)
    a, b = runs[True].cand_scores, runs[False].cand_scores
    out["max_abs_diff_cand_scores"] = float(np.abs(a - b).max()) if a.shape == b.shape and a.size else None
    return out


def steady_state(arch: str, k: int, batch: int, size: int, repeats: int = 2) -> dict:
    """The network's cost per frame on a long video, where every new frame closes one window: ``batch``
    windows run whole (K frames each through the trunk, then the heads) against ``batch`` new frames
    through the trunk plus the heads of their ``batch`` windows over cached maps (the maps of the
    K - 1 frames before come from earlier steps and are computed outside the timing)."""
    torch.manual_seed(0)
    kwargs = {} if arch == "act_vgg16" else {"image_size": size}
    model = create_model(arch, num_classes=24, k=k, **kwargs).eval()
    side = int(model.image_size)
    frames = torch.randn(batch + k - 1, 3, side, side)
    index = torch.arange(batch)[:, None] + torch.arange(k)[None]
    with torch.inference_mode():
        earlier = model.frame_features(frames[: k - 1])

        def whole() -> None:
            model(frames[index])

        def cached() -> None:
            model.window_outputs(earlier.cat(model.frame_features(frames[k - 1 :])), index)

        times = {}
        for name, fn in (("whole", whole), ("cache", cached)):
            fn()
            start = time.perf_counter()
            for _ in range(repeats):
                fn()
            times[name] = (time.perf_counter() - start) / repeats / batch
        a = model(frames[index])
        b = model.window_outputs(earlier.cat(model.frame_features(frames[k - 1 :])), index)
    return {
        "arch": arch,
        "k": k,
        "windows": batch,
        "input": side,
        "ms_per_frame_cache": round(1000 * times["cache"], 1),
        "ms_per_frame_whole": round(1000 * times["whole"], 1),
        "speedup": round(times["whole"] / times["cache"], 2),
        "max_abs_diff_conf": float((a["conf"] - b["conf"]).abs().max()),
        "max_abs_diff_loc": float((a["loc"] - b["loc"]).abs().max()),
    }


class NetworkClock:
    """Seconds spent inside ACTDetector's ``forward``, ``frame_features`` and ``window_outputs``
    (none of them calls another), summed while installed: the network's share of a ``val``."""

    names = ("forward", "frame_features", "window_outputs")

    def __init__(self) -> None:
        self.seconds = 0.0
        self.saved: dict = {}

    def __enter__(self) -> NetworkClock:
        from singleshot.models.act import ACTDetector

        for name in self.names:
            original = getattr(ACTDetector, name)
            self.saved[name] = original

            def timed(*args, _original=original, **kwargs):
                start = time.perf_counter()
                try:
                    return _original(*args, **kwargs)
                finally:
                    self.seconds += time.perf_counter() - start

            setattr(ACTDetector, name, timed)
        return self

    def __exit__(self, *exc: object) -> None:
        from singleshot.models.act import ACTDetector

        for name, original in self.saved.items():
            setattr(ACTDetector, name, original)


def end_to_end(weights: str, data: str, frames_root: str, workers: int) -> dict:
    """``action val`` with the feature cache on and off (a first, untimed run warms the caches of
    the file system and the allocator); ``workers=0`` lets :class:`NetworkClock` see the network."""
    from singleshot.tasks.action.evaluate import val

    out = {}
    for cache in (None, True, False):
        with tempfile.TemporaryDirectory() as project:
            args = {"weights": weights, "data": data, "project": project, "feature_cache": str(bool(cache)).lower()}
            args["workers"] = str(workers)
            if frames_root:
                args["frames"] = frames_root
            if cache is None:
                val(args)
                continue
            start = time.perf_counter()
            with NetworkClock() as clock:
                metrics = val(args)
            key = "cache" if cache else "whole"
            out[f"val_seconds_{key}"] = round(time.perf_counter() - start, 1)
            out[f"network_seconds_{key}"] = round(clock.seconds, 1)
            out[f"metrics_{key}"] = {k: v for k, v in metrics.items() if isinstance(v, float)}
    out["val_speedup"] = round(out["val_seconds_whole"] / out["val_seconds_cache"], 2)
    out["network_speedup"] = round(out["network_seconds_whole"] / max(out["network_seconds_cache"], 1e-9), 2)
    # the best any cache of the network could give the whole val: all network time gone
    out["val_speedup_bound_without_network"] = round(
        out["val_seconds_whole"] / max(out["val_seconds_whole"] - out["network_seconds_whole"], 1e-9), 2
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="act_vgg16")
    parser.add_argument("--k", type=int, default=6)
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=128, help="input side of act_tiny / act_slim")
    parser.add_argument("--steady", action="store_true", help="the network's steady-state cost per frame only")
    parser.add_argument("--weights", default="")
    parser.add_argument("--data", default="")
    parser.add_argument("--frames-root", default="")
    parser.add_argument("--workers", type=int, default=0, help="val's workers= (0: the network's time is measured)")
    args = parser.parse_args()
    result: dict = {"threads": torch.get_num_threads()}
    if args.steady:
        result["steady"] = steady_state(args.arch, args.k, args.batch, args.size)
        print(json.dumps(result["steady"]))
    else:
        result["per_frame"] = per_frame(args.arch, args.k, args.frames, args.batch, args.size)
        print(json.dumps(result["per_frame"]))
    if args.weights:
        result["val"] = end_to_end(args.weights, args.data, args.frames_root, args.workers)
        print(json.dumps(result["val"]))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
