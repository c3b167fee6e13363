"""``train_config_for``: the engine settings every task derives from its command-line config."""

from __future__ import annotations

import pytest


def test_train_config_for_each_task_config() -> None:
    """Milestones in epochs become optimizer steps (ceil of batches / accumulate), log four times an
    epoch, channels-last only on CUDA when the task leaves it to the device, gamma where a task has it."""
    from singleshot.engine.train_config import TrainConfig, train_config_for
    from singleshot.tasks.action.config import ActionConfig
    from singleshot.tasks.detect.config import DetectConfig
    from singleshot.tasks.grasp.config import GraspConfig

    det = DetectConfig(milestones=(2, 3), accumulate=4, clip_grad=5.0, ema=0.99, warmup=7)
    t = train_config_for(det, 10, "out", "cpu")
    assert t.milestones == (6, 9) and t.log_every == 2 and t.warmup_iters == 7 and t.clip_grad == 5.0
    assert t.ema_decay == 0.99 and t.gamma == TrainConfig.gamma and not t.channels_last
    assert train_config_for(det, 10, "out", "cuda").channels_last
    act = ActionConfig(milestones=(1, 2), gamma=0.5, accumulate=1)
    t = train_config_for(act, 3, "out", "cuda")
    assert t.milestones == (3, 6) and t.gamma == 0.5 and not t.channels_last and t.log_every == 1
    g = GraspConfig(channels_last=True, epochs=4, lr=6e-3, optimizer="adam")
    t = train_config_for(g, 40, "out", "cpu")
    assert t.channels_last and t.epochs == 4 and t.lr == 6e-3 and t.optimizer == "adam" and t.log_every == 10


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw"])
def test_optimizers_use_multi_tensor_kernels_with_the_loop_s_numbers(name: str) -> None:
    import copy

    import torch
    from torch import nn

    from singleshot.engine.train_config import TrainConfig, build_optimizer

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Conv2d(4, 2, 1))
    ref = copy.deepcopy(model)
    cfg = TrainConfig(optimizer=name, lr=0.01, momentum=0.9, weight_decay=5e-4)
    opt = build_optimizer(model.parameters(), cfg)
    assert all(g["foreach"] for g in opt.param_groups)
    kw = {"lr": 0.01, "weight_decay": 5e-4, "foreach": False}
    loop = {
        "sgd": lambda p: torch.optim.SGD(p, momentum=0.9, **kw),
        "adam": lambda p: torch.optim.Adam(p, **kw),
        "adamw": lambda p: torch.optim.AdamW(p, **kw),
    }[name](ref.parameters())
    for step in range(3):
        x = torch.randn(2, 3, 6, 6, generator=torch.Generator().manual_seed(step))
        for m, o in ((model, opt), (ref, loop)):
            o.zero_grad()
            m(x).square().mean().backward()
            o.step()
    for p, q in zip(model.parameters(), ref.parameters()):
        assert torch.equal(p, q)


def test_engine_options_reach_the_train_config() -> None:
    """``gamma`` and ``warmup_factor`` are engine keys of every task (a detect recipe sets them too),
    and ``max_steps`` reaches the trainer's settings; a negative ``max_steps`` is refused."""
    from singleshot.engine.train_config import TrainConfig, train_config_for
    from singleshot.errors import ConfigError
    from singleshot.tasks.detect.config import DetectConfig
    from singleshot.tasks.grasp.config import GraspConfig

    t = train_config_for(DetectConfig(gamma=0.5, warmup_factor=1 / 3, max_steps=2), 10, "out", "cpu")
    assert t.gamma == 0.5 and t.warmup_factor == pytest.approx(1 / 3) and t.max_steps == 2
    g = train_config_for(GraspConfig(), 10, "out", "cpu")
    assert g.gamma == 0.1 and g.warmup_factor == 0.001 and g.max_steps == 0
    with pytest.raises(ConfigError, match="max_steps"):
        TrainConfig(max_steps=-1)
