"""Does distillation help? The same small student trained with and without a teacher, several seeds.

On the embedded shapes data (``detect demo``'s dataset: 800 training / 200 held-out images at
160x160, generated once with seed 0):

1. a teacher is trained first (default: ``ssd_slim``, the demo recipe of
   ``singleshot/tasks/detect/demo.py`` ``DEMO_DEFAULTS`` for ``--teacher-epochs`` epochs), or
   taken from ``--teacher-weights``;
2. for each seed, the student (default: the demo's ``ssd_tiny``, same recipe, a short schedule of
   ``--student-epochs`` epochs so that it has room below the teacher) is trained once per config:
   ``baseline`` (multibox loss only) and ``kd`` (``teacher=`` with the CLI defaults kd_weight=1,
   kd_temperature=2, kd_mask=matched); optional ``kd_feat`` (feat_weight=1), ``aux`` (aux=true)
   and ``kd_aux``. A seed fixes the student's initialisation and the data order, identical between
   configs.
3. prints, per config, VOC07 mAP@0.5 on the 200 held-out images for each seed, the mean and the
   sample standard deviation, the mean difference to ``baseline`` with the spread of the paired
   per-seed differences, and the wall time; the last line is the whole result as JSON.

    .venv/bin/python benchmarks/bench_distill.py [--seeds 0,1,2] [--configs baseline,kd]
        [--teacher-model ssd_slim --teacher-epochs 10 | --teacher-weights best.safetensors]
        [--student-model ssd_tiny --student-epochs 3] [--out runs/bench_distill]

Each run is the same as ``singleshot detect train data=<out>/data model=... epochs=... seed=...
[teacher=...]`` with the demo recipe (one compute thread plus one loader worker).
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

from singleshot.data.shapes import SHAPES_CLASSES, write_shapes_dataset
from singleshot.tasks.common import demo_threads, make_config
from singleshot.tasks.detect.config import DetectConfig
from singleshot.tasks.detect.demo import DEMO_DEFAULTS
from singleshot.tasks.detect.train import train_detector

CONFIGS: dict[str, dict[str, str]] = {
    "baseline": {},
    "kd": {"teacher": "{teacher}"},
    "kd_feat": {"teacher": "{teacher}", "feat_weight": "1.0"},
    "aux": {"aux": "true"},
    "kd_aux": {"teacher": "{teacher}", "aux": "true"},
}


def train(
    data: Path, out: Path, name: str, model: str, epochs: int, seed: int, extra: dict[str, str]
) -> dict[str, Any]:
    """One ``detect train`` run with the demo recipe; returns its result dict plus ``wall_s``."""
    args = {
        "data": str(data),
        "classes": ",".join(SHAPES_CLASSES),
        "model": model,
        "epochs": str(epochs),
        "eval_every": str(epochs),
        "seed": str(seed),
        "project": str(out),
        "name": name,
        "plot_every": "0",
        **extra,
    }
    cfg = make_config(DetectConfig, args, **DEMO_DEFAULTS)
    t0 = time.perf_counter()
    result = train_detector(cfg)
    assert result is not None
    return dict(result, wall_s=round(time.perf_counter() - t0, 1))


def command_line(argv: list[str]) -> str:
    return " ".join([".venv/bin/python", "benchmarks/bench_distill.py", *argv])


def main(argv: list[str] | None = None) -> dict[str, Any]:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--configs", default="baseline,kd")
    p.add_argument("--teacher-model", default="ssd_slim")
    p.add_argument("--teacher-epochs", type=int, default=10)
    p.add_argument("--teacher-weights", default="")
    p.add_argument("--student-model", default="ssd_tiny")
    p.add_argument("--student-epochs", type=int, default=3)
    p.add_argument("--n-train", type=int, default=800)
    p.add_argument("--n-val", type=int, default=200)
    p.add_argument("--out", default="runs/bench_distill")
    p.add_argument("--verbose", action="store_true")
    a = p.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if a.verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    seeds = [int(s) for s in a.seeds.split(",") if s.strip()]
    configs = [c for c in a.configs.split(",") if c.strip()]
    unknown = [c for c in configs if c not in CONFIGS]
    if unknown:
        p.error(f"unknown configs {unknown}; choose from {list(CONFIGS)}")
    out = Path(a.out)
    data = out / "data"
    marker = data / f".complete-{a.n_train}-{a.n_val}"
    if not marker.exists():
        write_shapes_dataset(data, a.n_train, a.n_val, size=160, seed=0)
        marker.touch()
    threads = torch.get_num_threads()
    torch.set_num_threads(demo_threads(int(DEMO_DEFAULTS["workers"])))
    t_start = time.perf_counter()
    try:
        teacher_info: dict[str, Any]
        if a.teacher_weights:
            teacher_path = a.teacher_weights
            teacher_info = {"weights": teacher_path}
        else:
            teacher_info = train(data, out, "teacher", a.teacher_model, a.teacher_epochs, 0, {})
            teacher_path = teacher_info["weights"]
            print(
                f"teacher {a.teacher_model} ({a.teacher_epochs} epochs): mAP@0.5 {teacher_info['map50']:.4f} "
                f"in {teacher_info['wall_s']:.0f} s",
                flush=True,
            )
        runs: dict[str, dict[int, dict[str, Any]]] = {c: {} for c in configs}
        for seed in seeds:
            for c in configs:
                extra = {k: v.format(teacher=teacher_path) for k, v in CONFIGS[c].items()}
                r = train(data, out, f"{c}_s{seed}", a.student_model, a.student_epochs, seed, extra)
                runs[c][seed] = r
                print(f"seed {seed} {c:9s} mAP@0.5 {r['map50']:.4f} ({r['wall_s']:.0f} s)", flush=True)
    finally:
        torch.set_num_threads(threads)
    summary: dict[str, Any] = {}
    for c in configs:
        maps = [runs[c][s]["map50"] for s in seeds]
        row: dict[str, Any] = {
            "map50": maps,
            "mean": statistics.fmean(maps),
            "std": statistics.stdev(maps) if len(maps) > 1 else 0.0,
            "wall_s": statistics.fmean(runs[c][s]["wall_s"] for s in seeds),
        }
        if "baseline" in runs and c != "baseline":
            diffs = [runs[c][s]["map50"] - runs["baseline"][s]["map50"] for s in seeds]
            row["diff_mean"] = statistics.fmean(diffs)
            row["diff_std"] = statistics.stdev(diffs) if len(diffs) > 1 else 0.0
        summary[c] = row
    print()
    print(
        f"student {a.student_model}, {a.student_epochs} epochs; teacher {a.teacher_model if not a.teacher_weights else a.teacher_weights}"
        + (f" ({a.teacher_epochs} epochs, mAP@0.5 {teacher_info['map50']:.4f})" if "map50" in teacher_info else "")
    )
    print(
        "| config | " + " | ".join(f"seed {s}" for s in seeds) + " | mean ± std | Δ vs baseline (paired) | wall s/run |"
    )
    print("|---|" + "---|" * len(seeds) + "---|---|---|")
    for c in configs:
        r = summary[c]
        diff = f"{r['diff_mean']:+.4f} ± {r['diff_std']:.4f}" if "diff_mean" in r else ""
        print(
            f"| {c} | "
            + " | ".join(f"{m:.4f}" for m in r["map50"])
            + f" | {r['mean']:.4f} ± {r['std']:.4f} | {diff} | {r['wall_s']:.0f} |"
        )
    total = time.perf_counter() - t_start
    print(f"\ncommand: {command_line(argv)}  (total {total:.0f} s)")
    result = {
        "configs": summary,
        "seeds": seeds,
        "teacher": {k: teacher_info.get(k) for k in ("weights", "map50", "wall_s")},
        "student_model": a.student_model,
        "student_epochs": a.student_epochs,
        "total_s": round(total, 1),
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
