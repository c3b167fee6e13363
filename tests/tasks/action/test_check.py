"""``singleshot action check``, the same check before ``train`` (YOWO and ACT) and ``val``
(``bad=stop|skip``, ``skipped.txt``), and ``action convert from=csv`` end to end."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from singleshot.cli import main
from singleshot.data.action.readers import load_action_annotations
from singleshot.data.action.synthetic import SYNTH_PICKLE, generate_action_dataset

TINY = ["arch=yowo_tiny", "width=4", "clip_len=4", "imgsz=64", "batch=4", "workers=0", "schedule=constant"]
ACT_TINY = ["model=act", "arch=act_tiny", "act_width=0.25", "K=3", "imgsz=64", "batch=8", "workers=0"]
BAD = {"Bounce/v_Bounce_0001", "Pulse/v_Pulse_0002", "Pulse/v_Pulse_0006", "Slide/v_Slide_0003", "Nope/v_none"}

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SINGLESHOT_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 + 2 tiny videos with faults planted in 4 of them (v_Spin_0004 and v_Bounce_0005 stay clean)."""
    root = tmp_path_factory.mktemp("faulty") / "data"
    generate_action_dataset(root, 4, 2, size=(48, 64), num_frames=(12, 14), seed=0)
    frames, labels = root / "rgb-images", root / "labels"
    (frames / "Bounce/v_Bounce_0001/00003.jpg").write_bytes(b"not a jpeg")
    (frames / "Pulse/v_Pulse_0006/00002.jpg").write_bytes(b"")
    (labels / "Pulse/v_Pulse_0002/00004.txt").write_text("2 1 2 3\n")
    (labels / "Slide/v_Slide_0003/00005.txt").write_text("3 10 10 500 20\n")
    (labels / "Pulse/v_Pulse_0006/00003.txt").write_text("9 1 1 5 5\n")
    with open(root / "testlist.txt", "a") as f:
        f.write("Nope/v_none/00001.txt\n")
    return root


def _last_json(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


def test_check_mode_lists_every_fault_and_exits_2(faulty: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["action", "check", f"data={faulty}"]) == 2
    out, err = capsys.readouterr()
    for words in ("00003.jpg", "00002.jpg", "00004.txt:1", "500", "class id 9", "'Nope/v_none' is no video"):
        assert words in out, words
    assert "6 fault(s) in 5 of 6 items" in out and "6 fault(s) in" in err and "listed above" in err


def test_check_mode_on_clean_data_reports_then_reuses_the_cache(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "data"
    generate_action_dataset(root, 2, 1, size=(48, 64), num_frames=(12, 12), seed=1)
    for data in (root, root / SYNTH_PICKLE):
        assert main(["action", "check", f"data={data}"]) == 0
        first = _last_json(capsys.readouterr().out)
        assert first == {"n_items": 3, "n_faults": 0, "faults_by_kind": {}, "items_with_faults": 0, "from_cache": False}
        assert main(["action", "check", f"data={data}"]) == 0
        assert _last_json(capsys.readouterr().out)["from_cache"] is True


@pytest.mark.slow
def test_train_stops_on_faults_or_skips_their_videos(
    faulty: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = [*TINY, "epochs=1", f"project={tmp_path}"]
    assert main(["action", "train", f"data={faulty}", *run, "name=stop"]) == 2
    err = capsys.readouterr().err
    assert "dataset check found faults" in err and "bad=skip" in err and "00003.jpg" in err
    assert not (tmp_path / "stop").exists()
    assert main(["action", "train", f"data={faulty}", *run, "name=skip", "bad=skip"]) == 0
    result = _last_json(capsys.readouterr().out)
    skipped = (tmp_path / "skip" / "skipped.txt").read_text()
    assert all(item in skipped for item in BAD) and "Spin/v_Spin_0004" not in skipped
    assert result["frame_map"] is not None
    # val of those weights: the same check; with bad=skip the faulty test video is left out
    weights = tmp_path / "skip" / "best.safetensors"
    val = ["action", "val", f"weights={weights}", f"data={faulty}", "workers=0", f"project={tmp_path}"]
    assert main([*val, "name=vstop"]) == 2
    capsys.readouterr()
    assert main([*val, "name=vskip", "bad=skip"]) == 0
    assert "Pulse/v_Pulse_0006" in (tmp_path / "vskip" / "skipped.txt").read_text()


@pytest.mark.slow
def test_act_train_runs_the_check_too(faulty: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = [*ACT_TINY, "epochs=1", f"project={tmp_path}"]
    assert main(["action", "train", f"data={faulty / SYNTH_PICKLE}", *run, "name=act"]) == 2
    assert "dataset check found faults" in capsys.readouterr().err  # the frames beside the pickle
    assert main(["action", "train", f"data={faulty / SYNTH_PICKLE}", *run, "name=act", "bad=skip"]) == 0
    skipped = (tmp_path / "act" / "skipped.txt").read_text()
    assert "Bounce/v_Bounce_0001" in skipped and "Pulse/v_Pulse_0006" in skipped


def test_convert_from_csv_then_check_and_read_back(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "src"
    ann = generate_action_dataset(src, 2, 1, size=(48, 64), num_frames=(12, 12), seed=2)
    frames = tmp_path / "frames"  # flat frame folders <video>/00001.jpg
    for video in ann.videos:
        shutil.copytree(src / "rgb-images" / video, frames / video.split("/")[1])
    lines = ["video,frame,x1,y1,x2,y2,label,actor"]
    for video, va in ann.videos.items():
        for k, t in enumerate(va.tubes):
            for f, b in zip(t.frames, t.boxes):
                lines.append(
                    f"{video.split('/')[1]},{f},{b[0]:g},{b[1]:g},{b[2]:g},{b[3]:g},{ann.classes[t.label]},a{k}"
                )
    (tmp_path / "boxes.csv").write_text("\n".join(lines) + "\n")
    dst = tmp_path / "out"
    assert (
        main(["action", "convert", "from=csv", f"src={tmp_path / 'boxes.csv'}", f"frames={frames}", f"dst={dst}"]) == 0
    )
    result = _last_json(capsys.readouterr().out)
    assert result["n_videos"] == 3 and result["n_gaps"] == 0 and result["pickle"] == str(dst / "boxes-GT.pkl")
    assert main(["action", "check", f"data={tmp_path / 'boxes.csv'}", f"frames={frames}"]) == 0
    assert main(["action", "check", f"data={dst}"]) == 0
    back = load_action_annotations(dst / "boxes-GT.pkl")
    used = sorted(
        c for c in ann.classes if any(t.label == ann.classes.index(c) for va in ann.videos.values() for t in va.tubes)
    )
    assert back.classes == used and sorted(back.videos) == sorted(ann.videos)
    for video, va in ann.videos.items():
        got = sorted((back.classes[t.label], t.start, t.end) for t in back.videos[video].tubes)
        assert got == sorted((ann.classes[t.label], t.start, t.end) for t in va.tubes)
    assert (
        main(["action", "convert", "from=csv", f"src={tmp_path / 'boxes.csv'}", f"frames={frames}", f"dst={dst}"]) == 2
    )
    assert "already holds" in capsys.readouterr().err
