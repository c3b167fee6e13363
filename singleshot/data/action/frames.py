"""Frame images of the YOWO layout: ``<root>/rgb-images/<Class>/<video>/<frame:05d>.jpg`` (UCF101-24)
or ``.png`` (J-HMDB-21), frames numbered from 1.

Decoding goes through :func:`singleshot.data.image_io.read_image_rgb` (Pillow): torchvision 0.29
deprecates its own image decoders and warns on every call.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from singleshot.atomic import save_image
from singleshot.data.image_io import image_size, read_image_rgb
from singleshot.errors import DataError

logger = logging.getLogger(__name__)

__all__ = [
    "FRAME_SUFFIXES",
    "frame_path",
    "list_frame_files",
    "read_frame",
    "read_clip_frames",
    "video_frame_info",
    "extract_video_to_yowo",
]

FRAME_SUFFIXES = (".jpg", ".png")
"""Frame file suffixes, in the order :func:`frame_path` tries them."""

_FRAME_NAME = re.compile(r"^(\d{5})\.(jpg|jpeg|png)$", re.IGNORECASE)


def frame_path(root: str | Path, video: str, frame: int) -> Path:
    """Path of 1-based ``frame`` of ``video`` (``"Class/video"``) under a YOWO root.

    Tries ``rgb-images/<video>/<frame:05d>.jpg``, then ``.png``.

    Raises:
        DataError: naming the expected path when neither file exists.
    """
    base = Path(root) / "rgb-images" / video / f"{int(frame):05d}"
    for suffix in FRAME_SUFFIXES:
        candidate = base.with_suffix(suffix)
        if candidate.is_file():
            return candidate
    raise DataError(f"{base.with_suffix('.jpg')}: frame {frame} of {video!r} not found (nor {base.name}.png)")


def read_frame(path: str | Path) -> Tensor:
    """Decode one frame image.

    Returns:
        Tensor[3, H, W] uint8 RGB.

    Raises:
        DataError: the file is missing, empty or not a decodable image (names the file).
    """
    return read_image_rgb(path)


def read_clip_frames(root: str | Path, video: str, frames: Sequence[int]) -> Tensor:
    """Read the listed 1-based frames of ``video`` (repeated numbers are decoded once).

    Returns:
        Tensor[T, 3, H, W] uint8, T = len(frames), in the order given.

    Raises:
        DataError: a missing or corrupt frame, or frames of different sizes (names the files).
    """
    if len(frames) == 0:
        raise DataError(f"{Path(root) / 'rgb-images' / video}: no frame numbers given")
    decoded: dict[int, Tensor] = {}
    first: Path | None = None
    for f in frames:
        f = int(f)
        if f in decoded:
            continue
        path = frame_path(root, video, f)
        image = read_frame(path)
        if decoded:
            ref = next(iter(decoded.values()))
            if image.shape != ref.shape:
                raise DataError(
                    f"{path}: frame size {tuple(image.shape[1:])} differs from {tuple(ref.shape[1:])} of {first}"
                )
        else:
            first = path
        decoded[f] = image
    return torch.stack([decoded[int(f)] for f in frames])


def list_frame_files(folder: str | Path) -> dict[int, Path]:
    """``{frame: path}`` of the 5-digit frame images in one video folder (empty when absent)."""
    folder = Path(folder)
    out: dict[int, Path] = {}
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return out
    for entry in entries:
        m = _FRAME_NAME.match(entry.name)
        if m is not None:
            out.setdefault(int(m.group(1)), folder / entry.name)
    return out


def video_frame_info(root: str | Path, video: str) -> tuple[int, tuple[int, int]]:
    """(number of frame images on disk, (height, width) of the first one, from its header only).

    Raises:
        DataError: the video's frame folder is missing or holds no frame image.
    """
    folder = Path(root) / "rgb-images" / video
    files = list_frame_files(folder)
    if not files:
        raise DataError(f"{folder}: no frame images (expected 00001.jpg or 00001.png ...)")
    return len(files), image_size(files[min(files)])


def extract_video_to_yowo(
    video_file: str | Path,
    root: str | Path,
    name: str,
    ext: str = "jpg",
    quality: int = 95,
    overwrite: bool = False,
) -> int:
    """Decode a video file into ``<root>/rgb-images/<name>/00001.<ext>, 00002.<ext>, ...``.

    Args:
        video_file: any video PyAV decodes (see :mod:`singleshot.io.video`).
        root: the YOWO root. name: the video's name, ``"Class/video"``.
        ext: ``"jpg"`` (UCF101-24 style, lossy, ``quality``) or ``"png"`` (lossless).
        overwrite: replace the frame images already in the folder; otherwise such a folder is an error.

    Returns:
        The number of frames written.

    Raises:
        DataError: unreadable video, an unknown ext, or a folder that already holds frames.
    """
    from singleshot.io.video import read_frames

    ext = ext.lower().lstrip(".")
    if ext not in ("jpg", "png"):
        raise DataError(f"{video_file}: frame format {ext!r} is not 'jpg' or 'png'")
    folder = Path(root) / "rgb-images" / name
    existing = list_frame_files(folder)
    if existing:
        if not overwrite:
            raise DataError(f"{folder}: already holds {len(existing)} frame images (pass overwrite=True)")
        for path in existing.values():
            path.unlink()
        logger.warning("%s: removed %d old frame images", folder, len(existing))
    folder.mkdir(parents=True, exist_ok=True)
    count = 0
    for count, frame in enumerate(read_frames(Path(video_file)), start=1):
        image = Image.fromarray(np.ascontiguousarray(frame))
        target = folder / f"{count:05d}.{ext}"
        if ext == "jpg":
            save_image(image, target, quality=quality)
        else:
            save_image(image, target, compress_level=1)
    if count == 0:
        raise DataError(f"{video_file}: the video has no frames")
    logger.info("wrote %d frames of %s to %s", count, video_file, folder)
    return count
