"""``singleshot action flow``: a generated video file and a generated frames root -> ACT flow images in
the frames layout; resuming skips finished videos (and a killed run's partial folder is redone);
a corrupt video is named while the others are still written; a video is skipped only while its
source files are unchanged (another src with the same names, or a changed frame, is recomputed)."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from singleshot.cli import main
from singleshot.data.action.flow import decode_flow
from singleshot.data.action.frames import list_frame_files, read_frame
from singleshot.data.action.synthetic import generate_action_dataset
from singleshot.errors import ConfigError, DataError
from singleshot.io.video import VideoWriter
from singleshot.tasks.action.flow import FLOW_INFO, compute_flow, find_flow_jobs
from singleshot.tasks.action.flow_stamps import SOURCE_STAMP


def _last_json(capsys: pytest.CaptureFixture[str]) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def frames_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("flow_src")
    generate_action_dataset(root, 2, 1, size=(48, 64), num_frames=(12, 13), seed=2)
    return root


def test_flow_of_a_video_file_moving_right(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(0)
    texture = np.kron(rng.integers(0, 256, (16, 24, 3)), np.ones((4, 4, 1))).astype(np.uint8)  # 64 x 96
    with VideoWriter(tmp_path / "clip.mp4", 25.0, 96, 64) as writer:
        for t in range(6):
            writer.write(np.roll(texture, 2 * t, axis=1))  # 2 px per frame to the right
    args = ["action", "flow", f"src={tmp_path / 'clip.mp4'}", f"dst={tmp_path / 'flow'}", "video_name=Move/clip"]
    assert main(args) == 0
    out = _last_json(capsys)
    assert (out["videos"], out["written"], out["frames"], out["method"]) == (1, 1, 6, "dis")
    files = list_frame_files(tmp_path / "flow" / "Move" / "clip")
    assert sorted(files) == [1, 2, 3, 4, 5, 6] and all(p.suffix == ".jpg" for p in files.values())
    x = decode_flow(read_frame(files[1]))[12:-12, 12:-12, 0]
    assert np.median(x) == pytest.approx(2.0, abs=0.25)  # frame 1 -> 2: x = +2 px (JPEG and H.264 blur it a little)
    assert json.loads((tmp_path / "flow" / FLOW_INFO).read_text())["scale"] == 16


def test_frames_root_layout_resume_and_partial_folders(frames_root: Path, tmp_path: Path) -> None:
    dst = tmp_path / "flow"
    first = compute_flow(frames_root, dst)  # a YOWO root: its rgb-images/ is the frames root
    videos = sorted(p.parent.relative_to(frames_root / "rgb-images").as_posix() for p in frames_root.rglob("00001.jpg"))
    assert first["videos"] == first["written"] == len(videos) == 3
    for v in videos:  # same layout, one flow image per frame, same size
        rgb, flow = list_frame_files(frames_root / "rgb-images" / v), list_frame_files(dst / v)
        assert sorted(flow) == sorted(rgb)
        assert read_frame(flow[1]).shape == read_frame(rgb[1]).shape
    stamp = (dst / videos[0] / "00001.jpg").stat().st_mtime_ns
    again = compute_flow(frames_root / "rgb-images", dst)
    assert (again["written"], again["skipped"]) == (0, 3)
    assert (dst / videos[0] / "00001.jpg").stat().st_mtime_ns == stamp
    # a killed run: a video's partial folder and no final folder -> that video only is redone
    done = dst / videos[1]
    done.rename(done.parent / f".{done.name}.partial")
    (dst / videos[2] / "00002.jpg").unlink()  # an incomplete folder (fewer images than frames) is redone too
    third = compute_flow(frames_root, dst)
    assert (third["written"], third["skipped"]) == (2, 1)
    assert not list(dst.rglob("*.partial")) and len(list_frame_files(done)) == len(
        list_frame_files(frames_root / "rgb-images" / videos[1])
    )
    with pytest.raises(ConfigError, match=r"flow\.json: this folder holds flow of method 'dis'"):
        compute_flow(frames_root, dst, method="tvl1")


def test_a_corrupt_video_is_named_and_the_others_are_written(tmp_path: Path) -> None:
    src = tmp_path / "videos"
    rng = np.random.default_rng(1)
    for name in ("A/good1", "A/bad", "B/good2"):
        folder = src / name
        folder.mkdir(parents=True)
        for f in range(1, 5):
            Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)).save(folder / f"{f:05d}.jpg")
    (src / "A" / "bad" / "00003.jpg").write_bytes(b"not a jpeg")
    dst = tmp_path / "flow"
    with pytest.raises(DataError, match=r"1 of 3 videos failed .*A/bad/00003\.jpg: cannot decode image"):
        compute_flow(src, dst, workers=2)  # two processes
    assert sorted(p.relative_to(dst).as_posix() for p in dst.glob("*/*")) == ["A/good1", "B/good2"]
    assert not list(dst.rglob("*.partial"))
    with pytest.raises(DataError, match=r"nowhere\.mp4: source not found"):
        compute_flow(tmp_path / "nowhere.mp4", dst)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"empty: no video files and no folders of frame images"):
        find_flow_jobs(tmp_path / "empty")
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00" * 64)
    with pytest.raises(DataError, match=r"broken\.mp4: cannot open as a video"):
        compute_flow(broken, tmp_path / "flow2")


def test_flow_is_keyed_by_its_source_files(frames_root: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Another ``src`` with the same video names, into the same ``dst``, is computed afresh (not
    "already done"); a changed frame recomputes its video only; reuse is logged with its grounds."""
    other = tmp_path / "other"
    generate_action_dataset(other, 2, 1, size=(48, 64), num_frames=(12, 13), seed=7)
    dst = tmp_path / "flow"
    compute_flow(frames_root, dst)
    videos = sorted(p.parent.relative_to(dst).as_posix() for p in dst.rglob("00001.jpg"))
    first = {v: (dst / v / "00001.jpg").read_bytes() for v in videos}
    assert sorted(p.parent.relative_to(other / "rgb-images").as_posix() for p in other.rglob("00001.jpg")) == videos
    second = compute_flow(other, dst)
    assert (second["written"], second["skipped"]) == (3, 0)
    assert all((dst / v / "00001.jpg").read_bytes() != first[v] for v in videos)
    fresh = compute_flow(other, tmp_path / "fresh")["frames"]
    assert second["frames"] == fresh
    # one frame of one source video changes: that video only is recomputed
    frame = other / "rgb-images" / videos[1] / "00003.jpg"
    Image.fromarray(255 - np.asarray(Image.open(frame).convert("RGB"))).save(frame)
    os.utime(frame, ns=(frame.stat().st_atime_ns, frame.stat().st_mtime_ns + 2_000_000_000))
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="singleshot.tasks.action.flow_stamps"):
        third = compute_flow(other, dst)
    assert (third["written"], third["skipped"]) == (1, 2)
    assert "2 reused (source files, method and quality unchanged" in caplog.text and "1 recomputed" in caplog.text
    # another JPEG quality is another result: recomputed
    assert compute_flow(other, dst, quality=80)["written"] == 3


def test_a_flow_folder_without_a_stamp_is_kept_with_a_warning(
    frames_root: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    dst = tmp_path / "flow"
    compute_flow(frames_root, dst)
    for stamp in dst.rglob(SOURCE_STAMP):  # as an older singleshot (or another tool) left them
        stamp.unlink()
    with caplog.at_level(logging.INFO, logger="singleshot.tasks.action.flow_stamps"):
        again = compute_flow(frames_root, dst)
    assert (again["written"], again["skipped"]) == (0, 3)
    assert f"3 video folders under {dst} carry no {SOURCE_STAMP}" in caplog.text
