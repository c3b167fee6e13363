"""int8 ONNX (onnxruntime, static QDQ) against float32 ONNX and PyTorch eager, on the CPU.

1. Speed: SSD300 (VGG16-reduced, 21 logits, seeded random weights) forward pass on pre-processed
   300x300 inputs, batch 1 and 8: PyTorch eager, onnxruntime float32, onnxruntime int8 (calibrated
   on shapes images resized to 300x300). Prints the median times and the int8 / float32 ratio.
2. Accuracy: the demo detector (``singleshot detect demo`` writes ``runs/detect/demo/best.safetensors``
   and the data under ``runs/detect/demo_data``) scored with VOC07 mAP@0.5 on the embedded
   validation split as PyTorch, float32 ONNX and int8 ONNX (calibrated on ``--calib-images``
   training images).

    .venv/bin/python benchmarks/bench_int8.py [--weights runs/detect/demo/best.safetensors]
        [--data runs/detect/demo_data] [--repeats 10] [--threads 2] [--calib-images 64] [--skip-map]

The last stdout line is one JSON object with every number.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch
from _timing import median_time  # benchmarks/ is on sys.path when run as a script

from singleshot.data.shapes import write_shapes_dataset
from singleshot.export.onnx_export import export_onnx
from singleshot.export.onnx_runtime import OnnxModel
from singleshot.export.quantize import quantize_static_onnx
from singleshot.models import create_model
from singleshot.tasks.detect.config import DetectConfig
from singleshot.tasks.detect.data import build_dataset
from singleshot.tasks.detect.evaluate import evaluate_dataset, load_predictor
from singleshot.tasks.detect.export import ExportOptions, calibration_batches, export_detector
from singleshot.tasks.detect.predictor import DetectPredictor, settings_from_meta

OUTPUTS = ["cls_logits", "bbox_regression"]


def speed(tmp: Path, repeats: int, threads: int, calib_images: int) -> dict[str, Any]:
    torch.manual_seed(0)
    model = create_model("ssd300", 20).eval()
    with torch.no_grad():  # a trained-like score range (random features saturate the softmax)
        for conv in model.head.conf:
            conv.weight.mul_(0.1)
    fp32 = export_onnx(model, torch.zeros(1, 3, 300, 300), tmp / "ssd300.onnx", OUTPUTS)
    shapes = write_shapes_dataset(tmp / "shapes300", n_train=calib_images, n_val=0, size=300, seed=0)
    meta = {"input_size": [300, 300], "classes": [f"c{i}" for i in range(20)]}
    pre = DetectPredictor(model, meta, settings_from_meta({}), channels_last=False)
    images_dir = str(shapes / "VOC2007" / "JPEGImages")
    int8 = quantize_static_onnx(
        fp32, tmp / "ssd300.int8.onnx", calibration_batches(pre, DetectConfig(), images_dir, calib_images)
    )
    ort32, ort8 = OnnxModel(fp32, threads=threads), OnnxModel(int8, threads=threads)
    g = torch.Generator().manual_seed(1)
    rows = []
    for b in (1, 8):
        images = [torch.randint(0, 256, (3, 375, 500), dtype=torch.uint8, generator=g) for _ in range(b)]
        x = pre.preprocess(images)
        x_cl = x.contiguous(memory_format=torch.channels_last)
        model_cl = model.to(memory_format=torch.channels_last)
        with torch.inference_mode():
            t_torch = median_time(lambda: model_cl(x_cl), repeats)
            ref = model(x)
        t32 = median_time(lambda: ort32(x), repeats)
        t8 = median_time(lambda: ort8(x), repeats)
        out8 = ort8(x)
        rows.append(
            {
                "batch": b,
                "torch_s": t_torch,
                "ort_fp32_s": t32,
                "ort_int8_s": t8,
                "int8_over_fp32": t8 / t32,
                "int8_over_torch": t8 / t_torch,
                "int8_logit_mae": float((out8["cls_logits"] - ref["cls_logits"]).abs().mean()),
            }
        )
    return {"threads": threads, "repeats": repeats, "rows": rows}


def accuracy(tmp: Path, weights: Path, data: Path, calib_images: int) -> dict[str, Any]:
    cfg = DetectConfig(
        weights=str(weights), data=str(data), train_set="train", val_set="val", workers=0, batch=16, metric="voc07"
    )
    predictor = load_predictor(cfg)
    classes = predictor.class_names
    val_set = build_dataset(cfg, cfg.val_set, classes)
    out: dict[str, Any] = {"weights": str(weights), "val_images": len(val_set), "calib_images": calib_images}
    out["torch_map50"] = evaluate_dataset(predictor, val_set, cfg, "voc07", classes)["map50"]
    for name, opts in (
        ("fp32", ExportOptions()),
        ("int8", ExportOptions(int8=True, calib=str(data), calib_images=calib_images)),
    ):
        dst = tmp / f"demo.{name}.onnx"
        export_detector(DetectConfig(weights=str(weights), dst=str(dst), train_set="train"), opts)
        onnx_pred = load_predictor(DetectConfig(weights=str(dst)))
        out[f"{name}_map50"] = evaluate_dataset(onnx_pred, val_set, cfg, "voc07", classes)["map50"]
    out["int8_drop_points"] = 100 * (out["fp32_map50"] - out["int8_map50"])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, default=Path("runs/detect/demo/best.safetensors"))
    parser.add_argument("--data", type=Path, default=Path("runs/detect/demo_data"))
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--calib-images", type=int, default=64)
    parser.add_argument("--skip-map", action="store_true", help="only the SSD300 timings")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    warnings.simplefilter("ignore")
    torch.set_num_threads(args.threads)
    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-int8-") as tmp:
        result["ssd300_speed"] = speed(Path(tmp), args.repeats, args.threads, args.calib_images)
        print(f"SSD300 forward, threads={args.threads}, median of {args.repeats}")
        print(f"{'batch':>5} {'torch s':>9} {'ort fp32 s':>11} {'ort int8 s':>11} {'int8/fp32':>10} {'int8/torch':>11}")
        for r in result["ssd300_speed"]["rows"]:
            print(
                f"{r['batch']:>5} {r['torch_s']:>9.4f} {r['ort_fp32_s']:>11.4f} {r['ort_int8_s']:>11.4f} "
                f"{r['int8_over_fp32']:>10.2f} {r['int8_over_torch']:>11.2f}"
            )
        if not args.skip_map:
            if not args.weights.is_file() or not args.data.is_dir():
                print(
                    f"no demo weights/data at {args.weights} / {args.data}: run `singleshot detect demo` first, or pass --skip-map"
                )
            else:
                acc = accuracy(Path(tmp), args.weights, args.data, args.calib_images)
                result["demo_map"] = acc
                print(
                    f"demo detector VOC07 mAP@0.5 on {acc['val_images']} val images: torch {acc['torch_map50']:.4f}  "
                    f"onnx fp32 {acc['fp32_map50']:.4f}  onnx int8 {acc['int8_map50']:.4f}  "
                    f"(drop {acc['int8_drop_points']:.2f} points)"
                )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
