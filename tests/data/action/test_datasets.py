"""YOWO clip and ACT tubelet datasets over a tiny synthetic dataset in the YOWO layout."""

from __future__ import annotations

import copy
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision.transforms.v2 import functional as F

from singleshot.data.action.clips import act_valid_starts, tubelet_boxes
from singleshot.data.action.datasets import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ActTubeletDataset,
    YowoClipDataset,
    collate_act,
    collate_yowo,
)
from singleshot.data.action.readers import load_action_annotations
from singleshot.data.action.synthetic import generate_action_dataset
from singleshot.data.image_io import read_image_rgb
from singleshot.engine.sampler import SeededDataset
from singleshot.errors import DataError
from singleshot.structures import ActionAnnotations

H, W = 48, 64


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ActionAnnotations]:
    root = tmp_path_factory.mktemp("synth_action")
    generate_action_dataset(root, 3, 2, size=(H, W), num_frames=(12, 14), seed=5)
    return root, load_action_annotations(root / "SynthAction-GT.pkl")


def _normalised_frame(path: Path, size: int) -> torch.Tensor:
    """Independent reference: decode, resize, scale and normalise one frame -> [3, size, size]."""
    img = F.resize(read_image_rgb(path), [size, size], antialias=True).float() / 255.0
    return (img - torch.tensor(IMAGENET_MEAN).view(3, 1, 1)) / torch.tensor(IMAGENET_STD).view(3, 1, 1)


def test_yowo_eval_items(synth: tuple[Path, ActionAnnotations]) -> None:
    root, ann = synth
    ds = YowoClipDataset(ann, root, ann.test_videos, clip_len=4, size=32, train=False)
    annotated = sum(len({f for t in ann.videos[v].tubes for f in t.frames.tolist()}) for v in ann.test_videos)
    assert len(ds) == annotated
    for index in (0, len(ds) - 1):
        clip, target = ds[index]
        video, key = ds.samples[index]
        assert clip.shape == (3, 4, 32, 32) and clip.dtype == torch.float32
        assert target.video == video and target.frames.tolist() == [key]
        assert target.size == (32, 32) and target.orig_size == (H, W)
        ref_boxes, ref_labels = ann.videos[video].boxes_at(key)
        scale = np.array([32 / W, 32 / H, 32 / W, 32 / H], np.float32)
        assert target.boxes.shape == (len(ref_labels), 1, 4)
        np.testing.assert_allclose(target.boxes[:, 0].numpy(), ref_boxes * scale, rtol=1e-6)
        assert target.labels.tolist() == ref_labels.tolist()
        ref = _normalised_frame(root / "rgb-images" / video / f"{key:05d}.jpg", 32)
        assert torch.allclose(clip[:, -1], ref, atol=1e-5)  # the key frame is the clip's last
        prev = _normalised_frame(root / "rgb-images" / video / f"{max(key - 1, 1):05d}.jpg", 32)
        assert torch.allclose(clip[:, -2], prev, atol=1e-5)


def test_yowo_keyframes_and_clamped_start(synth: tuple[Path, ActionAnnotations]) -> None:
    root, ann = synth
    video = ann.test_videos[0]
    ds = YowoClipDataset(ann, root, [video], 3, 24, False, keyframes={video: [1, 2]})
    assert ds.samples == [(video, 1), (video, 2)]
    clip, target = ds[0]
    assert torch.equal(clip[:, 0], clip[:, 2]) and torch.equal(clip[:, 1], clip[:, 2])  # frame 1 repeated
    if not ann.videos[video].boxes_at(1)[0].size:
        assert target.boxes.shape == (0, 1, 4)


def test_yowo_train_seeded_and_collate(synth: tuple[Path, ActionAnnotations]) -> None:
    root, ann = synth
    ds = YowoClipDataset(ann, root, None, clip_len=4, size=32, train=True)
    assert {v for v, _ in ds.samples} == set(ann.train_videos)
    a, ta = ds[(2, 1234)]
    b, tb = ds[(2, 1234)]
    c, _ = ds[(2, 99)]
    assert torch.equal(a, b) and torch.equal(ta.boxes, tb.boxes)
    assert not torch.equal(a, c)
    s, ts = SeededDataset(ds)[(2, 1234)]  # the sampler's wrapper gives the same sample
    assert torch.equal(a, s) and torch.equal(ta.boxes, ts.boxes)
    assert ta.boxes.shape[1:] == (1, 4) and bool((ta.boxes[..., 2:] > ta.boxes[..., :2]).all())
    assert float(ta.boxes.max()) <= 32.0 and float(ta.boxes.min()) >= 0.0
    clips, targets = collate_yowo([ds[0], ds[1], ds[2]])
    assert clips.shape == (3, 3, 4, 32, 32) and len(targets) == 3
    with pytest.raises(ValueError, match="collate_yowo"):
        collate_yowo([ds[0], YowoClipDataset(ann, root, None, 4, 24, False)[0]])


def test_act_train_and_eval_items(synth: tuple[Path, ActionAnnotations]) -> None:
    root, ann = synth
    K = 3
    train = ActTubeletDataset(ann, root, ann.train_videos, K, 40, True)
    expected = [(v, s) for v in ann.train_videos for s in act_valid_starts(ann.videos[v], K)]
    assert train.samples == expected
    x, t = train[(0, 7)]
    assert (
        x.shape == (K, 3, 40, 40)
        and t.boxes.shape[1:] == (K, 4)
        and t.frames.tolist() == [train.samples[0][1] + i for i in range(K)]
    )
    frames, targets = collate_act([train[0], train[1]])
    assert frames.shape == (2, K, 3, 40, 40) and len(targets) == 2

    test = ActTubeletDataset(ann, root, ann.test_videos, K, 40, False)
    assert len(test) == sum(ann.videos[v].num_frames - K + 1 for v in ann.test_videos)
    video, start = test.samples[-1]
    x, t = test[len(test) - 1]
    ref_boxes, ref_labels = tubelet_boxes(ann.videos[video], start, K)
    scale = np.array([40 / W, 40 / H, 40 / W, 40 / H], np.float32)
    np.testing.assert_allclose(t.boxes.numpy(), ref_boxes * scale, rtol=1e-6)
    assert t.labels.tolist() == ref_labels.tolist()
    ref = _normalised_frame(root / "rgb-images" / video / f"{start + K - 1:05d}.jpg", 40)
    assert torch.allclose(x[-1], ref, atol=1e-5)


def test_boxes_scaled_when_frames_differ_from_annotation_size(synth: tuple[Path, ActionAnnotations]) -> None:
    root, ann = synth
    video = ann.test_videos[0]
    half = copy.deepcopy(ann)
    va = half.videos[video]
    va.size = (H // 2, W // 2)
    for tube in va.tubes:
        tube.boxes = tube.boxes / 2
    key = int(va.tubes[0].frames[0])
    full = YowoClipDataset(ann, root, [video], 2, 32, False, keyframes={video: [key]})[0][1]
    with pytest.warns(UserWarning, match="scaled"):
        scaled = YowoClipDataset(half, root, [video], 2, 32, False, keyframes={video: [key]})[0][1]
    assert torch.allclose(scaled.boxes, full.boxes)


def test_missing_frame_names_the_file(synth: tuple[Path, ActionAnnotations], tmp_path: Path) -> None:
    root, ann = synth
    copy_root = tmp_path / "copy"
    video = ann.test_videos[0]
    shutil.copytree(root / "rgb-images" / video, copy_root / "rgb-images" / video)
    (copy_root / "rgb-images" / video / "00002.jpg").unlink()
    ds = ActTubeletDataset(ann, copy_root, [video], 3, 32, False)
    with pytest.raises(DataError, match="00002"):
        ds[0]
    with pytest.raises(DataError, match="not in the annotations"):
        YowoClipDataset(ann, root, ["Nope/v_x"], 2, 32, False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds[2]  # frames 3..5 are all there


def test_frame_cache_gives_the_same_items_and_decodes_each_frame_once(
    synth: tuple[Path, ActionAnnotations], monkeypatch: pytest.MonkeyPatch
) -> None:
    import singleshot.data.action.datasets as datasets_module
    from singleshot.data.action.datasets import frames_fit_in_memory

    root, ann = synth
    plain = YowoClipDataset(ann, root, None, clip_len=4, size=32, train=True)
    cached = YowoClipDataset(ann, root, None, clip_len=4, size=32, train=True)
    cached.cache_frames = True
    decoded: list[int] = []
    real = datasets_module.read_clip_frames
    monkeypatch.setattr(
        datasets_module, "read_clip_frames", lambda r, v, frames: decoded.extend(frames) or real(r, v, frames)
    )
    for index in range(len(cached)):
        a, ta = plain[(index, 7)]
        b, tb = cached[(index, 7)]
        assert torch.equal(a, b) and torch.equal(ta.boxes, tb.boxes)
    before = len(decoded)
    for index in range(len(cached)):
        cached[(index, 8)]
    assert len(decoded) == before  # the second pass reads nothing
    assert frames_fit_in_memory(ann, ann.train_videos)
    monkeypatch.setattr(datasets_module, "FRAME_CACHE_BYTES", 10)
    assert not frames_fit_in_memory(ann, ann.train_videos)
