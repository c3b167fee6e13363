"""Frame sources read as they arrive: files, folders, HTTP streams that stall, broken data, cameras."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from singleshot.errors import DataError
from singleshot.io.stream import FrameStream, source_kind


def _write_video(path: Path, n: int, fmt: str | None = None) -> None:
    import av

    container = av.open(str(path), mode="w", format=fmt)
    stream = container.add_stream("mpeg4", rate=Fraction(25))
    stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
    for i in range(n):
        image = np.full((48, 64, 3), (i * 9) % 250, np.uint8)
        for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()


@pytest.fixture(scope="module")
def ts_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("stream") / "clip.ts"
    _write_video(path, 60, "mpegts")
    return path


def test_kinds() -> None:
    assert source_kind("0") == "camera" and source_kind("rtsp://host/cam") == "url"
    assert source_kind("http://h:8080/v.ts") == "url"
    with pytest.raises(DataError, match="source not found"):
        source_kind("/nonexistent/clip.mp4")


def test_a_file_yields_every_frame_in_order(tmp_path: Path) -> None:
    path = tmp_path / "v.mp4"
    _write_video(path, 20)
    stream = FrameStream(path)
    frames = list(stream)
    assert len(frames) == 20 and stream.frames == 20 and stream.error is None and stream.fps == 25.0
    assert frames[0].shape == (48, 64, 3) and frames[0].dtype == np.uint8
    means = [float(f.mean()) for f in frames]
    assert means[5] < means[10] < means[15]  # in order
    assert stream.name == "v" and stream.kind == "file"


def test_a_folder_skips_an_unreadable_frame(tmp_path: Path) -> None:
    for i in range(1, 6):
        Image.new("RGB", (8, 6), (i * 40, 0, 0)).save(tmp_path / f"{i:05d}.jpg")
    (tmp_path / "00003.jpg").write_bytes(b"not a jpeg")
    stream = FrameStream(tmp_path)
    frames = list(stream)
    assert len(frames) == 4 and stream.skipped == 1 and stream.error is None


def test_a_truncated_file_gives_the_frames_before_the_cut(ts_video: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.ts"
    cut.write_bytes(ts_video.read_bytes()[: ts_video.stat().st_size // 2])
    frames = list(FrameStream(cut))
    assert 10 < len(frames) < 60


def test_garbage_inside_the_stream_is_skipped_not_fatal(ts_video: Path, tmp_path: Path) -> None:
    data = bytearray(ts_video.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 2000] = bytes(range(256)) * 7 + bytes(208)
    broken = tmp_path / "broken.ts"
    broken.write_bytes(bytes(data))
    stream = FrameStream(broken)
    frames = list(stream)
    assert len(frames) > 40  # the frames after the damage are read too


def test_an_unreadable_file_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 100)
    with pytest.raises(DataError, match="bad.mp4: cannot open as a video source"):
        FrameStream(bad)


def test_a_camera_that_is_not_there_is_named() -> None:
    with pytest.raises(DataError, match="source=97|97"):
        FrameStream("97", timeout=1)


@pytest.fixture
def stalling_server(ts_video: Path, stalling_http_server: Callable[..., AbstractContextManager[str]]) -> Iterator[str]:
    with stalling_http_server(ts_video.read_bytes()) as url:
        yield url


def test_a_stalled_stream_ends_with_the_frames_it_sent_and_a_reason(stalling_server: str) -> None:
    start = time.monotonic()
    stream = FrameStream(stalling_server, timeout=1.5)
    frames = list(stream)
    assert 5 < len(frames) < 60
    assert stream.error is not None and "stalled" in stream.error
    assert time.monotonic() - start < 5.5  # the timeout ended it, not the server
