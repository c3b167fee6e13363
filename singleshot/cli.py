"""``singleshot TASK MODE key=value ...``: the one command line of every family."""

from __future__ import annotations

import json
import logging
import math
import sys
import warnings
from collections.abc import Callable, Sequence

from singleshot.config import parse_overrides
from singleshot.errors import SingleshotError
from singleshot.tasks import action, detect, grasp

#: ``singleshot TASK ...`` -> the task's table of modes.
TASKS: dict[str, dict[str, Callable[[dict[str, str]], dict | None]]] = {
    "detect": detect.MODES,
    "action": action.MODES,
    "grasp": grasp.MODES,
}

USAGE = """usage: singleshot TASK MODE [key=value ...]

tasks: {tasks}
modes: train, val, predict, score, convert, export, demo (see README.md)

examples:
  singleshot detect demo
  singleshot detect train model=ssd300 data=path/to/VOCdevkit years=2007,2012 epochs=120 batch=32
  singleshot detect val weights=runs/detect/train/best.safetensors data=path/to/VOCdevkit
  singleshot detect predict weights=best.safetensors source=image_or_folder_or_video
  singleshot detect score gt=path/to/VOCdevkit pred=results_dir metric=voc07
  singleshot detect convert from=torchvision src=ssd300_vgg16_coco.pth dst=ssd300_coco.safetensors
  singleshot detect convert from=caffe prototxt=deploy.prototxt caffemodel=VGG_SSD_300x300.caffemodel dst=ssd300.safetensors
  singleshot detect export weights=best.safetensors format=onnx [nms=true] [int8=true calib=path/to/VOCdevkit]
  singleshot action demo [model=yowo|act]
  singleshot action predict weights=best.safetensors source=video.mp4
  singleshot action score gt=UCF101v2-GT.pkl pred=frames.json [tubes=tubes.json] protocol=yowo|act
  singleshot grasp demo
  singleshot grasp score gt=path/to/cornell pred=grasps.json
"""


def _json_safe(value: object) -> object:
    """NaN and infinities become null: the printed line must be strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    logging.captureWarnings(True)
    warnings.simplefilter("default")


def main(argv: Sequence[str] | None = None) -> int:
    """Run one task mode; a mode's metrics are printed as one JSON object on the last stdout line."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 2 or args[0] in ("-h", "--help", "help"):
        print(USAGE.format(tasks=", ".join(TASKS)), file=sys.stderr if len(args) else sys.stdout)
        return 0 if args and args[0] in ("-h", "--help", "help") else 2
    task, mode, rest = args[0], args[1], args[2:]
    verbose = "verbose=true" in rest
    rest = [a for a in rest if a != "verbose=true"]
    _setup_logging(verbose)
    if task not in TASKS:
        print(f"error: unknown task {task!r}; tasks: {', '.join(TASKS)}", file=sys.stderr)
        return 2
    modes = TASKS[task]
    if mode not in modes:
        print(f"error: unknown mode {mode!r} for {task}; modes: {', '.join(modes)}", file=sys.stderr)
        return 2
    try:
        result = modes[mode](parse_overrides(rest))
    except SingleshotError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if result is not None:
        sys.stdout.flush()
        print(json.dumps(_json_safe(result), default=str, allow_nan=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
