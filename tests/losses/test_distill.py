from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from singleshot.engine.train_config import TrainConfig
from singleshot.engine.trainer import Trainer
from singleshot.losses.distill import (
    DistillLoss,
    FeatureAdapter,
    FeatureImitation,
    MapDistill,
    RegionLogits,
    SoftLabelKD,
    StudentWithTeacher,
    TeacherObjectnessMask,
    kd_loss,
    map_distill_loss,
)
from singleshot.models.aux_heads import deployable

pytestmark = pytest.mark.usefixtures("one_thread")


def _softmax(xs: list[float]) -> list[float]:
    m = max(xs)
    e = [math.exp(x - m) for x in xs]
    return [v / sum(e) for v in e]


def _kl_by_hand(s: list[float], t: list[float], temp: float) -> float:
    ps = _softmax([v / temp for v in s])
    pt = _softmax([v / temp for v in t])
    return sum(q * math.log(q / p) for q, p in zip(pt, ps))


def test_kd_loss_equals_hand_computation_with_t_squared_and_mask() -> None:
    s = [[1.0, 2.0, 0.0], [0.3, -0.7, 1.5], [4.0, 0.0, 0.0]]
    t = [[0.5, -1.0, 2.0], [1.0, 1.0, -2.0], [0.0, 0.0, 4.0]]
    temp = 2.0
    got = kd_loss(torch.tensor(s), torch.tensor(t), temperature=temp)
    want = temp**2 * sum(_kl_by_hand(a, b, temp) for a, b in zip(s, t)) / 3
    assert float(got) == pytest.approx(want, rel=1e-5)
    # a mask over [B, P] rows: only rows 0 and 2 count, the mean is over those two
    mask = torch.tensor([True, False, True])
    got_m = kd_loss(torch.tensor(s), torch.tensor(t), temperature=temp, mask=mask)
    want_m = temp**2 * (_kl_by_hand(s[0], t[0], temp) + _kl_by_hand(s[2], t[2], temp)) / 2
    assert float(got_m) == pytest.approx(want_m, rel=1e-5)
    # batched [B, P, K] logits with a [B, P] mask agree with the flat rows
    got_b = kd_loss(torch.tensor(s)[None], torch.tensor(t)[None], temperature=temp, mask=mask[None])
    assert float(got_b) == pytest.approx(want_m, rel=1e-5)
    # torch's own KL divergence as a second reference
    ref = (
        F.kl_div(
            F.log_softmax(torch.tensor(s) / temp, -1),
            F.log_softmax(torch.tensor(t) / temp, -1),
            reduction="batchmean",
            log_target=True,
        )
        * temp**2
    )
    assert float(got) == pytest.approx(float(ref), rel=1e-5)


def test_kd_loss_is_zero_for_equal_logits_and_empty_mask() -> None:
    s = torch.randn(2, 7, 5, requires_grad=True)
    loss = kd_loss(s, s.detach().clone(), temperature=3.0)
    loss.backward()
    assert float(loss.detach()) == pytest.approx(0.0, abs=1e-6)
    assert float(s.grad.abs().max()) < 1e-6
    empty = kd_loss(s, torch.randn(2, 7, 5), mask=torch.zeros(2, 7, dtype=torch.bool))
    assert float(empty.detach()) == 0.0 and empty.requires_grad


def test_t_squared_keeps_the_gradient_scale_at_high_temperature() -> None:
    """Hinton et al.: for large T the gradient of T²·KL w.r.t. the logits tends to (z_s - z_t)/K for
    zero-mean logits; without the T² factor it would shrink like 1/T²."""
    k = 4
    s = torch.tensor([[0.5, -0.2, 0.1, -0.4]], requires_grad=True)
    t = torch.tensor([[-0.3, 0.6, 0.0, -0.3]])
    kd_loss(s, t, temperature=200.0).backward()
    zs, zt = s.detach() - s.detach().mean(), t - t.mean()
    torch.testing.assert_close(s.grad, (zs - zt) / k, rtol=1e-2, atol=1e-5)


def test_kd_loss_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="temperature"):
        kd_loss(torch.zeros(1, 3), torch.zeros(1, 3), temperature=0.0)
    with pytest.raises(ValueError, match="teacher"):
        kd_loss(torch.zeros(1, 3), torch.zeros(1, 4))


def test_map_distill_loss_matches_torch_and_masks() -> None:
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(2, 1, 5, 6, generator=g), torch.randn(2, 1, 5, 6, generator=g)
    assert float(map_distill_loss(a, b)) == pytest.approx(float(F.mse_loss(a, b)), rel=1e-6)
    assert float(map_distill_loss(a, b, "smooth_l1")) == pytest.approx(float(F.smooth_l1_loss(a, b)), rel=1e-6)
    mask = torch.zeros(2, 1, 5, 6, dtype=torch.bool)
    mask[0, 0, 1, 2] = mask[1, 0, 4, 5] = True
    want = ((a[0, 0, 1, 2] - b[0, 0, 1, 2]) ** 2 + (a[1, 0, 4, 5] - b[1, 0, 4, 5]) ** 2) / 2
    assert float(map_distill_loss(a, b, mask=mask)) == pytest.approx(float(want), rel=1e-6)
    # MapDistill sums the per-map means over its keys
    out = {"pos": a, "width": a * 2, "teacher_pos": b, "teacher_width": b}
    want_sum = F.mse_loss(a, b) + F.mse_loss(a * 2, b)
    assert float(MapDistill(["pos", "width"])(out, None)) == pytest.approx(float(want_sum), rel=1e-6)


def test_feature_adapter_is_a_1x1_conv_and_resizes() -> None:
    ad = FeatureAdapter([3, 5], [4, 2])
    f0, f1 = torch.randn(2, 3, 6, 6), torch.randn(2, 5, 3, 3)
    y0, y1 = ad([f0, f1], sizes=[(6, 6), (5, 5)])
    conv = ad.convs[0]
    want0 = torch.einsum("oc,bchw->bohw", conv.weight[:, :, 0, 0], f0) + conv.bias.view(1, -1, 1, 1)
    torch.testing.assert_close(y0, want0, rtol=1e-5, atol=1e-5)
    raw1 = ad.convs[1](f1)
    torch.testing.assert_close(y1, F.interpolate(raw1, size=(5, 5), mode="bilinear", align_corners=False))
    imitation = FeatureImitation(2)({"feat_0": y0, "teacher_feat_0": y0 + 1, "feat_1": y1, "teacher_feat_1": y1}, None)
    assert float(imitation.detach()) == pytest.approx(0.5, rel=1e-6)  # mean of MSE 1 and MSE 0


class _DenseNet(nn.Module):
    """Conv-BN-ReLU then a 1x1 conv giving K logits for each of 2 anchors per cell: cls_logits [B, P, K]."""

    def __init__(self, width: int, k: int = 3) -> None:
        super().__init__()
        self.k = k
        self.body = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU())
        self.head = nn.Conv2d(width, 2 * k, 1)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        y = self.head(self.body(x))
        return {"cls_logits": y.permute(0, 2, 3, 1).reshape(x.shape[0], -1, self.k)}


def _ce(outputs: dict[str, Tensor], labels: Tensor) -> dict[str, Tensor]:
    assert not any(k.startswith("teacher_") for k in outputs), "the task loss must not see the teacher's outputs"
    return {"ce": F.cross_entropy(outputs["cls_logits"].reshape(-1, 3), labels.reshape(-1))}


def test_wrapper_keeps_teacher_frozen_and_out_of_the_state() -> None:
    student, teacher = _DenseNet(4), _DenseNet(8)
    teacher.train()
    model = StudentWithTeacher(student, teacher)
    assert not teacher.training and all(not p.requires_grad for p in teacher.parameters())
    model.train()
    assert model.training and student.training and not teacher.training
    assert set(model.state_dict()) == {f"student.{k}" for k in student.state_dict()}
    assert {id(p) for p in model.parameters()} == {id(p) for p in student.parameters()}
    out = model(torch.randn(2, 3, 4, 4))
    assert set(out) == {"cls_logits", "teacher_cls_logits"} and not out["teacher_cls_logits"].requires_grad
    copied = copy.deepcopy(model)  # the EMA's copy shares the teacher and copies the student
    assert copied.teacher is teacher and deployable(copied) is not student
    model.double()
    assert all(p.dtype == torch.float64 for p in teacher.parameters())


def test_teacher_outputs_equal_the_teacher_run_alone_in_eval() -> None:
    torch.manual_seed(0)
    student, teacher = _DenseNet(4), _DenseNet(8)
    teacher.body[1].running_mean.uniform_(-1, 1)
    x = torch.randn(2, 3, 5, 5)
    out = StudentWithTeacher(student, teacher, teacher_input=lambda v: 2 * v).train()(x)
    with torch.no_grad():
        want = copy.deepcopy(teacher).eval()(2 * x)["cls_logits"]
    torch.testing.assert_close(out["teacher_cls_logits"], want)


def test_trainer_step_leaves_the_teacher_unchanged(tmp_path: Path) -> None:
    torch.manual_seed(0)
    student, teacher = _DenseNet(4), _DenseNet(8)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}  # BatchNorm buffers included
    student_before = {k: v.clone() for k, v in student.state_dict().items()}
    model = StudentWithTeacher(student, teacher)
    loss = DistillLoss(_ce, {"kd": (0.5, SoftLabelKD("cls_logits", temperature=2.0))})
    data = TensorDataset(torch.randn(8, 3, 4, 4), torch.randint(0, 3, (8, 32)))
    cfg = TrainConfig(
        epochs=1, lr=0.1, out_dir=tmp_path, ema_decay=0.9, progress_bar=False, tensorboard=False, plot_every=0
    )
    trainer = Trainer(model, loss, DataLoader(data, batch_size=4), cfg, lambda b, d: (b[0].to(d), b[1].to(d)))
    trainer.train()
    assert trainer.iteration == 2 and set(trainer.step_losses) == {"ce", "kd", "total"}
    assert not teacher.training and all(not p.requires_grad and p.grad is None for p in teacher.parameters())
    for k, v in teacher.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert any(not torch.equal(v, student_before[k]) for k, v in student.state_dict().items())
    assert trainer.ema is not None and trainer.ema.module.teacher is teacher


def test_distill_loss_weights_terms_and_hides_wrapper_keys() -> None:
    s, t = torch.randn(2, 6, 3), torch.randn(2, 6, 3)
    labels = torch.randint(0, 3, (2, 6))
    outputs = {"cls_logits": s, "teacher_cls_logits": t}
    loss = DistillLoss(_ce, {"kd": (0.25, SoftLabelKD(temperature=3.0)), "off": (0.0, lambda o, y: 1 / 0)})
    got = loss(outputs, labels)
    assert set(got) == {"ce", "kd"}
    assert float(got["kd"]) == pytest.approx(0.25 * float(kd_loss(s, t, 3.0)), rel=1e-6)
    assert float(got["ce"]) == pytest.approx(float(F.cross_entropy(s.reshape(-1, 3), labels.reshape(-1))), rel=1e-6)
    multi = DistillLoss(_ce, {"aux": (0.4, lambda o, y: {"loc": torch.tensor(1.0), "conf": torch.tensor(2.0)})})(
        outputs, labels
    )
    assert float(multi["aux_loc"]) == pytest.approx(0.4) and float(multi["aux_conf"]) == pytest.approx(0.8)
    with pytest.raises(ValueError, match="collides"):
        DistillLoss(_ce, {"ce": (1.0, lambda o, y: torch.tensor(0.0))})(outputs, labels)
    with pytest.raises(ValueError, match=">= 0"):
        DistillLoss(_ce, {"kd": (-1.0, SoftLabelKD())})


def test_soft_label_kd_maps_teacher_priors_and_masks_invalid_ones() -> None:
    s, t = torch.randn(2, 4, 3), torch.randn(2, 5, 3)
    index = torch.tensor([4, 0, 0, 2])
    valid = torch.tensor([True, True, False, True])
    got = SoftLabelKD(temperature=2.0, teacher_index=index, teacher_valid=valid)(
        {"cls_logits": s, "teacher_cls_logits": t}, None
    )
    rows = [(b, p) for b in range(2) for p in range(4) if valid[p]]
    want = sum(4.0 * _kl_by_hand(s[b, p].tolist(), t[b, index[p]].tolist(), 2.0) for b, p in rows) / len(rows)
    assert float(got) == pytest.approx(want, rel=1e-5)


def test_region_kd_pieces_slice_yowo_outputs_by_hand() -> None:
    """YOWO layout: channel a·(5+C) + j of cell (r, c) is value j of anchor a; j = 4 objectness, 5.. classes."""
    a, c, h, w = 2, 3, 2, 3
    out = torch.randn(1, a * (5 + c), h, w)
    teacher = torch.full((1, a * (5 + c), h, w), -5.0)
    teacher[0, 1 * (5 + c) + 4, 1, 2] = 5.0  # the teacher sees an object at anchor 1, cell (1, 2) only
    logits = RegionLogits(a, c)(out)
    assert logits.shape == (1, a * h * w, c)
    for ai in range(a):
        for r in range(h):
            for col in range(w):
                row = (ai * h + r) * w + col
                torch.testing.assert_close(logits[0, row], out[0, ai * (5 + c) + 5 : (ai + 1) * (5 + c), r, col])
    mask = TeacherObjectnessMask(a, c)({"teacher_out": teacher}, None)
    assert mask.shape == (1, a * h * w) and mask.sum() == 1 and bool(mask[0, (1 * h + 1) * w + 2])
    term = SoftLabelKD("out", 2.0, mask_fn=TeacherObjectnessMask(a, c), logits_fn=RegionLogits(a, c))
    got = term({"out": out, "teacher_out": teacher}, None)
    s_row = out[0, 1 * (5 + c) + 5 : 2 * (5 + c), 1, 2].tolist()
    t_row = teacher[0, 1 * (5 + c) + 5 : 2 * (5 + c), 1, 2].tolist()
    assert float(got) == pytest.approx(4.0 * _kl_by_hand(s_row, t_row, 2.0), rel=1e-5)
