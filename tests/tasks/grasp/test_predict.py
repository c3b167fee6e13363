"""``grasp predict`` and ``grasp val``: pre-processing and the way back to the original pixels checked
by hand, the Jacquard output read back by the Jacquard reader, folders, camera depth in millimetres,
and val's predictions scored again by ``grasp score``."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from singleshot.cli import main
from singleshot.data.grasp.augment import transform_grasps
from singleshot.data.grasp.dataset import GraspDataset, find_grasp_samples, load_sample
from singleshot.data.grasp.depth import read_depth_tiff
from singleshot.data.grasp.jacquard import read_jacquard_grasps
from singleshot.data.grasp.records import GraspImage
from singleshot.data.grasp.rects import jacquard_to_grasps
from singleshot.data.grasp.synthetic import generate_grasp_dataset
from singleshot.engine.weights import save_weights
from singleshot.models.ggcnn import ggcnn
from singleshot.ops.grasp import angle_diff
from singleshot.postprocess.grasp import maps_to_grasps
from singleshot.tasks.grasp.config import GraspConfig
from singleshot.tasks.grasp.data import ViewsWithMatrices
from singleshot.tasks.grasp.predictor import GraspPredictor, model_meta, postprocess_from

pytestmark = [
    pytest.mark.filterwarnings("ignore:.*inpainted"),  # the synthetic depth holes
    pytest.mark.usefixtures("one_thread"),
]


def _last_json(capsys: pytest.CaptureFixture[str]) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def _weights(path: Path, **cfg: object) -> tuple[Path, torch.nn.Module]:
    torch.manual_seed(0)
    model = ggcnn(1).eval()
    save_weights(path, model, model_meta(GraspConfig(**cfg)))  # type: ignore[arg-type]
    return path, model


def test_predict_cornell_by_hand_and_jacquard_lines(
    shared_data: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = shared_data("cornell")
    w, model = _weights(tmp_path / "w.safetensors", size=96, crop="center", crop_size=96)
    args = [
        "grasp",
        "predict",
        f"weights={w}",
        f"source={root / 'pcd0100d.tiff'}",
        f"project={tmp_path}",
        "threshold=-1",
        "num_grasps=3",
        "min_distance=5",
        "format=jacquard",
    ]
    assert main(args) == 0
    got = _last_json(capsys)
    out = Path(got["out"])
    with Image.open(out / "pcd0100_grasps.png") as im:
        assert im.size == (640, 480)  # drawn on the RGB image found beside the depth image
    records = json.loads((out / "predictions.json").read_text())
    assert [r["image"] for r in records] == ["pcd0100"] and len(records[0]["grasps"]) == 3
    pred = torch.tensor(records[0]["grasps"], dtype=torch.float64)
    # by hand: the centre 96x96 crop (x from 272, y from 192) is the view, pixel for pixel, minus its
    # mean, clipped to [-1, 1]; the model; peaks; back by the crop's offset
    view = torch.from_numpy(read_depth_tiff(root / "pcd0100d.tiff")[192:288, 272:368])
    view = (view - view.double().mean().float()).clamp(-1, 1)
    with torch.no_grad():
        mine = maps_to_grasps(model(view[None, None]), 3, min_distance=5, threshold=-1)[0]
    assert torch.allclose(pred[:, :2], mine.grasps[:, :2].double() + torch.tensor([272.0, 192.0]), atol=1e-4)
    assert torch.allclose(pred[:, 2:5], mine.grasps[:, 2:5].double(), atol=1e-4)
    assert torch.allclose(pred[:, 5], mine.scores.double(), atol=1e-5)
    # Jacquard lines: an id line, then x;y;theta_deg;opening;jaw read back by the Jacquard reader
    lines = (out / "jacquard_output.txt").read_text().splitlines()
    assert lines[0::2] == ["pcd0100"] * 3
    rows = out / "rows.txt"
    rows.write_text("\n".join(lines[1::2]) + "\n")
    back = torch.from_numpy(jacquard_to_grasps(read_jacquard_grasps(rows)))
    assert torch.allclose(back[:, [0, 1, 3, 4]], pred[:, [0, 1, 3, 4]], atol=1e-3)
    assert (angle_diff(back[:, 2], pred[:, 2]) < 1e-4).all()


def test_predict_folder_of_jacquard_views_and_millimetre_depth(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "jq"
    ids = generate_grasp_dataset(data, 3, seed=1, size=(96, 96), layout="jacquard")
    one = next(data.rglob(f"{ids[0]}_perfect_depth.tiff"))
    (one.parent / f"{ids[0]}_stereo_depth.tiff").write_bytes(one.read_bytes())  # skipped: depth=perfect
    w, _ = _weights(tmp_path / "w.safetensors", size=48)
    assert main(["grasp", "predict", f"weights={w}", f"source={data}", f"project={tmp_path}", "threshold=-1"]) == 0
    got = _last_json(capsys)
    records = json.loads(Path(got["predictions"]).read_text())
    assert sorted(r["image"] for r in records) == sorted(ids) and got["images"] == 3
    assert all((Path(got["out"]) / f"{i}_grasps.png").is_file() for i in ids)
    # a camera's 16-bit PNG in millimetres gives the same network input as float metres
    predictor = GraspPredictor(ggcnn(1), {"input": "depth", "input_size": [48, 48]}, postprocess_from())
    mm = np.round(np.random.default_rng(0).uniform(500, 900, size=(60, 80))).astype(np.uint16)
    Image.fromarray(mm).save(tmp_path / "cam.png")
    from singleshot.tasks.grasp.predict import read_depth_any

    metres = GraspImage("cam", mm.astype(np.float32) / 1000, None, np.zeros((0, 5), np.float32), size=(60, 80))
    png = GraspImage("cam", read_depth_any(tmp_path / "cam.png"), None, np.zeros((0, 5), np.float32), size=(60, 80))
    assert torch.allclose(predictor.view(png)[0], predictor.view(metres)[0], atol=1e-6)


def test_views_map_back_to_the_original_labels(tmp_path: Path) -> None:
    data = tmp_path / "cornell"
    generate_grasp_dataset(data, 4, seed=2, size=(60, 80))
    samples = find_grasp_samples(data)
    for crop in ("center", "gt_center"):
        ds = GraspDataset(samples, size=36, crop=crop, crop_size=48)
        wrapped = ViewsWithMatrices(ds)
        for i in range(len(ds)):
            _, target, m, size = wrapped[i]
            assert np.allclose(m, ds.view_matrix(i)) and size == (60, 80)
            back = transform_grasps(target.grasps.numpy(), np.linalg.inv(m))
            orig = load_sample(samples[i], depth=False).grasps
            assert np.allclose(back[:, [0, 1, 3, 4]], orig[:, [0, 1, 3, 4]], atol=1e-3)
            assert (angle_diff(torch.from_numpy(back[:, 2]), torch.from_numpy(orig[:, 2])) < 1e-4).all()


def test_val_then_score_agree(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "cornell"
    generate_grasp_dataset(data, 8, seed=3, size=(60, 80))
    w, _ = _weights(tmp_path / "w.safetensors", size=48, crop_size=60)
    common = [f"data={data}", "split=object", "test_fraction=0.5", "workers=0", f"project={tmp_path}"]
    assert main(["grasp", "val", f"weights={w}", "threshold=-1", "min_distance=4", *common]) == 0
    got = _last_json(capsys)
    assert got["n"] == 4 and "object-wise" in got["split"] and got["iou"] == "polygon"
    records = json.loads(Path(got["predictions"]).read_text())
    assert len(records) == 4 and all(len(r["grasps"]) == 1 for r in records)
    xy = np.array([r["grasps"][0][:2] for r in records])
    assert (xy[:, 0] >= 10).all() and (xy[:, 0] <= 70).all()  # inside the centre 60x60 crop of 80 columns
    assert main(["grasp", "score", f"gt={data}", f"pred={got['predictions']}", *common[1:3]]) == 0  # split keys
    scored = _last_json(capsys)
    assert scored["missing"] == 0 and scored["n"] == 4 and scored["success_rate"] == got["success_rate"]


def test_drawn_plates_sit_across_the_opening() -> None:
    from singleshot.structures import Grasps
    from singleshot.tasks.grasp.predict import draw_grasps

    # angle 0: the gripper opens along x, so its plates are vertical lines at cx -/+ opening / 2
    g = Grasps(grasps=torch.tensor([[30.0, 20.0, 0.0, 20.0, 10.0]]), scores=torch.tensor([0.5]))
    for scale in (1, 2):
        img = draw_grasps(np.zeros((40, 60, 3), np.uint8), g, scale=scale)
        assert img.shape == (40 * scale, 60 * scale, 3)
        red = (img[..., 0] > 200) & (img[..., 1] < 60)
        cols = np.flatnonzero(red[:, :].sum(axis=0) >= 8 * scale)
        centre = lambda x: x * scale + (scale - 1) / 2  # noqa: E731
        assert cols.min() >= centre(20) - 2 and cols.max() <= centre(40) + 2
        assert (abs(cols - centre(20)) <= 2).any() and (abs(cols - centre(40)) <= 2).any()
        rows = np.flatnonzero(red[:, int(centre(20))])
        assert rows.min() >= centre(15) - 2 and rows.max() <= centre(25) + 2


def test_channels_last_predictor_gives_the_same_grasps() -> None:
    import copy

    from singleshot.tasks.grasp.predictor import GraspPredictor, build_grasp_model, postprocess_from

    torch.manual_seed(0)
    model = build_grasp_model("ggcnn").eval()
    meta = {"input": "depth", "input_size": 96}
    plain = GraspPredictor(copy.deepcopy(model), meta, postprocess_from(None, meta))
    fast = GraspPredictor(model, meta, postprocess_from(None, meta), channels_last=True)
    x = torch.randn(2, 1, 96, 96)
    with torch.inference_mode():
        a, b = plain.model(x), fast.model(x.contiguous(memory_format=torch.channels_last))
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-5, rtol=1e-5)
    for p, q in zip(plain.predict_views(x), fast.predict_views(x)):
        torch.testing.assert_close(p.grasps, q.grasps, atol=1e-3, rtol=1e-4)


def test_export_mode_then_val_and_predict_with_the_onnx_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``grasp export`` on the CLI, then ``val`` and ``predict`` given the ``.onnx``: the same
    grasps as with the ``.safetensors`` (onnxruntime vs PyTorch, within float tolerance)."""
    data = tmp_path / "cornell"
    generate_grasp_dataset(data, 6, seed=5, size=(60, 80))
    w, _ = _weights(tmp_path / "w.safetensors", size=48, crop_size=60)
    assert main(["grasp", "export", f"weights={w}", f"dst={tmp_path / 'w.onnx'}"]) == 0
    exported = _last_json(capsys)
    assert exported["dst"] == str(tmp_path / "w.onnx") and exported["input"] == [-1, 1, 48, 48]
    common = [f"data={data}", "split=object", "test_fraction=0.5", "workers=0", "threshold=-1", "min_distance=4"]
    runs = {}
    for kind in ("safetensors", "onnx"):
        assert main(["grasp", "val", f"weights={tmp_path / ('w.' + kind)}", *common, f"project={tmp_path / kind}"]) == 0
        runs[kind] = _last_json(capsys)
    assert runs["onnx"]["n"] == runs["safetensors"]["n"] > 0
    assert runs["onnx"]["success_rate"] == runs["safetensors"]["success_rate"]
    a, b = (json.loads(Path(runs[k]["predictions"]).read_text()) for k in ("safetensors", "onnx"))
    for ra, rb in zip(a, b, strict=True):
        assert ra["image"] == rb["image"]
        assert np.allclose(ra["grasps"], rb["grasps"], atol=1e-2)
    source = sorted(data.rglob("*d.tiff"))[0]
    assert (
        main(
            [
                "grasp",
                "predict",
                f"weights={tmp_path / 'w.onnx'}",
                f"source={source}",
                f"project={tmp_path}",
                "threshold=-1",
                "min_distance=4",
            ]
        )
        == 0
    )
    assert _last_json(capsys)["images"] == 1
    assert main(["grasp", "val", f"weights={tmp_path / 'w.onnx'}", *common, "size=96", f"project={tmp_path}"]) != 0
    assert "export again" in capsys.readouterr().err


def test_predict_and_val_number_their_folders_and_take_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """predict, predict2, predict3; ``name=`` for predict, val and train; ``exist_ok=true`` reuses."""
    data = tmp_path / "cornell"
    ids = generate_grasp_dataset(data, 4, seed=3, size=(48, 64))
    w, _ = _weights(tmp_path / "w.safetensors", size=48)
    project = tmp_path / "runs"
    source = next(data.rglob(f"{ids[0]}d.tiff"))
    predict = ["grasp", "predict", f"weights={w}", f"source={source}", f"project={project}", "threshold=-1"]
    seen = []
    for _ in range(3):
        assert main(predict) == 0
        got = _last_json(capsys)
        assert got["out"] == got["save_dir"] and Path(got["predictions"]).parent == Path(got["save_dir"])
        seen.append(got["save_dir"])
    assert seen == [str(project / n) for n in ("predict", "predict2", "predict3")]
    assert all((project / n / f"{ids[0]}_grasps.png").is_file() for n in ("predict", "predict2", "predict3"))
    assert main([*predict, "name=mine"]) == 0 and _last_json(capsys)["save_dir"] == str(project / "mine")
    assert main([*predict, "name=mine", "exist_ok=true"]) == 0
    assert _last_json(capsys)["save_dir"] == str(project / "mine")
    assert sorted(p.name for p in project.iterdir()) == ["mine", "predict", "predict2", "predict3"]

    val = ["grasp", "val", f"weights={w}", f"data={data}", "test_fraction=0.5", "workers=0", f"project={project}"]
    for args, expected in ((val, "val"), (val, "val2"), ([*val, "name=check"], "check")):
        assert main(args) == 0
        got = _last_json(capsys)
        assert got["save_dir"] == str(project / expected) and Path(got["predictions"]).is_file()
        assert Path(got["predictions"]).parent == project / expected

    train = ["grasp", "train", f"data={data}", "size=48", "test_fraction=0.5", "batch=2", "workers=0"]
    assert main([*train, f"project={project}", "name=check", "dry_run=true"]) == 0
    assert _last_json(capsys)["out"] == str(project / "check2") and not (project / "check2").exists()


def test_predict_folder_ids_unique_and_unreadable_depth_skipped_and_listed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same Cornell file in two sub-folders gives ids ``pcd0100`` and ``pcd0100_1`` (two
    pictures, two records); a corrupt depth TIFF is skipped, listed in skipped.txt, exit status 3; a
    folder of corrupt files is an error (2); one corrupt file given by name is an error naming it."""
    data = tmp_path / "cornell"
    generate_grasp_dataset(data, 2, seed=3, size=(48, 64))
    (data / "02").mkdir()
    for name in ("pcd0100d.tiff", "pcd0100r.png"):
        (data / "02" / name).write_bytes((data / "01" / name).read_bytes())
    (data / "01" / "pcd0199d.tiff").write_bytes(b"II*\x00 truncated")
    w, _ = _weights(tmp_path / "w.safetensors", size=48)
    args = ["grasp", "predict", f"weights={w}", f"project={tmp_path / 'runs'}", "threshold=-1", "batch=2"]
    assert main([*args, f"source={data}", "format=jacquard"]) == 3
    got = _last_json(capsys)
    out = Path(got["out"])
    assert got["images"] == 3 and got["skipped_inputs"] == 1
    assert sorted(r["image"] for r in json.loads(Path(got["predictions"]).read_text())) == [
        "pcd0100",
        "pcd0100_1",
        "pcd0101",
    ]
    assert sorted(p.name for p in out.glob("*.png")) == [
        "pcd0100_1_grasps.png",
        "pcd0100_grasps.png",
        "pcd0101_grasps.png",
    ]
    assert "pcd0199d.tiff" in (out / "skipped.txt").read_text()

    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.tiff").write_bytes(b"garbage")
    (bad / "b.npy").write_bytes(b"garbage")
    assert main([*args, f"source={bad}", "name=bad"]) == 2
    assert f"{bad}: none of its 2 depth image file(s) could be read" in capsys.readouterr().err
    assert not (tmp_path / "runs" / "bad").exists()
    assert main([*args, f"source={bad / 'a.tiff'}", "name=one"]) == 2
    assert str(bad / "a.tiff") in capsys.readouterr().err


def test_predict_rgb_file_pairs_with_one_depth_image_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``rgb=<file>`` with a folder of several depth images is refused naming both (it would be every
    image's RGB); with a folder of one depth image it is that image's; ``rgb=<folder>`` pairs by name."""
    data = tmp_path / "cornell"
    generate_grasp_dataset(data, 2, seed=3, size=(48, 64))
    w, _ = _weights(tmp_path / "w.safetensors", size=48)
    args = ["grasp", "predict", f"weights={w}", f"project={tmp_path / 'runs'}", "threshold=-1"]
    photo = tmp_path / "photo.png"
    Image.fromarray(np.full((48, 64, 3), 200, np.uint8)).save(photo)
    assert main([*args, f"source={data / '01'}", f"rgb={photo}"]) == 2
    err = capsys.readouterr().err
    assert f"rgb={photo} is one image but source={data / '01'} holds 2 depth images" in err
    assert not (tmp_path / "runs" / "predict").exists()
    one = tmp_path / "one"
    one.mkdir()
    (one / "pcd0100d.tiff").write_bytes((data / "01" / "pcd0100d.tiff").read_bytes())
    assert main([*args, f"source={one}", f"rgb={photo}"]) == 0
    with Image.open(Path(_last_json(capsys)["out"]) / "pcd0100_grasps.png") as im:
        assert np.asarray(im)[0, 0].tolist() == [200, 200, 200]  # drawn on the photo given
    assert main([*args, f"source={one}", f"rgb={data / '01'}"]) == 0  # pcd0100r.png found by name
    assert _last_json(capsys)["images"] == 1
    assert main([*args, f"source={one}", f"rgb={tmp_path / 'nope.png'}"]) == 2
    assert "nope.png: not found" in capsys.readouterr().err
