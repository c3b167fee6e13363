"""Learning-rate schedules: warm-up, milestones, cosine/poly shapes, resumability."""

from __future__ import annotations

import io
import math

import pytest
import torch

from singleshot.engine.schedules import build_scheduler
from singleshot.errors import ConfigError


def _lrs(name: str, n: int, base: float = 0.1, **kw: object) -> list[float]:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=base)
    sched = build_scheduler(opt, name, **kw)  # type: ignore[arg-type]
    out = []
    for _ in range(n):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_multistep_with_warmup_hand_values() -> None:
    lrs = _lrs(
        "multistep", 12, base=1e-3, total_iters=12, warmup_iters=4, warmup_factor=0.1, milestones=[6, 9], gamma=0.1
    )
    # warm-up: 0.1 + 0.9 * i / 4 for i = 0..3
    expected = [1e-3 * f for f in (0.1, 0.325, 0.55, 0.775)] + [1e-3] * 2 + [1e-4] * 3 + [1e-5] * 3
    assert lrs == pytest.approx(expected, rel=1e-12)


def test_multistep_matches_torch_multisteplr() -> None:
    ours = _lrs("multistep", 20, total_iters=20, milestones=[5, 12, 17], gamma=0.5)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    ref = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[5, 12, 17], gamma=0.5)
    theirs = []
    for _ in range(20):
        theirs.append(opt.param_groups[0]["lr"])
        opt.step()
        ref.step()
    assert ours == pytest.approx(theirs, rel=1e-12)


def test_warmup_matches_torch_linearlr() -> None:
    ours = _lrs("constant", 10, total_iters=10, warmup_iters=6, warmup_factor=0.01)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    ref = torch.optim.lr_scheduler.LinearLR(opt, start_factor=0.01, total_iters=6)
    theirs = []
    for _ in range(10):
        theirs.append(opt.param_groups[0]["lr"])
        opt.step()
        ref.step()
    assert ours == pytest.approx(theirs, rel=1e-9)


def test_cosine_matches_torch_and_poly_hand_values() -> None:
    ours = _lrs("cosine", 30, total_iters=30)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    ref = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=30, eta_min=0.0)
    theirs = []
    for _ in range(30):
        theirs.append(opt.param_groups[0]["lr"])
        opt.step()
        ref.step()
    assert ours == pytest.approx(theirs, rel=1e-9, abs=1e-12)
    poly = _lrs("poly", 10, total_iters=10, power=2.0)
    assert poly == pytest.approx([0.1 * (1 - i / 10) ** 2 for i in range(10)])
    floor = _lrs("cosine", 11, total_iters=10, min_factor=0.1)
    assert floor[0] == pytest.approx(0.1) and floor[10] == pytest.approx(0.01)
    assert math.isclose(floor[5], 0.1 * (0.1 + 0.9 * 0.5))


def test_resume_from_state_dict_weights_only() -> None:
    def make() -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
        return opt, build_scheduler(opt, "multistep", total_iters=20, warmup_iters=3, milestones=[8], gamma=0.1)

    opt, sched = make()
    full = []
    for _ in range(15):
        full.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()

    opt, sched = make()
    for _ in range(7):
        opt.step()
        sched.step()
    buf = io.BytesIO()
    torch.save({"opt": opt.state_dict(), "sched": sched.state_dict()}, buf)
    buf.seek(0)
    saved = torch.load(buf, weights_only=True)
    opt2, sched2 = make()
    opt2.load_state_dict(saved["opt"])
    sched2.load_state_dict(saved["sched"])
    rest = []
    for _ in range(8):
        rest.append(opt2.param_groups[0]["lr"])
        opt2.step()
        sched2.step()
    assert rest == full[7:]


def test_invalid_arguments_name_the_key() -> None:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    with pytest.raises(ConfigError, match="schedule.*'step'"):
        build_scheduler(opt, "step", total_iters=10)
    with pytest.raises(ConfigError, match="milestones"):
        build_scheduler(opt, "multistep", total_iters=10)
    with pytest.raises(ConfigError, match="warmup_factor"):
        build_scheduler(opt, "constant", total_iters=10, warmup_factor=2.0)
