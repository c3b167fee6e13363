"""Config values are checked by type, in YAML files and on the command line alike: no float is
truncated to an int, no bool taken for a number, no NaN or infinity accepted."""

from __future__ import annotations

from pathlib import Path

import pytest

from singleshot.cli import main
from singleshot.config import build_config
from singleshot.errors import ConfigError
from singleshot.tasks.detect.config import DetectConfig


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("epochs: 1.9", "epochs: expected int, got 1.9"),
        ("batch: 8.7", "batch: expected int, got 8.7"),
        ("epochs: true", "epochs: expected int, got the boolean True"),
        ("lr: .nan", "lr: expected a finite float"),
        ("lr: .inf", "lr: expected a finite float"),
        ("lr: true", "lr: expected float, got the boolean True"),
        ("milestones: [2, 3.5]", "milestones: expected int, got 3.5"),
    ],
)
def test_yaml_values_of_the_wrong_type_are_refused(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "cfg.yaml"
    path.write_text(text + "\n")
    with pytest.raises(ConfigError, match=match):
        build_config(DetectConfig, path)


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("epochs", "1.9", "epochs: expected int"),
        ("epochs", "true", "epochs: expected int"),
        ("lr", "nan", "lr: expected a finite float"),
        ("lr", "inf", "lr: expected a finite float"),
        ("lr", "-inf", "lr: expected a finite float"),
    ],
)
def test_command_line_values_of_the_wrong_type_are_refused(key: str, value: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        build_config(DetectConfig, None, {key: value})


def test_whole_numbers_are_still_ints(tmp_path: Path) -> None:
    path = tmp_path / "cfg.yaml"
    path.write_text("epochs: 2.0\nbatch: 4\nlr: 1\nclip_grad: null\n")
    cfg = build_config(DetectConfig, path, {"workers": "3.0", "seed": "0x10"})
    assert (cfg.epochs, cfg.batch, cfg.workers, cfg.seed) == (2, 4, 3, 16)
    assert isinstance(cfg.epochs, int) and isinstance(cfg.lr, float) and cfg.lr == 1.0 and cfg.clip_grad is None


def test_the_cli_names_a_non_finite_lr_and_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["detect", "train", f"data={tmp_path}", "lr=nan", f"project={tmp_path}"]) == 2
    err = capsys.readouterr().err
    assert "lr" in err and "finite" in err and "Traceback" not in err
    assert not (tmp_path / "train").exists()
