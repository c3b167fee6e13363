"""The auxiliary multibox loss of the SSD auxiliary head: over all priors it is the multibox loss,
and it trains the tapped levels on the main head's matching."""

from __future__ import annotations

import pytest
import torch

from singleshot.losses.multibox import AuxMultiBoxLoss, MultiBoxLoss
from singleshot.models.aux_heads import WithAuxHead
from singleshot.models.tiny import ssd_tiny
from singleshot.structures import BoxTarget

pytestmark = pytest.mark.usefixtures("one_thread")


def _target(boxes: list[list[float]], labels: list[int], size: int) -> BoxTarget:
    return BoxTarget(
        boxes=torch.tensor(boxes),
        labels=torch.tensor(labels),
        difficult=torch.zeros(len(labels), dtype=torch.bool),
        size=(size, size),
        orig_size=(size, size),
    )


def test_aux_loss_over_all_priors_equals_the_multibox_loss() -> None:
    det = ssd_tiny(3, image_size=96)
    g = torch.Generator().manual_seed(1)
    p = det.priors.shape[0]
    logits, reg = torch.randn(2, p, 4, generator=g), torch.randn(2, p, 4, generator=g)
    targets = [_target([[10, 12, 40, 50], [50, 20, 90, 70]], [0, 2], 96), _target([[30, 30, 60, 62]], [1], 96)]
    main = MultiBoxLoss(det.priors)({"cls_logits": logits, "bbox_regression": reg}, targets)
    aux = AuxMultiBoxLoss(det.priors, torch.arange(p))({"aux_cls_logits": logits, "aux_bbox_regression": reg}, targets)
    for k in ("loc", "conf"):
        assert float(aux[k]) == pytest.approx(float(main[k]), rel=1e-5)


def test_aux_loss_uses_the_main_matching_not_a_forced_one() -> None:
    """A large object is matched to deep-level priors only: the auxiliary head (levels 0, 1) gets no
    positive for it, where matching its priors alone would force the best of them onto the object."""
    det = ssd_tiny(3, image_size=96)
    wrapped = WithAuxHead(det)
    idx = wrapped.prior_index
    pa = idx.numel()
    out = {"aux_cls_logits": torch.randn(1, pa, 4), "aux_bbox_regression": torch.randn(1, pa, 4)}
    big = [_target([[4, 4, 92, 92]], [1], 96)]
    got = AuxMultiBoxLoss(det.priors, idx)(out, big)
    assert float(got["loc"]) == 0.0 and float(got["conf"]) == 0.0
    forced = MultiBoxLoss(det.priors[idx])(
        {"cls_logits": out["aux_cls_logits"], "bbox_regression": out["aux_bbox_regression"]}, big
    )
    assert float(forced["loc"]) > 0.0
    small = [_target([[20, 20, 32, 33]], [1], 96)]  # ~0.13 of the side: level-0 priors (scale 0.1-0.2)
    assert float(AuxMultiBoxLoss(det.priors, idx)(out, small)["loc"]) > 0.0
