"""Reading Caffe models: weight blobs from a ``.caffemodel`` and the layer parameters of its prototxt.

No Caffe installation: the binary file is parsed with the ``protobuf`` package and the schema of
:mod:`singleshot.convert.caffe_proto`; the prototxt with :mod:`singleshot.convert.prototxt`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from google.protobuf.message import DecodeError

from singleshot.atomic import write_bytes
from singleshot.convert.caffe_proto import V1_LAYER_TYPES, caffe_messages
from singleshot.convert.prototxt import Message, first, layers_of
from singleshot.errors import WeightsError


@dataclass
class CaffeLayer:
    """One layer of a ``.caffemodel``: its name, type and weight blobs (float32 arrays)."""

    name: str
    type: str
    blobs: list[np.ndarray] = field(default_factory=list)


def _blob_array(blob: Any, where: str) -> np.ndarray:
    if blob.HasField("shape"):
        shape = tuple(int(d) for d in blob.shape.dim)
    else:  # legacy num/channels/height/width; leading 1s were used for vectors and matrices
        shape = tuple(int(d) for d in (blob.num, blob.channels, blob.height, blob.width))
    if isinstance(blob.data, bytes):  # the raw schema: packed little-endian values
        values = np.frombuffer(blob.data, "<f4") if blob.data else np.frombuffer(blob.double_data, "<f8")
        values = values.astype(np.float32)
    else:
        values = np.asarray(blob.data if len(blob.data) else blob.double_data, dtype=np.float32)
    if values.size != math.prod(shape):
        raise WeightsError(f"{where}: blob of shape {shape} holds {values.size} values")
    return values.reshape(shape)


def _parse(data: bytes, raw: bool, path: Path) -> Any:
    net = caffe_messages(raw)["NetParameter"]()
    try:
        net.ParseFromString(data)
    except DecodeError as e:
        raise WeightsError(f"{path}: not a Caffe NetParameter (protobuf decoding failed: {e})") from None
    return net


def read_caffemodel(path: str | Path) -> dict[str, CaffeLayer]:
    """The layers that carry weights, by name, in file order.

    Both the current (``layer``) and the V1 (``layers``) layouts are read. A layer name that occurs
    twice keeps its first occurrence (Caffe stores the blobs of a layer once per layer instance).

    Raises:
        WeightsError: the file is missing or is not a serialised ``NetParameter``.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise WeightsError(f"{path}: cannot read the caffemodel ({e.strerror})") from None
    net = _parse(data, raw=True, path=path)
    blobs = [b for layer in list(net.layer) + list(net.layers) for b in layer.blobs]
    if any(not b.data and not b.double_data for b in blobs):  # unpacked floats: the exact schema
        net = _parse(data, raw=False, path=path)
    layers: dict[str, CaffeLayer] = {}
    for layer in list(net.layer) + list(net.layers):
        if not len(layer.blobs) or layer.name in layers:
            continue
        kind = layer.type if isinstance(layer.type, str) else V1_LAYER_TYPES.get(int(layer.type), str(layer.type))
        where = f"{path}: layer {layer.name!r}"
        layers[layer.name] = CaffeLayer(layer.name, kind, [_blob_array(b, where) for b in layer.blobs])
    if not layers:
        raise WeightsError(f"{path}: no layer with weights (is it a .caffemodel, not a prototxt or solverstate?)")
    return layers


def write_caffemodel(path: str | Path, layers: list[CaffeLayer], name: str = "net") -> None:
    """Write layers with weight blobs as a ``.caffemodel`` (used to build test models and fixtures)."""
    msgs = caffe_messages()
    net = msgs["NetParameter"](name=name)
    for layer in layers:
        lp = net.layer.add(name=layer.name, type=layer.type)
        for arr in layer.blobs:
            blob = lp.blobs.add()
            blob.shape.dim.extend(int(d) for d in arr.shape)
            blob.data = np.ascontiguousarray(arr, dtype="<f4").tobytes()
    write_bytes(path, net.SerializeToString())


def conv_tensors(layer: CaffeLayer, source: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(weight Tensor[O, I, kh, kw], bias Tensor[O] or None) of a convolution layer."""
    if not layer.blobs or layer.blobs[0].ndim != 4:
        shapes = [b.shape for b in layer.blobs]
        raise WeightsError(f"{source}: layer {layer.name!r} is not a convolution (blob shapes {shapes})")
    weight = torch.from_numpy(layer.blobs[0].copy())
    bias = torch.from_numpy(layer.blobs[1].reshape(-1).copy()) if len(layer.blobs) > 1 else None
    return weight, bias


def layer_params(net: Message) -> dict[str, Message]:
    """Prototxt layers by name."""
    return {str(first(layer, "name", f"#{i}")): layer for i, layer in enumerate(layers_of(net))}


def input_size(net: Message, source: str) -> tuple[int, int]:
    """(height, width) of the net's data input: ``input_shape``, ``input_dim`` or an ``Input`` layer."""
    shape = first(net, "input_shape")
    dims: list[Any] = list(shape.get("dim", [])) if shape else list(net.get("input_dim", []))
    if not dims:
        for layer in layers_of(net):
            if first(layer, "type") == "Input":
                param = first(layer, "input_param", {})
                dims = list(first(param, "shape", {}).get("dim", []))
                break
    if len(dims) != 4:
        raise WeightsError(f"{source}: cannot find the 4-D input shape (input_shape, input_dim or an Input layer)")
    return int(dims[2]), int(dims[3])
