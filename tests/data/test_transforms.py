"""SSD augmentation: boxes follow the pixels, and the tutorial bugs of REFERENCES.md section 1 are ruled out.

Bugs each test would catch:
- crop accepted only when *no* box centre is inside (inverted): ``test_iou_crop_keeps_centres``
  requires every crop to keep >= 1 box and crops to happen;
- box centre x compared with the crop's bottom: the same test uses a wide image whose box centres
  have x > image height, so such a comparison would never accept a crop;
- flip with a +1 pixel shift: ``test_flip_is_exact`` checks x1' = W - x2 to float precision.
"""

from __future__ import annotations

import pickle

import pytest
import torch
import torch.nn.functional as nnf
from torch.utils.data import DataLoader, Dataset
from torchvision import tv_tensors
from torchvision.ops import box_iou
from torchvision.transforms import v2

from singleshot.data.collate import collate_detection
from singleshot.data.transforms import (
    BatchedIoUCrop,
    DetectionTransform,
    build_eval_transform,
    build_train_transform,
    horizontal_flip,
    iou_crop,
    resize_to_float,
    sanitize_boxes,
    zoom_out,
)
from singleshot.structures import BoxTarget

MEAN = (0.485, 0.456, 0.406)


def _target(boxes: list[list[float]], h: int, w: int, labels: list[int] | None = None) -> BoxTarget:
    n = len(boxes)
    labels = labels if labels is not None else list(range(n))
    return BoxTarget(
        boxes=torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        labels=torch.tensor(labels, dtype=torch.int64),
        difficult=torch.tensor([lab % 2 == 1 for lab in labels], dtype=torch.bool),
        image_id="img",
        size=(h, w),
        orig_size=(h, w),
    )


def _coord_image(h: int, w: int) -> torch.Tensor:
    """uint8 image whose red channel is the column index and green channel the row index."""
    assert w <= 256 and h <= 256
    xs = torch.arange(w, dtype=torch.uint8).expand(h, w)
    ys = torch.arange(h, dtype=torch.uint8)[:, None].expand(h, w)
    return torch.stack((xs, ys, torch.zeros_like(xs)))


def test_flip_is_exact() -> None:
    image = torch.randint(0, 256, (3, 20, 100), dtype=torch.uint8)
    target = _target([[10.25, 5.0, 30.5, 20.0], [0.0, 0.0, 100.0, 7.5]], 20, 100)
    out, t = DetectionTransform(horizontal_flip(p=1.0))(image, target)
    assert torch.equal(out, image.flip(-1))
    expected = torch.tensor([[69.5, 5.0, 89.75, 20.0], [0.0, 0.0, 100.0, 7.5]])
    torch.testing.assert_close(t.boxes, expected, rtol=0, atol=1e-6)
    assert t.labels.tolist() == [0, 1] and t.size == (20, 100)


def test_iou_crop_keeps_centres() -> None:
    """Every crop must keep exactly the boxes whose centre lies inside it, clipped, and be accepted
    when it contains a centre. Box centres have x > image height (catches 'cx vs bottom')."""
    h, w = 100, 250
    image = _coord_image(h, w)
    boxes = [[150.0, 30.0, 210.0, 90.0], [200.0, 10.0, 240.0, 40.0], [120.0, 60.0, 140.0, 95.0]]
    target = _target(boxes, h, w)
    orig = target.boxes
    centres = (orig[:, :2] + orig[:, 2:]) / 2
    crop = DetectionTransform(v2.Compose([iou_crop(), sanitize_boxes()]))
    torch.manual_seed(0)
    n_cropped = 0
    for _ in range(150):
        out, t = crop(image, target)
        ch, cw = out.shape[1:]
        if (ch, cw) == (h, w):
            assert torch.equal(t.boxes, orig)  # the "keep the whole image" option
            continue
        n_cropped += 1
        left, top = int(out[0, 0, 0]), int(out[1, 0, 0])
        assert torch.equal(out, image[:, top : top + ch, left : left + cw])
        inside = (
            (centres[:, 0] > left) & (centres[:, 0] < left + cw) & (centres[:, 1] > top) & (centres[:, 1] < top + ch)
        )
        assert inside.any(), "a crop was accepted with no box centre inside it"
        assert t.labels.tolist() == inside.nonzero().flatten().tolist()
        assert t.difficult.tolist() == [lab % 2 == 1 for lab in t.labels.tolist()]
        shifted = orig[inside] - torch.tensor([left, top, left, top], dtype=torch.float32)
        clipped = shifted.clone()
        clipped[:, 0::2] = shifted[:, 0::2].clamp(0, cw)
        clipped[:, 1::2] = shifted[:, 1::2].clamp(0, ch)
        torch.testing.assert_close(t.boxes, clipped, rtol=0, atol=1e-5)
        # scale in [0.3, 1] per side, aspect ratio in [0.5, 2]
        assert 0.3 * w - 1 <= cw <= w and 0.3 * h - 1 <= ch <= h and 0.5 <= cw / ch <= 2.0
    assert n_cropped > 60  # 6 of the 7 options crop


def _crop_params(crop: v2.RandomIoUCrop, n: int) -> torch.Tensor:
    """n crops as rows (left, top, width, height, centre-inside flags...) on a fixed 100x200 sample."""
    image = tv_tensors.Image(torch.zeros((3, 100, 200), dtype=torch.uint8))
    boxes = tv_tensors.BoundingBoxes(
        torch.tensor([[20.0, 10.0, 120.0, 80.0], [130.0, 40.0, 190.0, 95.0], [5.0, 60.0, 30.0, 90.0]]),
        format="XYXY",
        canvas_size=(100, 200),
    )
    rows = []
    for _ in range(n):
        p = crop.make_params([image, boxes])
        rows.append(torch.tensor([p["left"], p["top"], p["width"], p["height"], *p["is_within_crop_area"].tolist()]))
    return torch.stack(rows).float()


@pytest.mark.parametrize("min_iou", [0.0, 0.5])
def test_batched_iou_crop_matches_torchvision(min_iou: float) -> None:
    """Same rule as torchvision's RandomIoUCrop: the IoU floor holds, and the crop statistics agree."""
    torch.manual_seed(0)
    ours = _crop_params(BatchedIoUCrop(sampler_options=[min_iou]), 300)
    ref = _crop_params(v2.RandomIoUCrop(sampler_options=[min_iou]), 300)
    boxes = torch.tensor([[20.0, 10.0, 120.0, 80.0], [130.0, 40.0, 190.0, 95.0], [5.0, 60.0, 30.0, 90.0]])
    rects = torch.cat((ours[:, :2], ours[:, :2] + ours[:, 2:4]), dim=1)
    inside = ours[:, 4:].bool()
    assert inside.any(dim=1).all()
    best = torch.where(inside, box_iou(rects, boxes), torch.tensor(-1.0)).amax(dim=1)
    assert (best >= min_iou).all()
    assert ((ours[:, 2] / ours[:, 3] >= 0.5) & (ours[:, 2] / ours[:, 3] <= 2.0)).all()
    # means of left, top, width, height and of each keep flag agree within 4.5 standard errors
    se = ((ours.var(dim=0) + ref.var(dim=0)) / 300).sqrt() + 1e-3
    assert ((ours.mean(dim=0) - ref.mean(dim=0)).abs() < 4.5 * se).all()


def test_iou_crop_without_boxes_terminates() -> None:
    image = torch.zeros((3, 50, 60), dtype=torch.uint8)
    torch.manual_seed(1)
    out, t = DetectionTransform(v2.Compose([iou_crop(), sanitize_boxes()]))(image, _target([], 50, 60))
    assert len(t) == 0 and out.shape[0] == 3


def test_zoom_out_fills_with_mean_and_shifts_boxes() -> None:
    h, w = 30, 40
    image = torch.full((3, h, w), 1, dtype=torch.uint8)
    target = _target([[2.0, 3.0, 12.5, 20.0]], h, w)
    torch.manual_seed(0)
    fill = torch.tensor([round(255 * m) for m in MEAN], dtype=torch.uint8)
    for _ in range(10):
        out, t = DetectionTransform(zoom_out(MEAN, max_scale=4.0, p=1.0))(image, target)
        H, W = out.shape[1:]
        assert h <= H <= 4 * h and w <= W <= 4 * w
        placed = (out == 1).all(dim=0)
        rows, cols = placed.any(dim=1).nonzero().flatten(), placed.any(dim=0).nonzero().flatten()
        top, left = int(rows[0]), int(cols[0])
        assert placed.sum() == h * w and len(rows) == h and len(cols) == w
        assert (out[:, ~placed] == fill[:, None]).all()
        torch.testing.assert_close(t.boxes, target.boxes + torch.tensor([left, top, left, top], dtype=torch.float32))


def _painted_sample(h: int = 120, w: int = 200) -> tuple[torch.Tensor, BoxTarget, list[torch.Tensor]]:
    """Noise background with three non-overlapping uniformly coloured boxes (integer edges)."""
    g = torch.Generator().manual_seed(0)
    image = torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=g)
    boxes = [[10, 10, 70, 60], [90, 30, 190, 110], [20, 75, 60, 115]]
    colors = [torch.tensor(c, dtype=torch.uint8) for c in ((250, 20, 20), (20, 240, 30), (30, 40, 230))]
    for (x1, y1, x2, y2), c in zip(boxes, colors):
        image[:, y1:y2, x1:x2] = c[:, None, None]
    return image, _target([[float(v) for v in b] for b in boxes], h, w, labels=[0, 1, 2]), colors


def _check_box_content(image: torch.Tensor, target: BoxTarget, colors: list[torch.Tensor] | None) -> int:
    """Inside each output box (shrunk by 2 px) the pixels are uniform, and equal the box's colour
    when ``colors`` is given; returns how many boxes were checked."""
    checked = 0
    for box, label in zip(target.boxes, target.labels):
        x1, y1 = int(box[0].ceil()) + 2, int(box[1].ceil()) + 2
        x2, y2 = int(box[2].floor()) - 2, int(box[3].floor()) - 2
        if x2 - x1 < 2 or y2 - y1 < 2:
            continue
        region = image[:, y1:y2, x1:x2].reshape(3, -1)
        assert (region.amax(dim=1) - region.amin(dim=1)).max() < 0.02, "box does not sit on its uniform patch"
        if colors is not None:
            ref = colors[int(label)].float() / 255
            assert (region.mean(dim=1) - ref).abs().max() < 0.01, "box sits on the wrong colour"
        checked += 1
    return checked


def test_train_pipeline_boxes_follow_pixels() -> None:
    """Zoom-out, IoU crop, flip and resize: every kept box still covers its own colour patch."""
    image, target, colors = _painted_sample()
    pipe = DetectionTransform(
        v2.Compose([zoom_out(MEAN), iou_crop(), horizontal_flip(), resize_to_float(96), sanitize_boxes()])
    )
    torch.manual_seed(0)
    checked = 0
    for _ in range(40):
        out, t = pipe(image, target)
        assert out.dtype == torch.float32 and tuple(out.shape) == (3, 96, 96)
        assert t.size == (96, 96) and t.orig_size == (120, 200) and t.image_id == "img"
        assert t.difficult.tolist() == [lab % 2 == 1 for lab in t.labels.tolist()]
        assert (t.boxes >= 0).all() and (t.boxes <= 96).all()
        assert ((t.boxes[:, 2:] - t.boxes[:, :2]) >= 1).all()
        checked += _check_box_content(out, t, colors)
    assert checked > 40


def test_full_train_transform_with_photometric() -> None:
    """With photometric distortion colours change, but each patch stays uniform under its box."""
    image, target, _ = _painted_sample()
    transform = build_train_transform(80, MEAN)
    torch.manual_seed(3)
    checked = 0
    for _ in range(15):
        out, t = transform(image, target)
        assert out.dtype == torch.float32 and tuple(out.shape) == (3, 80, 80)
        assert out.min() >= 0 and out.max() <= 1
        assert len(t.boxes) == len(t.labels) == len(t.difficult)
        checked += _check_box_content(out, t, None)
    assert checked > 10
    weak = build_train_transform(80, MEAN, strong=False)
    out, t = weak(image, target)
    assert len(t) == 3 and tuple(out.shape) == (3, 80, 80)


def test_train_transform_empty_target() -> None:
    image = torch.randint(0, 256, (3, 50, 70), dtype=torch.uint8)
    torch.manual_seed(0)
    for _ in range(5):
        out, t = build_train_transform(64, MEAN)(image, _target([], 50, 70))
        assert tuple(out.shape) == (3, 64, 64) and t.boxes.shape == (0, 4) and len(t.labels) == 0


def test_eval_transform_scales_exactly() -> None:
    image = torch.randint(0, 256, (3, 60, 90), dtype=torch.uint8)
    target = _target([[0.0, 0.0, 90.0, 60.0], [9.0, 6.0, 45.0, 30.0], [1.0, 1.0, 1.5, 1.2]], 60, 90)
    out, t = build_eval_transform(30)(image, target)
    ref = nnf.interpolate(image[None].float(), size=(30, 30), mode="bilinear", antialias=True, align_corners=False)[0]
    torch.testing.assert_close(out * 255, ref.clamp(0, 255), atol=1.0, rtol=0)
    scale = torch.tensor([30 / 90, 30 / 60, 30 / 90, 30 / 60])
    torch.testing.assert_close(t.boxes, target.boxes * scale)  # nothing dropped, even the tiny box
    assert t.labels.tolist() == [0, 1, 2] and t.size == (30, 30) and t.orig_size == (60, 90)


class _Painted(Dataset):
    def __init__(self, transform: DetectionTransform) -> None:
        self.transform = transform

    def __len__(self) -> int:
        return 8

    def __getitem__(self, i: int) -> tuple[torch.Tensor, BoxTarget]:
        image, target, _ = _painted_sample()
        target.image_id = str(i)
        return self.transform(image, target)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_transforms_pickle_and_run_in_workers() -> None:
    transform = build_train_transform(48, MEAN)
    clone = pickle.loads(pickle.dumps(transform))
    assert isinstance(clone, DetectionTransform)
    loader = DataLoader(_Painted(transform), batch_size=4, num_workers=2, collate_fn=collate_detection)
    seen = []
    for images, targets in loader:
        assert tuple(images.shape) == (4, 3, 48, 48) and len(targets) == 4
        seen += [t.image_id for t in targets]
    assert sorted(seen) == [str(i) for i in range(8)]
