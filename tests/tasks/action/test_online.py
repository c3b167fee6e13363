"""Online prediction: the frame detections and tubes handed out as frames arrive equal those of
the offline ``predict_video`` of the same frames (ACT one and two streams, YOWO with ACT's linking
and with its Viterbi linking), and tubes close before the video ends."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from singleshot.models import create_model
from singleshot.postprocess.tubelet import TubeletPostprocess
from singleshot.structures import Tube
from singleshot.tasks.action.act_predictor import ACTPredictor
from singleshot.tasks.action.act_tubelets import CandidateSettings
from singleshot.tasks.action.online import FrameEvent, online_events
from singleshot.tasks.action.predictor import YowoPredictor

pytestmark = pytest.mark.usefixtures("one_thread")
META = {"input_size": [64, 64], "classes": ["a", "b", "c"], "clip_len": 4}


def _frames(n: int, seed: int = 0) -> list[np.ndarray]:
    """A scene whose bright square drifts then leaves: tubes that start and end."""
    g = np.random.default_rng(seed)
    out = []
    for t in range(n):
        im = g.integers(60, 90, (40, 56, 3)).astype(np.uint8)
        if t < 2 * n // 3:
            x = 5 + t // 2
            im[10:30, x : x + 16] = 230
        out.append(im)
    return out


def _compare(p, frames: list[np.ndarray], batch: int, trim: float = 0.0) -> tuple[list[Tube], int]:
    offline = p.predict_video(iter(frames), "v", batch, trim)
    events = list(online_events(p, iter(frames), "v", batch, trim))
    frame_events = [e for e in events if isinstance(e, FrameEvent)]
    tubes = [e for e in events if isinstance(e, Tube)]
    assert [e.frame for e in frame_events] == list(range(1, len(frames) + 1))
    d = offline.dets
    for e in frame_events:
        assert e.image is frames[e.frame - 1]
        m = d.frame == e.frame
        np.testing.assert_array_equal(e.labels, d.label[m])
        np.testing.assert_allclose(e.scores, d.score[m], rtol=1e-6)
        np.testing.assert_allclose(e.boxes, d.boxes[m], rtol=1e-6, atol=1e-4)
    key = lambda t: (t.label, int(t.frames[0]), int(t.frames[-1]), round(t.score, 6))
    assert sorted(map(key, tubes)) == sorted(map(key, offline.tubes))
    # how many tubes came out before the last frame's event
    last_frame_at = events.index(frame_events[-1])
    early = sum(1 for e in events[:last_frame_at] if isinstance(e, Tube))
    return tubes, early


@pytest.mark.parametrize("motion", [None, "diff"])
def test_act_online_equals_offline(motion: str | None) -> None:
    torch.manual_seed(0)
    rgb = create_model("act_tiny", 3, k=3, image_size=64, width=0.5).eval()
    flow = create_model("act_tiny", 3, k=3, image_size=64, width=0.5).eval() if motion else None
    p = ACTPredictor(
        rgb,
        META,
        TubeletPostprocess(score_thresh=0.05, topk_candidates=60, max_detections=30),
        candidates=CandidateSettings(keep=40),
        flow_model=flow,
        flow_meta={"modality": "diff"} if motion else None,
    )
    frames = _frames(45)
    for batch in (1, 4):
        tubes, early = _compare(p, frames, batch, trim=0.0)
        assert tubes and early > 0
    _compare(p, frames[:2], 4)  # shorter than K: frames, no tubes
    _compare(p, frames, 4, trim=0.3)


@pytest.mark.parametrize("linking", ["act", "viterbi"])
def test_yowo_online_equals_offline(linking: str) -> None:
    torch.manual_seed(0)
    model = create_model("yowo_tiny", 3, clip_len=4, width=8, cfam_channels=32).eval()
    meta = dict(META, anchors=model.anchors.tolist(), stride=1)
    settings = {"conf_thresh": 0.05, "nms_thresh": 0.4, "max_det": 0, "mode": "yowo"}
    p = YowoPredictor(model, meta, settings, linking=linking)
    tubes, early = _compare(p, _frames(40), 3)
    assert tubes
    if linking == "viterbi":
        assert early == 0  # Viterbi links the whole video: its tubes come at the end
