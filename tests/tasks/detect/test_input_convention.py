"""One input convention and one resize policy from ``pretrained=`` through training to val/predict.

Issue 17, points 4 and 7: a pretrained trunk brings its input convention (ssd.pytorch's reduced
VGG16 is Caffe's: BGR 0..255 minus (104, 117, 123)), training normalises with it and writes it into
the weights; the evaluation transform and the predictor resize alike (antialias true or false).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from singleshot.data.collate import collate_detection
from singleshot.data.input_spec import CONVENTIONS, InputSpec
from singleshot.data.shapes import SHAPES_CLASSES, write_shapes_dataset
from singleshot.data.transforms import build_eval_transform
from singleshot.engine.weights import load_weights
from singleshot.models import create_model
from singleshot.postprocess.detect import DetectPostprocess
from singleshot.structures import BoxTarget
from singleshot.tasks.common import make_config
from singleshot.tasks.detect.config import DetectConfig
from singleshot.tasks.detect.data import build_dataset
from singleshot.tasks.detect.predictor import DetectPredictor, model_meta
from singleshot.tasks.detect.train import train_detector, training_plan

pytestmark = pytest.mark.usefixtures("one_thread")

CAFFE_MEAN = [104 / 255, 117 / 255, 123 / 255]


@pytest.fixture(scope="module")
def reduced_trunk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fake ``vgg16_reducedfc.pth``: ssd.pytorch's key layout ("0.weight" .. "33.bias"), random values."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("trunk") / "vgg16_reducedfc.pth"
    torch.save(create_model("ssd300", 2).backbone.vgg.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_shapes_dataset(tmp_path_factory.mktemp("shapes"), n_train=2, n_val=1, size=64, seed=1)


def _cfg(data: Path, project: Path, *extra: str) -> DetectConfig:
    args = [
        f"data={data}",
        f"classes={','.join(SHAPES_CLASSES)}",
        "train_set=train",
        "val_set=val",
        "model=ssd300",
        "epochs=1",
        "batch=2",
        "workers=0",
        "augment=false",
        "warmup=0",
        "schedule=constant",
        f"project={project}",
        "name=run",
        "plot_every=0",
        *extra,
    ]
    return make_config(DetectConfig, dict(a.split("=", 1) for a in args))


def _predictor(model: torch.nn.Module, meta: dict) -> DetectPredictor:
    return DetectPredictor(model, meta, DetectPostprocess(), "cpu", channels_last=False)


@pytest.mark.parametrize("antialias", [True, False])
def test_eval_transform_then_normalise_is_what_the_predictor_feeds(antialias: bool) -> None:
    torch.manual_seed(0)
    image = torch.randint(0, 256, (3, 375, 500), dtype=torch.uint8)
    target = BoxTarget(
        boxes=torch.tensor([[10.0, 20.0, 300.0, 200.0]]),
        labels=torch.tensor([1]),
        difficult=torch.tensor([False]),
        image_id="x",
        size=(375, 500),
        orig_size=(375, 500),
    )
    model = create_model("ssd_tiny", 3, image_size=160)
    for name in CONVENTIONS:
        spec = InputSpec.named(name, 160, antialias)
        meta = model_meta(model, "ssd_tiny", {"image_size": 160}, ["a", "b", "c"], spec)
        assert meta["resize"] == {"interpolation": "bilinear", "antialias": antialias}
        evaluated, _ = build_eval_transform(160, antialias)(image, target)
        fed = _predictor(model, meta).preprocess([image])[0]
        torch.testing.assert_close(spec.normalize(evaluated), fed, atol=1e-5, rtol=0)
    # the policy matters: the two resizes of a 375x500 image differ by far more than the tolerance
    plain = build_eval_transform(160, False)(image, target)[0]
    smooth = build_eval_transform(160, True)(image, target)[0]
    assert (plain - smooth).abs().max() > 0.05


def test_weights_without_a_resize_key_resize_as_before() -> None:
    """Older files and converted foreign weights: plain bilinear, the normalisation applied before
    the resize (today's predictor) within float rounding."""
    torch.manual_seed(0)
    image = torch.randint(0, 256, (3, 375, 500), dtype=torch.uint8)
    model = create_model("ssd_tiny", 3, image_size=160)
    meta = {"input_size": [160, 160], "channel_order": "BGR", "mean": CAFFE_MEAN, "std": [1 / 255] * 3}
    old = (image.float() / 255).flip(0)
    old = (old - torch.tensor(CAFFE_MEAN).view(3, 1, 1)) / (1 / 255)
    old = torch.nn.functional.interpolate(old[None], size=(160, 160), mode="bilinear", align_corners=False)
    torch.testing.assert_close(_predictor(model, meta).preprocess([image]), old, atol=1e-3, rtol=0)


def test_reduced_trunk_brings_the_caffe_convention(reduced_trunk: Path, shapes: Path, tmp_path: Path) -> None:
    """ssd.pytorch's reduced trunk: training normalises BGR 0..255 minus (104, 117, 123), writes it
    into best.safetensors, and a training batch equals what the predictor feeds the same image."""
    cfg = _cfg(shapes, tmp_path, f"pretrained={reduced_trunk}")
    plan = training_plan(cfg, "cpu")
    assert plan.meta["channel_order"] == "BGR"
    assert plan.meta["mean"] == pytest.approx(CAFFE_MEAN) and plan.meta["std"] == pytest.approx([1 / 255] * 3)
    assert plan.meta["resize"] == {"interpolation": "bilinear", "antialias": True}
    raw = build_dataset(cfg, cfg.train_set, list(SHAPES_CLASSES))[0][0]
    images, _ = plan.prepare_batch(collate_detection([plan.train_set[0]]), torch.device("cpu"))
    predictor = _predictor(plan.model, plan.meta)
    # augment=false still flips with p=0.5: the batch is the predictor's input of the image or of its mirror
    diffs = [float((images[0] - predictor.preprocess([x])[0]).abs().max()) for x in (raw, raw.flip(-1))]
    assert min(diffs) <= 1e-5 and max(diffs) > 1.0, diffs
    # the zoom-out fill is the convention's mean in RGB order, in 0..255 units
    assert [round(255 * m) for m in InputSpec.from_meta(plan.meta).rgb_mean()] == [123, 117, 104]

    result = train_detector(cfg)
    assert result is not None
    _, saved = load_weights(Path(result["weights"]))
    assert saved["channel_order"] == "BGR" and saved["mean"] == pytest.approx(CAFFE_MEAN)
    assert saved["resize"] == {"interpolation": "bilinear", "antialias": True}


def test_input_norm_and_antialias_keys_override(reduced_trunk: Path, shapes: Path, tmp_path: Path) -> None:
    plan = training_plan(
        _cfg(shapes, tmp_path, f"pretrained={reduced_trunk}", "input_norm=ssd_pytorch", "antialias=false"), "cpu"
    )
    assert plan.meta["channel_order"] == "RGB" and plan.meta["mean"] == pytest.approx([123 / 255, 117 / 255, 104 / 255])
    assert plan.meta["resize"] == {"interpolation": "bilinear", "antialias": False}
    plan = training_plan(_cfg(shapes, tmp_path), "cpu")  # no pretrained file: ImageNet
    assert plan.meta["channel_order"] == "RGB" and plan.meta["mean"] == pytest.approx([0.485, 0.456, 0.406])
    with pytest.raises(ValueError, match="input_norm"):
        _cfg(shapes, tmp_path, "input_norm=bgr")
