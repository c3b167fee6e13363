"""Optical flow for ACT's flow stream: speed and accuracy of ``action flow``'s two methods.

For each frame size (160x120, the demo's; 320x240, UCF101's) a smooth random texture and the same
texture moved by (3, -2) pixels are given to OpenCV's DIS (preset medium, the default) and
OpenCV-contrib's dual TV-L1, one OpenCV thread each; the script prints the median time per frame
pair and the median flow in the interior after ACT's 8-bit encoding and decoding (the truth is
x = 3, y = -2), then the numbers as JSON on the last line.

    .venv/bin/python benchmarks/bench_flow.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from _timing import median_time  # benchmarks/ is on sys.path when run as a script

from singleshot.data.action.flow import FLOW_METHODS, decode_flow, encode_flow, flow_estimator


def _texture(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    coarse = rng.random((h // 4 + 2, w // 4 + 2))
    up = np.kron(coarse, np.ones((4, 4)))[:h, :w]
    return (255 * (up + np.roll(up, 1, 0) + np.roll(up, 1, 1) + np.roll(up, (1, 1), (0, 1))) / 4).astype(np.uint8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    import cv2

    cv2.setNumThreads(1)
    rows = []
    for h, w in ((120, 160), (240, 320)):
        big = _texture(h + 20, w + 20)
        a, b = big[10 : 10 + h, 10 : 10 + w], big[12 : 12 + h, 7 : 7 + w]  # moved by (+3, -2)
        for method in FLOW_METHODS:
            estimate = flow_estimator(method)
            seconds = median_time(lambda: estimate(a, b), args.repeats)  # noqa: B023
            flow = decode_flow(encode_flow(estimate(a, b)))[16:-16, 16:-16]
            rows.append(
                {
                    "size": f"{w}x{h}",
                    "method": method,
                    "ms_per_pair": round(1000 * seconds, 2),
                    "x": round(float(np.median(flow[..., 0])), 3),
                    "y": round(float(np.median(flow[..., 1])), 3),
                }
            )
            r = rows[-1]
            print(f"{r['size']:>8} {method:>5}: {r['ms_per_pair']:8.2f} ms/pair   x {r['x']:+.3f}  y {r['y']:+.3f}")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
