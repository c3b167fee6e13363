"""The command line: errors as one clean message (also from a DataLoader worker), help, the default
training configuration."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from singleshot import cli
from singleshot.data.shapes import write_shapes_dataset
from singleshot.engine.train_config import default_milestones, train_config_for
from singleshot.errors import DataError
from singleshot.tasks.common import make_config
from singleshot.tasks.detect.config import DetectConfig


class _Broken(Dataset):
    def __len__(self) -> int:
        return 2

    def __getitem__(self, i: int) -> torch.Tensor:
        raise DataError(f"/data/img{i}.jpg: not a JPEG file\nsecond line of the message")


def test_a_workers_data_error_prints_as_its_own_message() -> None:
    loader = DataLoader(_Broken(), batch_size=1, num_workers=1)
    with pytest.raises(DataError) as info:
        next(iter(loader))
    assert "Original Traceback" in str(info.value)  # what torch makes of it
    assert cli._user_message(info.value) == "/data/img0.jpg: not a JPEG file\nsecond line of the message"
    assert cli._user_message(DataError("plain")) == "plain"


def test_a_workers_data_error_reaches_the_terminal_without_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def run(args: dict[str, str]) -> None:
        next(iter(DataLoader(_Broken(), batch_size=1, num_workers=1)))

    spec = cli.TASKS["detect"]["score"]
    monkeypatch.setitem(cli.TASKS["detect"], "score", type(spec)(run, spec.summary, spec.config, spec.keys, spec.help))
    assert cli.main(["detect", "score"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "worker" not in err
    assert err.startswith("error: /data/img0.jpg: not a JPEG file")


@pytest.mark.parametrize("total", [1, 2, 3, 10, 120_000])
def test_default_milestones_fit_any_run(total: int) -> None:
    ms = default_milestones(total)
    assert ms == tuple(sorted(set(ms))) and all(1 <= m <= total for m in ms)
    if total == 120_000:
        assert ms == (80_000, 100_000)  # SSD's


def test_the_default_detect_schedule_has_milestones_for_any_epochs() -> None:
    for epochs in (1, 2, 7, 120):
        cfg = make_config(DetectConfig, {"data": "x", "epochs": str(epochs)})
        assert cfg.schedule == "multistep" and cfg.milestones == ()
        tcfg = train_config_for(cfg, batches_per_epoch=5, out_dir="unused", device="cpu")
        assert tcfg.milestones == default_milestones(5 * epochs)


def test_help_lists_every_key_of_the_mode_with_its_default(capsys: pytest.CaptureFixture[str]) -> None:
    for flag in ("help", "-h", "--help"):
        assert cli.main(["detect", "train", flag]) == 0
        out = capsys.readouterr().out
        for key in cli.TASKS["detect"]["train"].keys({}):
            assert f"\n  {key.rstrip('_')} " in out
        assert "\n  epochs            int           120 " in out
        assert "data:\n" in out and "training:\n" in out and "output:\n" in out


def test_show_config_prints_the_resolved_configuration(capsys: pytest.CaptureFixture[str]) -> None:
    import yaml

    assert cli.main(["detect", "demo", "show=config", "epochs=3"]) == 0
    shown = yaml.safe_load(capsys.readouterr().out)
    assert shown["epochs"] == 3 and shown["model"] == "ssd_tiny" and shown["imgsz"] == 160  # the demo's recipe
    assert "n_train" in shown and "source" not in shown


def test_a_key_the_mode_does_not_read_is_an_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert cli.main(["detect", "train", "data=x", "n_train=3"]) == 2
    err = capsys.readouterr().err
    assert "unknown key 'n_train' for detect train" in err and "keys of detect train:" in err
    assert cli.main(["detect", "predict", "weights=w", "epoch=3"]) == 2
    assert "unknown key 'epoch' for detect predict" in capsys.readouterr().err
    (tmp_path / "c.yaml").write_text("n_val: 3\n")
    assert cli.main(["detect", "train", f"cfg={tmp_path / 'c.yaml'}"]) == 2
    assert "unknown key 'n_val' for detect train" in capsys.readouterr().err


@pytest.mark.slow
def test_detect_train_with_nothing_but_data_trains(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A VOC-layout folder of the user's own classes, the default SSD300 recipe: one step trains,
    evaluates and writes weights whose classes are the annotations' names."""
    monkeypatch.setenv("SINGLESHOT_CACHE", str(tmp_path / "cache"))
    root = write_shapes_dataset(tmp_path / "voc", 4, 2, size=64)
    main = root / "VOC2007" / "ImageSets" / "Main"
    (main / "train.txt").rename(main / "trainval.txt")
    (main / "val.txt").rename(main / "test.txt")
    args = ["detect", "train", f"data={root}", f"project={tmp_path / 'runs'}", "max_steps=1", "batch=2", "workers=0"]
    assert cli.main(args) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    from singleshot.engine.weights import load_weights

    _, meta = load_weights(result["weights"])
    from singleshot.data.shapes import SHAPES_CLASSES

    assert meta["classes"] == sorted(SHAPES_CLASSES)


def test_a_mistyped_task_or_mode_gets_a_suggestion(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["detect", "trian", "data=x"]) == 2
    assert "unknown mode 'trian' for detect; did you mean train?" in capsys.readouterr().err
    assert cli.main(["detcet", "train"]) == 2
    assert "unknown task 'detcet'; did you mean detect?" in capsys.readouterr().err
