"""Multibox loss with matching and hard negative mining: singleshot (batched) vs torchvision.

Batch 32, 8732 priors (SSD300), about 3 objects per image, 21 classes. torchvision's time covers
what its ``SSD.forward`` does for the loss: per-image IoU + ``SSDMatcher``, then ``compute_loss``
(per-image encoding, batched mining). Calls alternate between the two. Prints median times, the speed-up and both loss values.

    .venv/bin/python benchmarks/bench_multibox_loss.py [--repeats 40]
"""

from __future__ import annotations

import argparse

import torch
from _timing import interleaved_median_times  # benchmarks/ is on sys.path when run as a script
from torchvision.models.detection import ssd300_vgg16
from torchvision.ops import box_iou

from singleshot.losses.multibox import MultiBoxLoss
from singleshot.ops.boxes import cxcywh_to_xyxy
from singleshot.ops.priors import generate_priors, prior_spec
from singleshot.structures import BoxTarget


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=40)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    g = torch.Generator().manual_seed(0)
    priors = generate_priors(prior_spec("voc300"))
    p, b, c = priors.shape[0], args.batch, 21
    targets = []
    for _ in range(b):
        n = int(torch.randint(1, 6, (1,), generator=g))  # 1..5, mean 3
        xy = torch.rand(n, 2, generator=g) * 200
        wh = torch.rand(n, 2, generator=g) * 90 + 10
        targets.append(
            BoxTarget(
                torch.cat((xy, xy + wh), 1),
                torch.randint(0, c - 1, (n,), generator=g),
                torch.zeros(n, dtype=torch.bool),
                size=(300, 300),
            )
        )
    outputs = {"cls_logits": torch.randn(b, p, c, generator=g), "bbox_regression": torch.randn(b, p, 4, generator=g)}

    ours = MultiBoxLoss(priors)
    tv = ssd300_vgg16(weights=None, weights_backbone=None, num_classes=c)
    anchors = cxcywh_to_xyxy(priors) * 300
    tv_targets = [{"boxes": t.boxes, "labels": t.labels + 1} for t in targets]

    def run_tv() -> dict:
        matched = [tv.proposal_matcher(box_iou(t["boxes"], anchors)) for t in tv_targets]
        return tv.compute_loss(tv_targets, outputs, [anchors] * b, matched)

    a, t = ours(outputs, targets), run_tv()
    print(f"ours: loc={a['loc'].item():.6f} conf={a['conf'].item():.6f}")
    print(f"torchvision: loc={t['bbox_regression'].item():.6f} conf={t['classification'].item():.6f}")
    t_ours, t_tv = interleaved_median_times([lambda: ours(outputs, targets), run_tv], args.repeats)
    print(f"threads={torch.get_num_threads()} batch={b} priors={p}")
    print(f"singleshot {t_ours * 1e3:.1f} ms, torchvision {t_tv * 1e3:.1f} ms, speed-up {t_tv / t_ours:.2f}x")


if __name__ == "__main__":
    main()
