"""Image decoding: every colour mode becomes RGB uint8; unreadable files raise DataError naming them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from singleshot.data.image_io import image_size, read_image_rgb
from singleshot.errors import DataError


@pytest.fixture()
def rgb() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (21, 34, 3), dtype=np.uint8)


# (mode, format) pairs Pillow can write: JPEG has no alpha or palette, BMP no LA or CMYK.
_CASES = [
    (mode, ext)
    for mode in ("RGB", "L", "LA", "RGBA", "P", "CMYK")
    for ext in ("png", "jpg", "bmp", "tiff")
    if not (ext == "jpg" and mode in ("LA", "RGBA", "P"))
    and not (ext == "bmp" and mode in ("LA", "CMYK"))
    and not (ext == "png" and mode == "CMYK")
]


@pytest.mark.parametrize(("mode", "ext"), _CASES)
def test_modes_become_rgb(tmp_path: Path, rgb: np.ndarray, mode: str, ext: str) -> None:
    im = Image.fromarray(rgb).convert(mode)
    path = tmp_path / f"x.{ext}"
    im.save(path)
    out = read_image_rgb(path)
    assert out.dtype == torch.uint8
    assert tuple(out.shape) == (3, 21, 34)
    # reference: Pillow's own RGB conversion of the file as written
    with Image.open(path) as ref_im:
        ref = np.asarray(ref_im.convert("RGB"))
    np.testing.assert_array_equal(out.permute(1, 2, 0).numpy(), ref)
    if mode in ("L", "LA"):
        assert (out[0] == out[1]).all() and (out[1] == out[2]).all()
    assert image_size(path) == (21, 34)


def test_lossless_rgb_exact(tmp_path: Path, rgb: np.ndarray) -> None:
    Image.fromarray(rgb).save(tmp_path / "x.png")
    np.testing.assert_array_equal(read_image_rgb(tmp_path / "x.png").permute(1, 2, 0).numpy(), rgb)


def test_16bit_scaled_to_8bit(tmp_path: Path, rgb: np.ndarray) -> None:
    Image.fromarray(rgb[..., 0].astype(np.uint16) * 257).save(tmp_path / "x16.png")
    out = read_image_rgb(tmp_path / "x16.png")
    np.testing.assert_array_equal(out[0].numpy(), rgb[..., 0])


def test_bad_files_raise_dataerror_naming_the_file(tmp_path: Path, rgb: np.ndarray) -> None:
    missing = tmp_path / "missing.jpg"
    with pytest.raises(DataError, match="missing.jpg.*not found"):
        read_image_rgb(missing)
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(DataError, match="empty.jpg"):
        read_image_rgb(empty)
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"\xff\xd8\xff" + bytes(range(256)) * 4)
    with pytest.raises(DataError, match="junk.jpg.*cannot decode"):
        read_image_rgb(junk)
    Image.fromarray(rgb).save(tmp_path / "full.jpg", quality=95)
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "trunc.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="trunc.jpg"):
        read_image_rgb(tmp_path / "trunc.jpg")
