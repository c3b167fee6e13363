"""Two-stream ACT weights as one file: a tiny ``modality=rgb+diff`` run writes both streams, the motion
stream's metadata and the fusion weight into ``best.safetensors``; that file copied alone serves
``action val``, ``predict`` and ``export``; the older two-file layout and the run's checkpoints give the
same detections; fine-tuning and teachers take the right stream."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from singleshot.cli import main
from singleshot.data.action.synthetic import SYNTH_PICKLE, generate_action_dataset
from singleshot.engine.weights import load_state_into, load_weights, save_weights
from singleshot.errors import WeightsError
from singleshot.models.act import act_tiny
from singleshot.tasks.action.act_weights import read_finetune_weights, rgb_stream, stream_metas

from .test_act_two_stream import K, two_stream_train_args

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(data root, run folder) of a one-epoch two-stream ACT (RGB + RGB difference, motion weight 0.75)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("act_weights")
    root = tmp / "data"
    generate_action_dataset(root, 3, 2, size=(48, 64), num_frames=(12, 14), seed=1)
    args = two_stream_train_args(root, tmp)
    try:
        assert main(args) == 0
    finally:
        torch.set_num_threads(threads)
    return root, tmp / "run"


def _val(weights: Path, root: Path, project: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> dict:
    """``action val`` of ``weights`` (conf 0.05: many detections to compare); its result plus ``frames``,
    the frames.json it wrote."""
    capsys.readouterr()
    args = [f"weights={weights}", f"data={root / SYNTH_PICKLE}", "workers=0", "conf=0.05", "cache=false"]
    assert main(["action", "val", *args, f"project={project}", *extra]) == 0
    got = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    return dict(got, frames=json.loads((Path(got["save_dir"]) / "frames.json").read_text()))


def _old_layout(run: Path, folder: Path) -> Path:
    """The run's weights written as the older two files: best.safetensors (the RGB stream, naming
    best_flow.safetensors in ``flow_weights``) and best_flow.safetensors (the motion stream)."""
    state, meta = load_weights(run / "best.safetensors")
    rgb_meta, flow_meta = stream_metas(meta)
    folder.mkdir()
    part = lambda s: {k[len(s) + 1 :]: v for k, v in state.items() if k.startswith(s + ".")}  # noqa: E731
    save_weights(folder / "best.safetensors", part("rgb"), dict(rgb_meta, flow_weights="best_flow.safetensors"))
    save_weights(folder / "best_flow.safetensors", part("flow"), flow_meta)
    return folder / "best.safetensors"


def test_one_file_holds_both_streams_and_the_fusion_weight(run: tuple[Path, Path]) -> None:
    _, out = run
    assert not (out / "best_flow.safetensors").exists()
    state, meta = load_weights(out / "best.safetensors")
    assert {k.split(".")[0] for k in state} == {"rgb", "flow"} and "flow_weights" not in meta
    assert meta["two_stream"]["modality"] == "diff" and meta["two_stream"]["fusion_weight"] == 0.75
    rgb_meta, flow_meta = stream_metas(meta)
    assert flow_meta["modality"] == "diff" and flow_meta["fusion_weight"] == 0.75
    assert flow_meta["architecture"] == rgb_meta["architecture"] == "act_tiny" and "train_config" not in flow_meta
    for stream, m in (("rgb", rgb_meta), ("flow", flow_meta)):  # each stream's tensors fit its metadata
        model = act_tiny(len(m["classes"]), **m["arch_kwargs"])
        load_state_into(model, {k[len(stream) + 1 :]: v for k, v in state.items() if k.startswith(stream)}, stream)


def test_the_file_copied_alone_serves_val_predict_and_export(
    run: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, out = run
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(out / "best.safetensors", alone / "best.safetensors")
    both = _val(alone / "best.safetensors", root, tmp_path, capsys)
    rgb_only = _val(alone / "best.safetensors", root, tmp_path, capsys, "flow_weights=none")
    assert both["n_detections"] > 0 and both["frames"] != rgb_only["frames"]  # the motion stream was fused in
    video = next(p for p in sorted((root / "rgb-images").glob("*/*")) if p.is_dir())
    capsys.readouterr()
    args = [f"weights={alone / 'best.safetensors'}", f"source={video}", "conf=0.05", f"project={tmp_path}"]
    assert main(["action", "predict", *args]) == 0
    predicted = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert predicted["frames"] == len(list(video.glob("*.jpg"))) and predicted["detections"] > 0
    assert main(["action", "export", f"weights={alone / 'best.safetensors'}"]) == 0
    exported = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert exported["input_names"] == ["frames", "motion"] and exported["motion_input"] == [-1, K, 3, 64, 64]
    onnx = _val(Path(exported["dst"]), root, tmp_path, capsys)  # the fused graph run by onnxruntime
    assert onnx["n_detections"] == both["n_detections"]
    assert onnx["frame_map"] == pytest.approx(both["frame_map"], abs=1e-6)
    assert main(["action", "predict", *args[1:], f"weights={exported['dst']}"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["detections"] == predicted["detections"]
    assert (
        main(["action", "val", f"weights={exported['dst']}", f"data={root / SYNTH_PICKLE}", "flow_weights=none"]) != 0
    )
    assert "fused inside" in capsys.readouterr().err  # the graph can not drop its motion stream


def test_the_older_two_file_layout_and_the_checkpoints_give_the_same_detections(
    run: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, out = run
    new = _val(out / "best.safetensors", root, tmp_path, capsys)
    old = _old_layout(out, tmp_path / "old")
    assert _val(old, root, tmp_path, capsys)["frames"] == new["frames"]  # bit-identical fused detections
    assert _val(out / "best.pt", root, tmp_path, capsys)["frames"] == new["frames"]
    # a checkpoint of the older layout: both streams' tensors under the RGB metadata, the motion
    # stream's metadata in best_flow.safetensors beside it
    state, meta = load_weights(out / "best.safetensors")
    rgb_meta = dict(stream_metas(meta)[0], flow_weights="best_flow.safetensors")
    torch.save({"model": state, "epoch": 1, "weights_meta": {"meta": rgb_meta, "prefix": ""}}, old.parent / "last.pt")
    assert _val(old.parent / "last.pt", root, tmp_path, capsys)["frames"] == new["frames"]
    (old.parent / "best_flow.safetensors").unlink()  # the RGB file alone: named error, or RGB only if asked
    assert main(["action", "val", f"weights={old}", f"data={root}", "workers=0"]) != 0
    assert "flow_weights=none" in capsys.readouterr().err
    assert main(["action", "export", f"weights={old}"]) != 0  # never a graph of the RGB stream alone
    assert "RGB stream alone" in capsys.readouterr().err
    rgb_only = _val(old, root, tmp_path, capsys, "flow_weights=none")
    assert rgb_only["frames"] == _val(out / "best.safetensors", root, tmp_path, capsys, "flow_weights=none")["frames"]
    with pytest.raises(WeightsError, match="best_flow.safetensors, not found"):
        rgb_stream(state, rgb_meta, old.parent / "last.pt")


def test_fine_tuning_and_teachers_take_the_streams_of_a_two_stream_file(run: tuple[Path, Path]) -> None:
    _, out = run
    state, meta = load_weights(out / "best.safetensors")
    parts, rgb_meta = read_finetune_weights(out / "best.safetensors")
    assert sorted(parts) == ["flow", "rgb"] and "two_stream" not in rgb_meta
    for stream in ("rgb", "flow"):
        assert all(torch.equal(parts[stream][k], state[f"{stream}.{k}"]) for k in parts[stream])
        load_state_into(act_tiny(4, **rgb_meta["arch_kwargs"]), parts[stream], stream)
    teacher, teacher_meta = rgb_stream(state, meta, out / "best.safetensors")
    assert teacher.keys() == parts["rgb"].keys() and teacher_meta == rgb_meta
