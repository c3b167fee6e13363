"""The ACT training path and the ACT predictor feed the model the same pixels: one resize policy
(``antialias``, written into the weights) and the ``pretrained=`` file's input convention (a Caffe
ACT model converted with ``action convert``: BGR 0..255 minus (104, 117, 123))."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from singleshot.data.action.frames import read_clip_frames
from singleshot.data.action.synthetic import SYNTH_PICKLE, generate_action_dataset
from singleshot.data.input_spec import InputSpec
from singleshot.engine.weights import save_weights
from singleshot.models.act import act_tiny
from singleshot.tasks.action.act_predictor import ACTPredictor
from singleshot.tasks.action.act_train import act_training
from singleshot.tasks.action.members import member_config

K = 3
SIZE = 64

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Frames of 75 x 100 pixels: the 64 x 64 input shrinks them, so the resize policy matters."""
    root = tmp_path_factory.mktemp("act_convention")
    generate_action_dataset(root, 2, 1, size=(75, 100), num_frames=(12, 12), seed=2)
    return root


@pytest.fixture(scope="module")
def caffe_act(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An ``action convert``-style file: ACT weights whose metadata says Caffe's BGR convention."""
    torch.manual_seed(0)
    model = act_tiny(4, k=K, image_size=SIZE)
    path = tmp_path_factory.mktemp("pretrained") / "act_caffe.safetensors"
    meta = InputSpec.named("caffe", SIZE, antialias=False).to_meta()
    save_weights(path, model, dict(meta, task="action", family="act", architecture="act_tiny"))
    return path


@pytest.mark.parametrize(("antialias", "pretrained"), [(True, False), (False, False), (True, True)])
def test_training_windows_are_what_the_predictor_feeds(
    data: Path, caffe_act: Path, tmp_path: Path, antialias: bool, pretrained: bool
) -> None:
    args = {
        "model": "act",
        "arch": "act_tiny",
        "imgsz": str(SIZE),
        "K": str(K),
        "data": str(data / SYNTH_PICKLE),
        "frames": str(data),
        "augment": "false",
        "antialias": str(antialias).lower(),
        "project": str(tmp_path),
        "workers": "0",
    }
    if pretrained:
        args["pretrained"] = str(caffe_act)
    _, cfg = member_config(args)
    plan = act_training(cfg)("cpu", 1)
    meta = plan.meta
    assert meta["resize"] == {"interpolation": "bilinear", "antialias": antialias}
    assert meta["channel_order"] == ("BGR" if pretrained else "RGB")
    if pretrained:
        assert [round(255 * m) for m in meta["mean"]] == [104, 117, 123]
        assert meta["std"] == pytest.approx([1 / 255] * 3)
    predictor = ACTPredictor(plan.model, meta)
    for index in (0, len(plan.train_set) - 1):
        window, _ = plan.train_set[index]  # [K, 3, S, S], normalised by the dataset
        video, start = plan.train_set.samples[index]
        frames = read_clip_frames(data, video, range(start, start + K))  # [K, 3, 75, 100] uint8
        fed = predictor.normalise(predictor.prepare(frames)[None])[0][0]
        torch.testing.assert_close(window, fed, atol=1e-5, rtol=1e-6)
