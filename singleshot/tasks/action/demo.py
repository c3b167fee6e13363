"""``action demo``: the synthetic action videos -> a light model of the member ``model=`` names
(YOWO by default, ``model=act``) trained on them -> frame-mAP and video-mAP on the held-out videos
-> an annotated video of a test video.

The data are :func:`~singleshot.data.action.synthetic.generate_action_dataset`'s, written once under
``project/demo_data`` (:func:`~singleshot.tasks.action.data.ensure_demo_dataset`; both members' demos
share the folder); the recipe is the member's ``demo`` record
(:data:`~singleshot.tasks.action.members.YOWO_DEMO_DEFAULTS`,
:data:`~singleshot.tasks.action.members.ACT_DEMO_DEFAULTS`); the run
(:func:`~singleshot.tasks.common.run_demo`) writes ``results.csv``/``results.png``, the annotated
video under ``predictions/`` and ``metrics.json``, and returns the same keys for both members.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from singleshot.tasks.action.config import ActionConfig
from singleshot.tasks.action.data import ensure_demo_dataset, load_data
from singleshot.tasks.action.evaluate import load_predictor
from singleshot.tasks.action.members import member_config
from singleshot.tasks.action.predict import predict_source
from singleshot.tasks.action.train import train_member
from singleshot.tasks.common import run_demo

logger = logging.getLogger(__name__)

__all__ = ["demo", "show_test_video", "write_demo_data"]


def write_demo_data(cfg: ActionConfig) -> None:
    """The synthetic dataset of ``n_train``, ``n_test``, ``video_size``, ``video_frames`` and ``seed``
    under ``project/demo_data`` (written once), as ``cfg.data``."""
    root = ensure_demo_dataset(
        Path(cfg.project) / "demo_data", cfg.n_train, cfg.n_test, cfg.video_size, cfg.video_frames, cfg.seed
    )
    cfg.data = str(root)


def show_test_video(cfg: ActionConfig, result: dict[str, Any]) -> dict[str, Any]:
    """The trained weights on the first test video: ``{"annotated_video": <mp4 under out/predictions>}``."""
    ann, root = load_data(cfg)
    cfg.weights = result["weights"]
    video = ann.test_videos[0] if ann.test_videos else sorted(ann.videos)[0]
    cfg.video_name = video
    pred = predict_source(load_predictor(cfg), root / "rgb-images" / video, Path(result["out"]) / "predictions", cfg)
    return {"annotated_video": pred["video"]}


def demo(args: dict[str, str]) -> dict:
    """Synthetic action videos -> train the member's demo recipe -> frame/video-mAP (ACT protocol) ->
    annotated video. Runs with ``torch.set_num_threads(demo_threads(workers))``, restored after."""
    member, cfg = member_config(args, demo=True)

    def train(c: ActionConfig) -> dict[str, Any] | None:
        c.eval_every = min(c.eval_every, c.epochs)
        return train_member(member, c)

    return run_demo(
        cfg,
        f"singleshot action train model={member.name}",
        write_demo_data,
        train,
        show_test_video,
        seconds_key="demo_seconds",
    )
