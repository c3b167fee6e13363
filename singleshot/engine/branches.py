"""Run the independent branches of a model in threads, forward and backward (CPU).

Some models are two networks side by side until the loss: the two streams of a two-stream ACT,
the 3D and 2D backbones of YOWO before CFAM. On a CPU with one intra-op thread per process (the
demos: one compute thread plus one loader worker on two cores) the second core is mostly idle
during a training step. :func:`parallel_branches` runs each branch's forward in its own thread and,
through a small autograd node, also each branch's backward, so both cores compute.

How the backward is split: the branches' outputs pass through :class:`_JoinBranches`, whose forward
returns them unchanged (detached aliases) and whose backward receives the gradients of all of them
at once. It then calls ``torch.autograd.backward`` on each branch's own outputs, one branch per
thread. The node holds no autograd edge into the branches, so the engine does not walk them again. The
gradients are the same numbers as a plain backward: each branch's graph is differentiated once,
with the same incoming gradients, and the branches share no parameters.

Thread-local state: grad mode and inference mode are carried into the threads. Autocast is not; under autocast, and
when the branches share a parameter, the branches run one after the other in this thread. DDP is
not supported (its reducer expects one backward pass); the callers refuse that combination.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, TypeVar

import torch
from torch import Tensor

logger = logging.getLogger(__name__)

__all__ = ["run_in_threads", "parallel_branches"]

T = TypeVar("T")


def run_in_threads(fns: Sequence[Callable[[], T]]) -> list[T]:
    """Call ``fns[0]`` in this thread and each other one in a new thread; return their results in order.

    An exception raised by any of them is re-raised here (the first one, in the order of ``fns``)
    after all have finished.
    """
    results: list[Any] = [None] * len(fns)
    errors: list[BaseException | None] = [None] * len(fns)
    threads_per_op = torch.get_num_threads()

    def call(i: int) -> None:
        try:
            if i:  # a new thread starts with OpenMP's default team size, not torch's setting
                torch.set_num_threads(threads_per_op)
            results[i] = fns[i]()
        except BaseException as exc:  # noqa: BLE001  (re-raised in the calling thread)
            errors[i] = exc

    threads = [threading.Thread(target=call, args=(i,), daemon=True) for i in range(1, len(fns))]
    for t in threads:
        t.start()
    if fns:
        call(0)
    for t in threads:
        t.join()
    for exc in errors:
        if exc is not None:
            raise exc
    return results


class _JoinBranches(torch.autograd.Function):
    """Identity on the branches' outputs whose backward differentiates each branch in its own thread."""

    @staticmethod
    def forward(ctx: Any, anchor: Tensor, owners: tuple[int, ...], sources: list[Tensor]) -> tuple[Tensor, ...]:  # type: ignore[override]
        # ``sources`` travel as a plain list, not as tensor arguments: the node must have no edge into
        # the branches' graphs, or the engine would walk them again after they were differentiated.
        # ``anchor`` (a scalar leaf that requires grad) only makes the node part of the graph.
        ctx.owners, ctx.sources = owners, sources
        return tuple(t.detach() for t in sources)

    @staticmethod
    def backward(ctx: Any, *grads: Tensor) -> tuple[None, None, None]:  # type: ignore[override]
        groups: dict[int, tuple[list[Tensor], list[Tensor]]] = {}
        for owner, source, grad in zip(ctx.owners, ctx.sources, grads):
            outs, gs = groups.setdefault(owner, ([], []))
            outs.append(source)
            gs.append(grad)
        ctx.sources = []
        run_in_threads([partial(torch.autograd.backward, outs, gs) for outs, gs in groups.values()])
        return None, None, None


def _autocast_on() -> bool:
    return any(torch.is_autocast_enabled(d) for d in ("cpu", "cuda"))


Outputs = TypeVar("Outputs", Tensor, dict[str, Tensor])


def parallel_branches(
    branches: Sequence[Callable[[], Outputs]], params: Sequence[Sequence[torch.nn.Parameter]] | None = None
) -> list[Outputs]:
    """Run independent branches in threads; with grad enabled their backward runs in threads too.

    Args:
        branches: callables returning a Tensor or a ``{name: Tensor}`` dict each (e.g.
            ``partial(module, x)``).
        params: each branch's parameters, to check that no parameter is shared (a shared one would
            receive gradients from two threads at once: such branches run one after the other);
            ``None`` skips the check.

    Returns:
        The branches' outputs, in order. Tensors that require grad are replaced by aliases whose
        gradients reach the branches through the threaded backward; values are unchanged.
    """
    if params is not None:
        seen: set[int] = set()
        for group in params:
            ids = {id(p) for p in group}
            if ids & seen:
                return [fn() for fn in branches]
            seen |= ids
    if len(branches) < 2 or _autocast_on():
        return [fn() for fn in branches]
    grad, inference = torch.is_grad_enabled(), torch.is_inference_mode_enabled()

    def with_grad_mode(fn: Callable[[], Outputs]) -> Callable[[], Outputs]:
        def run() -> Outputs:
            if inference:
                with torch.inference_mode():
                    return fn()
            with torch.set_grad_enabled(grad):
                return fn()

        return run

    outs = run_in_threads([with_grad_mode(fn) for fn in branches])
    if not grad:
        return outs
    dicts = [out if isinstance(out, dict) else {"": out} for out in outs]
    spec = [(i, k) for i, d in enumerate(dicts) for k, v in d.items() if isinstance(v, Tensor) and v.requires_grad]
    if not spec:
        return outs
    anchor = torch.zeros((), requires_grad=True)
    joined = _JoinBranches.apply(anchor, tuple(i for i, _ in spec), [dicts[i][k] for i, k in spec])
    result = [dict(d) for d in dicts]
    for (i, k), v in zip(spec, joined):
        result[i][k] = v
    return [r if isinstance(out, dict) else r[""] for r, out in zip(result, outs)]  # type: ignore[misc]
