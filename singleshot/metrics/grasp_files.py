"""Prediction files of the grasp family: read and write.

* Grasp predictions JSON (``pred=``, DESIGN.md): a list ``[{"image": id, "grasps": [[cx, cy, angle,
  opening, jaw, quality], ...]}]`` in the original image's pixels, ``id`` = the file stem without
  the dataset's suffix (``pcd0100`` for ``pcd0100d.tiff``, ``0_<object>`` for
  ``0_<object>_perfect_depth.tiff``); ``angle`` in radians, counter-clockwise on screen
  (:class:`~singleshot.structures.Grasps`).
* Jacquard output (``jacquard_output.txt``): the layout of GG-CNN's ``--jacquard-output`` for the
  Jacquard simulated grasp trial: per grasp a line with its image id, then a line
  ``x;y;theta_deg;opening;jaw`` with ``theta_deg = -degrees(angle)`` (Jacquard's sign; see
  :mod:`singleshot.data.grasp.rects`), in the original image's pixels.

Malformed input raises :class:`~singleshot.errors.DataError` naming the file and the entry index.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import torch

from singleshot.atomic import write_text
from singleshot.data.grasp.rects import grasps_to_jacquard
from singleshot.errors import DataError
from singleshot.structures import Grasps

__all__ = ["read_grasp_predictions", "write_grasp_predictions", "write_jacquard_output"]


def write_grasp_predictions(path: Path, preds: Sequence[Grasps]) -> list[dict]:
    """Write grasps (original pixels, rows sorted by quality) as the DESIGN.md JSON; returns the records."""
    records = []
    for p in preds:
        rows = torch.cat((p.grasps.reshape(-1, 5), p.scores.reshape(-1, 1)), dim=1).double().tolist()
        records.append({"image": p.image_id, "grasps": [[round(v, 6) for v in r] for r in rows]})
    write_text(path, json.dumps(records))
    return records


def read_grasp_predictions(path: str | Path) -> dict[str, Grasps]:
    """Read a grasp prediction file. Rows of 6 numbers carry their quality; rows of 5 are ranked by
    position (first = best). Repeated images are merged.

    Returns:
        image id -> :class:`Grasps` sorted by descending quality, ``size`` (0, 0).

    Raises:
        DataError: unreadable JSON or a malformed entry (the message names the file and entry).
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: cannot read grasp predictions ({exc})") from exc
    if not isinstance(data, list):
        raise DataError(
            f"{path}: expected a JSON list of {{'image': id, 'grasps': [[cx, cy, angle, opening, jaw, quality], ...]}}"
        )
    rows: dict[str, list[list[float]]] = {}
    for i, entry in enumerate(data):
        if not isinstance(entry, dict) or "image" not in entry or not isinstance(entry.get("grasps"), list):
            raise DataError(f"{path}: entry {i}: expected {{'image': id, 'grasps': [...]}}, got {str(entry)[:80]}")
        image = str(entry["image"])
        for j, g in enumerate(entry["grasps"]):
            if not isinstance(g, list) or len(g) not in (5, 6) or not all(isinstance(v, (int, float)) for v in g):
                raise DataError(f"{path}: entry {i} ({image}), grasp {j}: expected 5 or 6 numbers, got {str(g)[:80]}")
            if not all(math.isfinite(float(v)) for v in g):
                raise DataError(f"{path}: entry {i} ({image}), grasp {j}: non-finite value {g}")
            quality = float(g[5]) if len(g) == 6 else -float(j)
            rows.setdefault(image, []).append([float(v) for v in g[:5]] + [quality])
    out: dict[str, Grasps] = {}
    for image, r in rows.items():
        t = torch.tensor(r, dtype=torch.float32).reshape(-1, 6)
        order = torch.argsort(t[:, 5], descending=True, stable=True)
        out[image] = Grasps(grasps=t[order, :5].contiguous(), scores=t[order, 5].contiguous(), image_id=image)
    for image in (str(e["image"]) for e in data):
        out.setdefault(image, Grasps(image_id=image))
    return out


def write_jacquard_output(path: Path, preds: Sequence[Grasps]) -> None:
    """GG-CNN's ``jacquard_output.txt``: an id line, then its grasps as ``x;y;theta_deg;opening;jaw``."""
    lines: list[str] = []
    for p in preds:
        for row in grasps_to_jacquard(p.grasps.reshape(-1, 5).double().numpy()):
            lines += [p.image_id, row]
    write_text(path, "\n".join(lines) + ("\n" if lines else ""))
