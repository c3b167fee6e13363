"""Darknet ``.weights`` files -> a singleshot ``Darknet2D`` (YOLOv2 for YOWO's 2D backbone).

File layout (Darknet ``parser.c``; little-endian): a header of three int32 ``major``, ``minor``,
``revision``, then ``seen`` (images seen in training) as int64 when ``major * 10 + minor >= 2`` (and
both are below 1000), else as int32 — 20 or 16 bytes. Then float32 values layer by layer in cfg order;
per convolutional layer with batch norm: BN bias (beta, ``n``), BN scale (gamma, ``n``), running mean
(``n``), running variance (``n``), conv weights (``n * c * k * k``, PyTorch's [out, in, kh, kw] order);
without batch norm: conv bias (``n``), conv weights. Pooling, route and reorg layers store nothing.

Darknet's ``yolov2.weights`` (COCO) is version 0.1 with an int32 ``seen``: 16 + 4 * 50,983,561 =
203,934,260 bytes for ``darknet19_yolov2()``. Nothing here unpickles anything: the file is plain numbers.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from singleshot.errors import WeightsError
from singleshot.models.darknet import Darknet2D

logger = logging.getLogger(__name__)

__all__ = ["DarknetHeader", "darknet_weights_floats", "read_darknet_header", "read_darknet_weights"]


@dataclass(frozen=True)
class DarknetHeader:
    """The version and training counter at the start of a ``.weights`` file."""

    major: int
    minor: int
    revision: int
    seen: int

    @property
    def seen_is_int64(self) -> bool:
        return self.major * 10 + self.minor >= 2 and self.major < 1000 and self.minor < 1000

    @property
    def nbytes(self) -> int:
        """Header size in bytes: 20 with an int64 ``seen``, else 16."""
        return 20 if self.seen_is_int64 else 16


def _layer_floats(conv: nn.Conv2d, bn: nn.BatchNorm2d | None) -> int:
    n = conv.out_channels
    return conv.weight.numel() + (4 * n if bn is not None else n)


def darknet_weights_floats(model: Darknet2D) -> int:
    """How many float32 values a ``.weights`` file for ``model`` holds after its header."""
    return sum(_layer_floats(conv, bn) for _, conv, bn in model.conv_layers())


def read_darknet_header(path: str | Path) -> DarknetHeader:
    """Read the header of a Darknet ``.weights`` file.

    Raises:
        WeightsError: the file is missing or shorter than its header.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: weights file not found")
    with path.open("rb") as f:
        head = f.read(20)
    if len(head) < 16:
        raise WeightsError(f"{path}: {len(head)} bytes, too short for a Darknet .weights header (16 or 20 bytes)")
    major, minor, revision = (int(v) for v in np.frombuffer(head[:12], dtype="<i4"))
    probe = DarknetHeader(major, minor, revision, 0)
    if probe.seen_is_int64:
        if len(head) < 20:
            raise WeightsError(
                f"{path}: version {major}.{minor} needs a 20-byte header, the file has {len(head)} bytes"
            )
        seen = int(np.frombuffer(head[12:20], dtype="<i8")[0])
    else:
        seen = int(np.frombuffer(head[12:16], dtype="<i4")[0])
    return DarknetHeader(major, minor, revision, seen)


@torch.no_grad()
def read_darknet_weights(path: str | Path, model: Darknet2D, allow_partial: bool = False) -> DarknetHeader:
    """Load a Darknet ``.weights`` file into ``model`` in place (every conv layer, in cfg order).

    Args:
        path: the ``.weights`` file.
        model: a ``Darknet2D`` whose layer specs are those of the cfg the file was written for
            (e.g. ``darknet19_yolov2()`` for YOLOv2's ``yolo.cfg`` / ``yolov2.weights``).
        allow_partial: accept a file that stops after a whole layer (like Darknet's
            ``darknet19_448.conv.23`` backbone files): the layers it holds are loaded, a warning says
            how many, the rest keep their values.

    Returns:
        The file's header.

    Raises:
        WeightsError: the file is missing, holds more values than the network has, or (without
            ``allow_partial``) fewer; the message names the layer where the data ran out.
    """
    path = Path(path)
    header = read_darknet_header(path)
    data = np.fromfile(path, dtype="<f4", offset=header.nbytes)
    layers = list(model.conv_layers())
    needed = darknet_weights_floats(model)
    if data.size > needed:
        raise WeightsError(
            f"{path}: {data.size} float32 values after the {header.nbytes}-byte header, but the network's "
            f"{len(layers)} conv layers take {needed}; the file was written for a different cfg"
        )
    pos, loaded = 0, 0
    for spec_index, conv, bn in layers:
        size = _layer_floats(conv, bn)
        if pos + size > data.size:
            where = f"conv layer {loaded + 1} (models.{spec_index}, {tuple(conv.weight.shape)})"
            if allow_partial and pos == data.size:
                break
            raise WeightsError(
                f"{path}: data ends inside {where}: {data.size} float32 values after the header, "
                f"the network takes {needed}"
                + ("" if allow_partial else " (allow_partial=True loads leading whole layers)")
            )
        parts = [bn.bias, bn.weight, bn.running_mean, bn.running_var] if bn is not None else [conv.bias]
        for target in [*parts, conv.weight]:
            assert target is not None
            chunk = data[pos : pos + target.numel()]
            target.copy_(torch.from_numpy(chunk.copy()).view_as(target))
            pos += target.numel()
        loaded += 1
    if loaded < len(layers):
        msg = f"{path}: loaded the first {loaded} of {len(layers)} conv layers (the file ends there); the rest are unchanged"
        warnings.warn(msg, stacklevel=2)
        logger.warning(msg)
    logger.info(
        "%s: Darknet weights v%d.%d.%d (seen %d), %d conv layers",
        path,
        header.major,
        header.minor,
        header.revision,
        header.seen,
        loaded,
    )
    return header
