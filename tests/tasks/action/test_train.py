"""``singleshot action train`` / ``val`` on a tiny synthetic dataset in the real YOWO layout: the engine
wiring (accumulation, plots, weights metadata), frozen backbones, and val files that ``score`` reads back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from singleshot.cli import main
from singleshot.data.action.readers import load_action_annotations
from singleshot.data.action.synthetic import SYNTH_PICKLE, generate_action_dataset
from singleshot.engine.weights import load_weights
from singleshot.metrics.action_score import score_action

TINY = ["arch=yowo_tiny", "width=4", "clip_len=4", "imgsz=64", "batch=4", "workers=0", "lr=1e-3", "schedule=constant"]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(dataset root, run folder) of two epochs on 4 + 2 tiny videos."""
    tmp = tmp_path_factory.mktemp("action")
    root = tmp / "data"
    generate_action_dataset(root, 4, 2, size=(48, 64), num_frames=(12, 14), seed=0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        args = [
            "action",
            "train",
            f"data={root}",
            *TINY,
            "epochs=2",
            "eval_every=2",
            "accumulate=2",
            f"project={tmp}",
            "name=run",
        ]
        assert main(args) == 0
    finally:
        torch.set_num_threads(threads)
    return root, tmp / "run"


def test_train_writes_weights_logs_and_plots(trained: tuple[Path, Path]) -> None:
    root, run = trained
    for name in ("best.safetensors", "last.pt", "results.csv", "results.png", "config.yaml"):
        assert (run / name).is_file(), name
    state, meta = load_weights(run / "best.safetensors")
    assert meta["classes"] == ["Bounce", "Pulse", "Slide", "Spin"] and meta["clip_len"] == 4
    assert meta["input_size"] == [64, 64] and meta["architecture"] == "yowo_tiny" and meta["family"] == "yowo"
    assert set(meta["metrics"]) >= {"frame_map", "video_map@0.5"} and meta["epoch"] == 2  # the one evaluation
    rows = (run / "results.csv").read_text().strip().splitlines()
    assert len(rows) == 3 and "metrics/frame_map" in rows[0]  # header + one row per epoch


def test_val_files_score_back_to_the_same_metrics(
    trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, run = trained
    args = [
        "action",
        "val",
        f"weights={run / 'best.safetensors'}",
        f"data={root / SYNTH_PICKLE}",
        "protocol=act",
        f"project={tmp_path}",
        "workers=0",
    ]
    capsys.readouterr()
    assert main(args) == 0
    got = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in ("frame_map", "video_map@0.2", "video_map@0.5", "video_map@0.75", "video_map@0.5:0.95", "per_class"):
        assert key in got
    ann = load_action_annotations(root / SYNTH_PICKLE)
    frames = json.loads((tmp_path / "val" / "frames.json").read_text())
    per_video = {v: {e["frame"] for e in frames if e["video"] == v} for v in ann.test_videos}
    for v in ann.test_videos:  # every frame of every test video was run (the untrained head fires everywhere)
        assert per_video[v] == set(range(1, ann.videos[v].num_frames + 1))
    again = score_action(root / SYNTH_PICKLE, tmp_path / "val" / "frames.json", tmp_path / "val" / "tubes.json", "act")
    assert again["frame_map"] == pytest.approx(got["frame_map"]) and again["video_map@0.5"] == pytest.approx(
        got["video_map@0.5"]
    )


def _warned(caplog: pytest.LogCaptureFixture, part: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelname == "WARNING" and part in r.getMessage()]


def test_val_names_the_class_names_that_differ_from_the_datas(
    trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """Labels are matched by index: the differing pairs and both lists are named, in a warning and the result."""
    from singleshot.data.action.readers_act import write_act_pickle
    from singleshot.structures import ActionAnnotations

    root, run = trained
    ann = load_action_annotations(root / SYNTH_PICKLE)
    swapped = ActionAnnotations(
        ["Bounce", "Pulse", "Spin", "Slide"], ann.videos, train_videos=ann.train_videos, test_videos=ann.test_videos
    )
    write_act_pickle(swapped, tmp_path / "Swapped-GT.pkl")
    weights = run / "best.safetensors"
    args = ["action", "val", f"weights={weights}", f"data={tmp_path / 'Swapped-GT.pkl'}", f"frames={root}"]
    capsys.readouterr()
    assert main([*args, f"project={tmp_path}", "workers=0", "plots=false"]) == 0
    got = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    (text,) = _warned(caplog, "class names differ")
    assert "at 2 of 4 labels (matched by index): 2: 'Slide' (weights) vs 'Spin' (data), 3: 'Spin' (weights)" in text
    assert "the weights' classes: Bounce, Pulse, Slide, Spin; the data's: Bounce, Pulse, Spin, Slide" in text
    assert got["warnings"] == [text]


def test_training_without_split_lists_says_validation_reads_the_training_videos(
    trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    from singleshot.data.action.readers_act import write_act_pickle
    from singleshot.structures import ActionAnnotations

    root, _ = trained
    ann = load_action_annotations(root / SYNTH_PICKLE)
    write_act_pickle(ActionAnnotations(ann.classes, ann.videos), tmp_path / "NoSplit-GT.pkl")
    args = ["action", "train", f"data={tmp_path / 'NoSplit-GT.pkl'}", f"frames={root}", *TINY, "epochs=1"]
    capsys.readouterr()
    assert main([*args, "max_steps=1", "plot_every=0", f"project={tmp_path}"]) == 0
    got = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    (text,) = _warned(caplog, "as training")
    assert text.startswith(
        "validation reads the same 6 videos as training: the metrics measure fit, not generalisation"
    )
    assert got["warnings"] == [text]


def test_frozen_2d_backbone_keeps_the_pretrained_tensors(trained: tuple[Path, Path], tmp_path: Path) -> None:
    root, run = trained
    pre, _ = load_weights(run / "best.safetensors")
    args = [
        "action",
        "train",
        f"data={root}",
        *TINY,
        "epochs=1",
        f"pretrained={run / 'best.safetensors'}",
        "freeze_2d=all",
        f"project={tmp_path}",
        "name=frozen",
        "eval_every=5",
    ]
    assert main(args) == 0
    post, _ = load_weights(tmp_path / "frozen" / "best.safetensors")
    names = [k for k in pre if k.startswith("backbone_2d.")]
    assert names and all(torch.equal(pre[k], post[k]) for k in names)  # weights and BatchNorm statistics
    assert not torch.equal(pre["conv_final.weight"], post["conv_final.weight"])
    assert not torch.equal(pre["backbone_3d.conv1.weight"], post["backbone_3d.conv1.weight"])


def test_bad_inputs_name_the_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["action", "train", f"data={tmp_path / 'nowhere'}"]) == 2
    assert "nowhere" in capsys.readouterr().err
    assert main(["action", "train", "model=foo", f"data={tmp_path}"]) == 2
    assert "model='foo'" in capsys.readouterr().err
    assert main(["action", "val", "weigths=x"]) == 2
    assert "did you mean weights" in capsys.readouterr().err


def test_train_with_a_teacher_adds_soft_labels_and_saves_the_student(
    trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``teacher=`` (the run of the fixture): the kd term is trained and logged, the saved weights are
    the student's; a teacher that sees another input is refused with the reason."""
    root, run = trained
    teacher = run / "best.safetensors"
    args = [
        "action",
        "train",
        f"data={root}",
        *TINY,
        "epochs=1",
        f"project={tmp_path}",
        "name=kd",
        f"teacher={teacher}",
        "kd_obj_thresh=0.0",
        "kd_weight=3",
    ]
    assert main(args) == 0
    rows = (tmp_path / "kd" / "results.csv").read_text().strip().splitlines()
    header, first = rows[0].split(","), rows[1].split(",")
    assert float(first[header.index("train/kd")]) > 0
    state, meta = load_weights(tmp_path / "kd" / "best.safetensors")
    t_state, _ = load_weights(teacher)
    assert set(state) == set(t_state) and meta["architecture"] == "yowo_tiny"
    assert any(not torch.equal(state[k], t_state[k]) for k in state)  # trained from its own start, not copied
    capsys.readouterr()
    assert main([*args[:-3], "imgsz=96", f"teacher={teacher}"]) != 0
    assert "input_size" in capsys.readouterr().err


def test_input_3d_travels_from_the_config_to_the_weights_metadata() -> None:
    from singleshot.models import model_from_meta
    from singleshot.tasks.action.config import ActionConfig
    from singleshot.tasks.action.predictor import arch_kwargs, build_action_model

    cfg = ActionConfig(arch="yowo_tiny", width=8, imgsz=64, input_3d="diff")
    model, kwargs = build_action_model(cfg, 3)
    assert model.input_3d == "diff" and kwargs["input_3d"] == "diff"
    rebuilt = model_from_meta({"architecture": "yowo_tiny", "num_classes": 3, "arch_kwargs": kwargs})
    assert rebuilt.input_3d == "diff"
    assert "input_3d" not in arch_kwargs(ActionConfig(arch="yowo_tiny"))  # YOWO's own input: no new key


def test_the_jhmdb_recipe_trains_what_yowos_fine_tuning_rule_trains() -> None:
    """configs/yowo_jhmdb.yaml: the trainable parameters are those wei-tim/YOWO's
    get_fine_tuning_parameters keeps at a nonzero lr with both backbones frozen (a name containing
    cfam, conv_final, backbone_3d.layer4, backbone_2d.models.29 or backbone_2d.models.30), and the
    schedule is cfg/jhmdb.yaml's (batch 6 summed to 128 // 6 per step, x0.5 from epoch 3, 10 epochs)."""
    from singleshot.tasks.action.members import member_config
    from singleshot.tasks.action.predictor import build_action_model

    recipe = Path(__file__).resolve().parents[3] / "configs" / "yowo_jhmdb.yaml"
    _, cfg = member_config({"cfg": str(recipe)})
    assert (cfg.batch, cfg.accumulate, cfg.accumulate_mode, cfg.epochs) == (6, 21, "sum", 10)
    assert (list(cfg.milestones), cfg.gamma, cfg.lr, cfg.clip_len) == ([2, 3, 4, 5], 0.5, 1e-4, 32)
    model, _ = build_action_model(cfg, 21)
    rule = ("cfam", "conv_final", "backbone_3d.layer4", "backbone_2d.models.29", "backbone_2d.models.30")
    yowo = {n for n, _ in model.named_parameters() if any(r in n for r in rule)}
    ours = {n for n, p in model.named_parameters() if p.requires_grad}
    assert ours == yowo and len(ours) < len(list(model.parameters()))


def test_val_predict_and_train_number_their_folders_and_take_name(
    trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """predict, predict2, predict3 (never the folder of an earlier call); ``name=`` for val, predict
    and train; ``exist_ok=true`` reuses the folder; ``resume=true`` needs the run's last.pt."""
    root, run = trained
    weights = f"weights={run / 'best.safetensors'}"
    project = tmp_path / "runs"
    video = load_action_annotations(root / SYNTH_PICKLE).test_videos[0]
    predict = ["action", "predict", weights, f"source={root / 'rgb-images' / video}", f"project={project}"]
    capsys.readouterr()
    seen = []
    for _ in range(3):
        assert main(predict) == 0
        got = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert Path(got["video"]).parent == Path(got["save_dir"]) and Path(got["video"]).is_file()
        seen.append(got["save_dir"])
    assert seen == [str(project / n) for n in ("predict", "predict2", "predict3")]
    for extra in (["name=mine"], ["name=mine", "exist_ok=true"]):
        assert main([*predict, *extra]) == 0
        assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["save_dir"] == str(project / "mine")

    val = ["action", "val", weights, f"data={root / SYNTH_PICKLE}", "workers=0", f"project={project}", "name=check"]
    assert main(val) == 0
    got = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert got["save_dir"] == str(project / "check") and (project / "check" / "tubes.json").is_file()
    assert sorted(p.name for p in project.iterdir()) == ["check", "mine", "predict", "predict2", "predict3"]

    train = ["action", "train", f"data={root}", *TINY, f"project={project}"]
    assert main([*train, "name=mine", "dry_run=true"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["out"] == str(project / "mine2")
    assert main([*train, "name=check", "resume=true"]) == 2  # a val folder holds no last.pt
    assert "check/last.pt not found" in capsys.readouterr().err
