"""Depth images: reading float32 TIFFs, repairing holes, normalising network inputs.

Depth values are ranges in metres (Cornell: the Euclidean norm of the cloud's ``xyz`` / 1000;
Jacquard: the rendered or stereo depth). A pixel is *invalid* when it is not finite or not
positive (Cornell clouds leave zeros where the sensor saw nothing, Jacquard's stereo depth marks
holes with −1, other tools write NaN).

Inpainting. The GG-CNN reference fills holes with OpenCV's Navier–Stokes inpainting
(``cv2.inpaint(..., INPAINT_NS)`` on a 1-pixel reflected border). OpenCV is not a dependency here,
so :func:`inpaint_depth` does it with scipy: every hole pixel first takes the value of its nearest
valid pixel (``scipy.ndimage.distance_transform_edt`` with ``return_indices``; hole by hole when
there are few), then the hole pixels are relaxed towards the average of their 4 neighbours (50
Jacobi iterations of Laplace's equation with the valid pixels held fixed, on the hole pixels only). The result is a smooth (harmonic) fill that joins the
surrounding surface without seams, like diffusion-based inpainting; it differs from OpenCV's NS fill
by small amounts inside large holes. Pixels on the image border use reflected neighbours.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from scipy import ndimage

from singleshot.atomic import save_image
from singleshot.errors import DataError

logger = logging.getLogger(__name__)

__all__ = [
    "invalid_depth_mask",
    "inpaint_depth",
    "repair_depth",
    "read_depth_tiff",
    "MAX_DEPTH_PIXELS",
    "write_depth_tiff",
    "normalise_depth",
    "normalise_rgb",
]


def invalid_depth_mask(depth: np.ndarray) -> np.ndarray:
    """bool[H, W]: True where ``depth`` (array[H, W]) is NaN, infinite, zero or negative."""
    d = np.asarray(depth)
    with np.errstate(invalid="ignore"):
        return ~np.isfinite(d) | (d <= 0)


def inpaint_depth(depth: np.ndarray, invalid: np.ndarray | None = None, iterations: int = 50) -> np.ndarray:
    """Fill the invalid pixels of a depth image from their valid surroundings.

    Args:
        depth: array[H, W] depth (any float dtype).
        invalid: bool[H, W] pixels to fill; default :func:`invalid_depth_mask`.
        iterations: Jacobi relaxation steps after the nearest-valid fill (0 = nearest fill only).

    Returns:
        array[H, W] float32, equal to ``depth`` on valid pixels.

    Raises:
        ValueError: no valid pixel at all (callers turn this into a :class:`DataError` naming the file).
    """
    d = np.asarray(depth, dtype=np.float64)
    if d.ndim != 2:
        raise ValueError(f"depth must be 2-D, got shape {d.shape}")
    holes = invalid_depth_mask(d) if invalid is None else np.asarray(invalid, dtype=bool)
    if not holes.any():
        return d.astype(np.float32)
    if holes.all():
        raise ValueError("depth image has no valid pixel")
    filled = d.copy()
    labels, n_holes = ndimage.label(holes, structure=np.ones((3, 3), dtype=bool))
    if n_holes > 32:  # many holes: one transform of the whole image beats a loop over them
        idx = ndimage.distance_transform_edt(holes, return_distances=False, return_indices=True)
        filled[holes] = d[idx[0][holes], idx[1][holes]]
    else:
        for k, (rs, cs) in enumerate(ndimage.find_objects(labels), start=1):
            # Nearest-valid fill inside the hole's bounding box grown by one pixel: that ring is valid
            # (8-connected holes) or the image border.
            win = (slice(max(rs.start - 1, 0), rs.stop + 1), slice(max(cs.start - 1, 0), cs.stop + 1))
            win_holes = holes[win]
            if win_holes.all():  # the hole fills its window: use the whole image
                win, win_holes = (slice(None), slice(None)), holes
            idx = ndimage.distance_transform_edt(win_holes, return_distances=False, return_indices=True)
            comp = labels[win] == k
            filled[win][comp] = d[win][idx[0][comp], idx[1][comp]]
    if iterations > 0:
        # Jacobi steps on the hole pixels only (O(holes) per step): neighbours by flat index, with
        # reflection at the image border (a border pixel's missing neighbour is itself).
        h, w = d.shape
        r, c = np.nonzero(holes)
        nbrs = np.stack(
            [
                np.maximum(r - 1, 0) * w + c,
                np.minimum(r + 1, h - 1) * w + c,
                r * w + np.maximum(c - 1, 0),
                r * w + np.minimum(c + 1, w - 1),
            ]
        )
        flat = filled.reshape(-1)
        target = r * w + c
        for _ in range(iterations):
            flat[target] = 0.25 * flat[nbrs].sum(axis=0)
    return filled.astype(np.float32)


def repair_depth(depth: np.ndarray, source: str | Path) -> np.ndarray:
    """Inpaint the invalid pixels of a depth image read from ``source``, warning how many were repaired.

    Args:
        depth: array[H, W] depth in metres.
        source: the file it came from (named in the warning and the error).

    Returns:
        array[H, W] float32 with every pixel finite and positive where the input was.

    Raises:
        DataError: every pixel is invalid.
    """
    holes = invalid_depth_mask(depth)
    n_bad = int(holes.sum())
    if n_bad == 0:
        return np.asarray(depth, dtype=np.float32)
    if n_bad == holes.size:
        raise DataError(f"{source}: depth image has no valid pixel (all NaN, infinite, zero or negative)")
    warnings.warn(
        f"{source}: inpainted {n_bad} invalid depth pixels ({n_bad / holes.size:.2%} of the image: "
        "NaN, infinite, zero or negative)",
        stacklevel=2,
    )
    return inpaint_depth(depth, holes)


#: Largest depth image read, in pixels (a corrupt header can claim billions; Jacquard's are 1024²).
MAX_DEPTH_PIXELS = 1 << 26


def read_depth_tiff(path: str | Path) -> np.ndarray:
    """Read a single-channel float depth TIFF (LZW or uncompressed; Pillow mode ``F``).

    Returns:
        array[H, W] float32, unrepaired (see :func:`repair_depth`).

    Raises:
        DataError: missing, undecodable (whatever Pillow raises for a corrupt file), larger than
            :data:`MAX_DEPTH_PIXELS`, or not a single-channel image.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: depth image not found")
    try:
        with Image.open(path) as im:  # (no warnings.catch_warnings: dataset checks call this in threads)
            w, h = im.size
            if w * h > MAX_DEPTH_PIXELS:
                raise DataError(f"{path}: depth image header claims {w}x{h} pixels (corrupt file?)")
            im.load()
            arr = np.array(im, dtype=np.float32, copy=True)
    except DataError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise DataError(f"{path}: cannot decode depth image ({exc})") from exc
    except Exception as exc:  # Pillow's TIFF decoder raises many kinds of errors on corrupt files
        raise DataError(f"{path}: cannot decode depth image ({type(exc).__name__}: {exc})") from exc
    if arr.ndim != 2 or arr.size == 0:
        raise DataError(f"{path}: depth image must be single-channel 2-D, got shape {arr.shape}")
    return arr


def write_depth_tiff(path: str | Path, depth: np.ndarray) -> None:
    """Write array[H, W] as an uncompressed float32 TIFF (Pillow mode ``F``, as GG-CNN's ``d.tiff``)."""
    save_image(Image.fromarray(np.ascontiguousarray(depth, dtype=np.float32), mode="F"), path)


def normalise_depth(depth: np.ndarray) -> np.ndarray:
    """GG-CNN's depth input: subtract the image mean, clip to ``[−1, 1]``. array[H, W] -> float32."""
    d = np.asarray(depth, dtype=np.float32)
    return np.clip(d - d.mean(dtype=np.float64), -1.0, 1.0).astype(np.float32)


def normalise_rgb(rgb: np.ndarray) -> np.ndarray:
    """GG-CNN's RGB input: scale to ``[0, 1]`` and subtract the mean of all pixels and channels.

    Args:
        rgb: array[H, W, 3] with values in 0..255 (uint8 or float).

    Returns:
        array[3, H, W] float32, channels first (the reference's ``Image.normalise`` then transpose).
    """
    x = np.asarray(rgb, dtype=np.float32) / 255.0
    x = x - x.mean(dtype=np.float64)
    return np.ascontiguousarray(x.transpose(2, 0, 1), dtype=np.float32)
