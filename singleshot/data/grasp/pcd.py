"""Cornell point clouds (``pcdXXXX.txt``, ASCII PCD v0.7) to depth images (``pcdXXXXd.tiff``).

Cornell's clouds list one point per line, ``x y z rgb index``, after a header (``VERSION``,
``FIELDS``, ..., ``DATA ascii``). ``index`` encodes the pixel: ``row = index // 640``,
``column = index % 640``. Like GG-CNN's ``DepthImage.from_pcd`` + ``generate_cornell_depth.py``,
the depth of a pixel is the Euclidean norm ``sqrt(x² + y² + z²)`` of its point divided by 1000
(the clouds are in millimetres, the depth image in metres; note the coordinates are relative to the
robot's base, not the camera, so this "range" is not a camera depth, exactly as in the reference),
pixels without a point are holes, and holes are inpainted (:func:`~singleshot.data.grasp.depth.inpaint_depth`,
a scipy fill in place of the reference's OpenCV Navier–Stokes inpainting). The image is written as
an uncompressed float32 TIFF named ``pcdXXXXd.tiff`` beside the cloud, as the reference does.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np

from singleshot.data.grasp.depth import inpaint_depth, write_depth_tiff
from singleshot.errors import DataError

logger = logging.getLogger(__name__)

__all__ = ["read_pcd_depth", "pcd_to_depth", "convert_cornell_pcd", "CORNELL_SHAPE"]

#: (height, width) of Cornell's images and clouds.
CORNELL_SHAPE: tuple[int, int] = (480, 640)
_DEFAULT_FIELDS = ("x", "y", "z", "rgb", "index")
_HEADER_KEYS = {"VERSION", "FIELDS", "SIZE", "TYPE", "COUNT", "WIDTH", "HEIGHT", "VIEWPOINT", "POINTS", "DATA"}
_CLOUD_NAME = re.compile(r"^pcd\d+\.txt$")


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _parse_header(lines: list[str], path: Path) -> tuple[tuple[str, ...], dict[str, str], int]:
    """Header fields, header values and the index of the first data line."""
    fields: tuple[str, ...] = _DEFAULT_FIELDS
    values: dict[str, str] = {}
    for i, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        key, _, rest = stripped.partition(" ")
        if key.upper() in _HEADER_KEYS:
            values[key.upper()] = rest.strip()
            if key.upper() == "FIELDS":
                fields = tuple(rest.split())
            if key.upper() == "DATA":
                if rest.strip().lower() != "ascii":
                    raise DataError(
                        f"{path}: line {i + 1}: only ASCII PCD data is supported, got 'DATA {rest.strip()}'"
                    )
                return fields, values, i + 1
            continue
        if _is_number(stripped.split()[0]):
            return fields, values, i  # a cloud without a header (the reference accepts these too)
        raise DataError(f"{path}: line {i + 1}: unexpected header line {stripped[:60]!r}")
    return fields, values, len(lines)


def read_pcd_depth(path: str | Path, shape: tuple[int, int] = CORNELL_SHAPE) -> np.ndarray:
    """Depth image of an ASCII PCD cloud, holes left as 0.

    Args:
        path: a ``pcdXXXX.txt`` cloud with fields ``x y z ... index`` (any order, named by ``FIELDS``;
            without an ``index`` field the points must fill the image in row order).
        shape: (height, width) of the image the ``index`` refers to.

    Returns:
        array[H, W] float32, ``sqrt(x² + y² + z²) / 1000`` (millimetres to metres) per pixel,
        0 where no point (or a NaN point) falls.

    Raises:
        DataError: unreadable file, binary data, a malformed point line (named by its line number),
            or an index outside the image.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="ascii", errors="replace").splitlines()
    except OSError as exc:
        raise DataError(f"{path}: cannot read point cloud ({exc})") from exc
    fields, _, start = _parse_header(lines, path)
    missing = [f for f in ("x", "y", "z") if f not in fields]
    if missing:
        raise DataError(f"{path}: FIELDS {' '.join(fields)} lack {', '.join(missing)}")
    body = lines[start:]
    n_fields = len(fields)
    tokens = " ".join(body).split()
    try:
        data = np.array(tokens, dtype=np.float64)
        if data.size % n_fields:
            raise ValueError("token count")
        data = data.reshape(-1, n_fields)
    except ValueError:
        for j, line in enumerate(body):
            parts = line.split()
            if parts and (len(parts) != n_fields or not all(_is_number(p) for p in parts)):
                raise DataError(
                    f"{path}: line {start + j + 1}: expected {n_fields} numbers ({' '.join(fields)}), "
                    f"got {line.strip()[:80]!r}"
                ) from None
        raise DataError(f"{path}: malformed point data") from None
    h, w = shape
    if "index" in fields:
        index = data[:, fields.index("index")]
        if not np.all(np.isfinite(index)) or np.any(index != np.round(index)):
            raise DataError(f"{path}: the 'index' column holds non-integer values")
        index = index.astype(np.int64)
    elif len(data) == h * w:
        index = np.arange(h * w)
    else:
        raise DataError(f"{path}: no 'index' field and {len(data)} points do not fill a {h}x{w} image")
    bad = (index < 0) | (index >= h * w)
    if bad.any():
        line = start + int(np.flatnonzero(bad)[0]) + 1
        raise DataError(f"{path}: pixel index {int(index[bad][0])} outside a {h}x{w} image (point near line {line})")
    xyz = data[:, [fields.index("x"), fields.index("y"), fields.index("z")]]
    rng = np.sqrt((xyz**2).sum(axis=1)) / 1000.0
    ok = np.isfinite(rng) & (rng <= np.finfo(np.float32).max)  # a range float32 cannot hold is no reading
    img = np.zeros(h * w, dtype=np.float64)
    img[index[ok]] = rng[ok]
    return img.reshape(h, w).astype(np.float32)


def pcd_to_depth(
    pcd_txt: str | Path, out_tiff: str | Path | None = None, shape: tuple[int, int] = CORNELL_SHAPE
) -> np.ndarray:
    """Convert a Cornell cloud to a float32 depth image with its holes inpainted, and save it.

    Args:
        pcd_txt: the ``pcdXXXX.txt`` cloud.
        out_tiff: where to write; default ``pcdXXXXd.tiff`` beside the cloud. ``""`` writes nothing.
        shape: (height, width) of the image.

    Returns:
        array[H, W] float32 depth in metres (what was written).

    Raises:
        DataError: see :func:`read_pcd_depth`; also a cloud without any valid point.
    """
    pcd_txt = Path(pcd_txt)
    depth = read_pcd_depth(pcd_txt, shape)
    holes = depth <= 0
    if holes.all():
        raise DataError(f"{pcd_txt}: point cloud has no valid point")
    if holes.any():
        logger.info("%s: inpainting %d pixels without a point (%.2f%%)", pcd_txt, holes.sum(), 100 * holes.mean())
        depth = inpaint_depth(depth, holes)
    if out_tiff is None:
        out_tiff = pcd_txt.with_name(pcd_txt.stem + "d.tiff")
    if str(out_tiff):
        write_depth_tiff(out_tiff, depth)
    return depth


def convert_cornell_pcd(
    root: str | Path, overwrite: bool = False, shape: tuple[int, int] = CORNELL_SHAPE
) -> list[Path]:
    """Write ``pcdXXXXd.tiff`` for every cloud ``pcdXXXX.txt`` under ``root`` (and its subfolders 01..10).

    Args:
        root: Cornell root.
        overwrite: rewrite depth images that already exist (default: keep those written after
            their cloud last changed, by modification time; an older one is written again).
        shape: (height, width) of the images (Cornell: 480×640).

    Returns:
        The depth images written, sorted.

    Raises:
        DataError: ``root`` holds no cloud, or a cloud is malformed (the message names it).
    """
    root = Path(root)
    clouds = sorted(p for p in list(root.glob("pcd*.txt")) + list(root.glob("*/pcd*.txt")) if _CLOUD_NAME.match(p.name))
    if not clouds:
        raise DataError(f"{root}: no Cornell point cloud (pcdXXXX.txt) found here or in its subfolders")
    written: list[Path] = []
    kept = 0
    for cloud in clouds:
        out = cloud.with_name(cloud.stem + "d.tiff")
        if not overwrite and _newer_than(out, cloud):
            kept += 1
            continue
        if out.exists() and not overwrite:
            logger.info("%s is older than its cloud %s (the cloud changed since): written again", out, cloud.name)
        pcd_to_depth(cloud, out, shape)
        written.append(out)
    if kept:
        logger.info(
            "%d depth images kept as they are: each was written after its cloud last changed (modification times)",
            kept,
        )
    logger.info("converted %d of %d clouds under %s", len(written), len(clouds), root)
    return written


def _newer_than(out: Path, source: Path) -> bool:
    """Whether ``out`` exists and was modified no earlier than ``source`` (so it was made from the
    source as it is now)."""
    try:
        return out.stat().st_mtime_ns >= source.stat().st_mtime_ns
    except OSError:
        return False
