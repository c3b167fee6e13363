"""parallel_branches: the same outputs and gradients as running the branches one after the other,
with each branch's forward and backward in its own thread."""

from __future__ import annotations

import copy
import threading
from functools import partial

import pytest
import torch
from torch import nn

from singleshot.engine.branches import parallel_branches, run_in_threads


class _Branch(nn.Module):
    def __init__(self, seed: int) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 4, 3))
        self.threads: dict[str, int] = {}

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        self.threads["forward"] = threading.get_ident()
        y = self.body(x)
        if y.requires_grad:
            y.register_hook(lambda g: self.threads.__setitem__("backward", threading.get_ident()))
        return {"a": y.mean((2, 3)), "b": y.amax(1)}


def _loss(outs: list[dict[str, torch.Tensor]]) -> torch.Tensor:
    return sum((o["a"] ** 2).sum() + (o["b"] * 0.5).sum() for o in outs)  # type: ignore[return-value]


def test_outputs_and_gradients_equal_the_sequential_run() -> None:
    x = torch.randn(2, 3, 10, 10)
    seq = [_Branch(0), _Branch(1)]
    par = copy.deepcopy(seq)
    outs_seq = [m(x) for m in seq]
    _loss(outs_seq).backward()
    outs_par = parallel_branches([partial(m, x) for m in par], [list(m.parameters()) for m in par])
    _loss(outs_par).backward()
    for a, b in zip(outs_seq, outs_par):
        for k in a:
            assert torch.equal(a[k], b[k])
    for ms, mp in zip(seq, par):
        for (name, p), q in zip(ms.named_parameters(), mp.parameters()):
            assert q.grad is not None and torch.equal(p.grad, q.grad), name
        assert torch.equal(ms.body[1].running_mean, mp.body[1].running_mean)


def test_second_branch_runs_forward_and_backward_in_another_thread() -> None:
    x = torch.randn(1, 3, 8, 8)
    branches = [_Branch(0), _Branch(1)]
    _loss(parallel_branches([partial(m, x) for m in branches])).backward()
    main = threading.get_ident()
    assert branches[0].threads == {"forward": main, "backward": main}
    assert branches[1].threads["forward"] != main and branches[1].threads["backward"] != main


def test_grad_mode_is_carried_into_the_threads() -> None:
    x = torch.randn(1, 3, 8, 8)
    branches = [_Branch(0), _Branch(1)]
    with torch.no_grad():
        outs = parallel_branches([partial(m, x) for m in branches])
    assert not any(v.requires_grad for o in outs for v in o.values())
    assert "backward" not in branches[1].threads
    with torch.inference_mode():
        outs = parallel_branches([partial(m, x) for m in branches])
    assert all(v.is_inference() for o in outs for v in o.values())


def test_tensor_outputs_and_a_frozen_branch() -> None:
    x = torch.randn(2, 3, 8, 8)
    a, b = nn.Conv2d(3, 2, 3), nn.Conv2d(3, 2, 3)
    b.requires_grad_(False)
    ya, yb = parallel_branches([partial(a, x), partial(b, x)])
    assert isinstance(ya, torch.Tensor) and ya.requires_grad and not yb.requires_grad
    (ya.sum() + yb.sum()).backward()
    ref = a.weight.detach().clone().requires_grad_(True)
    torch.nn.functional.conv2d(x, ref, a.bias.detach()).sum().backward()
    assert torch.allclose(a.weight.grad, ref.grad) and b.weight.grad is None


def test_shared_parameters_fall_back_to_one_thread() -> None:
    x = torch.randn(1, 3, 8, 8)
    shared = _Branch(0)
    outs = parallel_branches([partial(shared, x), partial(shared, x * 2)], [list(shared.parameters())] * 2)
    assert shared.threads["forward"] == threading.get_ident()
    _loss(outs).backward()
    ref = copy.deepcopy(shared)
    ref.zero_grad()
    _loss([ref(x), ref(x * 2)]).backward()
    for p, q in zip(shared.parameters(), ref.parameters()):
        assert torch.equal(p.grad, q.grad)


def test_errors_in_a_thread_reach_the_caller() -> None:
    def boom() -> None:
        raise ValueError("branch failed")

    with pytest.raises(ValueError, match="branch failed"):
        run_in_threads([lambda: 1, boom])
    assert run_in_threads([lambda: 1, lambda: 2, lambda: 3]) == [1, 2, 3]
