"""``singleshot TASK MODE key=value ...``: the one command line of every family."""

from __future__ import annotations

import contextlib
import difflib
import json
import logging
import math
import signal
import sys
import threading
import warnings
from collections.abc import Iterable, Iterator, Sequence
from types import FrameType

import yaml

from singleshot.config import ModeSpec, check_mode_keys, load_yaml_mapping, mode_help, parse_overrides, resolved_config
from singleshot.errors import ConfigError, SingleshotError
from singleshot.tasks import action, detect, grasp
from singleshot.tasks.predict_files import EXIT_SKIPPED, SKIPPED_KEY

#: ``singleshot TASK ...`` -> the task's table of modes.
TASKS: dict[str, dict[str, ModeSpec]] = {
    "detect": detect.SPECS,
    "action": action.SPECS,
    "grasp": grasp.SPECS,
}

USAGE = """usage: singleshot TASK MODE [key=value ...]

tasks: {tasks}
modes: train, val, predict, score, check, convert, export, demo (singleshot TASK help lists them;
       singleshot TASK MODE help lists a mode's keys with their defaults and meaning)

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


_HELP_WORDS = ("help", "-h", "--help")


def _user_message(error: BaseException) -> str:
    """The message of a singleshot error, without the wrapper a DataLoader worker puts around it
    (``Caught DataError in DataLoader worker process 0. Original Traceback ...``): the original
    error's own text."""
    text = str(error)
    if text.startswith("Caught ") and "Original Traceback" in text:
        marker = f"{type(error).__module__}.{type(error).__qualname__}: "
        for prefix in (marker, f"{type(error).__qualname__}: "):
            at = text.rfind("\n" + prefix)
            if at >= 0:
                return text[at + 1 + len(prefix) :].strip()
    return text


def _close(word: str, choices: Iterable[str]) -> str:
    """``"; did you mean X?"`` for the closest of ``choices``, or nothing."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""


def _task_help(task: str) -> str:
    specs = TASKS[task]
    width = max(len(m) for m in specs)
    lines = [f"usage: singleshot {task} MODE [key=value ...]   (singleshot {task} MODE help: its keys)", "", "modes:"]
    lines += [f"  {m:<{width}}  {spec.summary}" for m, spec in specs.items()]
    return "\n".join(lines)


def _run(task: str, mode: str, rest: list[str]) -> int:
    spec = TASKS[task][mode]
    where = f"{task} {mode}"
    wants_help = any(a in _HELP_WORDS for a in rest)
    args = parse_overrides([a for a in rest if a not in _HELP_WORDS])
    if wants_help:
        print(mode_help(spec, where, args))
        return 0
    show = args.pop("show", None)
    given = list(args) + (list(load_yaml_mapping(args["cfg"])) if args.get("cfg") else [])
    check_mode_keys(given, spec, args, where)
    if show is not None:
        if show != "config":
            raise ConfigError(f"show={show!r}: expected show=config")
        print(yaml.safe_dump(resolved_config(spec, args), sort_keys=False, default_flow_style=None).rstrip())
        return 0
    result = spec.run(args)
    if result is not None:
        sys.stdout.flush()
        print(json.dumps(_json_safe(result), default=str, allow_nan=False))
    if isinstance(result, dict) and result.get(SKIPPED_KEY):
        return EXIT_SKIPPED  # finished, but some inputs were unreadable (listed in skipped.txt)
    return 0


def _raise_exit(signum: int, frame: FrameType | None) -> None:
    """A termination signal as ``SystemExit(128 + signum)`` in the main thread: ``finally`` blocks
    and context managers run (temporaries removed, run-folder locks released)."""
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def _signals_unwind() -> Iterator[None]:
    """While the block runs, ``SIGTERM`` and ``SIGHUP`` raise :class:`SystemExit` (see
    :func:`_raise_exit`; ``SIGINT`` already raises ``KeyboardInterrupt``); the previous handlers come
    back afterwards. Installed by :func:`main` only, never at import, and only from the main thread."""
    wanted = [getattr(signal, n) for n in ("SIGTERM", "SIGHUP") if hasattr(signal, n)]
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, _raise_exit) for s in wanted}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one task mode; a mode's metrics are printed as one JSON object on the last stdout line.

    ``singleshot TASK MODE help`` (or ``-h``, ``--help``) lists the mode's keys; ``show=config``
    prints the configuration the mode would run with; a key the mode does not read is an error.

    Exit status: 0 done; 2 an error (a usage mistake, a ``SingleshotError``: its message on stderr;
    ``check`` with faults); 3 done, but some inputs of a ``predict`` folder were unreadable and
    skipped (listed in the run folder's ``skipped.txt``); 130 interrupted.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in _HELP_WORDS:
        print(USAGE.format(tasks=", ".join(TASKS)), file=sys.stdout if args else sys.stderr)
        return 0 if args else 2
    if args[0] in TASKS and (len(args) < 2 or args[1] in _HELP_WORDS):
        print(_task_help(args[0]), file=sys.stdout if len(args) > 1 else sys.stderr)
        return 0 if len(args) > 1 else 2
    task, mode, rest = args[0], args[1], args[2:]
    verbose = "verbose=true" in rest
    rest = [a for a in rest if a != "verbose=true"]
    _setup_logging(verbose)
    if task not in TASKS:
        print(f"error: unknown task {task!r}{_close(task, TASKS)}; tasks: {', '.join(TASKS)}", file=sys.stderr)
        return 2
    if mode not in TASKS[task]:
        print(
            f"error: unknown mode {mode!r} for {task}{_close(mode, TASKS[task])}; modes: {', '.join(TASKS[task])}",
            file=sys.stderr,
        )
        return 2
    try:
        with _signals_unwind():
            return _run(task, mode, rest)
    except SingleshotError as e:
        print(f"error: {_user_message(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
