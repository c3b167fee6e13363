"""``train_config_for``: the engine settings every task derives from its command-line config."""

from __future__ import annotations


def test_train_config_for_each_task_config() -> None:
    """Milestones in epochs become optimizer steps (ceil of batches / accumulate), log four times an
    epoch, channels-last only on CUDA when the task leaves it to the device, gamma where a task has it."""
    from singleshot.engine.train_config import TrainConfig, train_config_for
    from singleshot.tasks.action import ActionConfig
    from singleshot.tasks.detect import DetectConfig
    from singleshot.tasks.grasp import GraspConfig

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
