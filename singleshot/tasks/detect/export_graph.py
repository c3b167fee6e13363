"""SSD decoding and NMS appended to an exported ONNX graph (``detect export nms=true``, see
:mod:`singleshot.tasks.detect.export`).

:func:`append_ssd_postprocess` takes the raw SSD graph (outputs ``cls_logits`` [B, P, C+1] and
``bbox_regression`` [B, P, 4]) and replaces its outputs with one tensor::

    detections  float32 [N, 7], one row per kept box of the whole batch:
                (batch_index, x1, y1, x2, y2, score, label)
                boxes xyxy normalised to [0, 1] (multiply by the original image's width/height
                for pixels; the network input is a plain resize, so no letterbox correction),
                label = 0-based class index (background excluded, as in ``Detections.labels``),
                rows sorted by batch index, then by descending score.

It computes what :func:`singleshot.postprocess.detect.postprocess_detections` computes:

1. softmax over the C+1 logits, background column dropped -> scores [B, C, P];
2. decode every prior's offsets (variances, log-size clamp) with the priors as a constant, clip
   to [0, 1] -> boxes [B, P, 4];
3. per image and class, the ``topk_candidates`` best priors (TopK);
4. onnx ``NonMaxSuppression`` batched over (image, class) pairs: the candidates are laid out as
   B*C "batches" of one class each, so classes never suppress each other; boxes scoring at most
   ``score_thresh`` are dropped (strictly greater is kept, as in the PyTorch post-processing);
5. rows sorted by (image, descending score) and cut to ``max_detections`` per image.

Only standard ONNX operators (opset >= 11) are used, so onnxruntime and other runtimes run it.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from torch import Tensor

from singleshot.errors import ConfigError
from singleshot.ops.coders import DECODE_CLAMP
from singleshot.postprocess.detect import DetectPostprocess

logger = logging.getLogger(__name__)

__all__ = ["DETECTIONS_COLUMNS", "append_ssd_postprocess", "detections_from_rows"]

#: Column meaning of the ``detections`` output.
DETECTIONS_COLUMNS: tuple[str, ...] = ("batch_index", "x1", "y1", "x2", "y2", "score", "label")


class _Builder:
    """Appends nodes and constants to an ONNX graph under a name prefix."""

    def __init__(self, graph: Any, prefix: str = "post/") -> None:
        self.graph = graph
        self.prefix = prefix
        self.count = 0

    def const(self, name: str, value: np.ndarray) -> str:
        from onnx import numpy_helper

        full = self.prefix + name
        self.graph.initializer.append(numpy_helper.from_array(np.asarray(value), full))
        return full

    def op(self, op_type: str, inputs: list[str], n_out: int = 1, **attrs: Any) -> Any:
        from onnx import helper

        self.count += 1
        outs = [f"{self.prefix}{op_type.lower()}_{self.count}_{i}" for i in range(n_out)]
        self.graph.node.append(
            helper.make_node(op_type, inputs, outs, name=f"{self.prefix}{op_type}_{self.count}", **attrs)
        )
        return outs[0] if n_out == 1 else outs


def _i64(*values: int) -> np.ndarray:
    return np.asarray(values, dtype=np.int64)


def append_ssd_postprocess(
    model_proto: Any,
    priors: Tensor,
    num_classes: int,
    settings: DetectPostprocess = DetectPostprocess(),
    logits_name: str = "cls_logits",
    regression_name: str = "bbox_regression",
) -> Any:
    """Add decoding + per-class NMS to a raw SSD graph, in place; its outputs become ``detections``.

    Args:
        model_proto: ``onnx.ModelProto`` whose graph outputs ``logits_name`` Tensor[B, P, C+1] and
            ``regression_name`` Tensor[B, P, 4] (opset >= 11).
        priors: Tensor[P, 4] cxcywh normalised, in the order of the head outputs (``model.priors``).
        num_classes: C, background excluded.
        settings: thresholds (``score_thresh``, ``nms_thresh``, ``topk_candidates``,
            ``max_detections``) and coder variances, baked into the graph as constants.

    Returns:
        ``model_proto``, whose only output is ``detections`` float32 [N, 7] (see the module docstring).
    """
    from onnx import TensorProto, helper

    graph = model_proto.graph
    names = [o.name for o in graph.output]
    if logits_name not in names or regression_name not in names:
        raise ConfigError(f"the ONNX graph outputs {names}; expected {logits_name!r} and {regression_name!r}")
    opset = next((o.version for o in model_proto.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < 11:
        raise ConfigError(f"decoding + NMS in the graph needs opset >= 11, the model has opset {opset}")
    p = priors.detach().cpu().float().numpy()
    c, k = int(num_classes), int(min(settings.topk_candidates, p.shape[0]))
    v0, v1 = (float(v) for v in settings.variances)
    g = _Builder(graph)
    f32 = lambda v: np.asarray(v, dtype=np.float32)  # noqa: E731

    # 1. class scores [B, C, P]
    probs = g.op("Softmax", [logits_name], axis=-1)
    ax2 = g.const("ax2", _i64(2))
    fg = g.op("Slice", [probs, g.const("one", _i64(1)), g.const("big", _i64(np.iinfo(np.int64).max)), ax2])
    scores = g.op("Transpose", [fg], perm=[0, 2, 1])
    # 2. decoded boxes [B, P, 4], xyxy normalised, clipped to [0, 1]
    d_xy = g.op("Slice", [regression_name, g.const("s0", _i64(0)), g.const("s2", _i64(2)), ax2])
    d_wh = g.op("Slice", [regression_name, g.const("s2b", _i64(2)), g.const("s4", _i64(4)), ax2])
    p_xy, p_wh = g.const("prior_xy", p[:, :2].copy()), g.const("prior_wh", p[:, 2:].copy())
    cxy = g.op("Add", [p_xy, g.op("Mul", [g.op("Mul", [d_xy, g.const("v0", f32(v0))]), p_wh])])
    log_wh = g.op("Min", [g.op("Mul", [d_wh, g.const("v1", f32(v1))]), g.const("clamp", f32(DECODE_CLAMP))])
    half = g.op("Mul", [g.op("Mul", [p_wh, g.op("Exp", [log_wh])]), g.const("half", f32(0.5))])
    xyxy = g.op("Concat", [g.op("Sub", [cxy, half]), g.op("Add", [cxy, half])], axis=-1)
    boxes = g.op("Clip", [xyxy, g.const("zero_f", f32(0.0)), g.const("one_f", f32(1.0))])
    # 3. per (image, class) the k best priors: scores [B, C, k], their boxes [B, C*k, 4]
    top_scores, top_idx = g.op("TopK", [scores, g.const("k", _i64(k))], n_out=2, axis=2, largest=1, sorted=1)
    idx = g.op(
        "Unsqueeze", [g.op("Reshape", [top_idx, g.const("shape_b_ck", _i64(0, -1))]), g.const("ax_last", _i64(-1))]
    )
    idx4 = g.op("Expand", [idx, g.const("expand4", _i64(1, 1, 4))])
    cand = g.op("GatherElements", [boxes, idx4], axis=1)
    # 4. NMS over B*C one-class batches
    nms_boxes = g.op("Reshape", [cand, g.const("shape_nms_boxes", _i64(-1, k, 4))])
    nms_scores = g.op("Reshape", [top_scores, g.const("shape_nms_scores", _i64(-1, 1, k))])
    sel = g.op(
        "NonMaxSuppression",
        [
            nms_boxes,
            nms_scores,
            g.const("max_out", _i64(k)),
            g.const("iou", f32([settings.nms_thresh])),
            g.const("score", f32([settings.score_thresh])),
        ],
        center_point_box=0,
    )
    bc = g.op("Gather", [sel, g.const("col0", np.asarray(0, dtype=np.int64))], axis=1)  # [N] image * C + class
    j = g.op("Gather", [sel, g.const("col2", np.asarray(2, dtype=np.int64))], axis=1)  # [N] candidate rank
    flat = g.op("Add", [g.op("Mul", [bc, g.const("k_scalar", np.asarray(k, dtype=np.int64))]), j])
    sel_scores = g.op("Gather", [g.op("Reshape", [top_scores, g.const("flat1", _i64(-1))]), flat], axis=0)
    sel_boxes = g.op("Gather", [g.op("Reshape", [cand, g.const("flat4", _i64(-1, 4))]), flat], axis=0)
    c_scalar = g.const("c_scalar", np.asarray(c, dtype=np.int64))
    image = g.op("Div", [bc, c_scalar])
    label = g.op("Mod", [bc, c_scalar])
    # 5. sort by (image, descending score): key = 4 * image + (2 - score) in float64, ascending
    key = g.op(
        "Add",
        [
            g.op("Mul", [g.op("Cast", [image], to=TensorProto.DOUBLE), g.const("four", np.asarray(4.0))]),
            g.op("Sub", [g.const("two", np.asarray(2.0)), g.op("Cast", [sel_scores], to=TensorProto.DOUBLE)]),
        ],
    )
    n = g.op("Shape", [key])
    _, order = g.op("TopK", [key, n], n_out=2, axis=0, largest=0, sorted=1)
    image_s = g.op("Gather", [image, order], axis=0)
    # rank inside the image: cumulative count of the image's one-hot column [N, B]
    b = g.op("Gather", [g.op("Shape", [logits_name]), g.const("zero_i", np.asarray(0, dtype=np.int64))], axis=0)
    images = g.op(
        "Range", [g.const("r0", np.asarray(0, dtype=np.int64)), b, g.const("r1", np.asarray(1, dtype=np.int64))]
    )
    onehot = g.op(
        "Cast",
        [
            g.op(
                "Equal",
                [
                    g.op("Unsqueeze", [image_s, g.const("ax1", _i64(1))]),
                    g.op("Unsqueeze", [images, g.const("ax0", _i64(0))]),
                ],
            )
        ],
        to=TensorProto.INT64,
    )
    counts = g.op("CumSum", [onehot, g.const("cum_ax", np.asarray(0, dtype=np.int64))])
    rank = g.op("ReduceSum", [g.op("Mul", [counts, onehot]), g.const("ax1b", _i64(1))], keepdims=0)
    keep = g.op("LessOrEqual", [rank, g.const("max_det", np.asarray(settings.max_detections, dtype=np.int64))])
    kept = g.op("Compress", [order, keep], axis=0)
    columns = [
        g.op("Cast", [g.op("Gather", [image, kept], axis=0)], to=TensorProto.FLOAT),
        g.op("Gather", [sel_boxes, kept], axis=0),
        g.op("Gather", [sel_scores, kept], axis=0),
        g.op("Cast", [g.op("Gather", [label, kept], axis=0)], to=TensorProto.FLOAT),
    ]
    one_col = g.const("ax1c", _i64(1))
    columns = [col if i == 1 else g.op("Unsqueeze", [col, one_col]) for i, col in enumerate(columns)]
    graph.node.append(helper.make_node("Concat", columns, ["detections"], name="post/detections", axis=1))
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info("detections", TensorProto.FLOAT, ["num_detections", 7]))
    logger.debug("appended SSD decode + NMS (%d classes, top-%d, %d nodes)", c, k, g.count + 1)
    return model_proto


def detections_from_rows(
    rows: Tensor, image_sizes: list[tuple[int, int]], image_ids: list[str] | None = None
) -> list[Any]:
    """Split the graph's ``detections`` [N, 7] into one :class:`Detections` per image, in pixels.

    Args:
        rows: Tensor[N, 7] (batch_index, x1, y1, x2, y2 normalised, score, label).
        image_sizes: (height, width) of each original image; its length is the batch size.
        image_ids: optional identifiers.

    Returns:
        list of ``Detections`` (boxes xyxy pixels float32, scores, labels int64), by descending score.
    """
    import torch

    from singleshot.structures import Detections

    ids = list(image_ids) if image_ids is not None else [""] * len(image_sizes)
    batch = rows[:, 0].long()
    sizes = torch.tensor([[w, h, w, h] for h, w in image_sizes], dtype=torch.float32, device=rows.device)
    boxes = rows[:, 1:5] * sizes[batch]
    counts = torch.bincount(batch, minlength=len(image_sizes)).tolist()  # rows come sorted by image
    return [
        Detections(boxes=bx, scores=sc, labels=lb, image_id=ids[i])
        for i, (bx, sc, lb) in enumerate(
            zip(boxes.split(counts), rows[:, 5].split(counts), rows[:, 6].long().split(counts))
        )
    ]
