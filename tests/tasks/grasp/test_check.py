"""``grasp check``, and the check ``grasp train`` / ``grasp val`` run first (bad=stop | skip), on
tiny generated Cornell data with planted faults."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from singleshot.cli import main
from singleshot.data.grasp.synthetic import generate_grasp_dataset
from singleshot.errors import DataError
from singleshot.tasks.common import make_config
from singleshot.tasks.grasp.check import check, screened_split
from singleshot.tasks.grasp.config import GraspConfig

pytestmark = [pytest.mark.filterwarnings("ignore:.*inpainted"), pytest.mark.usefixtures("one_thread")]

TINY = ["size=36", "crop_size=48", "batch=4", "workers=0", "min_distance=4", "threshold=-1", "checkpoint_every=0"]


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SINGLESHOT_CACHE", str(tmp_path / "cache"))


def _data(root: Path, n: int = 12) -> dict[str, Path]:
    generate_grasp_dataset(root, n, seed=0, size=(48, 64))
    return {p.name[: -len("cpos.txt")]: p for p in sorted(root.glob("*/pcd*cpos.txt"))}


def _plant(files: dict[str, Path], *items: str) -> None:
    """A malformed rectangle file for the first item, a truncated depth image for the others."""
    files[items[0]].write_text("1 2\n3 x\n")
    for item in items[1:]:
        depth = files[item].with_name(f"{item}d.tiff")
        depth.write_bytes(depth.read_bytes()[:200])


def test_check_mode(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = _data(tmp_path / "d", 6)
    assert main(["grasp", "check", f"data={tmp_path / 'd'}"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert "6 items, no faults" in out[0]
    assert json.loads(out[-1]) == {
        "n_items": 6,
        "n_faults": 0,
        "faults_by_kind": {},
        "items_with_faults": 0,
        "from_cache": False,
    }
    assert check({"data": str(tmp_path / "d")})["from_cache"] is True
    _plant(files, "pcd0101", "pcd0103")
    assert main(["grasp", "check", f"data={tmp_path / 'd'}"]) == 2
    captured = capsys.readouterr()
    assert "pcd0101cpos.txt" in captured.out and "malformed annotation" in captured.out
    assert "pcd0103d.tiff" in captured.out and "unreadable depth" in captured.out
    assert "2 faults listed above" in captured.err
    with pytest.raises(DataError, match="2 faults listed above"):
        check({"data": str(tmp_path / "d")})


def test_bad_skip_keeps_the_split_of_the_other_images(tmp_path: Path) -> None:
    files = _data(tmp_path / "d", 12)
    cfg = make_config(GraspConfig, {"data": str(tmp_path / "d"), "test_fraction": "0.25"})
    clean_train, clean_test, _, skipped = screened_split(cfg, cfg.data)
    assert skipped == [] and len(clean_test) == 3
    bad = {clean_train[0].image_id, clean_test[0].image_id}
    _plant(files, *sorted(bad))
    with pytest.raises(DataError, match=r"(?s)fix them, or pass bad=skip.*pcd0\d+cpos\.txt"):
        screened_split(cfg, cfg.data)
    cfg.bad = "skip"
    train, test, split, skipped = screened_split(cfg, cfg.data)
    assert [s.image_id for s in train] == [s.image_id for s in clean_train if s.image_id not in bad]
    assert [s.image_id for s in test] == [s.image_id for s in clean_test if s.image_id not in bad]
    assert {f.item for f in skipped} == bad and "2 faulty images left out" in split
    cfg.check = False  # the readers alone: the malformed rectangle file stops them
    with pytest.raises(DataError, match="line 2"):
        screened_split(cfg, cfg.data)


@pytest.mark.slow  # trains a tiny GG-CNN for one epoch (about 10 s on a busy machine)
def test_train_and_val_with_bad_skip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = _data(tmp_path / "d", 12)
    _plant(files, "pcd0102", "pcd0105")
    base = ["model=ggcnn", f"data={tmp_path / 'd'}", "test_fraction=0.25", f"project={tmp_path}", *TINY]
    assert main(["grasp", "train", "epochs=1", *base]) == 2
    assert "pcd0102cpos.txt" in capsys.readouterr().err
    assert not (tmp_path / "train").exists()
    assert main(["grasp", "train", "epochs=1", "bad=skip", "name=skip", *base]) == 0
    got = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    skipped = (Path(got["out"]) / "skipped.txt").read_text()
    assert "pcd0102cpos.txt" in skipped and "pcd0105d.tiff" in skipped
    assert "2 faulty images left out" in got["split"]
    val = ["grasp", "val", f"weights={got['weights']}", f"data={tmp_path / 'd'}", "test_fraction=0.25"]
    val += ["workers=0", "min_distance=4", "threshold=-1", f"project={tmp_path}", "bad=skip", "name=v"]
    assert main(val) == 0
    again = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert again["n"] == got["n"] and again["split"] == got["split"]
    assert "pcd0105d.tiff" in (tmp_path / "v" / "skipped.txt").read_text()
