"""ACT's linking candidates (``dets_all``) at the published scale: 8732 SSD300 anchor cuboids, K = 6,
24 classes, one window, with and without a cap before the class-agnostic 0.7 NMS (``pre_top``).

Two score regimes: ``flat`` (an untrained or weak network: every cuboid's best class score is
above ACT's 0.01, so the NMS sees all 8732) and ``peaked`` (a trained network: ~40 cuboids above
0.01). ACT's own ``nms_tubelets`` runs over every cuboid; singleshot's old default kept the 1000 best
first. Prints the median time per window and the candidates kept for each setting.

    .venv/bin/python benchmarks/bench_act_candidates.py [--repeats 5] [--json]
"""

from __future__ import annotations

import argparse
import json

import torch
from _timing import interleaved_median_times  # benchmarks/ is on sys.path when run as a script

from singleshot.ops.priors import generate_priors, prior_spec
from singleshot.tasks.action.act_tubelets import CandidateSettings, linking_candidates

K, CLASSES, SIZE = 6, 24, (240, 320)


def outputs(regime: str, seed: int = 0) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Random head outputs of one window: ``loc`` [1, P, 4K] and ``conf`` [1, P, C + 1]."""
    g = torch.Generator().manual_seed(seed)
    priors = generate_priors(prior_spec("voc300"))
    p = priors.shape[0]
    loc = torch.randn(1, p, 4 * K, generator=g) * 0.5
    conf = torch.randn(1, p, CLASSES + 1, generator=g)
    if regime == "peaked":
        conf[..., 0] += 12.0  # background wins almost everywhere
        hot = torch.randperm(p, generator=g)[:40]
        conf[0, hot, 1 + torch.randint(0, CLASSES, (40,), generator=g)] += 16.0
    return {"loc": loc, "conf": conf}, priors


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    rows = []
    for regime in ("flat", "peaked"):
        out, priors = outputs(regime)
        best = out["conf"].softmax(-1)[0, :, 1:].max(-1).values
        settings = [CandidateSettings(pre_top=1000), CandidateSettings(pre_top=0)]
        fns = [lambda s=s: linking_candidates(out, priors, [SIZE], s) for s in settings]
        times = interleaved_median_times(fns, args.repeats)
        for s, t, fn in zip(settings, times, fns):
            kept = int(fn()[0][0].shape[0])
            rows.append(
                {
                    "regime": regime,
                    "above_0.01": int((best > 0.01).sum()),
                    "pre_top": s.pre_top,
                    "seconds_per_window": round(t, 4),
                    "kept": kept,
                }
            )
    if args.json:
        print(json.dumps(rows))
        return
    print(f"{'regime':8s} {'>0.01':>6s} {'pre_top':>8s} {'s/window':>9s} {'kept':>5s}")
    for r in rows:
        print(f"{r['regime']:8s} {r['above_0.01']:6d} {r['pre_top']:8d} {r['seconds_per_window']:9.4f} {r['kept']:5d}")


if __name__ == "__main__":
    main()
