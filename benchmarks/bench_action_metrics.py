"""Action metrics at UCF101-24 test scale: frame-mAP (both protocols), Viterbi linking and video-mAP.

Synthetic data shaped like UCF101-24 split 1: 910 videos of about 200 frames (about 180k frames),
24 classes, one or two ground-truth tubes per video over part of it, and 10 detections per frame
(jittered copies of the boxes, most with the right label, plus background clutter with random labels).
Prints the time of each step and the total; the target is under 2 minutes on 2 CPU cores.

    .venv/bin/python benchmarks/bench_action_metrics.py [--videos 910] [--json]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from singleshot.metrics.action_files import read_frame_detections, write_frame_detections
from singleshot.metrics.frame_ap import frame_ap
from singleshot.metrics.video_ap import video_ap
from singleshot.postprocess.tube_link import link_act, link_viterbi, tubelets_from_act_rows
from singleshot.structures import ActionAnnotations, FrameDets, Tube, VideoAnnotation


def make_data(n_videos: int, n_classes: int, per_frame: int, seed: int) -> tuple[ActionAnnotations, FrameDets]:
    rng = np.random.default_rng(seed)
    videos: dict[str, VideoAnnotation] = {}
    parts: list[np.ndarray] = []
    for v in range(n_videos):
        label = v % n_classes
        name = f"C{label:02d}/v_{v:04d}"
        n = int(rng.integers(60, 340))
        tubes = []
        box_at = np.full((n + 1, 2, 4), np.nan)
        for k in range(int(rng.integers(1, 3))):
            start = int(rng.integers(1, n // 3 + 1))
            end = int(rng.integers(start + n // 3, n + 1))
            t = end - start + 1
            xy = rng.uniform(10, 200, 2) + np.cumsum(rng.normal(0, 1.5, (t, 2)), axis=0)
            wh = rng.uniform(30, 90, 2)
            boxes = np.concatenate([xy, xy + wh], 1).astype(np.float32)
            tubes.append(Tube(name, label, np.arange(start, end + 1), boxes))
            box_at[start : end + 1, k] = boxes
        videos[name] = VideoAnnotation(name, n, (240, 320), tubes)
        # per frame: up to 2 detections on each ground-truth box, the rest clutter
        frames = np.repeat(np.arange(1, n + 1), per_frame)
        slot = np.tile(np.arange(per_frame), n)
        src = box_at[frames, np.minimum(slot // 2, 1)]
        on_gt = (slot < 4) & ~np.isnan(src[:, 0])
        xy = rng.uniform(0, 260, (frames.shape[0], 2))
        wh = rng.uniform(20, 100, (frames.shape[0], 2))
        clutter = np.concatenate([xy, xy + wh], 1)
        jitter = rng.normal(0, 6, (frames.shape[0], 4))
        boxes = np.where(on_gt[:, None], np.nan_to_num(src) + jitter, clutter)
        boxes = np.concatenate([np.minimum(boxes[:, :2], boxes[:, 2:]), np.maximum(boxes[:, :2], boxes[:, 2:])], 1)
        right = on_gt & (rng.random(frames.shape[0]) < 0.85)
        labels = np.where(right, label, rng.integers(0, n_classes, frames.shape[0]))
        scores = np.where(on_gt, rng.uniform(0.3, 1.0, frames.shape[0]), rng.uniform(0.0, 0.4, frames.shape[0]))
        parts.append(np.column_stack([np.full(frames.shape[0], v), frames, labels, scores, boxes]))
    rows = np.concatenate(parts)
    names = list(videos)
    gt = ActionAnnotations([f"C{c:02d}" for c in range(n_classes)], videos, test_videos=names)
    return gt, FrameDets.from_array(rows, names)


def act_tubelets(video: VideoAnnotation, n_classes: int, k: int, per_frame: int, rng: np.random.Generator) -> dict:
    """ACT ``dets_all``-like tubelets of one video: per start frame ``per_frame`` tubelets of K boxes
    (jittered ground truth and clutter) with a background score and one score per class."""
    rows = {}
    tube = video.tubes[0]
    for start in range(1, video.num_frames - k + 2):
        hit = np.clip(np.arange(start, start + k), tube.start, tube.end) - tube.start
        base = tube.boxes[hit].reshape(-1)  # [4K]
        xy = rng.uniform(0, 260, (per_frame, 2))
        clutter = np.tile(np.concatenate([xy, xy + rng.uniform(20, 100, (per_frame, 2))], 1), (1, k))
        boxes = np.where(np.arange(per_frame)[:, None] < 4, base + rng.normal(0, 4, (per_frame, 4 * k)), clutter)
        scores = rng.dirichlet(np.full(n_classes + 1, 0.3), per_frame)
        rows[start] = np.concatenate([boxes, scores], 1)
    return tubelets_from_act_rows(rows, k)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=910)
    parser.add_argument("--per-frame", type=int, default=10)
    parser.add_argument("--json", action="store_true", help="also time writing and reading the frames JSON")
    parser.add_argument("--act-videos", type=int, default=5, help="videos for the ACT tubelet-linking timing")
    args = parser.parse_args()
    t0 = time.perf_counter()
    gt, dets = make_data(args.videos, 24, args.per_frame, seed=0)
    n_frames = sum(v.num_frames for v in gt.videos.values())
    n_tubes = sum(len(v.tubes) for v in gt.videos.values())
    print(
        f"data: {len(gt.videos)} videos, {n_frames} frames, {len(dets)} detections, {n_tubes} gt tubes "
        f"({time.perf_counter() - t0:.1f} s to generate)"
    )
    times: dict[str, float] = {}

    def timed(name: str, fn):  # noqa: ANN001, ANN202
        start = time.perf_counter()
        out = fn()
        times[name] = time.perf_counter() - start
        return out

    if args.json:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "frames.json"
            timed("write frames JSON", lambda: write_frame_detections(path, dets))
            timed("read frames JSON", lambda: read_frame_detections(path))
    fy = timed("frame-mAP yowo", lambda: frame_ap(gt, dets, "yowo"))
    fa = timed("frame-mAP act", lambda: frame_ap(gt, dets, "act"))
    nf = {v: a.num_frames for v, a in gt.videos.items()}
    tubes = timed("Viterbi linking", lambda: link_viterbi(dets, nf))
    vy = timed("video-mAP yowo", lambda: video_ap(gt, tubes, "yowo"))
    va = timed("video-mAP act", lambda: video_ap(gt, tubes, "act"))
    rng = np.random.default_rng(1)
    videos = list(gt.videos.values())[: args.act_videos]
    inputs = [act_tubelets(v, 24, 6, 50, rng) for v in videos]
    if videos:
        timed("ACT linking", lambda: [link_act(t, v.video, 6) for t, v in zip(inputs, videos)])
    for name, sec in times.items():
        print(f"{name:20s} {sec:7.2f} s")
    if videos:
        frames = sum(v.num_frames for v in videos)
        print(
            f"ACT linking: {times['ACT linking'] / frames * 1e3:.1f} ms per frame (50 tubelets x 24 classes, "
            f"K=6), {times['ACT linking'] / frames * n_frames:.0f} s extrapolated to all {n_frames} frames"
        )
    core = sum(sec for name, sec in times.items() if "JSON" not in name and "ACT" not in name)
    print(f"{'total (metrics)':20s} {core:7.2f} s   target < 120 s")
    print(
        f"frame-mAP yowo {fy['frame_map']:.4f}  act {fa['frame_map']:.4f}; {len(tubes)} tubes; "
        f"video-mAP@0.5 yowo {vy['video_map@0.5']:.4f}  act {va['video_map@0.5']:.4f}; "
        f"act @0.2 {va['video_map@0.2']:.4f} @0.5:0.95 {va['video_map@0.5:0.95']:.4f}"
    )


if __name__ == "__main__":
    main()
