"""``singleshot action demo model=act``: a light ACT trained on the synthetic action videos.

The data are issue 4's synthetic videos (:func:`~singleshot.data.action.synthetic.generate_action_dataset`,
the same folder and arguments as YOWO's demo, so one copy serves both); the model is ``act_tiny``
at a small input; the metrics are frame-mAP and video-mAP under ACT's protocol with ACT's linking
on the held-out videos; the run writes ``results.csv``/``results.png`` and an annotated video of
a test video, and returns the same keys as YOWO's demo.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import torch

from singleshot.errors import ConfigError
from singleshot.tasks.action import ActionConfig

logger = logging.getLogger(__name__)

__all__ = ["ACT_DEMO_DEFAULTS", "run_act_demo"]

#: The CPU demo recipe (measured in BENCHMARKS.md, "Action demos"). The synthetic classes are
#: defined by motion alone, which ACT's streams (each frame through the trunk on its own, fused only
#: linearly by the heads) see only through a motion input: hence the RGB-difference second stream,
#: whose class probabilities weigh 0.75 in the late fusion (ACT: 0.5) because it is the stream that
#: sees the class. The actors exist only during their actions, so the linked tubes are trimmed to
#: their frames of tubelet score >= 0.05 (ACT's linking alone runs them on past the action's ends).
#: No zoom-out and no photometric distortion (the test videos are at the training scale; the diff
#: images are differences), batch 8 (more updates in the same time).
ACT_DEMO_DEFAULTS: dict[str, Any] = {
    "model": "act",
    "arch": "act_tiny",
    "act_width": 0.5,
    "K": 4,
    "imgsz": 96,
    "modality": "rgb+diff",
    "motion_weight": 0.75,
    "max_zoom": 1.0,
    "photometric": False,
    "epochs": 5,
    "batch": 8,
    "optimizer": "sgd",
    "lr": 0.02,
    "momentum": 0.9,
    "weight_decay": 5e-4,
    "schedule": "cosine",
    "milestones": "",
    "warmup": 50,
    "workers": 1,
    "parallel_branches": True,
    "protocol": "act",
    "linking": "act",
    "trim": 0.05,
    "name": "demo_act",
    "eval_every": 100,
    "checkpoint_every": 0,
    "n_train": 180,
    "n_test": 16,
}


def run_act_demo(args: dict[str, str]) -> dict:
    """Synthetic dataset -> train -> evaluate (ACT protocol) -> annotated video of a test video.

    Runs with ``torch.set_num_threads(demo_threads(workers))`` and restores the thread count after.
    """
    from singleshot.tasks.action_act import act_config
    from singleshot.tasks.detect_train import demo_threads

    cfg = act_config(dict(args), **ACT_DEMO_DEFAULTS)
    assert cfg is not None  # model=act is among the defaults
    threads = torch.get_num_threads()
    torch.set_num_threads(demo_threads(cfg.workers))
    try:
        return _run(cfg)
    finally:
        torch.set_num_threads(threads)


def _run(cfg: ActionConfig) -> dict:
    from singleshot.data.action.synthetic import ensure_action_dataset
    from singleshot.engine.distributed import get_world_size
    from singleshot.tasks.action_act import train_act
    from singleshot.tasks.action_modes import load_data, load_predictor

    if get_world_size() > 1 or int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ConfigError("the demo runs in one process; under torchrun use `singleshot action train model=act`")
    t0 = time.perf_counter()
    if not cfg.data:
        root = ensure_action_dataset(Path(cfg.project) / "demo_data", cfg.n_train, cfg.n_test, cfg.video_size,
                                     cfg.video_frames, cfg.seed)  # fmt: skip
        cfg.data = str(root)
    cfg.eval_every = min(cfg.eval_every, cfg.epochs)
    result = train_act(cfg)
    assert result is not None  # one process: rank 0
    out = Path(result["out"])
    ann, root = load_data(cfg)
    cfg.weights = result["weights"]
    video = ann.test_videos[0] if ann.test_videos else sorted(ann.videos)[0]
    cfg.video_name = video
    predictor = load_predictor(cfg)
    pred = predictor.predict_source(root / "rgb-images" / video, out / "predictions", cfg)
    result.update(annotated_video=pred["video"], demo_seconds=round(time.perf_counter() - t0, 1))
    (out / "metrics.json").write_text(json.dumps(result, indent=2))
    return result
