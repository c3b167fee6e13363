"""The shared task skeleton: configs, run folders, generated datasets, fit and the demo runner."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from torch import Tensor, nn
from torch.utils.data import Dataset

from singleshot.engine.train_config import EngineOptions
from singleshot.engine.weights import load_weights, read_model_weights
from singleshot.errors import ConfigError
from singleshot.tasks.common import (
    BestEvaluation,
    ToDevice,
    TrainingPlan,
    chunks,
    ensure_dataset,
    explicit_keys,
    fit,
    input_convention,
    make_config,
    metric_floats,
    module_prefixes,
    param_group_summary,
    parameter_status,
    priors_summary,
    require,
    run_demo,
    run_dir,
)


@dataclass
class Options(EngineOptions):
    """A task config as the families write theirs: engine keys plus a few of its own."""

    epochs: int = 2
    batch: int = 4
    lr: float = 0.05
    workers: int = 0
    checkpoint_every: int = 0
    plot_every: int = 0
    width: int = 8
    src: str = ""


class Target:
    """A target structure with ``.to(device)``, as the families' targets have."""

    def __init__(self, y: Tensor) -> None:
        self.y = y

    def to(self, device: torch.device) -> Target:
        return Target(self.y.to(device))


class Pairs(Dataset):
    def __init__(self, n: int = 16) -> None:
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 3, generator=g)
        self.y = self.x.sum(1, keepdim=True)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[Tensor, Target]:
        return self.x[i], Target(self.y[i])


def collate(batch: list[tuple[Tensor, Target]]) -> tuple[Tensor, list[Target]]:
    return torch.stack([b[0] for b in batch]), [b[1] for b in batch]


class Net(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(3, width), nn.ReLU(), nn.Linear(width, 1))

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        return {"y": self.body(x)}


def mse(outputs: dict[str, Tensor], targets: list[Target]) -> dict[str, Tensor]:
    return {"mse": nn.functional.mse_loss(outputs["y"], torch.stack([t.y for t in targets]))}


def plan_for(cfg: Options, **changes: Any) -> TrainingPlan:
    model = Net(cfg.width)
    data = Pairs()

    def evaluate(m: nn.Module) -> dict[str, float]:
        x, targets = collate([data[i] for i in range(len(data))])
        return {"neg_mse": -float(mse(m(x), targets)["mse"]), "count": 16}

    fields: dict[str, Any] = dict(
        model=model,
        loss_fn=mse,
        train_set=data,
        collate_fn=collate,
        evaluate=evaluate,
        metric_key="neg_mse",
        meta={"architecture": "net", "width": cfg.width},
    )
    fields.update(changes)
    return TrainingPlan(**fields)


def test_make_config_precedence_and_explicit_keys(tmp_path: Path) -> None:
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("epochs: 7\nwidth: 3\n")
    args = {"cfg": str(recipe), "width": "5"}
    cfg = make_config(Options, args, epochs=4, lr=0.5)
    assert (cfg.epochs, cfg.width, cfg.lr) == (7, 5, 0.5)  # defaults < YAML < arguments
    assert args == {"cfg": str(recipe), "width": "5"}  # the caller's arguments are left alone
    assert explicit_keys(args) == {"cfg", "epochs", "width"}
    with pytest.raises(ConfigError, match="did you mean width"):
        make_config(Options, {"widht": "2"})


def test_require_names_every_missing_key_and_run_dir(tmp_path: Path) -> None:
    cfg = Options(project=str(tmp_path / "p"), name="exp")
    with pytest.raises(ConfigError, match=r"data=\.\.\., src=\.\.\."):
        require(cfg, "data", "src", "name")
    assert run_dir(cfg, "train") == tmp_path / "p" / "exp" and (tmp_path / "p" / "exp").is_dir()
    assert run_dir(cfg, "val") == tmp_path / "p" / "exp2"  # name= is every mode's; exp is taken
    unnamed = Options(project=str(tmp_path / "p"))
    assert run_dir(unnamed, "val") == tmp_path / "p" / "val"  # no name: the mode's


def test_run_dir_numbers_taken_folders_unless_exist_ok_or_resume(tmp_path: Path) -> None:
    cfg = Options(project=str(tmp_path))
    got = [run_dir(cfg, "predict") for _ in range(3)]
    assert got == [tmp_path / "predict", tmp_path / "predict2", tmp_path / "predict3"]
    assert all(p.is_dir() for p in got)
    (tmp_path / "predict2").rmdir()  # the first free number, as ultralytics' increment_path
    assert run_dir(cfg, "predict", create=False) == tmp_path / "predict2" and not (tmp_path / "predict2").exists()
    assert run_dir(cfg, "predict") == tmp_path / "predict2"
    (tmp_path / "predict4").write_text("a file takes the name too")
    assert run_dir(cfg, "predict") == tmp_path / "predict5"
    (tmp_path / "predict" / "old.txt").write_text("kept")
    reused = Options(project=str(tmp_path), exist_ok=True)
    assert run_dir(reused, "predict") == tmp_path / "predict" and (tmp_path / "predict" / "old.txt").is_file()
    assert run_dir(reused, "val") == tmp_path / "val" and (tmp_path / "val").is_dir()  # created when missing
    with pytest.raises(ConfigError, match="not a folder"):
        run_dir(Options(project=str(tmp_path), name="predict4", exist_ok=True), "predict")
    # resume: project/name itself, which must hold last.pt; nothing is created
    named = Options(project=str(tmp_path), name="exp")
    with pytest.raises(ConfigError, match=r"resume: .*exp/last\.pt not found"):
        run_dir(named, "train", resume=True)
    assert not (tmp_path / "exp").exists()
    (tmp_path / "exp").mkdir()
    (tmp_path / "exp" / "last.pt").write_bytes(b"")
    assert run_dir(named, "train", resume=True) == tmp_path / "exp"
    assert run_dir(named, "train") == tmp_path / "exp2"


def test_metric_floats() -> None:
    metrics = {"b": 2, "a": 0.5, "flag": True, "name": "x", "ci": [0, 1]}
    assert metric_floats(metrics) == {"b": 2.0, "a": 0.5}
    assert list(metric_floats(metrics, ("a", "b", "missing"))) == ["a", "b"]


def test_ensure_dataset_writes_once_and_replaces_stale_markers(tmp_path: Path) -> None:
    calls: list[Path] = []

    def write(root: Path) -> None:
        calls.append(root)
        root.mkdir(parents=True, exist_ok=True)
        (root / "data.txt").write_text(str(len(calls)))

    root = tmp_path / "gen"
    assert ensure_dataset(root, "10-2-0", write) == root
    assert ensure_dataset(root, "10-2-0", write) == root
    assert len(calls) == 1 and (root / ".complete-10-2-0").exists()
    ensure_dataset(root, "10-2-1", write)  # other arguments: written again, the old marker goes
    assert len(calls) == 2 and sorted(p.name for p in root.glob(".complete-*")) == [".complete-10-2-1"]

    def broken(root: Path) -> None:
        raise OSError("disk full")

    with pytest.raises(OSError):
        ensure_dataset(root, "other", broken)
    assert list(root.glob(".complete-*")) == []  # an interrupted write leaves no marker


def test_to_device_moves_inputs_and_targets() -> None:
    x, targets = ToDevice()(collate([Pairs()[0], Pairs()[1]]), torch.device("cpu"))
    assert x.shape == (2, 3) and isinstance(targets[0], Target)


def test_fit_trains_saves_and_reports(tmp_path: Path) -> None:
    cfg = Options(project=str(tmp_path), name="run")
    result = fit(cfg, lambda device, world: plan_for(cfg))
    assert result is not None
    assert list(result) == ["neg_mse", "count", "epochs", "best_epoch", "train_seconds", "weights", "out", "save_dir"]
    assert result["epochs"] == 2 and result["out"] == result["save_dir"] == str(tmp_path / "run")
    state, meta = load_weights(result["weights"])
    assert (
        meta["width"] == 8 and meta["epoch"] == 2 and meta["metrics"] == {"neg_mse": result["neg_mse"], "count": 16.0}
    )
    assert set(state) == {"body.0.weight", "body.0.bias", "body.2.weight", "body.2.bias"}
    assert (tmp_path / "run" / "last.pt").exists() and (tmp_path / "run" / "config.yaml").exists()
    # the checkpoints serve as weights: the deployable model's tensors and the weights' metadata
    for name in ("last.pt", "best.pt"):
        ckpt_state, ckpt_meta = read_model_weights(tmp_path / "run" / name)
        assert set(ckpt_state) == set(state) and ckpt_meta["width"] == 8 and ckpt_meta["epoch"] in (1, 2)


def test_fit_numbers_a_second_run_and_resume_or_exist_ok_reuse_the_folder(tmp_path: Path) -> None:
    cfg = Options(project=str(tmp_path), epochs=1)
    first = fit(cfg, lambda device, world: plan_for(cfg))
    second = fit(cfg, lambda device, world: plan_for(cfg))
    assert first is not None and second is not None
    assert (first["save_dir"], second["save_dir"]) == (str(tmp_path / "train"), str(tmp_path / "train2"))
    assert (tmp_path / "train" / "best.safetensors").is_file()  # the first run is left alone
    assert second["weights"] == str(tmp_path / "train2" / "best.safetensors")
    saved = yaml.safe_load((tmp_path / "train2" / "config.yaml").read_text())
    assert saved["name"] == "train2"  # cfg=train2/config.yaml resume=true continues this run
    # cfg=train2/config.yaml resume=true continues train2 in place (2 epochs now), from its last.pt
    more = make_config(Options, {"cfg": str(tmp_path / "train2" / "config.yaml"), "resume": "true", "epochs": "2"})
    assert more.name == "train2"
    resumed = fit(more, lambda device, world: plan_for(more))
    assert resumed is not None and resumed["save_dir"] == str(tmp_path / "train2") and resumed["epochs"] == 2
    missing = Options(project=str(tmp_path), name="nothing", resume=True)
    with pytest.raises(ConfigError, match="nothing/last.pt not found"):
        fit(missing, lambda device, world: plan_for(missing))
    again = Options(project=str(tmp_path), epochs=1, exist_ok=True)
    reused = fit(again, lambda device, world: plan_for(again))
    assert reused is not None and reused["save_dir"] == str(tmp_path / "train")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train", "train2"]


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
@pytest.mark.parametrize("mask", [0o022, 0o077])
def test_run_files_follow_the_umask(tmp_path: Path, mask: int) -> None:
    cfg = Options(project=str(tmp_path), epochs=1)
    old = os.umask(mask)
    try:
        result = fit(cfg, lambda device, world: plan_for(cfg))
    finally:
        os.umask(old)
    assert result is not None
    run = Path(result["save_dir"])
    for name in ("last.pt", "best.pt", "best.safetensors", "config.yaml", "results.csv"):
        assert stat.S_IMODE((run / name).stat().st_mode) == 0o666 & ~mask, name
    assert stat.S_IMODE(run.stat().st_mode) == 0o777 & ~mask


def test_only_the_first_process_picks_the_training_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another rank creates nothing and takes the folder rank 0 broadcast, or raises its error."""
    import singleshot.tasks.fit as common

    (tmp_path / "train").mkdir()
    sent: list[Any] = []

    def broadcast(obj: Any) -> Any:
        sent.append(obj)
        return (str(tmp_path / "train7"), None)

    monkeypatch.setattr(common, "get_rank", lambda: 1)
    monkeypatch.setattr(common, "broadcast_object", broadcast)
    assert common._agreed_train_dir(Options(project=str(tmp_path))) == tmp_path / "train7"
    assert sent == [(None, None)] and sorted(p.name for p in tmp_path.iterdir()) == ["train"]
    monkeypatch.setattr(common, "broadcast_object", lambda obj: (None, ConfigError("resume: x/last.pt not found")))
    with pytest.raises(ConfigError, match="x/last.pt"):
        common._agreed_train_dir(Options(project=str(tmp_path)))
    monkeypatch.setattr(common, "get_rank", lambda: 0)
    monkeypatch.setattr(common, "broadcast_object", lambda obj: sent.append(obj) or obj)
    assert common._agreed_train_dir(Options(project=str(tmp_path))) == tmp_path / "train2"
    assert sent[-1] == (str(tmp_path / "train2"), None)


def test_fit_is_deterministic_and_takes_groups_files_and_report(tmp_path: Path) -> None:
    cfg = Options(project=str(tmp_path), name="a")
    first = fit(cfg, lambda device, world: plan_for(cfg))
    cfg_b = Options(project=str(tmp_path), name="b")
    again = fit(cfg_b, lambda device, world: plan_for(cfg_b))
    assert first is not None and again is not None and first["neg_mse"] == again["neg_mse"]

    seen: dict[str, Any] = {}

    def build(device: str, world: int) -> TrainingPlan:
        cfg_c = Options(project=str(tmp_path), name="c")
        plan = plan_for(cfg_c)
        body = plan.model.body  # type: ignore[union-attr]
        plan.param_groups = [
            {"params": list(body[2].parameters()), "lr": 0.05},
            {"params": list(body[0].parameters()), "lr": 0.0125, "weight_decay": 0.0},
        ]
        plan.files = lambda: {
            "best.safetensors": (plan.model, plan.meta),
            "head.safetensors": (body[2], {"part": "head"}),
        }
        plan.report = lambda best: {"score": best["neg_mse"], "note": "custom"}
        seen["plan"] = plan
        return plan

    cfg_c = Options(project=str(tmp_path), name="c")
    result = fit(cfg_c, build)
    assert result is not None and list(result)[:2] == ["score", "note"]
    assert result["weights"] == str(tmp_path / "c" / "best.safetensors")
    head, head_meta = load_weights(tmp_path / "c" / "head.safetensors")
    assert set(head) == {"weight", "bias"} and head_meta["part"] == "head" and head_meta["epoch"] == 2
    assert result["score"] != first["neg_mse"]  # other learning rates, other weights


def test_fit_checks_the_global_batch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import singleshot.tasks.fit as common

    monkeypatch.setattr(common, "get_world_size", lambda: 3)
    monkeypatch.setattr(common, "init_distributed", lambda device: device)
    with pytest.raises(ConfigError, match="divisible by the 3 processes"):
        fit(Options(project=str(tmp_path), batch=4), lambda device, world: plan_for(Options()))


def test_run_demo_writes_data_once_metrics_and_restores_threads(tmp_path: Path) -> None:
    threads = torch.get_num_threads()
    seen: dict[str, Any] = {}

    def write_data(cfg: Options) -> None:
        seen["written"] = True
        cfg.data = str(tmp_path / "data")

    def train(cfg: Options) -> dict[str, Any]:
        seen["threads"] = torch.get_num_threads()
        seen["data"] = cfg.data
        return fit(cfg, lambda device, world: plan_for(cfg))  # type: ignore[return-value]

    cfg = Options(project=str(tmp_path), name="demo")
    result = run_demo(
        cfg,
        "singleshot x train",
        write_data,
        train,
        lambda c, r: {"pictures": "p"},
        threads=1,
        seconds_key="demo_seconds",
    )
    assert seen == {"written": True, "threads": 1, "data": str(tmp_path / "data")}
    assert torch.get_num_threads() == threads
    assert list(result)[-2:] == ["pictures", "demo_seconds"] and result["demo_seconds"] >= 0
    assert json.loads((tmp_path / "demo" / "metrics.json").read_text()) == result
    assert result["save_dir"] == str(tmp_path / "demo")
    seen.clear()
    # a second demo: the data are not written again and the first run is kept (demo2)
    again = run_demo(Options(project=str(tmp_path), name="demo", data="given"), "x", write_data, train, lambda c, r: {})
    assert "written" not in seen and seen["data"] == "given"
    assert again["save_dir"] == str(tmp_path / "demo2") and (tmp_path / "demo2" / "metrics.json").is_file()
    assert json.loads((tmp_path / "demo" / "metrics.json").read_text()) == result


def test_best_evaluation_keeps_the_tables_of_the_best_call() -> None:
    results = iter(
        [
            {"frame_map": 0.2, "video_map": 0.1, "per_class": {"a": 0.2}},
            {"frame_map": 0.5, "video_map": 0.3, "per_class": {"a": 0.5}},
            {"frame_map": None, "video_map": 0.9, "per_class": {"a": 0.0}},
        ]
    )
    evaluate = BestEvaluation(lambda m: next(results), "frame_map", ("video_map", "frame_map"))
    assert evaluate.report({"frame_map": 0.0}) == {"frame_map": 0.0}  # no evaluation yet: no table
    assert evaluate(nn.Identity()) == {"video_map": 0.1, "frame_map": 0.2}
    evaluate(nn.Identity())
    assert evaluate(nn.Identity()) == {"video_map": 0.9}  # None is not a number
    assert evaluate.report({"frame_map": 0.5}) == {"frame_map": 0.5, "per_class": {"a": 0.5}}


def test_chunks_cover_the_items_in_order() -> None:
    assert [list(c) for c in chunks([1, 2, 3, 4, 5], 2)] == [[1, 2], [3, 4], [5]]
    assert list(chunks([], 3)) == []


# ---------------------------------------------------------------- dry run
def test_module_prefixes_name_the_shortest_uniform_modules() -> None:
    status = {
        "backbone.0.weight": "frozen",
        "backbone.0.bias": "frozen",
        "backbone.1.weight": "frozen",
        "backbone.2.weight": "trainable",
        "backbone.2.bias": "frozen",
        "neck.weight": "lr_zero",
        "head.cls.weight": "trainable",
        "head.cls.bias": "trainable",
    }
    assert module_prefixes(status, "frozen") == ["backbone.0", "backbone.1", "backbone.2.bias"]
    assert module_prefixes(status, "trainable") == ["backbone.2.weight", "head"]
    assert module_prefixes(status, "lr_zero") == ["neck"]
    assert module_prefixes(status, "unused") == []
    assert module_prefixes({"a.weight": "trainable", "b.weight": "trainable"}, "trainable") == [""]
    assert module_prefixes({}, "frozen") == []


def test_parameter_status_reads_requires_grad_and_the_base_lr_of_each_group() -> None:
    """Frozen = requires_grad False; lr_zero = only in groups of base lr 0 (YOWO's freezing), even
    while a warm-up has scaled every group's current lr; unused = in no group."""
    net = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2), nn.Linear(2, 2), nn.Linear(2, 2))
    net[0].requires_grad_(False)
    opt = torch.optim.SGD([{"params": net[1].parameters(), "lr": 0.0}, {"params": net[2].parameters()}], lr=0.1)
    torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 0.001)  # a warm-up: current lr 1e-4, base lr 0.1
    status = parameter_status(net, opt)
    assert [status[f"{i}.weight"] for i in range(4)] == ["frozen", "lr_zero", "trainable", "unused"]
    groups = param_group_summary(opt)
    assert groups == [
        {"lr": 0.0, "weight_decay": 0.0, "tensors": 2, "parameters": 6},
        {"lr": 0.1, "weight_decay": 0.0, "tensors": 2, "parameters": 6},
    ]


def test_input_convention_reports_caffe_pixels_in_0_255_units() -> None:
    caffe = {"input_size": [300, 300], "channel_order": "BGR", "mean": [104 / 255, 117 / 255, 123 / 255]}
    caffe["std"] = [1 / 255] * 3
    got = input_convention(caffe)
    assert got["value_range"] == "0-255" and got["channel_order"] == "BGR" and got["resize"] is None
    assert got["mean"] == [104.0, 117.0, 123.0] and got["std"] == [1.0, 1.0, 1.0]
    resize = {"interpolation": "bilinear", "antialias": False}
    rgb = input_convention({"input_size": [224, 224], "mean": [0.0] * 3, "std": [1.0] * 3, "resize": resize})
    assert rgb["value_range"] == "0-1" and rgb["channel_order"] == "RGB" and rgb["resize"] == resize
    depth = input_convention({"input_size": [300, 300], "input": "depth", "in_channels": 1, "normalise": "x"})
    assert depth == {"size": [300, 300], "input": "depth", "channels": 1, "normalise": "x"}


def test_priors_summary_names_the_published_configuration() -> None:
    """SSD300 with VOC priors: ssd.pytorch's config (8732 boxes, first map 30 / 60 px, its square
    priors 30 and sqrt(30 * 60) px); COCO priors: torchvision's scales 0.07 / 0.15 of 300 px."""
    from singleshot.models import create_model

    voc = priors_summary(create_model("ssd300", 2))
    assert voc is not None and (voc["name"], voc["spec"], voc["count"], voc["clip"]) == ("voc", "voc300", 8732, "all")
    assert voc["first_map"] == {"size": 38, "min_size": 30.0, "max_size": 60.0}
    assert voc["maps"][0]["boxes_wh"][:2] == [[30.0, 30.0], [42.4264, 42.4264]]
    assert [m["size"] for m in voc["maps"]] == [38, 19, 10, 5, 3, 1]
    coco = priors_summary(create_model("ssd300", 2, priors="coco"))
    assert coco is not None and (coco["name"], coco["spec"], coco["count"]) == ("coco", "coco300", 8732)
    assert coco["first_map"]["min_size"] == pytest.approx(21.0) and coco["first_map"]["max_size"] == pytest.approx(45.0)
    assert priors_summary(Net(4)) is None


def test_fit_dry_run_builds_the_trainer_but_neither_trains_nor_writes(tmp_path: Path) -> None:
    """``dry_run=true``: the summary of what would run (parameters, groups, schedule in steps,
    accumulation), the model untouched and no run folder."""
    cfg = Options(project=str(tmp_path / "p"), name="run", dry_run=True, milestones=(1,), schedule="multistep")
    cfg.accumulate, cfg.warmup = 2, 3
    seen: dict[str, Any] = {}

    def build(device: str, world: int) -> TrainingPlan:
        plan = plan_for(cfg, meta={"architecture": "net", "input_size": [3, 1], "mean": [0.5] * 3, "std": [0.25] * 3})
        seen["before"] = {k: v.clone() for k, v in plan.model.state_dict().items()}
        seen["model"] = plan.model
        return plan

    summary = fit(cfg, build)
    assert summary is not None and summary["dry_run"] is True and summary["model"] == "net"
    assert summary["num_parameters"] == summary["trainable_parameters"] == 8 * 3 + 8 + 8 + 1
    assert summary["trainable"] == [""] and summary["frozen"] == [] and summary["lr_zero"] == []
    assert summary["param_groups"] == [{"lr": 0.05, "weight_decay": 0.0, "tensors": 4, "parameters": 41}]
    # 16 samples / batch 4 = 4 micro-batches = 2 steps per epoch, 2 epochs; milestone after epoch 1
    assert {k: summary["schedule"][k] for k in ("steps_per_epoch", "total_steps", "milestones_steps")} == {
        "steps_per_epoch": 2,
        "total_steps": 4,
        "milestones_steps": [2],
    }
    assert summary["schedule"]["warmup_steps"] == 3 and summary["schedule"]["warmup_factor"] == 0.001
    assert summary["accumulation"] == {"accumulate": 2, "mode": "mean", "batch": 4, "images_per_step": 8}
    assert summary["input"]["mean"] == [0.5] * 3 and summary["train_samples"] == 16
    assert not (tmp_path / "p").exists()
    assert all(torch.equal(v, seen["before"][k]) for k, v in seen["model"].state_dict().items())
    json.dumps(summary)  # plain data


DDP_FIT = """
import dataclasses, os, sys
from pathlib import Path
import torch
from torch import nn
import singleshot.tasks.common as common
import singleshot.tasks.fit as fit_module
from singleshot.engine.train_config import EngineOptions

project = Path(sys.argv[1])
real = fit_module.train_config_for

def recording(cfg, batches, out_dir, device):
    (project.parent / f"rank{os.environ['RANK']}.txt").write_text(str(out_dir))
    return real(cfg, batches, out_dir, device)

fit_module.train_config_for = recording

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 1)
    def forward(self, x):
        return {"y": self.lin(x)}

x = torch.randn(8, 3, generator=torch.Generator().manual_seed(0))
data = [(x[i], x[i].sum(0, keepdim=True)) for i in range(8)]
collate = lambda b: (torch.stack([p[0] for p in b]), torch.stack([p[1] for p in b]))
loss = lambda out, y: {"mse": nn.functional.mse_loss(out["y"], y)}
cfg = EngineOptions(project=str(project), epochs=1, batch=4, workers=0, checkpoint_every=0, plot_every=0)
plan = lambda device, world: common.TrainingPlan(
    Net(), loss, data, collate, lambda m: {"score": 1.0}, "score", {"architecture": "net"},
    prepare_batch=lambda b, d: b)
common.fit(cfg, plan)
"""


@pytest.mark.slow
@pytest.mark.skipif(not torch.distributed.is_gloo_available(), reason="needs torch.distributed with gloo")
def test_torchrun_processes_agree_on_the_numbered_folder(tmp_path: Path) -> None:
    """Two torchrun processes (gloo): with ``train`` taken, both train into ``train2`` and no
    ``train3`` appears (each process numbering on its own would make one)."""
    project = tmp_path / "runs"
    (project / "train").mkdir(parents=True)
    script = tmp_path / "ddp_fit.py"
    script.write_text(DDP_FIT)
    env = {k: v for k, v in os.environ.items() if k not in {"RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR"}}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script)]
    done = subprocess.run([*cmd, str(project)], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    chosen = {(tmp_path / f"rank{r}.txt").read_text() for r in (0, 1)}
    assert chosen == {str(project / "train2")}
    assert sorted(p.name for p in project.iterdir()) == ["train", "train2"]
    assert (project / "train2" / "best.safetensors").is_file()


def test_settings_from_training_fill_what_the_user_did_not_type() -> None:
    from dataclasses import dataclass

    from singleshot.tasks.common import settings_from_training

    @dataclass
    class Cfg:
        trim: float = 0.0
        linking: str = ""
        years: tuple[str, ...] = ("2007",)
        conf: float = 0.01

    meta = {"train_config": {"trim": 0.05, "linking": "act", "years": ["2007", "2012"], "conf": 0.2, "other": 1}}
    cfg = Cfg()
    taken = settings_from_training(cfg, meta, ("trim", "linking", "years", "conf", "other"), given={"conf"})
    assert taken == {"trim": 0.05, "linking": "act", "years": ("2007", "2012")}
    assert cfg == Cfg(trim=0.05, linking="act", years=("2007", "2012"), conf=0.01)  # conf was typed: kept
    assert settings_from_training(Cfg(), {}, ("trim",), set()) == {}  # weights without a training config
