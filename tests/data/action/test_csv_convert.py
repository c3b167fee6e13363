"""``action convert from=csv``'s data part: a box table plus frames (video files, frame folders, a
YOWO root) -> YOWO root + ACT pickle; scoring against what it wrote equals scoring against ground
truth built directly from the table; errors name the table's line and leave nothing behind."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from singleshot.data.action.csv_convert import convert_box_csv
from singleshot.data.action.readers import load_action_annotations, read_ucf24_mat
from singleshot.errors import ConfigError, DataError
from singleshot.io.video import VideoWriter
from singleshot.metrics.action_score import score_action
from singleshot.postprocess.tube_link_viterbi import link_viterbi
from singleshot.structures import ActionAnnotations, FrameDets, Tube, VideoAnnotation

SHARED_DATA = Path(__file__).resolve().parents[3] / ".." / "shared" / "data"
H, W, N = 48, 64, 20

#: (video, actor, label, frames, x offset): clip1 has two actors of one class, clip2 a gap (frame 6),
#: clip3 two classes (its folder: the more frequent one, Run).
TRACKS = [
    ("clip1", "p1", "Jump", range(3, 13), 2),
    ("clip1", "p2", "Jump", range(5, 16), 36),
    ("clip2", "", "Run", [*range(1, 6), *range(7, 19)], 10),
    ("clip3", "", "Run", range(4, 17), 4),
    ("clip3", "", "Jump", range(10, 21), 40),
]
NAMES = {"clip1": "Jump/clip1", "clip2": "Run/clip2", "clip3": "Run/clip3"}


def _box(frame: int, x0: int) -> tuple[float, float, float, float]:
    return (x0 + 0.5 * frame % 3, 5.0 + frame % 4, x0 + 18.0, 30.0 + frame % 5)


def _write_csv(path: Path, header: bool = True) -> list[tuple[str, str, str, int, tuple[float, ...]]]:
    rows = [(v, a, lab, f, _box(f, x0)) for v, a, lab, frames, x0 in TRACKS for f in frames]
    lines = ["video,frame,x1,y1,x2,y2,label,actor"] if header else []
    lines += [f"{v},{f},{b[0]:g},{b[1]:g},{b[2]:g},{b[3]:g},{lab},{a}" for v, a, lab, f, b in rows]
    path.write_text("\n".join(lines) + "\n")
    return rows


def _frames(folder: Path, videos: list[str], kind: str) -> None:
    rng = np.random.default_rng(0)
    for v in videos:
        images = [rng.integers(0, 255, (H, W, 3), dtype=np.uint8) for _ in range(N)]
        if kind == "videos":
            with VideoWriter(folder / f"{v}.mp4", 10, W, H) as writer:
                for im in images:
                    writer.write(im)
        else:
            out = folder / ("rgb-images/" + NAMES[v] if kind == "yowo" else v)
            out.mkdir(parents=True)
            for f, im in enumerate(images, start=1):
                Image.fromarray(im).save(out / f"{f:05d}.jpg")


def _direct_gt(rows: list[tuple[str, str, str, int, tuple[float, ...]]]) -> ActionAnnotations:
    """Ground truth straight from the table's rows: one tube per run of consecutive frames of each
    (video, actor, label)."""
    classes = sorted({r[2] for r in rows})
    videos: dict[str, VideoAnnotation] = {}
    for (v, a, lab), group in itertools.groupby(sorted(rows, key=lambda r: r[:4]), key=lambda r: r[:3]):
        group = list(group)
        name = NAMES[v]
        va = videos.setdefault(name, VideoAnnotation(name, N, (H, W), []))
        for _, run in itertools.groupby(enumerate(group), key=lambda ir: ir[1][3] - ir[0]):
            run = [r for _, r in run]
            va.tubes.append(
                Tube(
                    name,
                    classes.index(lab),
                    np.array([r[3] for r in run]),
                    np.array([r[4] for r in run], np.float32),
                    1.0,
                    np.ones(len(run), np.float32),
                )
            )
    return ActionAnnotations(classes, videos, list(videos), list(videos))


def _predictions(gt: ActionAnnotations) -> FrameDets:
    """Jittered ground-truth boxes (some with the wrong label) and random false positives."""
    rng = np.random.default_rng(1)
    names = sorted(gt.videos)
    rows = []
    for i, v in enumerate(names):
        for t in gt.videos[v].tubes:
            for f, b in zip(t.frames, t.boxes):
                label = t.label if rng.random() > 0.15 else 1 - t.label
                rows.append((i, f, label, rng.random(), *(b + rng.normal(0, 2.0, 4))))
        for _ in range(15):
            x, y = rng.uniform(0, 40), rng.uniform(0, 25)
            rows.append((i, rng.integers(1, N + 1), rng.integers(0, 2), rng.random() * 0.6, x, y, x + 20, y + 20))
    return FrameDets.from_array(np.array(rows, np.float64), names)


def _tubes(gt: ActionAnnotations) -> list[Tube]:
    """Predicted tubes: each ground-truth tube shifted by a frame and jittered, plus false ones."""
    rng = np.random.default_rng(2)
    out = []
    for v, va in sorted(gt.videos.items()):
        for t in va.tubes:
            frames = t.frames + rng.integers(-1, 2)
            inside = (frames >= 1) & (frames <= N)
            frames = frames[inside]
            boxes = (t.boxes[inside] + rng.normal(0, 1.5, t.boxes[inside].shape)).astype(np.float32)
            out.append(Tube(v, t.label, frames, boxes, float(rng.random()), np.ones(len(frames), np.float32)))
        frames = np.arange(2, 12)
        boxes = np.tile(np.array([[5, 5, 30, 30]], np.float32), (10, 1))
        out.append(Tube(v, int(rng.integers(0, 2)), frames, boxes, float(rng.random()), np.ones(10, np.float32)))
    return out


@pytest.mark.parametrize("kind", ["folders", "videos", "yowo"])
def test_scores_against_written_ground_truth_equal_direct_ones(tmp_path: Path, kind: str) -> None:
    rows = _write_csv(tmp_path / "boxes.csv", header=kind != "folders")
    frames = tmp_path / "frames"
    frames.mkdir()
    _frames(frames, ["clip1", "clip2", "clip3"], kind)
    dst = frames if kind == "yowo" else tmp_path / "out"  # a YOWO root is written in place
    result = convert_box_csv(tmp_path / "boxes.csv", frames, dst)
    assert result["classes"] == ["Jump", "Run"] and result["n_videos"] == 3 and result["n_tubes"] == 6
    assert result["n_gaps"] == 1 and result["gaps"][0] == {
        "video": "Run/clip2",
        "actor": "",
        "label": "Run",
        "missing": [6, 6],
    }
    assert result["frames_written"] == (0 if kind == "yowo" else 3 * N)
    assert (dst / "classes.txt").read_text() == "Jump\nRun\n"
    direct = _direct_gt(rows)
    written = {"root": load_action_annotations(dst), "pickle": load_action_annotations(dst / "boxes-GT.pkl")}
    for ann in written.values():
        assert {v: (va.num_frames, va.size) for v, va in ann.videos.items()} == {v: (N, (H, W)) for v in NAMES.values()}
        assert sorted(ann.test_videos) == sorted(NAMES.values())
    dets, tubes = _predictions(direct), _tubes(direct)
    for protocol, given in itertools.product(("yowo", "act"), (None, tubes)):
        want = score_action(direct, dets, given, protocol, link=link_viterbi)
        assert 0.2 < want["frame_map"] < 1.0
        assert given is None or 0.2 < want["video_map@0.5"] < 1.0
        for name, ann in written.items():
            assert score_action(ann, dets, given, protocol, link=link_viterbi) == want, (name, protocol)


def test_split_by_fraction_and_by_list(tmp_path: Path) -> None:
    _write_csv(tmp_path / "boxes.csv")
    frames = tmp_path / "frames"
    frames.mkdir()
    _frames(frames, ["clip1", "clip2", "clip3"], "folders")
    r = convert_box_csv(tmp_path / "boxes.csv", frames, tmp_path / "a", test_fraction=0.5)
    ann = load_action_annotations(tmp_path / "a" / "boxes-GT.pkl")
    assert (r["n_train"], r["n_test"]) == (1, 2) and sorted(ann.test_videos) == ["Jump/clip1", "Run/clip3"]
    (tmp_path / "test.txt").write_text("clip2\n")
    convert_box_csv(tmp_path / "boxes.csv", frames, tmp_path / "b", split_list=tmp_path / "test.txt")
    ann = load_action_annotations(tmp_path / "b")
    assert ann.test_videos == ["Run/clip2"] and sorted(ann.train_videos) == ["Jump/clip1", "Run/clip3"]
    with pytest.raises(ConfigError, match="test_fraction"):
        convert_box_csv(tmp_path / "boxes.csv", frames, tmp_path / "c", test_fraction=2.0)
    assert not (tmp_path / "c" / "labels").exists()


@pytest.mark.parametrize(
    ("row", "words"),
    [
        ("clip9,3,1,1,5,5,Jump,", r"boxes\.csv:\d+: unknown video 'clip9'"),
        ("clip1,21,1,1,5,5,Jump,p9", r"boxes\.csv:\d+: frame 21 beyond the 20 frames"),
        ("clip1,2,100,1,120,5,Jump,p9", r"boxes\.csv:\d+: box .* wholly outside the 64x48"),
        ("clip1,2,1,1,5,x,Jump,p9", r"boxes\.csv:\d+: y2 'x' is not a number"),
    ],
)
def test_errors_name_the_line_and_leave_nothing(tmp_path: Path, row: str, words: str) -> None:
    _write_csv(tmp_path / "boxes.csv")
    with open(tmp_path / "boxes.csv", "a") as f:
        f.write(row + "\n")
    frames = tmp_path / "frames"
    frames.mkdir()
    _frames(frames, ["clip1", "clip2", "clip3"], "videos")
    with pytest.raises(DataError, match=words):
        convert_box_csv(tmp_path / "boxes.csv", frames, tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_refuses_a_used_dst_and_missing_frames(tmp_path: Path) -> None:
    _write_csv(tmp_path / "boxes.csv")
    frames = tmp_path / "frames"
    frames.mkdir()
    _frames(frames, ["clip1", "clip2", "clip3"], "folders")
    (tmp_path / "out" / "labels").mkdir(parents=True)
    with pytest.raises(DataError, match="already holds labels"):
        convert_box_csv(tmp_path / "boxes.csv", frames, tmp_path / "out")
    assert (tmp_path / "out" / "labels").is_dir()  # not ours: left alone
    (frames / "clip2" / "00004.jpg").unlink()
    with pytest.raises(DataError, match=r"clip2: frame images are not numbered 1..20: missing 4"):
        convert_box_csv(tmp_path / "boxes.csv", frames, tmp_path / "fresh")


def test_real_video_with_its_finalannots_tube(tmp_path: Path) -> None:
    """The real Basketball clip (.avi) and its tube from finalAnnots.mat as a CSV, two frames left
    out: the written ground truth is the mat's, split at the gap."""
    mat_path, video_dir = SHARED_DATA / "ucf101-24" / "finalAnnots.mat", SHARED_DATA / "video"
    if not (mat_path.exists() and (video_dir / "v_Basketball_g01_c01.avi").exists()):
        pytest.skip("real sample data not found (the ../shared/data folder is absent)")
    va = read_ucf24_mat(mat_path).videos["Basketball/v_Basketball_g01_c01"]
    (tube,) = va.tubes
    keep = (tube.frames != 20) & (tube.frames != 21)
    lines = [
        f"v_Basketball_g01_c01.avi,{f},{b[0]:g},{b[1]:g},{b[2]:g},{b[3]:g},Basketball"
        for f, b in zip(tube.frames[keep], tube.boxes[keep])
    ]
    (tmp_path / "b.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "videos").mkdir()
    (tmp_path / "videos" / "v_Basketball_g01_c01.avi").symlink_to(video_dir / "v_Basketball_g01_c01.avi")
    result = convert_box_csv(tmp_path / "b.csv", tmp_path / "videos", tmp_path / "out")
    assert result["frames_written"] == 141 and result["gaps"][0]["missing"] == [20, 21]
    for source in (tmp_path / "out", tmp_path / "out" / "b-GT.pkl"):
        back = load_action_annotations(source).videos["Basketball/v_Basketball_g01_c01"]
        assert (back.num_frames, back.size) == (141, (240, 320))
        assert [(t.start, t.end) for t in back.tubes] == [(9, 19), (22, 52)]
        np.testing.assert_array_equal(np.concatenate([t.boxes for t in back.tubes]), tube.boxes[keep])
