"""ONNX export, onnxruntime inference and int8 quantization, for every family.

- :func:`~singleshot.export.onnx_export.export_onnx`: a model (forward -> dict of tensors) to
  ONNX with a dynamic batch axis and the singleshot metadata in ``metadata_props["singleshot"]``.
- :class:`~singleshot.export.onnx_runtime.OnnxModel`: run the file with onnxruntime behind the
  ``model(x) -> dict[str, Tensor]`` interface.
- :func:`~singleshot.export.quantize.quantize_static_onnx`: int8 (QDQ) static quantization with
  calibration inputs.

Names are imported on first use, so ``import singleshot.export`` loads neither onnx nor onnxruntime.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "export_onnx": "onnx_export",
    "read_onnx_metadata": "onnx_export",
    "set_onnx_metadata": "onnx_export",
    "OnnxModel": "onnx_runtime",
    "quantize_static_onnx": "quantize",
    "ArrayCalibrationReader": "quantize",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'singleshot.export' has no attribute {name!r}")
    return getattr(importlib.import_module(f"singleshot.export.{_WHERE[name]}"), name)
