"""GG-CNN inference and post-processing time on this CPU.

Times per 300×300 depth image: the network forward pass (batch 1 and 8, 1 and 2 intra-op threads,
contiguous and channels-last memory format, calls alternated)
and the post-processing (Gaussian smoothing of the maps, peak finding, top-1 grasp; batch 1 and 8),
median of ``--repeats`` runs after a warm-up. The published figure is 6 ms for the GG-CNN network
on a GPU (Morrison et al., RSS 2018), given for context: it is not a CPU number.

Usage: .venv/bin/python benchmarks/bench_grasp.py [--repeats 20] [--model ggcnn]
Prints one line per measurement and a JSON object on the last line. Run it on an idle machine
(``uptime`` load below 2): the small convolutions are very sensitive to a busy core.
"""

from __future__ import annotations

import argparse
import json
import os

import torch
from _timing import interleaved_median_times, median_time  # benchmarks/ is on sys.path when run as a script

from singleshot.postprocess.grasp import GraspPostprocess
from singleshot.tasks.grasp.predictor import build_grasp_model

PUBLISHED_GPU_MS = 6.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--model", default="ggcnn", choices=["ggcnn", "ggcnn2"])
    parser.add_argument("--size", type=int, default=300)
    args = parser.parse_args()
    load = os.getloadavg()[0]
    print(f"load average (1 min) at start: {load:.2f}; published GG-CNN network time: {PUBLISHED_GPU_MS} ms (GPU)")
    torch.manual_seed(0)
    model = build_grasp_model(args.model).eval()
    model_cl = build_grasp_model(args.model).eval()
    model_cl.load_state_dict(model.state_dict())
    model_cl = model_cl.to(memory_format=torch.channels_last)  # what GraspPredictor runs from a weights file
    post = GraspPostprocess()
    results: dict[str, float] = {}
    threads0 = torch.get_num_threads()
    for threads in (1, 2):
        torch.set_num_threads(threads)
        for batch in (1, 8):
            x = torch.randn(batch, 1, args.size, args.size)
            xc = x.contiguous(memory_format=torch.channels_last)
            with torch.inference_mode():
                t, tc = interleaved_median_times([lambda: model(x), lambda: model_cl(xc)], args.repeats)
            for layout, value in (("", t), ("_channels_last", tc)):
                key = f"net_ms_per_image_b{batch}_t{threads}{layout}"
                results[key] = 1000 * value / batch
                print(
                    f"{args.model} forward{layout.replace('_', ' '):15} batch {batch}  threads {threads}: "
                    f"{results[key]:8.2f} ms / image"
                )
    torch.set_num_threads(1)
    for batch in (1, 8):
        with torch.inference_mode():
            maps = model(torch.randn(batch, 1, args.size, args.size))
            t = median_time(lambda: post(maps), args.repeats)
        key = f"post_ms_per_image_b{batch}_t1"
        results[key] = 1000 * t / batch
        print(f"post-processing    batch {batch}  threads 1: {results[key]:8.2f} ms / image")
    torch.set_num_threads(threads0)
    print(
        json.dumps(
            {
                "model": args.model,
                "size": args.size,
                "load_at_start": round(load, 2),
                "published_gpu_ms": PUBLISHED_GPU_MS,
                **{k: round(v, 3) for k, v in results.items()},
            }
        )
    )


if __name__ == "__main__":
    main()
