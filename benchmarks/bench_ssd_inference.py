"""SSD300 end-to-end inference (preprocess + forward + decode + NMS): singleshot vs torchvision.

Both run the same weights (a seeded ``ssd300_vgg16`` converted with singleshot's converter) on the
same images, batch 1 and batch 8, float32, on the CPU. Calls alternate between the two. Prints the median time of each and the ratio
ours / theirs, and checks that the raw head outputs agree within 1e-4 and the detections match.

    .venv/bin/python benchmarks/bench_ssd_inference.py [--repeats 5] [--threads 2]
"""

from __future__ import annotations

import argparse

import torch
from _timing import interleaved_median_times  # benchmarks/ is on sys.path when run as a script
from torchvision.models.detection import ssd300_vgg16

from singleshot.convert.torchvision_ssd import load_torchvision_ssd300
from singleshot.tasks.detect.predictor import DetectPredictor, settings_from_meta


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    tv = ssd300_vgg16(weights=None, weights_backbone=None, num_classes=91).eval()
    with torch.no_grad():  # a trained-like score range (random features saturate the softmax)
        for conv in tv.head.classification_head.module_list:
            conv.weight.mul_(0.1)
    model, meta = load_torchvision_ssd300(tv.state_dict())
    ours = DetectPredictor(model, meta, settings_from_meta(meta))
    g = torch.Generator().manual_seed(0)
    images = [torch.randint(0, 256, (3, 375, 500), dtype=torch.uint8, generator=g) for _ in range(8)]

    # fidelity: raw head outputs and detections on the same input
    with torch.inference_mode():
        x = ours.preprocess(images[:2])
        raw = ours.model(x)
        tv_in, _ = tv.transform([i.float() / 255 for i in images[:2]])
        tv_raw = tv.head(list(tv.backbone(tv_in.tensors).values()))
        diff = max((raw[k] - tv_raw[k]).abs().max().item() for k in ("cls_logits", "bbox_regression"))
        d_ours = ours(images[:2])
        d_tv = tv([i.float() / 255 for i in images[:2]])
    same_sets = all(
        torch.allclose(a.scores.sort().values, b["scores"].sort().values, atol=1e-4) for a, b in zip(d_ours, d_tv)
    )
    print(f"max |raw output difference| = {diff:.2e} (limit 1e-4); detections equal: {same_sets}")

    print(f"threads={torch.get_num_threads()}  repeats={args.repeats}")
    print(f"{'batch':>5} {'singleshot s':>13} {'torchvision s':>14} {'ratio':>6}")
    for b in (1, 8):
        batch = images[:b]
        floats = [i.float() / 255 for i in batch]

        def run_ours() -> None:
            ours(batch)

        def run_tv() -> None:
            with torch.no_grad():
                tv([f for f in floats])

        t_ours, t_tv = interleaved_median_times([run_ours, run_tv], args.repeats)
        print(f"{b:>5} {t_ours:>13.3f} {t_tv:>14.3f} {t_ours / t_tv:>6.2f}")


if __name__ == "__main__":
    main()
