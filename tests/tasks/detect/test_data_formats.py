"""``detect`` on VOC, COCO and YOLO data: ``detect check``, the check before train/val (bad=stop
and bad=skip with ``skipped.txt``), class lists from the data, ``detect convert`` of datasets
beside the weight converters, and equal ``val`` metrics on the three forms of one dataset."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from singleshot.cli import main
from singleshot.data.shapes import SHAPES_CLASSES, write_shapes_dataset
from singleshot.engine.weights import load_weights, save_weights
from singleshot.errors import ConfigError, DataError
from singleshot.models import create_model
from singleshot.tasks.detect.check import check
from singleshot.tasks.detect.convert import convert
from singleshot.tasks.detect.evaluate import val
from singleshot.tasks.detect.predictor import model_meta

pytestmark = pytest.mark.usefixtures("one_thread")
SIZE = 64


def _last_json(capsys: pytest.CaptureFixture[str]) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def _train(data: Path, project: Path, *extra: str) -> list[str]:
    return [
        "detect",
        "train",
        f"data={data}",
        "model=ssd_tiny",
        f"imgsz={SIZE}",
        "epochs=1",
        "batch=4",
        "workers=0",
        "augment=false",
        "warmup=0",
        "schedule=constant",
        "plot_every=0",
        f"project={project}",
        "name=run",
        *extra,
    ]


def _plant(root: Path) -> None:
    """Two corrupt images, a malformed XML and an unknown class in the training split."""
    voc = root / "VOC2007"
    (voc / "JPEGImages" / "000001.jpg").write_bytes(b"garbage" * 30)
    data = (voc / "JPEGImages" / "000002.jpg").read_bytes()
    (voc / "JPEGImages" / "000002.jpg").write_bytes(data[: len(data) // 2])
    (voc / "Annotations" / "000003.xml").write_text("<annotation><object><name>circle")
    xml = voc / "Annotations" / "000004.xml"
    xml.write_text(re.sub(r"<name>\w+</name>", "<name>zebra</name>", xml.read_text(), count=1))


def test_check_mode_lists_faults_then_stops_and_caches_clean_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = write_shapes_dataset(tmp_path / "voc", n_train=8, n_val=2, size=SIZE, seed=1)
    assert main(["detect", "check", f"data={root}"]) == 0
    got = _last_json(capsys)
    assert got["n_items"] == 10 and got["n_faults"] == 0 and not got["from_cache"]
    assert main(["detect", "check", f"data={root}"]) == 0
    assert _last_json(capsys)["from_cache"]

    _plant(root)
    assert main(["detect", "check", f"data={root}", f"classes={','.join(SHAPES_CLASSES)}"]) == 2
    captured = capsys.readouterr()
    for name in ("000001.jpg", "000002.jpg", "000003.xml", "zebra"):
        assert name in captured.out
    assert "4 fault(s) in 4 image(s)" in captured.err and "listed above" in captured.err
    with pytest.raises(DataError, match="listed above"):
        check({"data": str(root), "classes": ",".join(SHAPES_CLASSES)})


def test_train_stops_on_faults_or_skips_them_and_names_them(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write_shapes_dataset(tmp_path / "voc", n_train=8, n_val=2, size=SIZE, seed=1)
    _plant(root)
    assert main(_train(root, tmp_path, "train_set=train", "val_set=val")) == 2
    err = capsys.readouterr().err
    assert "dataset check found faults" in err and "000003.xml" in err and "bad=skip" in err

    # no classes=: the sorted names of the training annotations, zebra included (000004 keeps its box)
    assert main(_train(root, tmp_path, "train_set=train", "val_set=val", "bad=skip", "exist_ok=true")) == 0
    result = _last_json(capsys)
    out = Path(result["weights"]).parent
    skipped = (out / "skipped.txt").read_text()
    assert all(i in skipped for i in ("000001", "000002", "000003")) and "000004" not in skipped
    _, meta = load_weights(out / "best.safetensors")
    assert meta["classes"] == sorted([*SHAPES_CLASSES, "zebra"])


def test_unknown_class_error_names_the_classes_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write_shapes_dataset(tmp_path / "voc", n_train=4, n_val=2, size=SIZE, seed=1)
    args = _train(root, tmp_path, "classes=circle", "check=false")
    assert main(args) == 2
    assert "not in the class list (circle); set the class list with classes=" in capsys.readouterr().err


def test_convert_datasets_and_weights_share_the_mode(tmp_path: Path) -> None:
    root = write_shapes_dataset(tmp_path / "voc", n_train=4, n_val=2, size=SIZE, seed=1)
    got = convert({"from": "voc", "to": "yolo", "src": str(root), "dst": str(tmp_path / "y")})
    assert got["data"] == str(tmp_path / "y" / "data.yaml") and got["splits"]["val"]["images"] == 2
    with pytest.raises(ConfigError, match="to='kitti' is unknown"):
        convert({"from": "voc", "to": "kitti", "src": str(root), "dst": str(tmp_path / "k")})
    with pytest.raises(ConfigError, match="to='yolo' converts datasets"):
        convert({"from": "torchvision", "to": "yolo", "src": "x.pth", "dst": str(tmp_path / "w.safetensors")})
    with pytest.raises(ConfigError, match="from='darknet' is unknown.*voc, coco, yolo"):
        convert({"from": "darknet", "src": "x", "dst": str(tmp_path / "w.safetensors")})


@pytest.fixture(scope="module")
def three_forms(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path]]:
    """A weights file with confident priors, and one shapes dataset as VOC, YOLO and COCO (no
    difficult objects: YOLO has no such flag)."""
    root = tmp_path_factory.mktemp("forms")
    voc = write_shapes_dataset(root / "voc", n_train=4, n_val=6, size=SIZE, seed=2)
    for xml in (voc / "VOC2007" / "Annotations").glob("*.xml"):
        xml.write_text(xml.read_text().replace("<difficult>1</difficult>", "<difficult>0</difficult>"))
    yolo = Path(convert({"from": "voc", "to": "yolo", "src": str(voc), "dst": str(root / "yolo")})["data"])
    coco = Path(convert({"from": "yolo", "to": "coco", "src": str(yolo), "dst": str(root / "coco")})["data"])
    torch.manual_seed(0)
    model = create_model("ssd_tiny", len(SHAPES_CLASSES), image_size=SIZE)
    with torch.no_grad():
        for conv in model.head.conf:
            conv.weight.mul_(6.0)
    weights = root / "tiny.safetensors"
    save_weights(weights, model, model_meta(model, "ssd_tiny", {"image_size": SIZE}, SHAPES_CLASSES))
    return weights, {"voc": voc, "yolo": yolo, "coco": coco}


@pytest.mark.parametrize("metric", ["voc07", "coco"])
def test_val_metrics_are_equal_on_the_three_forms(
    three_forms: tuple[Path, dict[str, Path]], tmp_path: Path, metric: str
) -> None:
    """``detect val`` (the mode's function: the evaluation pictures are off, they take seconds)."""
    weights, forms = three_forms
    metrics = {}
    for name, data in forms.items():
        args = {"weights": str(weights), "data": str(data), "metric": metric, "workers": "0", "plots": "false"}
        metrics[name] = val({**args, "project": str(tmp_path / name)})
    assert 0 < metrics["voc"]["map50"] < 1
    for name in ("yolo", "coco"):
        for key in ("map50", "map") if metric == "coco" else ("map50",):
            assert metrics[name][key] == pytest.approx(metrics["voc"][key], abs=1e-6), (name, key)


def test_train_on_yolo_data_takes_the_yaml_names(
    three_forms: tuple[Path, dict[str, Path]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, forms = three_forms
    assert main(_train(forms["yolo"], tmp_path, "max_steps=1")) == 0, capsys.readouterr().err
    _, meta = load_weights(Path(_last_json(capsys)["weights"]))
    assert meta["classes"] == sorted(SHAPES_CLASSES)  # the yaml's names (VOC's sorted names, converted)
    assert main(["detect", "check", f"data={forms['coco']}"]) == 0
    assert _last_json(capsys)["n_items"] == 10


def test_the_check_changes_nothing_a_clean_run_trains(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """check=true (default) and check=false train bit-identical weights: the check draws no random
    numbers and reads the same items (what keeps the demos' metrics)."""
    root = write_shapes_dataset(tmp_path / "voc", n_train=8, n_val=2, size=SIZE, seed=4)
    classes = f"classes={','.join(SHAPES_CLASSES)}"
    states = []
    for check_flag in ("true", "false"):
        args = _train(root, tmp_path / check_flag, classes, "train_set=train", "val_set=val", f"check={check_flag}")
        assert main(args) == 0, capsys.readouterr().err
        states.append(load_weights(Path(_last_json(capsys)["weights"]))[0])
    assert states[0].keys() == states[1].keys()
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
