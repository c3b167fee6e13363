"""Run an exported ``.onnx`` file with onnxruntime as if it were the PyTorch model.

:class:`OnnxModel` is an ``nn.Module`` without parameters: ``model(x)`` returns the same dict of
raw outputs (torch tensors, on the input's device) as the PyTorch model it was exported from, and
``eval()`` / ``to(...)`` work, so code written for the torch model (predictors, evaluators) takes it
unchanged. The singleshot metadata stored in the file is ``model.meta``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from singleshot.errors import WeightsError
from singleshot.export.onnx_export import read_onnx_metadata

logger = logging.getLogger(__name__)

__all__ = ["OnnxModel", "session_options"]


def session_options(threads: int | None = None) -> Any:
    """onnxruntime ``SessionOptions`` with all graph optimisations and ``threads`` intra-op threads
    (``None``: ``torch.get_num_threads()``, so that both runtimes use the same cores)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = int(threads if threads is not None else torch.get_num_threads())
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return opts


def _array(t: Tensor) -> np.ndarray:
    """A contiguous CPU numpy copy of ``t`` (floating tensors as float32)."""
    t = t.detach().to("cpu")
    return np.ascontiguousarray((t.float() if t.is_floating_point() else t).numpy())


class OnnxModel(nn.Module):
    """An onnxruntime session behind the ``model(x) -> dict[str, Tensor]`` interface.

    Args:
        path: the ``.onnx`` file.
        threads: intra-op threads (``None``: ``torch.get_num_threads()``).
        providers: onnxruntime execution providers (default: CPU).

    Attributes:
        meta: the singleshot metadata dict stored in the file (``{}`` when absent).
        input_names / output_names: the graph's input and output names, in order.
        path: the file.
    """

    def __init__(self, path: str | Path, threads: int | None = None, providers: Sequence[str] | None = None) -> None:
        super().__init__()
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise WeightsError(f"{self.path}: ONNX file not found")
        try:
            self.session = ort.InferenceSession(
                str(self.path),
                sess_options=session_options(threads),
                providers=list(providers or ["CPUExecutionProvider"]),
            )
        except Exception as exc:  # onnxruntime raises its own (non-exported) exception types
            raise WeightsError(f"{self.path}: onnxruntime cannot load this file ({exc})") from exc
        self.meta: dict[str, Any] = read_onnx_metadata(self.path)
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]

    def forward(self, *inputs: Tensor) -> dict[str, Tensor]:
        """Run the graph.

        Args:
            inputs: one tensor per graph input (e.g. Tensor[B, 3, S, S] float32 normalised images);
                any device or memory layout (they are copied to contiguous CPU arrays).

        Returns:
            ``{output name: Tensor}`` on the device of the first input.
        """
        if len(inputs) != len(self.input_names):
            raise WeightsError(f"{self.path}: the graph takes inputs {self.input_names}, got {len(inputs)} tensor(s)")
        feed = {name: _array(t) for name, t in zip(self.input_names, inputs)}
        outs = self.session.run(self.output_names, feed)
        device = inputs[0].device
        return {name: torch.from_numpy(np.asarray(o)).to(device) for name, o in zip(self.output_names, outs)}

    def extra_repr(self) -> str:
        return f"path={str(self.path)!r}, inputs={self.input_names}, outputs={self.output_names}"
