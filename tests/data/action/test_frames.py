"""Frame files of the YOWO layout: lookup, decoding, clips, and decoding a real video into the layout."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image

from singleshot.data.action.frames import (
    extract_video_to_yowo,
    frame_path,
    read_clip_frames,
    read_frame,
    video_frame_info,
)
from singleshot.errors import DataError

SHARED_DATA = Path(__file__).resolve().parents[3] / ".." / "shared" / "data"
VIDEO = "Basketball/v_Basketball_g01_c01"


def _shared(*parts: str) -> Path:
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real sample data not found: {path} (the ../shared/data folder is absent)")
    return path


def _write_frames(root: Path, video: str, arrays: list[np.ndarray], ext: str = "png") -> None:
    folder = root / "rgb-images" / video
    folder.mkdir(parents=True, exist_ok=True)
    for i, arr in enumerate(arrays, start=1):
        Image.fromarray(arr).save(folder / f"{i:05d}.{ext}")


def _frames(n: int, h: int = 6, w: int = 8) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8) for _ in range(n)]


def test_frame_path_prefers_jpg_then_png_and_names_missing(tmp_path: Path) -> None:
    _write_frames(tmp_path, "A/v1", _frames(2), ext="png")
    assert frame_path(tmp_path, "A/v1", 2) == tmp_path / "rgb-images" / "A" / "v1" / "00002.png"
    Image.fromarray(_frames(1)[0]).save(tmp_path / "rgb-images" / "A" / "v1" / "00002.jpg")
    assert frame_path(tmp_path, "A/v1", 2).suffix == ".jpg"
    with pytest.raises(DataError) as info:
        frame_path(tmp_path, "A/v1", 3)
    assert str(tmp_path / "rgb-images" / "A" / "v1" / "00003.jpg") in str(info.value)


def test_read_frame_exact_and_corrupt(tmp_path: Path) -> None:
    arrays = _frames(1)
    _write_frames(tmp_path, "A/v1", arrays)
    image = read_frame(frame_path(tmp_path, "A/v1", 1))
    assert image.dtype == torch.uint8 and image.shape == (3, 6, 8)
    np.testing.assert_array_equal(image.permute(1, 2, 0).numpy(), arrays[0])
    bad = tmp_path / "rgb-images" / "A" / "v1" / "00002.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(DataError, match="00002.jpg"):
        read_frame(bad)


def test_read_clip_frames_order_repeats_and_sizes(tmp_path: Path) -> None:
    arrays = _frames(4)
    _write_frames(tmp_path, "A/v1", arrays)
    clip = read_clip_frames(tmp_path, "A/v1", [1, 1, 3, 2])  # early frames repeat frame 1
    assert clip.shape == (4, 3, 6, 8) and clip.dtype == torch.uint8
    for t, f in enumerate([1, 1, 3, 2]):
        np.testing.assert_array_equal(clip[t].permute(1, 2, 0).numpy(), arrays[f - 1])
    Image.fromarray(_frames(1, h=7)[0]).save(tmp_path / "rgb-images" / "A" / "v1" / "00005.png")
    with pytest.raises(DataError, match="00005.png"):
        read_clip_frames(tmp_path, "A/v1", [4, 5])
    with pytest.raises(DataError, match="00009"):
        read_clip_frames(tmp_path, "A/v1", [1, 9])


def test_video_frame_info(tmp_path: Path) -> None:
    _write_frames(tmp_path, "A/v1", _frames(3, h=5, w=9))
    (tmp_path / "rgb-images" / "A" / "v1" / "notes.txt").write_text("ignored")
    assert video_frame_info(tmp_path, "A/v1") == (3, (5, 9))
    with pytest.raises(DataError, match="v2"):
        video_frame_info(tmp_path, "A/v2")


def _decode_reference(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def test_extract_real_video_jpg(tmp_path: Path) -> None:
    video_file = _shared("video", "v_Basketball_g01_c01.avi")
    reference = _decode_reference(video_file)
    assert len(reference) == 141 and reference[0].shape == (240, 320, 3)

    assert extract_video_to_yowo(video_file, tmp_path, VIDEO) == 141
    assert video_frame_info(tmp_path, VIDEO) == (141, (240, 320))
    for f in (1, 70, 141):
        path = frame_path(tmp_path, VIDEO, f)
        assert path.name == f"{f:05d}.jpg"
        got = read_frame(path).permute(1, 2, 0).numpy().astype(np.float64)
        err = np.abs(got - reference[f - 1]).mean()
        assert err < 4.0  # JPEG at quality 95
        other = reference[f - 11] if f > 11 else reference[f + 9]
        assert err < np.abs(got - other).mean()  # and it is that frame, not another one

    with pytest.raises(DataError, match="overwrite"):
        extract_video_to_yowo(video_file, tmp_path, VIDEO)
    assert extract_video_to_yowo(video_file, tmp_path, VIDEO, overwrite=True) == 141


def test_extract_png_is_lossless(tmp_path: Path) -> None:
    from singleshot.io.video import VideoWriter

    video_file = tmp_path / "tiny.mp4"
    with VideoWriter(video_file, 10.0, 32, 24) as writer:
        for arr in _frames(6, h=24, w=32):
            writer.write(arr)
    reference = _decode_reference(video_file)
    assert extract_video_to_yowo(video_file, tmp_path, "A/tiny", ext="png") == len(reference) == 6
    clip = read_clip_frames(tmp_path, "A/tiny", list(range(1, 7)))
    np.testing.assert_array_equal(clip.permute(0, 2, 3, 1).numpy(), np.stack(reference))


def test_extract_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="missing.avi"):
        extract_video_to_yowo(tmp_path / "missing.avi", tmp_path, "A/v1")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00" * 64)
    with pytest.raises(DataError, match="junk.mp4"):
        extract_video_to_yowo(junk, tmp_path, "A/v1")
    with pytest.raises(DataError, match="bmp"):
        extract_video_to_yowo(junk, tmp_path, "A/v1", ext="bmp")
