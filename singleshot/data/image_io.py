"""Reading image files into RGB uint8 tensors.

Decoding uses Pillow (torchvision 0.29 deprecates its own image decoders and warns on every call).
Grayscale, grayscale+alpha, palette, RGBA and CMYK images are converted to RGB (alpha is dropped,
not composited); 16-bit images are scaled to 8 bits. EXIF orientation is *not* applied: annotations
refer to the pixels as stored in the file.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from singleshot.errors import DataError

logger = logging.getLogger(__name__)

__all__ = ["read_image_rgb", "image_size"]

_WIDE_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")


def read_image_rgb(path: str | Path) -> Tensor:
    """Read an image file as RGB.

    Args:
        path: image file (any format Pillow reads: JPEG, PNG, BMP, TIFF, WebP, GIF...).

    Returns:
        Tensor[3, H, W] uint8, RGB, rows top to bottom as stored in the file.

    Raises:
        DataError: the file is missing, empty, truncated, or not a decodable image.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: image file not found")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: image file is empty")
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in _WIDE_MODES:
                wide = np.asarray(im, dtype=np.float64)
                scale = 257.0 if im.mode != "I" or wide.max() > 255 else 1.0
                im = Image.fromarray(np.clip(wide / scale, 0, 255).round().astype(np.uint8))
            arr = np.array(im.convert("RGB"), dtype=np.uint8, copy=True)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise DataError(f"{path}: cannot decode image ({exc})") from exc
    if arr.ndim != 3 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise DataError(f"{path}: decoded image has an unusable shape {arr.shape}")
    return torch.from_numpy(arr).permute(2, 0, 1).contiguous()


def image_size(path: str | Path) -> tuple[int, int]:
    """(height, width) of an image file read from its header only (no full decode).

    Raises:
        DataError: the file is missing or not an image.
    """
    path = Path(path)
    try:
        with Image.open(path) as im:
            width, height = im.size
    except FileNotFoundError as exc:
        raise DataError(f"{path}: image file not found") from exc
    except (UnidentifiedImageError, OSError) as exc:
        raise DataError(f"{path}: cannot read image header ({exc})") from exc
    return int(height), int(width)
