"""The part of Caffe's message schema that holds weights, built with the ``protobuf`` package.

A ``.caffemodel`` is a serialised ``caffe.NetParameter``. Reading it needs neither Caffe nor
``protoc``: this module declares the few messages that carry layer names, types and weight blobs,
with the field numbers of Caffe's ``caffe.proto`` (BVLC and weiliu89's SSD fork use the same
numbers), and protobuf builds the classes at first use. Fields the schema does not declare (layer
hyper-parameters, solver state, ...) are skipped by the parser as unknown fields.

Speed: a packed repeated field and a ``bytes`` field share one wire encoding, so the default
schema reads a blob's packed ``data`` as raw bytes (turned into an array by ``numpy.frombuffer``
without a Python float per value: seconds instead of a minute for a VGG16 model). Files written
with the unpacked encoding (none of the released models) are read with ``raw=False``.

Declared (``name = number``):

* ``BlobShape``: ``dim = 1`` (repeated int64, packed)
* ``BlobProto``: ``num = 1, channels = 2, height = 3, width = 4`` (legacy 4-D shape), ``data = 5``
  (repeated float, packed), ``shape = 7``, ``double_data = 8`` (repeated double, packed)
* ``LayerParameter``: ``name = 1, type = 2, bottom = 3, top = 4, blobs = 7``
* ``V1LayerParameter`` (old models): ``bottom = 2, top = 3, name = 4, type = 5`` (enum, kept as
  its number), ``blobs = 6``
* ``NetParameter``: ``name = 1, layers = 2`` (V1), ``input = 3, input_dim = 4, layer = 100``
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_F = descriptor_pb2.FieldDescriptorProto

#: message -> (field name, number, type, label, message type name or "", packed)
_SCHEMA: dict[str, list[tuple[str, int, int, int, str, bool]]] = {
    "BlobShape": [("dim", 1, _F.TYPE_INT64, _F.LABEL_REPEATED, "", True)],
    "BlobProto": [
        ("num", 1, _F.TYPE_INT32, _F.LABEL_OPTIONAL, "", False),
        ("channels", 2, _F.TYPE_INT32, _F.LABEL_OPTIONAL, "", False),
        ("height", 3, _F.TYPE_INT32, _F.LABEL_OPTIONAL, "", False),
        ("width", 4, _F.TYPE_INT32, _F.LABEL_OPTIONAL, "", False),
        ("data", 5, _F.TYPE_FLOAT, _F.LABEL_REPEATED, "", True),  # bytes when raw
        ("shape", 7, _F.TYPE_MESSAGE, _F.LABEL_OPTIONAL, "BlobShape", False),
        ("double_data", 8, _F.TYPE_DOUBLE, _F.LABEL_REPEATED, "", True),  # bytes when raw
    ],
    "LayerParameter": [
        ("name", 1, _F.TYPE_STRING, _F.LABEL_OPTIONAL, "", False),
        ("type", 2, _F.TYPE_STRING, _F.LABEL_OPTIONAL, "", False),
        ("bottom", 3, _F.TYPE_STRING, _F.LABEL_REPEATED, "", False),
        ("top", 4, _F.TYPE_STRING, _F.LABEL_REPEATED, "", False),
        ("blobs", 7, _F.TYPE_MESSAGE, _F.LABEL_REPEATED, "BlobProto", False),
    ],
    "V1LayerParameter": [
        ("bottom", 2, _F.TYPE_STRING, _F.LABEL_REPEATED, "", False),
        ("top", 3, _F.TYPE_STRING, _F.LABEL_REPEATED, "", False),
        ("name", 4, _F.TYPE_STRING, _F.LABEL_OPTIONAL, "", False),
        ("type", 5, _F.TYPE_INT32, _F.LABEL_OPTIONAL, "", False),
        ("blobs", 6, _F.TYPE_MESSAGE, _F.LABEL_REPEATED, "BlobProto", False),
    ],
    "NetParameter": [
        ("name", 1, _F.TYPE_STRING, _F.LABEL_OPTIONAL, "", False),
        ("layers", 2, _F.TYPE_MESSAGE, _F.LABEL_REPEATED, "V1LayerParameter", False),
        ("input", 3, _F.TYPE_STRING, _F.LABEL_REPEATED, "", False),
        ("input_dim", 4, _F.TYPE_INT32, _F.LABEL_REPEATED, "", False),
        ("layer", 100, _F.TYPE_MESSAGE, _F.LABEL_REPEATED, "LayerParameter", False),
    ],
}

#: V1LayerParameter.LayerType numbers of the layers that carry weights.
V1_LAYER_TYPES: dict[int, str] = {4: "Convolution", 14: "InnerProduct", 39: "Deconvolution"}

_PACKAGE = "singleshot_caffe"


@lru_cache(maxsize=2)
def caffe_messages(raw: bool = True) -> dict[str, Any]:
    """The message classes ``{"NetParameter": cls, "LayerParameter": cls, ...}`` (built once).

    Args:
        raw: declare ``BlobProto.data``/``double_data`` as ``bytes`` holding the packed little-endian
            values (fast); False declares them as repeated floats/doubles, as Caffe does.
    """
    file_proto = descriptor_pb2.FileDescriptorProto(name="singleshot_caffe.proto", package=_PACKAGE, syntax="proto2")
    for message, fields in _SCHEMA.items():
        msg = file_proto.message_type.add(name=message)
        for name, number, ftype, label, type_name, packed in fields:
            if raw and message == "BlobProto" and name in ("data", "double_data"):
                ftype, label, packed = _F.TYPE_BYTES, _F.LABEL_OPTIONAL, False
            field = msg.field.add(name=name, number=number, type=ftype, label=label)
            if type_name:
                field.type_name = f".{_PACKAGE}.{type_name}"
            if packed:
                field.options.packed = True
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file_proto)
    return {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.{name}")) for name in _SCHEMA}
