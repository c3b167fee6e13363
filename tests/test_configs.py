from __future__ import annotations

from pathlib import Path

import pytest

from singleshot.config import build_config
from singleshot.errors import ConfigError
from singleshot.tasks.action.config import ActionConfig
from singleshot.tasks.detect.config import DetectConfig
from singleshot.tasks.grasp.config import GraspConfig

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_every_recipe_loads(path: Path) -> None:
    """Every recipe's keys exist in its task's config (the task is told by the file name)."""
    kind = (
        ActionConfig
        if path.name.startswith(("yowo", "act"))
        else GraspConfig
        if path.name.startswith("ggcnn")
        else DetectConfig
    )
    cfg = build_config(kind, path, {"batch": "8"})
    assert cfg.batch == 8 and cfg.epochs > 0


def test_types_and_overrides() -> None:
    cfg = build_config(
        DetectConfig, None, {"years": "2007,2012", "milestones": "3,5", "clip_grad": "none", "from": "torchvision"}
    )
    assert cfg.years == ("2007", "2012") and cfg.milestones == (3, 5) and cfg.clip_grad is None
    assert cfg.from_ == "torchvision"
    with pytest.raises(ConfigError, match="epochs: expected int"):
        build_config(DetectConfig, None, {"epochs": "many"})
    with pytest.raises(ConfigError, match="did you mean batch"):
        build_config(DetectConfig, None, {"bacth": "3"})
