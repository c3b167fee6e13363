"""ACT's flow images: the encoding against hand-computed values (ActionTubes' compute_flow.m:
``v * 16 + 128`` clipped, magnitude likewise), a known translation recovered after encoding and
decoding, the per-video flow sequence (t -> t + 1, last frame repeated) and the FLOW5 stacks
(ACT's / MOC's clamping at the video's end)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from singleshot.data.action.flow import (
    decode_flow,
    encode_flow,
    flow_estimator,
    flow_stack_indices,
    stack_ahead,
    stack_flow,
    video_flow_images,
)
from singleshot.errors import ConfigError, DataError


def _texture(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth random RGB texture, uint8 [h, w, 3] (enough structure for dense flow everywhere)."""
    rng = np.random.default_rng(seed)
    coarse = rng.random((h // 4 + 2, w // 4 + 2, 3))
    up = np.kron(coarse, np.ones((4, 4, 1)))[:h, :w]
    blur = (up + np.roll(up, 1, 0) + np.roll(up, 1, 1) + np.roll(up, (1, 1), (0, 1))) / 4
    return (blur * 255).astype(np.uint8)


def _translated(dx: int, dy: int, h: int = 64, w: int = 96) -> tuple[np.ndarray, np.ndarray]:
    """Frame 0 and frame 1 = frame 0 moved by (dx, dy) pixels (content goes right / down)."""
    big = _texture(h + 20, w + 20)
    return big[10 : 10 + h, 10 : 10 + w], big[10 - dy : 10 - dy + h, 10 - dx : 10 - dx + w]


def test_encoding_matches_hand_computed_values_and_clips() -> None:
    flow = np.array([[[1.0, -0.5], [8.0, -8.0], [0.03125, -0.03125], [-20.0, 3.0]]], np.float32)
    image = encode_flow(flow)
    assert image.dtype == np.uint8 and image.shape == (1, 4, 3)
    # x*16+128, y*16+128, |f|*16+128; clipped to [0, 255]; halves rounded away from zero (MATLAB uint8)
    expected = [
        [144, 120, round(128 + 16 * np.sqrt(1.25))],
        [255, 0, 255],
        [129, 128, 129],  # 128.5 -> 129, 127.5 -> 128, 128 + 16*0.0442 = 128.71 -> 129
        [0, 176, 255],
    ]
    assert image[0].tolist() == expected
    assert decode_flow(image)[0, 0].tolist() == [1.0, -0.5]
    assert decode_flow(torch.from_numpy(image).permute(2, 0, 1))[0, 1].tolist() == [127 / 16, -8.0]


@pytest.mark.parametrize("method", ["dis", "tvl1"])
def test_a_translation_is_recovered_after_encoding(method: str) -> None:
    a, b = _translated(3, -2)
    images = list(video_flow_images([a, b], method))
    assert len(images) == 2 and np.array_equal(images[0], images[1])  # the last frame repeats its predecessor
    flow = decode_flow(images[0])[12:-12, 12:-12]  # away from the borders that come into view
    assert np.median(flow[..., 0]) == pytest.approx(3.0, abs=0.13)  # one level is 1/16 px
    assert np.median(flow[..., 1]) == pytest.approx(-2.0, abs=0.13)
    magnitude = (images[0][12:-12, 12:-12, 2].astype(np.float32) - 128) / 16
    assert np.median(magnitude) == pytest.approx(np.hypot(3, 2), abs=0.15)


def test_flow_sequence_of_a_video() -> None:
    frames = [np.roll(_texture(48, 64), 2 * t, axis=1) for t in range(4)]
    images = list(video_flow_images(iter(frames)))
    assert len(images) == 4 and np.array_equal(images[3], images[2])
    assert all(np.median(decode_flow(im)[8:-8, 8:-8, 0]) == pytest.approx(2.0, abs=0.13) for im in images)
    single = list(video_flow_images([frames[0]]))
    assert len(single) == 1 and (single[0] == 128).all()  # no successor: zero flow
    assert list(video_flow_images([])) == []
    with pytest.raises(DataError, match=r"clip\.mp4: frame 2 is 32x16"):
        list(video_flow_images([frames[0], frames[1][:16, :32]], source="clip.mp4"))
    with pytest.raises(ConfigError, match="method='brox'"):
        flow_estimator("brox")


def test_flow5_indices_are_clamped_at_the_video_end() -> None:
    assert flow_stack_indices(1, 3, 5, 10) == [1, 2, 3, 4, 5, 6, 7]  # frame 1 reads 1..5, frame 3 reads 3..7
    assert flow_stack_indices(8, 3, 5, 10) == [8, 9, 10, 10, 10, 10, 10]  # last window: MOC's min(frame+i, N)
    assert flow_stack_indices(4, 6, 1, 9) == [4, 5, 6, 7, 8, 9]  # one flow image per frame: the window itself
    with pytest.raises(ValueError):
        flow_stack_indices(1, 3, 0, 10)


def test_stack_flow_concatenates_n_consecutive_images_per_frame() -> None:
    k, n = 3, 5
    images = torch.arange(2 * (k + n - 1) * 3 * 2 * 2, dtype=torch.float32).view(2, k + n - 1, 3, 2, 2)
    stacks = stack_flow(images, k)
    assert stacks.shape == (2, k, 3 * n, 2, 2)
    for i in range(k):
        want = torch.cat([images[:, i + j] for j in range(n)], dim=1)  # image i first, channel order kept
        assert torch.equal(stacks[:, i], want)
    assert torch.equal(stack_flow(images[:, :k], k), images[:, :k])  # n = 1: the images themselves


def test_stack_ahead_is_the_online_form_of_the_clamped_indices() -> None:
    assert list(stack_ahead("abc", 2)) == [["a", "b"], ["b", "c"], ["c", "c"]]
    n, frames = 5, list(range(1, 8))
    online = list(stack_ahead(frames, n))
    assert [s[0] for s in online] == frames
    assert all(s == flow_stack_indices(t, 1, n, len(frames)) for t, s in zip(frames, online))
    assert list(stack_ahead([], 3)) == []
