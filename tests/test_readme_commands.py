"""Every command README.md shows runs (issue 18: the README can not drift from the CLI).

The commands are read from README.md itself (``tests/readme_parse.py``): the lines of its code
blocks that start with ``singleshot``, ``.venv/bin/singleshot`` or ``torchrun ... -m singleshot``,
and the inline ``.venv/bin/singleshot ...`` / ``singleshot TASK MODE key=value`` of its prose. Each
is spelled out as it is written (``[option]`` left out, then added alone; every ``a|b|c``
alternative in turn), its paths replaced by small real files (``tests/readme_workspace.py``), and
run in-process through ``singleshot.cli.main``:

1. ``show=config`` with exactly the README's keys: every key is checked against the mode;
2. then the run :data:`HOW` gives for its ``(task, mode, from=)``, with at most ``project=`` (a
   temporary folder), ``workers=0`` and the keys of that entry added: ``train`` as a dry run (the
   model, data, optimizer and schedule built for real, then stopped; GG-CNN also trains one step),
   ``demo`` at toy size (detect, grasp: trained for real; action: a dry run), everything else as
   written. ``torchrun`` lines get only step 1 (no processes are started), and ``device=cuda``
   becomes ``device=cpu`` on a machine without CUDA.

A README command whose ``(task, mode, from=)`` is not in :data:`HOW`, or whose path has no stand-in
in ``readme_workspace.PLACEHOLDERS``, fails :func:`test_every_readme_command_is_known`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import yaml

from singleshot import cli


def _helpers() -> tuple:
    """The helper modules beside this file (tests/ is not a package; loaded by path)."""
    import importlib.util

    out = []
    for name in ("readme_parse", "readme_workspace"):
        if name not in sys.modules:
            spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)
        out.append(sys.modules[name])
    return tuple(out)


parse, workspace = _helpers()
README = workspace.REPO / "README.md"

pytestmark = pytest.mark.usefixtures("one_thread")


@dataclass(frozen=True)
class How:
    """How the commands of one ``(task, mode, from=)`` run after their ``show=config`` check.

    Attributes:
        runs: keys added for each run (``()``: the command as written); an empty tuple of runs:
            ``show=config`` only.
        paths: README value -> factory of ``ReadmeFiles``, before ``PLACEHOLDERS``.
        expect: (key, value) pairs of the result line (the stand-in predictions are the ground truth).
        config_only: README words whose variant gets the ``show=config`` check only, and why.
        slow: the command takes seconds (large models, foreign weights written and read).
    """

    runs: tuple[tuple[str, ...], ...] = ((),)
    paths: tuple[tuple[str, str], ...] = ()
    expect: tuple[tuple[str, object], ...] = ()
    config_only: tuple[tuple[str, str], ...] = ()
    slow: bool = False


def keys(text: str) -> tuple[str, ...]:
    return tuple(text.split())


DRY = (keys("dry_run=true"),)
TINY_FIT = keys("epochs=1 eval_every=1 batch=4 plot_every=0")  # a demo trained for real, at toy size
HOW: dict[tuple[str, str, str], How] = {
    ("detect", "train", ""): How(DRY, slow=True),
    ("detect", "val", ""): How(),
    ("detect", "predict", ""): How(),
    ("detect", "score", ""): How(expect=(("map50", 1.0),)),
    ("detect", "check", ""): How(expect=(("n_faults", 0),)),
    ("detect", "convert", "torchvision"): How(slow=True),
    ("detect", "convert", "ssd.pytorch"): How(slow=True),
    ("detect", "convert", "voc"): How(),
    ("detect", "demo", ""): How((keys("n_train=4 n_val=2") + TINY_FIT,)),
    ("action", "train", ""): How(DRY, slow=True),
    ("action", "val", ""): How(),
    ("action", "predict", ""): How(expect=(("frames", 12),)),  # the whole video or stream
    ("action", "score", ""): How(expect=(("frame_map", 1.0), ("video_map@0.5", 1.0))),
    ("action", "check", ""): How(expect=(("n_faults", 0),)),
    ("action", "flow", ""): How(
        paths=(("path/to/ucf24/rgb-images", "flow_rgb"),),
        config_only=(("workers=2", "spawns two processes (~10 s here); tests/tasks/action/test_flow.py runs them"),),
    ),
    ("action", "convert", "yowo"): How(),
    ("action", "convert", "caffe"): How(slow=True),
    ("action", "convert", "csv"): How(),
    ("action", "demo", ""): How((keys("n_train=2 n_test=1 video_size=48,64 video_frames=12,12 dry_run=true"),)),
    ("grasp", "train", ""): How((*DRY, keys("max_steps=1 batch=2 plot_every=0"))),  # GG-CNN: one real step too
    ("grasp", "val", ""): How(),
    ("grasp", "predict", ""): How(),
    ("grasp", "score", ""): How(expect=(("success_rate", 1.0),)),
    ("grasp", "check", ""): How(expect=(("n_faults", 0),)),
    ("grasp", "convert", "pcd"): How(paths=(("path/to/cornell", "cornell_clouds"),)),
    ("grasp", "demo", ""): How((keys("n_images=6 image_height=48 image_width=64 size=36 crop_size=48") + TINY_FIT,)),
}


def key_of(command: parse.ReadmeCommand) -> tuple[str, str, str]:
    return command.task, command.mode, command.value("from").split("|")[0] if command.mode == "convert" else ""


def how_of(command: parse.ReadmeCommand) -> How:
    """Its HOW entry; a ``torchrun`` line: the ``show=config`` check only (no processes started)."""
    how = HOW[key_of(command)]
    return How((), how.paths) if command.launcher == "torchrun" else how


def factory_for(task: str, key: str, value: str, how: How) -> str | None:
    """The ``ReadmeFiles`` factory standing in for ``key=value`` (None: the value is used as it is)."""
    if key not in workspace.PATH_KEYS or key in ("dst", "cfg") or (key == "source" and value.isdigit()):
        return None
    found = dict(how.paths).get(value) or workspace.PLACEHOLDERS.get(f"{task}:{value}")
    found = found or workspace.PLACEHOLDERS.get(value)
    if found is None:
        raise KeyError(f"{key}={value}: no stand-in in readme_workspace.PLACEHOLDERS (add one)")
    return found


def substituted(files: workspace.ReadmeFiles, task: str, words: tuple[str, ...], how: How) -> list[str]:
    """``words`` with every path replaced by its stand-in (``dst=``: a fresh output path)."""
    out = []
    for word in words:
        key, eq, value = word.partition("=")
        if eq and key == "dst":
            value = files.output(value)
        elif eq and key == "cfg":
            value = str(workspace.REPO / value)
        elif eq and key == "source" and value.isdigit():
            pytest.skip(f"source={value} is a camera; there is none on CI")
        elif eq and (factory := factory_for(task, key, value, how)) is not None:
            value = files.path(factory)
        out.append(f"{key}={value}" if eq else word)
    return out


COMMANDS = parse.readme_commands(README)


def _cases() -> list:
    """One case per distinct argument list of the README's commands (a repeated one runs once)."""
    seen: set[tuple[str, ...]] = set()
    cases = []
    for command in COMMANDS:
        if key_of(command) not in HOW:
            continue  # test_every_readme_command_is_known names it
        for n, words in enumerate(parse.variants(command)):
            marker = ("torchrun" if command.launcher == "torchrun" else "",) + words
            if marker in seen:
                continue
            seen.add(marker)
            marks = [pytest.mark.slow] if how_of(command).slow else []
            name = f"L{command.line}-{command.task}-{command.mode}-{n}"
            cases.append(pytest.param(command, words, id=name, marks=marks))
    return cases


# ---------------------------------------------------------------- the README is fully covered
def coverage_problems(commands: list[parse.ReadmeCommand]) -> list[str]:
    """What keeps ``commands`` from running here: a task or mode the CLI lacks, a ``(task, mode,
    from=)`` without a HOW entry, a path without a stand-in, a missing ``cfg=`` file, a word that is
    not ``key=value``; and HOW entries no command uses."""
    problems = []
    for command in commands:
        where = f"README.md line {command.line}: {command.text}"
        if command.task not in cli.TASKS or command.mode not in cli.TASKS[command.task]:
            problems.append(f"{where}: not a task and mode of the CLI")
            continue
        if key_of(command) not in HOW:
            problems.append(f"{where}: {key_of(command)} has no entry in HOW (say how to run it)")
            continue
        for words in parse.variants(command):
            for word in words[2:]:
                key, eq, value = word.partition("=")
                if not eq:
                    problems.append(f"{where}: {word!r} is not key=value")
                    continue
                try:
                    factory_for(command.task, key, value, how_of(command))
                except KeyError as e:
                    problems.append(f"{where}: {e.args[0]}")
                if key == "cfg" and not (workspace.REPO / value).is_file():
                    problems.append(f"{where}: {value} does not exist")
    unused = set(HOW) - {key_of(c) for c in commands}
    return problems + [f"HOW entry {k} matches no README command (remove it)" for k in sorted(unused)]


def test_every_readme_command_is_known() -> None:
    """Every README command has an entry in HOW and a stand-in for each of its paths; every HOW
    entry is still used (a command that left the README leaves the table too)."""
    assert len(COMMANDS) >= 30, f"only {len(COMMANDS)} commands found in README.md: is the parser broken?"
    problems = coverage_problems(COMMANDS)
    assert not problems, "\n".join(problems)


def test_a_command_the_table_does_not_know_is_named(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    text = README.read_text(encoding="utf-8")
    added = [
        "singleshot detect export weights=best.safetensors format=onnx",  # a mode HOW lacks
        "singleshot grasp val weights=best.safetensors data=path/to/jacquard",  # a path without a stand-in
        "singleshot grasp train cfg=configs/nope.yaml data=path/to/cornell",  # a recipe that is not there
        "singleshot detect trian data=path/to/VOCdevkit",  # not a mode
    ]
    readme.write_text(text + "\n```\n" + "\n".join(added) + "\n```\n", encoding="utf-8")
    problems = coverage_problems(parse.readme_commands(readme))
    assert len(problems) == 4, problems
    for problem, word in zip(problems, ("has no entry in HOW", "path/to/jacquard", "nope.yaml", "not a task and mode")):
        assert word in problem


def test_the_parser_reads_blocks_options_and_inline_commands(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(
        "Run `.venv/bin/singleshot grasp demo` or `singleshot TASK MODE key=value ...`;\n"
        "`singleshot detect convert` converts; `singleshot action demo model=act show=config` shows.\n"
        "```\n"
        "# a comment line\n"
        "singleshot action score gt=a.pkl|b.mat pred=f.json [tubes=t.json] \\\n"
        "    protocol=yowo|act   # trailing comment\n"
        "torchrun --nproc_per_node=4 -m singleshot detect train data=VOCdevkit\n"
        "make demo\n"
        "```\n"
    )
    found = parse.readme_commands(readme)
    assert [(c.line, c.launcher, c.inline) for c in found] == [
        (5, "singleshot", False),
        (7, "torchrun", False),
        (1, ".venv/bin/singleshot", True),
        (2, "singleshot", True),
    ]
    assert found[1].words == ("detect", "train", "data=VOCdevkit")
    assert parse.variants(found[0]) == [
        ("action", "score", "gt=a.pkl", "pred=f.json", "protocol=yowo"),
        ("action", "score", "gt=a.pkl", "pred=f.json", "tubes=t.json", "protocol=yowo"),
        ("action", "score", "gt=b.mat", "pred=f.json", "protocol=yowo"),
        ("action", "score", "gt=a.pkl", "pred=f.json", "protocol=act"),
    ]


# ---------------------------------------------------------------- every command runs
@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[workspace.ReadmeFiles]:
    made = workspace.ReadmeFiles(tmp_path_factory.mktemp("readme"))
    yield made
    made.close()


def _main(capsys: pytest.CaptureFixture[str], args: list[str]) -> str:
    rc = cli.main(args)
    captured = capsys.readouterr()
    assert rc == 0, f"singleshot {' '.join(args)}\nexit {rc}\n{captured.err[-3000:]}"
    return captured.out


def _run_args(mode_keys: set[str], given: list[str], tail: tuple[str, ...], project: str) -> list[str]:
    """``given`` plus ``tail`` and, where the mode reads them and the command does not set them,
    ``project=`` and ``workers=0``; ``device=cuda`` -> ``cpu`` without CUDA."""
    args = list(given)
    if not torch.cuda.is_available():
        args = ["device=cpu" if a.startswith("device=cuda") else a for a in args]
    keys = {a.partition("=")[0] for a in args}
    extra = [t for t in tail if t.partition("=")[0] not in keys]
    extra += [f"{k}={v}" for k, v in (("project", project), ("workers", "0")) if k in mode_keys and k not in keys]
    return args + extra


@pytest.mark.parametrize(("command", "words"), _cases())
def test_readme_command_runs(
    command: parse.ReadmeCommand,
    words: tuple[str, ...],
    files: workspace.ReadmeFiles,
    capsys: pytest.CaptureFixture[str],
) -> None:
    how = how_of(command)
    task, mode = words[:2]
    given = substituted(files, task, words[2:], how)
    capsys.readouterr()  # what building the stand-ins printed
    shown = yaml.safe_load(_main(capsys, [task, mode, *given, "show=config"]))  # the README's keys, checked
    assert isinstance(shown, dict) and shown
    if "show=config" in words or not how.runs:
        return  # the command is the check (or a torchrun line: the check is all)
    why = [reason for word, reason in how.config_only if word in words]
    if why:
        pytest.skip(f"{' '.join(words)}: keys checked by show=config, not run: {why[0]}")
    spec = cli.TASKS[task][mode]
    mode_keys = set(spec.keys(dict(a.partition("=")[::2] for a in given)))
    project = files.output(f"runs-{task}-{mode}")
    for tail in how.runs:
        out = _main(capsys, [task, mode, *_run_args(mode_keys, given, tail, project)])
        result = json.loads(out.strip().splitlines()[-1])
        assert isinstance(result, dict) and result, out[-2000:]
        if "dry_run=true" in tail or "dry_run=true" in words:
            assert result["dry_run"] is True and result["num_parameters"] > 0
            continue
        for key, value in how.expect:
            assert result[key] == pytest.approx(value), (key, result)
        for key in ("dst", "weights"):  # a convert's output, a trained run's weights
            assert key not in result or Path(result[key]).exists(), (key, result)
