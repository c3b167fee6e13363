"""Frames as they arrive from any source: a video file, a folder of frames, an ``rtsp://`` /
``http://`` (or other FFmpeg protocol) URL, or a camera index, all read with PyAV.

:class:`FrameStream` yields one uint8 RGB frame [H, W, 3] at a time and never holds more than
the frame it yields, so a never-ending source costs constant memory. A source that breaks (a
stream that stalls past ``timeout`` seconds, a truncated file, undecodable data) does not raise
inside the consumer's loop: the iteration ends, :attr:`FrameStream.error` says why, and the
consumer finishes and writes what it has before reporting it. Undecodable packets are skipped and
counted (as FFmpeg's own tools do); a frame image that cannot be read in a folder is skipped and
counted too.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from singleshot.errors import DataError
from singleshot.io.video import is_video, no_video_stream

logger = logging.getLogger(__name__)

__all__ = ["FRAME_SUFFIXES", "FrameStream", "source_kind"]

#: Image suffixes read as frames from a folder.
FRAME_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}

_URL_SCHEMES = {"rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "udp", "tcp", "srt", "rtp", "mms"}


def source_kind(source: str) -> str:
    """``camera`` (an integer, a camera index), ``url`` (a network stream), ``folder`` (of frame
    images) or ``file`` (a video file).

    Raises:
        DataError: the source is none of these (naming it).
    """
    text = str(source).strip()
    if text.isdigit():
        return "camera"
    if urlparse(text).scheme.lower() in _URL_SCHEMES:
        return "url"
    path = Path(text)
    if path.is_dir():
        return "folder"
    if path.is_file():
        if not is_video(path):
            logger.debug("%s: suffix not a known video suffix; trying to decode it anyway", path)
        return "file"
    raise DataError(f"{source}: source not found (a video file, a folder of frames, a URL or a camera index)")


class FrameStream:
    """The frames of ``source`` (see :func:`source_kind`), decoded as they arrive.

    Args:
        source: a video file, a folder of frame images (sorted by name), a URL or a camera index.
        timeout: seconds to wait for a network or camera source to open and for each read; a longer
            silence ends the stream as stalled.

    Attributes:
        name: a short name of the source (file stem, folder name, host, ``camera0``).
        kind: ``file``, ``folder``, ``url`` or ``camera``.
        fps: the source's frame rate (25 when it does not say).
        frames: frames yielded so far.
        skipped: packets or frame images that could not be decoded and were skipped.
        error: why the stream ended early (None while it runs or when it ended normally).
    """

    def __init__(self, source: str | Path, timeout: float = 10.0) -> None:
        self.source = str(source)
        self.kind = source_kind(self.source)
        self.timeout = float(timeout)
        self.frames = 0
        self.skipped = 0
        self.error: str | None = None
        self._files: list[Path] = []
        self._container = None
        if self.kind == "folder":
            folder = Path(self.source)
            self._files = sorted(p for p in folder.iterdir() if p.suffix.lower() in FRAME_SUFFIXES)
            if not self._files:
                raise DataError(f"{folder}: folder holds no frame images ({', '.join(sorted(FRAME_SUFFIXES))})")
            self.name, self.fps = folder.name, 25.0
            return
        self._container = self._open()
        stream = self._container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        self.fps = float(rate) if rate else 25.0
        if self.kind == "file":
            self.name = Path(self.source).stem
        elif self.kind == "camera":
            self.name = f"camera{self.source}"
        else:
            parsed = urlparse(self.source)
            self.name = (Path(parsed.path).stem or parsed.hostname or "stream").replace(":", "_")

    def _open(self):  # noqa: ANN202  (an av container)
        import av

        kwargs: dict = {}
        target = self.source
        if self.kind == "camera":
            if sys.platform.startswith("linux"):
                target, kwargs["format"] = f"/dev/video{int(self.source)}", "v4l2"
            elif sys.platform == "darwin":
                kwargs["format"] = "avfoundation"
            else:
                raise DataError(
                    f"source={self.source}: camera indices are read on Linux and macOS; on this system pass "
                    "the device as FFmpeg names it (e.g. source='video=Integrated Camera' with a dshow URL)"
                )
        if self.kind in ("url", "camera"):
            kwargs["timeout"] = (self.timeout, self.timeout)
        try:
            container = av.open(target, **kwargs)
        except (av.error.FFmpegError, OSError) as e:  # type: ignore[attr-defined]
            raise DataError(f"{self.source}: cannot open as a video source: {e}") from None
        if not container.streams.video:
            error = no_video_stream(self.source, container)
            container.close()
            raise error
        return container

    def __iter__(self) -> Iterator[np.ndarray]:
        if self.kind == "folder":
            yield from self._folder_frames()
        else:
            yield from self._decoded_frames()

    def _folder_frames(self) -> Iterator[np.ndarray]:
        from PIL import Image, UnidentifiedImageError

        for path in self._files:
            try:
                with Image.open(path) as im:
                    frame = np.asarray(im.convert("RGB"))
            except (OSError, UnidentifiedImageError, ValueError) as e:
                self.skipped += 1
                logger.warning("%s: unreadable frame image skipped (%s)", path, e)
                continue
            self.frames += 1
            yield frame

    def _decoded_frames(self) -> Iterator[np.ndarray]:
        import av

        container = self._container
        assert container is not None
        stream = container.streams.video[0]
        try:
            packets = container.demux(stream)
            while True:
                try:
                    packet = next(packets)
                except StopIteration:
                    break
                except av.error.ExitError:  # type: ignore[attr-defined]
                    self.error = f"{self.source}: no data for {self.timeout:g} s: the source stalled"
                    break
                except (av.error.FFmpegError, OSError) as e:  # type: ignore[attr-defined]
                    self.error = f"{self.source}: reading stopped after {self.frames} frames: {e}"
                    break
                try:
                    decoded = packet.decode()
                except (av.error.InvalidDataError, av.error.FFmpegError) as e:  # type: ignore[attr-defined]
                    self.skipped += 1
                    logger.warning("%s: undecodable packet skipped after frame %d (%s)", self.source, self.frames, e)
                    continue
                for frame in decoded:
                    self.frames += 1
                    yield frame.to_ndarray(format="rgb24")
            if self.error is not None:  # the demuxer stopped early: frames still inside the decoder
                yield from self._flush(stream)
        finally:
            container.close()
        if self.error is None and self.kind == "url" and self.frames == 0:
            self.error = f"{self.source}: the stream ended before its first frame"
        if self.error:
            logger.error("%s", self.error)

    def _flush(self, stream) -> Iterator[np.ndarray]:  # noqa: ANN001  (an av video stream)
        """The frames the decoder still holds (it buffers a few) after the data stopped."""
        import av

        try:
            frames = list(stream.codec_context.decode(None))
        except (av.error.FFmpegError, ValueError):  # type: ignore[attr-defined]
            return
        for frame in frames:
            self.frames += 1
            yield frame.to_ndarray(format="rgb24")

    def summary(self) -> str:
        """One line: frames read, skipped, and how the stream ended."""
        end = self.error or "ended normally"
        return f"{self.source}: {self.frames} frames, {self.skipped} skipped; {end}"
