"""int8 static quantization of an exported ONNX model with onnxruntime.

:func:`quantize_static_onnx` writes a QDQ-format model (QuantizeLinear/DequantizeLinear pairs
around each quantized operator, which onnxruntime fuses into integer kernels): weights int8
(per output channel by default), activations uint8 by default -- the u8s8 pair that x86 CPUs with
VNNI run fastest without saturation. Activation ranges come from calibration: the float model is
run on representative *pre-processed* inputs (exactly what the model sees at inference) and the
min/max (or another onnxruntime calibration method) of every tensor is recorded.

The singleshot metadata of the source model is copied to the result, with
``meta["onnx"]["int8"]`` describing the quantization.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from singleshot.atomic import write_bytes
from singleshot.errors import ConfigError, WeightsError
from singleshot.export.onnx_export import read_onnx_metadata, set_onnx_metadata
from singleshot.io.scratch import scratch_dir

logger = logging.getLogger(__name__)

__all__ = ["needs_reduce_range", "ArrayCalibrationReader", "quantize_static_onnx", "write_onnx_graph"]

_QTYPES = {"int8": "QInt8", "uint8": "QUInt8"}
_METHODS = {"minmax": "MinMax", "entropy": "Entropy", "percentile": "Percentile"}


def _reader_base() -> type:
    from onnxruntime.quantization import CalibrationDataReader

    return CalibrationDataReader


class ArrayCalibrationReader:
    """onnxruntime ``CalibrationDataReader`` over an iterable of input arrays.

    Args:
        input_name: the graph input to feed.
        arrays: float32 arrays, each one input batch ``[B, ...]`` (e.g. [B, 3, S, S] normalised
            images) or one sample ``[...]`` (a batch axis is added); consumed once.

    Use :meth:`make` to get an instance of a real ``CalibrationDataReader`` subclass.
    """

    def __init__(self, input_name: str, arrays: Iterable[np.ndarray], ndim: int | None = None) -> None:
        self.input_name = input_name
        self.ndim = ndim
        self.count = 0
        self._it: Iterator[np.ndarray] = iter(arrays)

    @classmethod
    def make(cls, input_name: str, arrays: Iterable[np.ndarray], ndim: int | None = None) -> Any:
        """An instance that also derives from ``onnxruntime.quantization.CalibrationDataReader``."""
        klass = type("CalibrationReader", (cls, _reader_base()), {})
        return klass(input_name, arrays, ndim)

    def get_next(self) -> dict[str, np.ndarray] | None:
        arr = next(self._it, None)
        if arr is None:
            return None
        arr = np.ascontiguousarray(np.asarray(arr, dtype=np.float32))
        if self.ndim is not None and arr.ndim == self.ndim - 1:
            arr = arr[None]
        self.count += int(arr.shape[0])
        return {self.input_name: arr}


def needs_reduce_range(cpuinfo: str | None = None) -> bool:
    """True on an x86 CPU without VNNI (no ``avx512_vnni``, ``avx_vnni`` or ``amx_int8`` flag in
    ``/proc/cpuinfo``), where onnxruntime's int8 kernels saturate without 7-bit weights; False where
    the flags cannot be read (other systems, ARM)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False
    flags = next((line.split(":", 1)[1].split() for line in cpuinfo.splitlines() if line.startswith("flags")), None)
    if flags is None:  # not x86 (ARM lists "Features")
        return False
    return not {"avx512_vnni", "avx_vnni", "amx_int8"} & set(flags)


def quantize_static_onnx(
    src: str | Path,
    dst: str | Path,
    calibration: Iterable[np.ndarray],
    per_channel: bool = True,
    activation_type: str = "uint8",
    weight_type: str = "int8",
    method: str = "minmax",
    nodes_to_exclude: list[str] | None = None,
    preprocess: bool = True,
    reduce_range: bool | None = None,
) -> Path:
    """Quantize a float ONNX model to int8 (QDQ) with calibration data.

    Args:
        src: the float32 ``.onnx`` file (one graph input).
        dst: the int8 ``.onnx`` file to write.
        calibration: input arrays in the graph's input layout (see :class:`ArrayCalibrationReader`),
            typically 32-256 pre-processed dataset images in batches.
        per_channel: one weight scale per output channel (better accuracy, same speed).
        activation_type / weight_type: ``"uint8"`` or ``"int8"``.
        method: calibration method, ``"minmax"``, ``"entropy"`` or ``"percentile"``.
        nodes_to_exclude: names of nodes left in float32.
        preprocess: run onnxruntime's quantization pre-processing (shape inference and graph
            optimisation, e.g. folding) first, as onnxruntime recommends.
        reduce_range: 7-bit weights, for x86 CPUs without VNNI, where onnxruntime's u8s8 products
            saturate in 16 bits (its documented advice); None: on exactly when this machine is such a
            CPU (:func:`needs_reduce_range`), so the model is accurate where it is made.

    Returns:
        ``dst``. Raises :class:`ConfigError` for unknown options and :class:`WeightsError` when the
        source cannot be read or no calibration data came.
    """
    import onnx
    from onnxruntime import quantization as q
    from onnxruntime.quantization.shape_inference import quant_pre_process

    src, dst = Path(src), Path(dst)
    if not src.is_file():
        raise WeightsError(f"{src}: ONNX file not found")
    for name, value, table in (
        ("activation_type", activation_type, _QTYPES),
        ("weight_type", weight_type, _QTYPES),
        ("method", method, _METHODS),
    ):
        if value not in table:
            raise ConfigError(f"{name}={value!r} is unknown; expected one of {sorted(table)}")
    if reduce_range is None:
        reduce_range = needs_reduce_range()
    meta = read_onnx_metadata(src)
    proto = onnx.load(str(src))
    inputs = [i for i in proto.graph.input if i.name not in {init.name for init in proto.graph.initializer}]
    if len(inputs) != 1:
        raise ConfigError(
            f"{src}: static quantization here needs a graph with one input, found {[i.name for i in inputs]}"
        )
    input_name, ndim = inputs[0].name, len(inputs[0].type.tensor_type.shape.dim)
    reader = ArrayCalibrationReader.make(input_name, calibration, ndim)
    dst.parent.mkdir(parents=True, exist_ok=True)
    with scratch_dir(dst) as tmp:  # beside dst, onnxruntime's own temporaries inside; removed on error/signal
        model_in: Path = src
        if preprocess:
            model_in = Path(tmp) / "pre.onnx"
            quant_pre_process(str(src), str(model_in), skip_symbolic_shape=True)
        try:
            q.quantize_static(
                str(model_in),
                str(dst),
                reader,
                quant_format=q.QuantFormat.QDQ,
                per_channel=per_channel,
                reduce_range=reduce_range,
                activation_type=getattr(q.QuantType, _QTYPES[activation_type]),
                weight_type=getattr(q.QuantType, _QTYPES[weight_type]),
                calibrate_method=getattr(q.CalibrationMethod, _METHODS[method]),
                nodes_to_exclude=list(nodes_to_exclude or []),
                # no CalibMaxIntermediateOutputs: onnxruntime 1.30 drops the ranges it collected when
                # that limit is reached; the calibration graph only outputs per-tensor min/max anyway
            )
        except ValueError:
            if reader.count == 0:  # onnxruntime: "No data is collected."
                raise WeightsError(
                    f"{src}: no calibration data was given; int8 quantization needs representative inputs"
                ) from None
            raise
    out = onnx.load(str(dst))
    onnx_meta = dict(meta.get("onnx", {}))
    onnx_meta["int8"] = {
        "format": "QDQ",
        "per_channel": per_channel,
        "activations": activation_type,
        "weights": weight_type,
        "calibration": method,
        "calibration_samples": reader.count,
        "reduce_range": bool(reduce_range),
    }
    set_onnx_metadata(out, dict(meta, onnx=onnx_meta))
    write_bytes(dst, out.SerializeToString())
    logger.info("quantized %s -> %s (%d calibration samples)", src, dst, reader.count)
    return dst


def write_onnx_graph(
    out: str | Path,
    write_float: Callable[[Path], object],
    int8: bool = False,
    calibration: Callable[[], Iterable[np.ndarray]] | None = None,
    *,
    per_channel: bool = True,
    method: str = "minmax",
) -> int:
    """Write a family's graph to ``out``: the float graph by ``write_float(path)``, or with ``int8``
    that graph in a hidden temporary folder beside ``out`` quantized into ``out`` (:func:`quantize_static_onnx`) on the
    inputs of ``calibration()``, called once the float graph is written.

    Returns:
        the number of calibration samples (0 for a float graph).
    """
    out = Path(out)
    if not int8:
        write_float(out)
        return 0
    if calibration is None:
        raise ConfigError("int8=true needs calibration inputs")
    with scratch_dir(out) as tmp:  # hidden, beside out; removed on error and on SIGINT/SIGTERM
        raw = Path(tmp) / "raw.onnx"
        write_float(raw)
        quantize_static_onnx(raw, out, calibration(), per_channel=per_channel, method=method)
    return int(read_onnx_metadata(out)["onnx"]["int8"]["calibration_samples"])
