"""``action demo``: the synthetic action videos -> a light model of the member ``model=`` names
(YOWO by default, ``model=act``) trained on them -> frame-mAP and video-mAP on the held-out videos
-> an annotated video of a test video.

The data are :func:`~singleshot.data.action.synthetic.generate_action_dataset`'s, written once under
``project/demo_data`` (:func:`~singleshot.tasks.action.data.ensure_demo_dataset`; both members' demos
share the folder); with ``modality=rgb+flow`` (ACT) their optical flow is computed once too, by the
``action flow`` mode (:func:`~singleshot.tasks.action.flow.compute_flow`, ``flow_method=``) into
``project/demo_data/flow-<method>``, rewritten when the videos are; the recipe is the member's ``demo`` record
(:data:`~singleshot.tasks.action.members.YOWO_DEMO_DEFAULTS`,
:data:`~singleshot.tasks.action.members.ACT_DEMO_DEFAULTS`); the run
(:func:`~singleshot.tasks.common.run_demo`) writes ``results.csv``/``results.png``, the annotated
video under ``predictions/`` and ``metrics.json``, and returns the same keys for both members.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

from singleshot.tasks.action.config import ActionConfig
from singleshot.tasks.action.data import demo_dataset_key, ensure_demo_dataset, load_data
from singleshot.tasks.action.evaluate import load_predictor
from singleshot.tasks.action.flow import compute_flow
from singleshot.tasks.action.members import member_config
from singleshot.tasks.action.predict import predict_source
from singleshot.tasks.action.train import train_member
from singleshot.tasks.common import ensure_dataset, run_demo
from singleshot.tasks.generated_data import dataset_marker

logger = logging.getLogger(__name__)

__all__ = ["demo", "ensure_demo_flow", "show_test_video", "write_demo_data"]


def write_demo_data(cfg: ActionConfig) -> None:
    """The synthetic dataset of ``n_train``, ``n_test``, ``video_size``, ``video_frames`` and ``seed``
    under ``project/demo_data`` (written once), as ``cfg.data``; with ``modality=rgb+flow`` and no
    ``flow=``, its flow images as ``cfg.flow`` (:func:`ensure_demo_flow`)."""
    root = ensure_demo_dataset(
        Path(cfg.project) / "demo_data", cfg.n_train, cfg.n_test, cfg.video_size, cfg.video_frames, cfg.seed
    )
    cfg.data = str(root)
    if cfg.modality == "rgb+flow" and not cfg.flow:
        key = demo_dataset_key(cfg.n_train, cfg.n_test, cfg.video_size, cfg.video_frames, cfg.seed)
        cfg.flow = str(ensure_demo_flow(root, key, cfg.flow_method, cfg.workers))


def ensure_demo_flow(root: Path, data_key: str, method: str, workers: int) -> Path:
    """``root/flow-<method>``: the flow images of the demo videos under ``root/rgb-images`` (``action
    flow``), computed once per generated dataset ``data_key`` and written again (the folder removed
    first) when that dataset was written again since (its marker changed) or a flow file changed."""

    def write(folder: Path) -> None:
        if folder.exists():
            shutil.rmtree(folder)
        compute_flow(root / "rgb-images", folder, method, workers)

    data_marker = dataset_marker(root, data_key)
    return ensure_dataset(root / f"flow-{method}", f"{data_key}-{method}", write, reads=[data_marker])


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
