"""Video decoding and encoding with PyAV (torchvision 0.29 has no video I/O)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from singleshot.errors import DataError

VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"}


def is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_SUFFIXES


def no_video_stream(source: str | Path, container: Any) -> DataError:
    """The error for a media file (or URL) that PyAV opened but that holds no video stream (an
    audio-only file given as a video), naming it and the streams it does hold."""
    kinds = Counter(str(getattr(s, "type", "unknown")) for s in container.streams)
    held = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items())) or "none"
    return DataError(f"{source}: no video stream (its streams: {held}); give a video file, a folder of frames or a URL")


def video_fps(path: Path) -> float:
    """Average frame rate of the first video stream (25 when the container does not say).

    Raises:
        DataError: naming the file when it cannot be opened or holds no video stream.
    """
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise no_video_stream(path, container)
            rate = container.streams.video[0].average_rate
    except av.error.FFmpegError as e:  # type: ignore[attr-defined]
        raise DataError(f"{path}: cannot open as a video: {e}") from None
    return float(rate) if rate else 25.0


def read_frames(path: Path) -> Iterator[np.ndarray]:
    """Yield the frames of ``path`` as uint8 RGB arrays [H, W, 3], in order.

    Raises:
        DataError: naming the file when it is missing, not a video, or corrupt.
    """
    import av

    if not path.is_file():
        raise DataError(f"{path}: video file not found")
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as e:  # type: ignore[attr-defined]
        raise DataError(f"{path}: cannot open as a video: {e}") from None
    with container:
        if not container.streams.video:
            raise no_video_stream(path, container)
        try:
            for frame in container.decode(video=0):
                yield frame.to_ndarray(format="rgb24")
        except av.error.FFmpegError as e:  # type: ignore[attr-defined]
            raise DataError(f"{path}: corrupt video data: {e}") from None


class VideoWriter:
    """Write RGB frames to an H.264 MP4 (MPEG-4 Part 2 when libx264 is not in the FFmpeg build)."""

    def __init__(self, path: Path, fps: float, width: int, height: int) -> None:
        import av

        path.parent.mkdir(parents=True, exist_ok=True)
        self._container = av.open(str(path), mode="w")
        codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
        rate = Fraction(fps).limit_denominator(1001)
        self._stream = self._container.add_stream(codec, rate=rate)
        self._stream.width = width - width % 2
        self._stream.height = height - height % 2
        self._stream.pix_fmt = "yuv420p"

    def write(self, frame: np.ndarray) -> None:
        """frame: uint8 [H, W, 3] RGB of the size given at construction."""
        import av

        h, w = self._stream.height, self._stream.width
        image = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame[:h, :w]), format="rgb24")
        for packet in self._stream.encode(image):
            self._container.mux(packet)

    def close(self) -> None:
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
