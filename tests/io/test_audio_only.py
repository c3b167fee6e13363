"""A media file with no video stream (an audio-only WAV or MP4) given as a video: a one-line
DataError "<file>: no video stream (its streams: 1 audio)" from every reader and from action and
detect predict, never ``tuple index out of range`` (detect predict reads a ``.wav``, which has no
video suffix, as an image, and says that it cannot decode it)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from singleshot.cli import main
from singleshot.engine.weights import save_weights
from singleshot.errors import DataError
from singleshot.io.stream import FrameStream
from singleshot.io.video import read_frames, video_fps
from singleshot.models import create_model
from singleshot.tasks.action.config import ActionConfig
from singleshot.tasks.action.predictor import action_meta, build_action_model
from singleshot.tasks.detect.predictor import model_meta

pytestmark = pytest.mark.usefixtures("one_thread")


def _audio_only(path: Path, fmt: str, codec: str, sample_format: str) -> Path:
    """A second of silence at 8 kHz: one audio stream, nothing else."""
    import av

    container = av.open(str(path), mode="w", format=fmt)
    stream = container.add_stream(codec, rate=8000)
    stream.layout = "mono"
    dtype = np.int16 if sample_format == "s16" else np.float32
    for _ in range(8):
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), dtype), format=sample_format, layout="mono")
        frame.sample_rate = 8000
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    return path


@pytest.fixture(scope="module", params=["wav", "mp4"])
def audio(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("audio")
    if request.param == "wav":
        return _audio_only(folder / "speech.wav", "wav", "pcm_s16le", "s16")
    return _audio_only(folder / "speech.mp4", "mp4", "aac", "fltp")


def test_every_reader_says_no_video_stream(audio: Path) -> None:
    message = rf"^{audio}: no video stream \(its streams: 1 audio\)"
    with pytest.raises(DataError, match=message):
        video_fps(audio)
    with pytest.raises(DataError, match=message):
        next(read_frames(audio))
    with pytest.raises(DataError, match=message):
        FrameStream(str(audio))


def test_predict_says_it_in_one_line(audio: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    torch.manual_seed(0)
    cfg = ActionConfig(arch="yowo_tiny", width=4, clip_len=4, imgsz=64)
    yowo, kwargs = build_action_model(cfg, 3)
    action_weights = tmp_path / "yowo.safetensors"
    save_weights(action_weights, yowo, action_meta(yowo, cfg, kwargs, ["a", "b", "c"]))
    ssd = create_model("ssd_slim", 3, image_size=160)
    detect_weights = tmp_path / "ssd.safetensors"
    save_weights(detect_weights, ssd, model_meta(ssd, "ssd_slim", {"image_size": 160}, ["a", "b", "c"]))
    for task, weights in (("action", action_weights), ("detect", detect_weights)):
        capsys.readouterr()
        assert main([task, "predict", f"weights={weights}", f"source={audio}", f"project={tmp_path / task}"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        if task == "detect" and audio.suffix == ".wav":  # not a video suffix: read as an image, and named
            assert err[-1].startswith(f"error: {audio}: cannot decode image"), err
            continue
        assert err[-1] == (
            f"error: {audio}: no video stream (its streams: 1 audio); give a video file, a folder of frames or a URL"
        ), task
