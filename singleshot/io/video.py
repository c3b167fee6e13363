"""Video decoding and encoding with PyAV (torchvision 0.29 has no video I/O)."""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np

from singleshot.errors import DataError

VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"}


def is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_SUFFIXES


def video_fps(path: Path) -> float:
    """Average frame rate of the first video stream (25 when the container does not say)."""
    import av

    try:
        with av.open(str(path)) as container:
            rate = container.streams.video[0].average_rate
    except (av.error.FFmpegError, IndexError) as e:  # type: ignore[attr-defined]
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
            raise DataError(f"{path}: has no video stream")
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
