"""``grasp predict``: grasps of depth (and RGB) images on disk, drawn and written as prediction files.

Prediction file (DESIGN.md, :mod:`singleshot.metrics.grasp_files`): a JSON list ``[{"image": id,
"grasps": [[cx, cy, angle, opening, jaw, quality], ...]}]`` in the original image's pixels, ``id`` =
the file stem without the dataset's suffix (``pcd0100`` for ``pcd0100d.tiff``, ``0_<object>`` for
``0_<object>_perfect_depth.tiff``); with ``format=jacquard`` also ``jacquard_output.txt`` (GG-CNN's
``--jacquard-output`` layout).

Depth inputs: float TIFFs and ``.npy`` arrays are metres; integer images (16-bit PNG or TIFF, as
depth cameras write them) are millimetres and are divided by 1000. Holes (NaN, zero, negative) are
inpainted with a warning.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from singleshot.atomic import save_image
from singleshot.data.grasp.depth import read_depth_tiff, repair_depth
from singleshot.data.grasp.records import GraspImage
from singleshot.data.grasp.rects import grasps_to_corners
from singleshot.data.image_io import read_image_rgb
from singleshot.errors import ConfigError, DataError
from singleshot.metrics.grasp_files import write_grasp_predictions, write_jacquard_output
from singleshot.structures import Grasps
from singleshot.tasks.common import chunks, make_config, require, run_folder
from singleshot.tasks.grasp.config import GraspConfig
from singleshot.tasks.grasp.evaluate import load_predictor
from singleshot.tasks.grasp.predictor import GraspPredictor
from singleshot.tasks.predict_files import SkippedInputs, unique_ids

logger = logging.getLogger(__name__)

__all__ = ["colourise_depth", "draw_grasps", "image_id_of", "predict", "predict_source", "read_depth_any"]

_DEPTH_SUFFIXES = {".tif", ".tiff", ".npy"}
_RGB_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}
_ID_PATTERNS = (
    re.compile(r"^(pcd\d+)[dr]$"),  # Cornell pcdXXXXd.tiff / pcdXXXXr.png
    re.compile(r"^(.+)_(?:perfect_depth|stereo_depth|RGB|mask)$"),  # Jacquard
)


def image_id_of(path: Path) -> str:
    """The image id of a file: its stem without Cornell's ``d``/``r`` or Jacquard's ``_RGB`` … suffix."""
    for pattern in _ID_PATTERNS:
        m = pattern.match(path.stem)
        if m:
            return m.group(1)
    return path.stem


def read_depth_any(path: Path) -> np.ndarray:
    """array[H, W] float32 metres from a float TIFF / ``.npy`` (metres) or an integer image (mm), repaired."""
    if path.suffix.lower() == ".npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise DataError(f"{path}: cannot read depth array ({exc})") from exc
        if arr.ndim != 2:
            raise DataError(f"{path}: depth array must be 2-D, got shape {arr.shape}")
        depth = arr.astype(np.float32)
    elif path.suffix.lower() in (".tif", ".tiff"):
        depth = read_depth_tiff(path)
        with Image.open(path) as im:
            integer = im.mode.startswith("I")
        if integer:
            depth = depth / 1000.0
    else:
        try:
            with Image.open(path) as im:
                if im.mode not in ("I", "I;16", "I;16B", "I;16L", "L"):
                    raise DataError(f"{path}: a depth image must be single-channel, got mode {im.mode}")
                depth = np.asarray(im, dtype=np.float32) / 1000.0
        except OSError as exc:
            raise DataError(f"{path}: cannot decode depth image ({exc})") from exc
    return repair_depth(depth, path)


# ---------------------------------------------------------------- pictures
def colourise_depth(depth: np.ndarray) -> np.ndarray:
    """uint8[H, W, 3]: depth (array[H, W]) between its 1st and 99th percentiles, near = warm (turbo)."""
    from matplotlib import colormaps

    lo, hi = np.percentile(depth, [1, 99])
    x = np.clip((hi - depth) / max(float(hi - lo), 1e-6), 0, 1)
    return (colormaps["turbo"](x)[..., :3] * 255).astype(np.uint8)


def draw_grasps(image: np.ndarray, grasps: Grasps, max_grasps: int = 5, scale: int = 1) -> np.ndarray:
    """Draw the best ``max_grasps`` grasps on a copy of ``image`` (uint8[H, W, 3]), enlarged
    ``scale`` times (pixel replication; returns uint8[H·scale, W·scale, 3]).

    Each grasp is its rectangle: the two gripper plates (the edges across the opening) thick and
    red for the best grasp (orange for the others), the opening edges thin and green, and its quality.
    """
    img = np.ascontiguousarray(image)
    if scale > 1:
        img = img.repeat(scale, axis=0).repeat(scale, axis=1)
    canvas = Image.fromarray(img)
    draw = ImageDraw.Draw(canvas)
    n = min(len(grasps), max_grasps)
    g = grasps.grasps[:n].detach().cpu().double().clone()
    g[:, [0, 1]] = g[:, [0, 1]] * scale + (scale - 1) / 2  # pixel centres of the enlarged image
    g[:, [3, 4]] *= scale
    corners = grasps_to_corners(g.numpy())
    for rank in range(n - 1, -1, -1):  # the best grasp on top
        p = [tuple(float(v) for v in c) for c in corners[rank]]
        plate = (230, 25, 25) if rank == 0 else (245, 150, 40)
        draw.line([p[0], p[1]], fill=(60, 200, 75), width=1)
        draw.line([p[2], p[3]], fill=(60, 200, 75), width=1)
        draw.line([p[1], p[2]], fill=plate, width=3)
        draw.line([p[3], p[0]], fill=plate, width=3)
        cx, cy = (float(v) for v in g[rank, :2])
        draw.text((cx + 3, cy + 3), f"{float(grasps.scores[rank].detach()):.2f}", fill=plate)
    return np.asarray(canvas)


# ---------------------------------------------------------------- predict
def _list_inputs(source: Path, kind: str, depth_kind: str) -> list[Path]:
    if not source.exists():
        raise DataError(f"{source}: source not found")
    if source.is_file():
        return [source]
    suffixes = _RGB_SUFFIXES if kind == "rgb" else _DEPTH_SUFFIXES
    other = "stereo" if depth_kind == "perfect" else "perfect"
    files = sorted(
        p
        for p in source.rglob("*")
        if p.suffix.lower() in suffixes and not p.stem.endswith((f"_{other}_depth", "_mask"))
    )
    if not files:
        raise DataError(
            f"{source}: folder holds no {'RGB' if kind == 'rgb' else 'depth'} images ({', '.join(sorted(suffixes))})"
        )
    return files


def _rgb_partner(depth_path: Path, rgb: Path | None) -> Path | None:
    """The RGB image of a depth file: ``rgb`` itself, or a file named like the dataset's beside it
    (``pcdXXXXr.png``, ``<id>_RGB.png``, ``<stem>.png``) in ``rgb`` (a folder) or the depth's folder."""
    if rgb is not None and rgb.is_file():
        return rgb
    folder = rgb if rgb is not None and rgb.is_dir() else depth_path.parent
    image_id = image_id_of(depth_path)
    for name in (
        f"{image_id}r.png",
        f"{image_id}_RGB.png",
        f"{depth_path.stem}.png",
        f"{image_id}.png",
        f"{image_id}.jpg",
    ):
        cand = folder / name
        if cand.is_file() and cand != depth_path:
            return cand
    return None


def _load_input(path: Path, kind: str, rgb: Path | None, image_id: str) -> GraspImage:
    """The grasp image ``image_id`` of the file ``path`` (a depth image, with its RGB partner when
    one is found; an RGB image for ``kind="rgb"``)."""
    depth = rgb_arr = None
    if kind == "rgb":
        rgb_arr = read_image_rgb(path).permute(1, 2, 0).numpy()
    else:
        depth = read_depth_any(path)
        partner = _rgb_partner(path, rgb)
        if partner is not None:
            rgb_arr = read_image_rgb(partner).permute(1, 2, 0).numpy()
            if rgb_arr.shape[:2] != depth.shape:
                raise DataError(
                    f"{partner}: RGB size {rgb_arr.shape[:2]} differs from the depth image's {depth.shape} ({path})"
                )
        elif kind == "rgbd":
            raise DataError(f"{path}: the model takes RGB-D input but no RGB image was found (pass rgb=...)")
    arr = depth if depth is not None else rgb_arr
    assert arr is not None
    return GraspImage(
        image_id,
        depth,
        rgb_arr,
        np.zeros((0, 5), dtype=np.float32),
        size=(int(arr.shape[0]), int(arr.shape[1])),
    )


def _check_rgb(rgb: Path | None, source: Path, files: list[Path], kind: str) -> None:
    """Refuse an ``rgb=`` that cannot be paired: a path that does not exist, or one RGB file given
    for several depth images (it would be drawn, and read, as every one's RGB image).

    Raises:
        DataError: ``rgb`` does not exist.
        ConfigError: ``rgb`` is one file and ``files`` (the depth images of ``source``) are several;
            naming both.
    """
    if rgb is None:
        return
    if not rgb.exists():
        raise DataError(
            f"rgb={rgb}: not found (an RGB image, or a folder of them paired with the depth images by name)"
        )
    if rgb.is_file() and kind != "rgb" and len(files) > 1:
        raise ConfigError(
            f"rgb={rgb} is one image but source={source} holds {len(files)} depth images; give one depth "
            "image as source=, or a folder as rgb= (its images are paired with the depth images by name)"
        )


def predict_source(
    predictor: GraspPredictor,
    source: Path,
    out_dir: Path,
    rgb: Path | None = None,
    fmt: str = "json",
    depth_kind: str = "perfect",
    batch: int = 8,
    show: int = 5,
) -> dict:
    """Predict grasps for a depth image (or RGB image for RGB models) or a folder of them.

    Writes ``<id>_grasps.png`` per image (on its RGB image when one is found, else on the colourised
    depth), ``predictions.json`` and, with ``fmt="jacquard"``, ``jacquard_output.txt`` under ``out_dir``.
    Images are viewed with the ``center`` crop (no labels at prediction time).

    In a folder, files with the same id (``a/x.tiff``, ``b/x.tiff``) get distinct ones (``x``,
    ``x_1``, said in the log), and an unreadable image (or its unreadable or mismatched RGB partner)
    is skipped, listed in ``skipped.txt`` and counted as ``skipped_inputs`` in the result; a folder
    where nothing could be read, or one unreadable file given by name, is a
    :class:`~singleshot.errors.DataError`. ``rgb=`` a file pairs with one depth image only (see
    :func:`_check_rgb`); ``rgb=`` a folder pairs by name.
    """
    if fmt not in ("json", "jacquard"):
        raise DataError(f"format: expected 'json' or 'jacquard', got {fmt!r}")
    files = _list_inputs(source, predictor.input, depth_kind)
    _check_rgb(rgb, source, files, predictor.input)
    folder = source.is_dir()
    ids = [image_id_of(p) for p in files]
    what = "RGB image" if predictor.input == "rgb" else "depth image"
    ids = unique_ids(files, ids, what) if folder else ids
    skipped = SkippedInputs(source, what)
    out_dir.mkdir(parents=True, exist_ok=True)
    preds: list[Grasps] = []
    pictures: list[str] = []
    for chunk in chunks(list(zip(files, ids)), max(1, batch)):
        images = []
        for path, image_id in chunk:
            try:
                images.append(_load_input(path, predictor.input, rgb, image_id))
            except DataError as exc:
                if not folder:
                    raise
                skipped.add(path, exc, image_id)
        for img, pred in zip(images, predictor(images)):  # no labels: gt_center falls back to center
            canvas = img.rgb if img.rgb is not None else colourise_depth(img.depth)  # type: ignore[arg-type]
            target = out_dir / f"{img.image_id}_grasps.png"
            save_image(Image.fromarray(draw_grasps(canvas, pred, show)), target)
            pictures.append(str(target))
            preds.append(pred)
    skipped.require_some(len(preds))
    write_grasp_predictions(out_dir / "predictions.json", preds)
    result = {
        "images": len(preds),
        "grasps": sum(len(p) for p in preds),
        "out": str(out_dir),
        "predictions": str(out_dir / "predictions.json"),
    }
    if fmt == "jacquard":
        write_jacquard_output(out_dir / "jacquard_output.txt", preds)
        result["jacquard_output"] = str(out_dir / "jacquard_output.txt")
    logger.info("wrote %d picture(s) and %s", len(pictures), out_dir / "predictions.json")
    return skipped.report(out_dir, result)


# ---------------------------------------------------------------- mode
def predict(args: dict[str, str]) -> dict:
    """Grasps of a depth image (``source=``, optional ``rgb=``) or a folder: pictures + predictions.json."""
    cfg = make_config(GraspConfig, args)
    require(cfg, "source")
    predictor = load_predictor(cfg)
    with run_folder(cfg, "predict", reads={"source": cfg.source, "rgb": cfg.rgb}) as out:
        result = predict_source(
            predictor, Path(cfg.source), out, Path(cfg.rgb) if cfg.rgb else None, cfg.format, cfg.depth, cfg.batch
        )
    return dict(result, save_dir=str(out))
