"""One-pass check of a Cornell or Jacquard dataset: :func:`check_grasp_dataset`.

Every grasp sample (Cornell ``pcdXXXX``, Jacquard ``<n>_<object>``) is one *item*. For each, the
check reads what the readers would read for the chosen input, with the readers' own parsers, and
reports as :class:`~singleshot.data.check.Fault` what would stop them or leave the sample unusable:

* ``malformed annotation``: a rectangle / grasp file (or Cornell's ``cneg.txt``) that is not lines
  of numbers, has the wrong number of fields, or ends in an incomplete rectangle;
* ``no valid grasp``: no usable positive rectangle / grasp line (all NaN, or an empty file);
* ``invalid grasp``: a grasp (or Cornell negative) with values too large to use (non-finite in float32);
  ``degenerate grasp``: zero or negative opening or jaw; ``grasp outside image``: its centre lies
  outside the image (one fault per file and kind, counting the grasps, naming the first line);
* ``missing file``: the depth (``d.tiff`` / ``_perfect_depth.tiff`` / ``_stereo_depth.tiff``) or
  RGB image the input needs; ``unreadable depth``, ``empty depth`` (no valid pixel),
  ``unreadable image`` (RGB, or a Jacquard mask that is present), ``size mismatch`` (RGB and depth);
  ``malformed point cloud``: a Cornell cloud ``pcdXXXX.txt`` beside a missing ``d.tiff`` that
  ``grasp convert from=pcd`` could not convert either;
* ``duplicate id``: two samples with one id (prediction files are keyed by it);
* whole-dataset faults (empty ``item``): root not found, no annotation file, an object map that is
  missing or malformed.

Rectangles or grasp lines with a NaN coordinate are *not* faults by themselves: the readers skip
them with a warning, as the GG-CNN reference does (several real Cornell files hold such lines);
the check logs how many there are. Depth holes are not faults either (the readers inpaint them):
only a depth image without any valid pixel is.

Depth images are decoded in full (a corrupt compressed strip shows only then, and the empty-depth
test needs the pixels); RGB images and masks are read to their header and verified (PNG chunk
checksums), not decoded. The result is cached while the files are unchanged
(:func:`~singleshot.data.check.cached_check`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from singleshot.data.check import CheckReport, Fault, cached_check, files_fingerprint, run_checks
from singleshot.data.grasp.cornell import cornell_rectangle_files, parse_cornell_rectangles, read_object_map
from singleshot.data.grasp.depth import invalid_depth_mask, read_depth_tiff
from singleshot.data.grasp.jacquard import jacquard_grasp_files, parse_jacquard_grasps
from singleshot.data.grasp.pcd import read_pcd_depth
from singleshot.data.grasp.rects import corners_to_grasps, jacquard_to_grasps
from singleshot.errors import ConfigError, DataError
from singleshot.structures import GRASP_INPUT_CHANNELS

logger = logging.getLogger(__name__)

__all__ = ["CHECK_VERSION", "check_grasp_dataset", "grasp_layout"]

#: Changes whenever the check finds different faults in the same files (part of the cache key).
CHECK_VERSION = "grasp-check-1"

Add = Callable[[Path, str, str], None]


@dataclass(frozen=True)
class _Unit:
    """One sample to check: its id, annotation file and the files its input needs."""

    item: str
    layout: str
    grasps: Path
    depth: Path | None  # the depth image the input needs (None: RGB input)
    rgb: Path | None  # the RGB image the input needs (None: depth input)
    negatives: Path | None = None  # Cornell cneg.txt (read by the reader when present)
    mask: Path | None = None  # Jacquard mask (checked when present)
    cloud: Path | None = None  # Cornell pcdXXXX.txt (read only when the depth image is missing)

    def files(self) -> list[Path]:
        """Every file the check may read for this unit (for the cache key)."""
        fs = (self.grasps, self.depth, self.rgb, self.negatives, self.mask, self.cloud)
        return [f for f in fs if f is not None]


def grasp_layout(root: str | Path) -> str:
    """``"cornell"`` when ``root`` or a subfolder holds ``pcd*cpos.txt``, else ``"jacquard"``
    (the readers' ``layout=auto`` rule)."""
    path = Path(root)
    if next(path.glob("pcd*cpos.txt"), None) or next(path.glob("*/pcd*cpos.txt"), None):
        return "cornell"
    return "jacquard"


def _message(exc: DataError, path: Path) -> str:
    """The reader's message without its leading ``"<path>: "`` (the table names the file)."""
    text = str(exc)
    prefix = f"{path}: "
    return text[len(prefix) :] if text.startswith(prefix) else text


def _image_size(path: Path, what: str, add: Add) -> tuple[int, int] | None:
    """(height, width) from the header of a verified image, or None after adding its fault."""
    try:
        with Image.open(path) as im:
            w, h = im.size
            im.verify()
    except Exception as exc:  # any error Pillow raises on a corrupt file is the file's fault
        add(path, "unreadable image", f"cannot read {what} image ({type(exc).__name__}: {exc})")
        return None
    return int(h), int(w)


def _depth_size(u: _Unit, add: Add) -> tuple[int, int] | None:
    """(height, width) of the unit's depth image, or None after adding its fault."""
    assert u.depth is not None
    if not u.depth.is_file():
        hint = ""
        if u.cloud is not None and u.cloud.is_file():
            try:
                read_pcd_depth(u.cloud)
                hint = f"; make it from {u.cloud.name} with 'singleshot grasp convert from=pcd src=<root>'"
            except DataError as exc:
                add(u.cloud, "malformed point cloud", _message(exc, u.cloud))
        elif u.layout == "cornell":
            hint = f"; nor is its cloud {u.item}.txt there to make it from"
        add(u.depth, "missing file", f"depth image not found (the input needs it){hint}")
        return None
    try:
        depth = read_depth_tiff(u.depth)
    except DataError as exc:
        add(u.depth, "unreadable depth", _message(exc, u.depth))
        return None
    if invalid_depth_mask(depth).all():
        add(u.depth, "empty depth", "no valid pixel (all NaN, infinite, zero or negative)")
    return int(depth.shape[0]), int(depth.shape[1])


def _grasp_faults(
    grasps: np.ndarray, lines: tuple[int, ...], size: tuple[int, int] | None, path: Path, add: Add
) -> None:
    """Faults of positive grasps array[N, 5] ``(cx, cy, angle, opening, jaw)`` that start at ``lines``."""
    what = "rectangle" if path.name.endswith("cpos.txt") else "grasp"
    with np.errstate(over="ignore", invalid="ignore"):
        g32 = grasps.astype(np.float32)
        invalid = ~np.isfinite(g32).all(axis=1)
        degenerate = ~invalid & ((grasps[:, 3] <= 0) | (grasps[:, 4] <= 0))
        outside = np.zeros(len(grasps), dtype=bool)
        if size is not None:
            h, w = size
            cx, cy = grasps[:, 0], grasps[:, 1]
            outside = ~invalid & ((cx < 0) | (cx > w) | (cy < 0) | (cy > h))
    for mask, kind, text in (
        (invalid, "invalid grasp", "values too large to use"),
        (degenerate, "degenerate grasp", "zero or negative opening or jaw"),
        (outside, "grasp outside image", f"centre outside the {size[1]}x{size[0]} image" if size else ""),
    ):
        if mask.any():
            first = lines[int(np.flatnonzero(mask)[0])]
            n = int(mask.sum())
            add(path, kind, f"{n} {what}{'s' if n > 1 else ''} with {text} (first at line {first})")


def _check_unit(u: _Unit, nan_lines: list[tuple[str, int]]) -> list[Fault]:
    """The faults of one sample (see the module docstring); files with skipped NaN lines are
    appended to ``nan_lines`` as ``(file, count)``."""
    faults: list[Fault] = []

    def add(file: Path, kind: str, message: str) -> None:
        faults.append(Fault(str(file), kind, message, u.item))

    grasps: np.ndarray | None = None
    lines: tuple[int, ...] = ()
    try:
        if u.layout == "cornell":
            rects = parse_cornell_rectangles(u.grasps)
            with np.errstate(over="ignore", invalid="ignore"):
                grasps = corners_to_grasps(rects.corners)
            lines, skipped = rects.lines, rects.skipped
        else:
            rows = parse_jacquard_grasps(u.grasps)
            grasps, lines, skipped = jacquard_to_grasps(rows.rows), rows.lines, rows.skipped
        if skipped:
            nan_lines.append((str(u.grasps), len(skipped)))
    except DataError as exc:
        add(u.grasps, "malformed annotation", _message(exc, u.grasps))
    if u.negatives is not None and u.negatives.is_file():  # the reader converts them too
        try:
            negs = parse_cornell_rectangles(u.negatives)
            with np.errstate(over="ignore", invalid="ignore"):
                bad = ~np.isfinite(corners_to_grasps(negs.corners).astype(np.float32)).all(axis=1)
            if bad.any():
                first = negs.lines[int(np.flatnonzero(bad)[0])]
                add(
                    u.negatives,
                    "invalid grasp",
                    f"{int(bad.sum())} rectangle(s) with values too large to use (first at line {first})",
                )
        except DataError as exc:
            add(u.negatives, "malformed annotation", _message(exc, u.negatives))
    size = _depth_size(u, add) if u.depth is not None else None
    if u.rgb is not None:
        if not u.rgb.is_file():
            add(u.rgb, "missing file", "RGB image not found (the input needs it)")
        else:
            rgb_size = _image_size(u.rgb, "RGB", add)
            if rgb_size is not None and size is not None and rgb_size != size:
                add(u.rgb, "size mismatch", f"RGB image is {rgb_size[1]}x{rgb_size[0]}, its depth {size[1]}x{size[0]}")
            size = size or rgb_size
    if u.mask is not None and u.mask.is_file():
        _image_size(u.mask, "mask", add)
    if grasps is not None:
        if len(grasps) == 0:
            add(u.grasps, "no valid grasp", "no usable positive grasp (every line empty or NaN)")
        else:
            _grasp_faults(grasps, lines, size, u.grasps, add)
    return faults


def _units(root: Path, layout: str, input: str, depth: str) -> list[_Unit]:
    need_depth, need_rgb = input != "rgb", input != "depth"
    units = []
    if layout == "cornell":
        for pos in cornell_rectangle_files(root):
            stem = pos.name[: -len("cpos.txt")]
            units.append(
                _Unit(
                    stem,
                    layout,
                    pos,
                    pos.with_name(stem + "d.tiff") if need_depth else None,
                    pos.with_name(stem + "r.png") if need_rgb else None,
                    negatives=pos.with_name(stem + "cneg.txt"),
                    cloud=pos.with_name(stem + ".txt") if need_depth else None,
                )
            )
        return units
    for g in jacquard_grasp_files(root):
        stem = g.name[: -len("_grasps.txt")]
        units.append(
            _Unit(
                stem,
                layout,
                g,
                g.with_name(f"{stem}_{depth}_depth.tiff") if need_depth else None,
                g.with_name(f"{stem}_RGB.png") if need_rgb else None,
                mask=g.with_name(f"{stem}_mask.png"),
            )
        )
    return units


def _duplicates(units: list[_Unit]) -> list[Fault]:
    first: dict[str, Path] = {}
    faults = []
    for u in units:
        if u.item in first:
            faults.append(Fault(str(u.grasps), "duplicate id", f"{u.item} is also {first[u.item]}", u.item))
        else:
            first[u.item] = u.grasps
    return faults


def check_grasp_dataset(
    root: str | Path,
    layout: str = "auto",
    input: str = "depth",
    depth: str = "perfect",
    object_map: str | Path | None = None,
    workers: int = 0,
    use_cache: bool = True,
) -> CheckReport:
    """Check every sample of a Cornell or Jacquard root for what the readers need for ``input``.

    Args:
        root: the dataset folder.
        layout: ``"cornell"``, ``"jacquard"`` or ``"auto"`` (see :func:`grasp_layout`).
        input: ``"depth"``, ``"rgb"`` or ``"rgbd"``: which images are needed.
        depth: Jacquard's depth images, ``"perfect"`` or ``"stereo"``.
        object_map: Cornell's image -> object file, when one is used (a missing or malformed map
            is a fault of the whole dataset).
        workers: checking threads (0: automatic).
        use_cache: reuse the result of an earlier check of the unchanged files.

    Returns:
        The report: one item per annotation file, faults as listed in the module docstring.

    Raises:
        ConfigError: unknown ``layout``, ``input`` or ``depth`` (settings, not data).
    """
    if input not in GRASP_INPUT_CHANNELS:
        raise ConfigError(f"input: expected one of {sorted(GRASP_INPUT_CHANNELS)}, got {input!r}")
    if depth not in ("perfect", "stereo"):
        raise ConfigError(f"depth: expected 'perfect' or 'stereo', got {depth!r}")
    if layout not in ("auto", "cornell", "jacquard"):
        raise ConfigError(f"layout: expected auto, cornell or jacquard, got {layout!r}")
    root = Path(root)
    if not root.is_dir():
        return CheckReport(str(root), 0, [Fault(str(root), "missing file", "dataset folder not found")])
    layout = grasp_layout(root) if layout == "auto" else layout
    name = f"{root} ({layout}" + (f", {depth} depth)" if layout == "jacquard" and input != "rgb" else ")")
    units = _units(root, layout, input, depth)
    if not units:
        pattern = "pcdXXXXcpos.txt" if layout == "cornell" else "*_grasps.txt"
        return CheckReport(name, 0, [Fault(str(root), "no annotations", f"no {pattern} file found")])
    files = [f for u in units for f in u.files()]
    if object_map is not None:
        files.append(Path(object_map))
    key = files_fingerprint(files, f"{CHECK_VERSION}|{root.resolve()}|{layout}|{input}|{depth}|{object_map}")

    def compute() -> CheckReport:
        nan_lines: list[tuple[str, int]] = []
        faults = run_checks(
            units,
            lambda u: _check_unit(u, nan_lines),
            lambda u: (str(u.grasps), u.item),
            workers,
            f"checking {layout} samples",
        )
        faults += _duplicates(units)
        if object_map is not None:
            path = Path(object_map)
            try:
                read_object_map(path)
            except DataError as exc:
                kind = "malformed object map" if path.is_file() else "missing file"
                faults.append(Fault(str(path), kind, _message(exc, path)))
        if nan_lines:
            n = sum(k for _, k in nan_lines)
            logger.warning(
                "%s: %d %s with a NaN value in %d files are skipped, as the readers do (e.g. %s)",
                name,
                n,
                "rectangles" if layout == "cornell" else "grasp lines",
                len(nan_lines),
                min(nan_lines)[0],
            )
        return CheckReport(name, len(units), sorted(faults, key=lambda f: (f.file, f.kind, f.message)))

    return cached_check(key, compute, use_cache)
