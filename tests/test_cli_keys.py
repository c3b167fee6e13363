"""The keys of every mode (issue 18): each config key is read by some mode and explained, ``help``
lists a mode's keys, ``show=config`` prints what the mode builds, and a key the mode does not read
is an error naming the mode's keys. Mostly ``action`` and ``grasp`` (whose member or ``from=``
decides some keys); the key tables of all three families are checked alike."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from singleshot import cli
from singleshot.config import GROUPS, ModeSpec, config_to_dict
from singleshot.engine.weights import save_weights
from singleshot.models import create_model
from singleshot.tasks import action, grasp
from singleshot.tasks.action.act_predictor import act_arch_kwargs, act_meta
from singleshot.tasks.action.config import ActionConfig, ActionOptions, ActOptions, YowoOptions
from singleshot.tasks.action.members import ACT_DEMO_DEFAULTS, YOWO_DEMO_DEFAULTS, converter_names
from singleshot.tasks.action.predictor import action_meta, build_action_model
from singleshot.tasks.grasp.demo import DEMO_DEFAULTS as GRASP_DEMO_DEFAULTS

CONFIGS = Path(__file__).resolve().parents[1] / "configs"

#: Arguments that change which keys a mode reads (the member, the converter), per family.
VARIANTS: dict[str, list[dict[str, str]]] = {
    "detect": [{}],
    "action": [{}, {"model": "yowo"}, {"model": "act"}, *({"from": f} for f in action.keys.CONVERT_KEYS)],
    "grasp": [{}, *({"from": f} for f in grasp.keys.CONVERT_KEYS)],
}

YOWO_ONLY = {f.name for f in dataclasses.fields(YowoOptions)} - {f.name for f in dataclasses.fields(ActionOptions)}
ACT_ONLY = {f.name for f in dataclasses.fields(ActOptions)} - {f.name for f in dataclasses.fields(ActionOptions)}


def _name(field_name: str) -> str:
    return field_name.rstrip("_")  # from_ is from= on the command line


def _all_keys(task: str, spec: ModeSpec) -> set[str]:
    """Every key the mode reads for some member / converter."""
    return {k for args in VARIANTS[task] for k in spec.keys(args)}


def _names(keys: Any) -> set[str]:
    return {_name(k) for k in keys}


@pytest.fixture(scope="module")
def member_weights(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny YOWO and a tiny ACT ``.safetensors`` (untrained; only their metadata matter here)."""
    folder = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    cfg = ActionConfig(arch="yowo_tiny", width=4, clip_len=4, imgsz=64)
    model, kwargs = build_action_model(cfg, 3)
    save_weights(folder / "yowo.safetensors", model, action_meta(model, cfg, kwargs, ["a", "b", "c"]))
    cfg = ActionConfig(model="act", arch="act_tiny", act_width=0.25, K=2, imgsz=64)
    kwargs = act_arch_kwargs(cfg)
    act = create_model("act_tiny", 3, **kwargs)
    save_weights(folder / "act.safetensors", act, act_meta(cfg, kwargs, ["a", "b", "c"]))
    return {"yowo": folder / "yowo.safetensors", "act": folder / "act.safetensors"}


# ---------------------------------------------------------------- the key tables
@pytest.mark.parametrize("task", list(cli.TASKS))
def test_every_config_key_is_read_by_some_mode_and_explained(task: str) -> None:
    specs = cli.TASKS[task]
    read = {k for spec in specs.values() for k in _all_keys(task, spec)}
    for cls in {spec.config for spec in specs.values()}:  # a mode's combined class: others read the rest
        fields = {f.name for f in dataclasses.fields(cls)}
        assert fields - read == set(), f"{task}: {cls.__name__} keys no mode reads"
    for mode, spec in specs.items():
        for key in _all_keys(task, spec):
            group, meaning = spec.help.get(key, spec.help.get(_name(key), ("", "")))
            assert group in GROUPS and meaning.strip(), f"{task} {mode}: {key} has no help ({group!r}, {meaning!r})"


@pytest.mark.parametrize("task", list(cli.TASKS))
def test_every_key_of_a_mode_is_a_field_of_its_config(task: str) -> None:
    for mode, spec in cli.TASKS[task].items():
        fields = {f.name for f in dataclasses.fields(spec.config)}
        for args in VARIANTS[task]:
            keys = list(spec.keys(args))
            assert set(keys) <= fields, f"{task} {mode} {args}: {set(keys) - fields} are no fields"
            assert len(keys) == len(set(keys)), f"{task} {mode}: a key listed twice"


def test_action_convert_keys_cover_every_converter() -> None:
    assert set(action.keys.CONVERT_KEYS) == {*converter_names(), "csv"}  # csv: annotations, not weights


def test_action_member_keys_follow_model(tmp_path: Path) -> None:
    for mode in ("train", "demo"):
        keys = action.SPECS[mode].keys
        assert set(keys({"model": "act"})) & YOWO_ONLY == set() and "K" in keys({"model": "act"})
        assert set(keys({})) & ACT_ONLY == set() and "clip_len" in keys({})  # yowo, the default
        recipe = tmp_path / "act.yaml"
        recipe.write_text("model: act\n")
        assert set(keys({"cfg": str(recipe)})) == set(keys({"model": "act"}))  # model: from the YAML
    assert "flow_method" in action.SPECS["demo"].keys({"model": "act"})


def test_action_inference_keys_follow_the_weights(member_weights: dict[str, Path]) -> None:
    for mode in ("val", "predict"):
        keys = action.SPECS[mode].keys
        yowo = set(keys({"weights": str(member_weights["yowo"])}))
        act = set(keys({"weights": str(member_weights["act"])}))
        unknown = set(keys({"weights": "missing.safetensors"}))
        assert "stride" in yowo and yowo & ACT_ONLY == set()
        assert "pre_top" in act and act & YOWO_ONLY == set()
        assert unknown == yowo | act  # weights not readable yet: both members' keys


# ---------------------------------------------------------------- recipes
def _family(recipe: Mapping[str, Any]) -> str:
    model = str(recipe["model"])
    if model in ("yowo", "act"):
        return "action"
    return "grasp" if model.startswith(("ggcnn", "psp_")) else "detect"


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_recipe_key_is_accepted_by_train(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recipe = yaml.safe_load(path.read_text())
    task = _family(recipe)
    assert cli.main([task, "train", f"cfg={path}", "show=config"]) == 0, capsys.readouterr().err
    shown = yaml.safe_load(capsys.readouterr().out)
    assert set(recipe) <= set(shown)


# ---------------------------------------------------------------- help
@pytest.mark.parametrize("task", list(cli.TASKS))
def test_help_lists_every_key_of_every_mode_grouped(task: str, capsys: pytest.CaptureFixture[str]) -> None:
    for mode, spec in cli.TASKS[task].items():
        assert cli.main([task, mode, "help"]) == 0
        out = capsys.readouterr().out
        for key in spec.keys({}):
            assert f"\n  {_name(key)} " in out, f"{task} {mode} help: {key} missing"
        groups = re.findall(r"^(\w+):$", out, flags=re.M)
        assert groups and groups == [g for g in GROUPS if g in groups], f"{task} {mode}: groups {groups}"


def test_help_flags_and_the_member_of_the_help(capsys: pytest.CaptureFixture[str]) -> None:
    for flag in ("help", "-h", "--help"):
        assert cli.main(["action", "train", "model=act", flag]) == 0
        out = capsys.readouterr().out
        assert "\n  K " in out and "\n  clip_len " not in out
        assert re.search(r"\n  lr +float +0\.01 ", out)  # ACT's own default, not YOWO's 1e-4
    assert cli.main(["grasp", "demo", "--help"]) == 0
    assert re.search(r"\n  epochs +int +16 ", capsys.readouterr().out)  # the demo recipe's


def test_a_key_that_means_another_thing_in_one_mode_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["action", "flow", "help"]) == 0
    assert re.search(r"\n  src .* a video file", capsys.readouterr().out)
    assert cli.main(["grasp", "export", "help"]) == 0
    assert re.search(r"\n  format +text +onnx ", capsys.readouterr().out)
    assert cli.main(["grasp", "predict", "help"]) == 0
    assert re.search(r"\n  format +text +json +json \| jacquard", capsys.readouterr().out)


# ---------------------------------------------------------------- show=config
class _Built(Exception):
    """Raised (or recorded) where a mode has built its config, to stop it there."""

    def __init__(self, cfg: Any) -> None:
        super().__init__("built")
        self.cfg = cfg


def _shown(capsys: pytest.CaptureFixture[str], argv: list[str]) -> dict[str, Any]:
    assert cli.main([*argv, "show=config"]) == 0, capsys.readouterr().err
    return yaml.safe_load(capsys.readouterr().out)


def _assert_shows(shown: dict[str, Any], cfg: Any, spec: ModeSpec, args: dict[str, str]) -> None:
    built = {_name(k): v for k, v in config_to_dict(cfg).items()}
    assert set(shown) == _names(spec.keys(args))
    assert shown == {k: built[k] for k in shown}


def _run_until_built(monkeypatch: pytest.MonkeyPatch, module: Any, name: str, argv: list[str]) -> Any:
    """Run ``singleshot argv`` with ``module.name`` replaced by a stop that keeps its config argument
    (the argument of the mode's config class)."""
    config = cli.TASKS[argv[0]][argv[1]].config

    def stop(*args: Any, **kwargs: Any) -> Any:
        raise _Built(next(a for a in args if isinstance(a, config)))

    monkeypatch.setattr(module, name, stop)
    with pytest.raises(_Built) as info:
        cli.main(argv)
    return info.value.cfg


@pytest.mark.parametrize(
    ("argv", "module", "name"),
    [
        (["action", "train"], "singleshot.tasks.action.train", "train_member"),
        (["action", "train", "model=act", "K=3"], "singleshot.tasks.action.train", "train_member"),
        (["action", "train", f"cfg={CONFIGS / 'act_ucf24.yaml'}"], "singleshot.tasks.action.train", "train_member"),
        (["action", "demo"], "singleshot.tasks.action.demo", "run_demo"),
        (["action", "demo", "model=act"], "singleshot.tasks.action.demo", "run_demo"),
        (["action", "predict", "source=x.mp4"], "singleshot.tasks.action.predict", "load_predictor"),
        (["grasp", "demo"], "singleshot.tasks.grasp.demo", "run_demo"),
        (["grasp", "train", f"cfg={CONFIGS / 'ggcnn_cornell.yaml'}"], "singleshot.tasks.grasp.train", "train_grasp"),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else None,
)
def test_show_config_is_the_config_the_mode_builds(
    argv: list[str], module: str, name: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import importlib

    task, mode, *rest = argv
    args = dict(a.split("=", 1) for a in rest)
    shown = _shown(capsys, argv)
    cfg = _run_until_built(monkeypatch, importlib.import_module(module), name, argv)
    _assert_shows(shown, cfg, cli.TASKS[task][mode], args)


def test_show_config_of_the_demos_is_their_recipe(capsys: pytest.CaptureFixture[str]) -> None:
    shown = _shown(capsys, ["action", "demo"])
    assert (shown["epochs"], shown["clip_len"], shown["imgsz"]) == tuple(
        YOWO_DEMO_DEFAULTS[k] for k in ("epochs", "clip_len", "imgsz")
    )
    shown = _shown(capsys, ["action", "demo", "model=act", "epochs=2"])
    assert (shown["epochs"], shown["K"], shown["modality"]) == (
        2,
        ACT_DEMO_DEFAULTS["K"],
        ACT_DEMO_DEFAULTS["modality"],
    )
    shown = _shown(capsys, ["grasp", "demo"])
    assert (shown["epochs"], shown["size"]) == (GRASP_DEMO_DEFAULTS["epochs"], GRASP_DEMO_DEFAULTS["size"])


def test_show_config_of_action_val_takes_the_weights_protocol(
    member_weights: dict[str, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import singleshot.tasks.action.evaluate as evaluate

    argv = ["action", "val", f"weights={member_weights['act']}", "data=unused"]
    shown = _shown(capsys, argv)
    assert (shown["protocol"], shown["batch"]) == ("act", 16)  # ACT weights: ACT's protocol
    cfg = _run_until_built(monkeypatch, evaluate, "checked_data", argv)
    _assert_shows(shown, cfg, action.SPECS["val"], dict(a.split("=", 1) for a in argv[2:]))
    assert _shown(capsys, [*argv, "protocol=yowo"])["protocol"] == "yowo"


# ---------------------------------------------------------------- unused keys
@pytest.mark.parametrize(
    ("argv", "key"),
    [
        (["detect", "train", "n_train=5"], "n_train"),
        (["detect", "predict", "name2=x"], "name2"),
        (["grasp", "val", "epochs=3"], "epochs"),
        (["grasp", "convert", "from=pcd", "src=x", "dst=y"], "dst"),  # from=pcd writes beside src
        (["action", "train", "model=act", "clip_len=8"], "clip_len"),  # YOWO's key
        (["action", "train", "K=2"], "K"),  # ACT's key, model=yowo by default
        (["action", "convert", "from=caffe", "src=x"], "src"),
        (["action", "flow", "src=a", "dst=b", "epochs=1"], "epochs"),
        (["action", "score", "gt=a", "pred=b", "weights=w"], "weights"),
    ],
)
def test_a_key_the_mode_does_not_read_is_an_error(
    argv: list[str], key: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    task, mode = argv[:2]
    assert f"unknown key '{key}' for {task} {mode}" in err
    listed = err.split(f"keys of {task} {mode}: ")[1].split(" (")[0].split(", ")
    assert set(listed) == _names(cli.TASKS[task][mode].keys(dict(a.split("=", 1) for a in argv[2:])))


def test_member_keys_of_the_weights_and_of_a_yaml_are_checked(
    member_weights: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    yowo, act = (f"weights={member_weights[m]}" for m in ("yowo", "act"))
    assert cli.main(["action", "val", yowo, "pre_top=5"]) == 2  # ACT's candidates, YOWO weights
    assert "unknown key 'pre_top' for action val" in capsys.readouterr().err
    assert cli.main(["action", "predict", act, "stride=2"]) == 2  # YOWO's clip stride, ACT weights
    assert "unknown key 'stride' for action predict" in capsys.readouterr().err
    assert _shown(capsys, ["action", "predict", act, "pre_top=5"])["pre_top"] == 5
    recipe = tmp_path / "act.yaml"
    recipe.write_text("model: act\nclip_len: 8\n")
    assert cli.main(["action", "train", f"cfg={recipe}"]) == 2  # the YAML's keys, for the YAML's member
    assert "unknown key 'clip_len' for action train" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "close"),
    [
        (["grasp", "predict", "thresold=0.1"], "threshold"),
        (["action", "train", "clip_lne=8"], "clip_len"),
        (["action", "val", "protocl=act"], "protocol"),
        (["action", "flow", "qualty=90"], "quality"),
    ],
)
def test_a_typo_suggests_the_close_key(argv: list[str], close: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(argv) == 2
    assert f"did you mean {close}" in capsys.readouterr().err
