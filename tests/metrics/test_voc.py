"""VOC AP: hand-computed cases, the devkit rules, a published worked example, and an independent loop."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from singleshot.errors import ConfigError
from singleshot.metrics.voc import VOCEvaluator, evaluate_class, match_class, voc_ap
from singleshot.structures import BoxTarget, Detections

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


def _eval(dets, gts, difficult=None, thr=0.5, use_07=False, plus_one=False):
    """dets: list of (score, box); gts: list of boxes; one image."""
    d = np.array([b for _, b in dets], dtype=float).reshape(-1, 4)
    s = np.array([sc for sc, _ in dets], dtype=float)
    g = np.array(gts, dtype=float).reshape(-1, 4)
    diff = np.zeros(len(gts), bool) if difficult is None else np.array(difficult, bool)
    return evaluate_class(np.zeros(len(d), int), s, d, np.zeros(len(g), int), g, diff, thr, use_07, plus_one)


# --- hand-computed cases -------------------------------------------------------------------------

G1, G2 = [0, 0, 10, 10], [20, 20, 30, 30]
FOUR = [(0.9, G1), (0.8, [0, 0, 10, 9]), (0.7, [50, 50, 60, 60]), (0.6, G2)]


def test_tp_duplicate_fp_by_hand() -> None:
    r = _eval(FOUR, [G1, G2])
    # d1 TP on G1, d2 duplicate of G1 -> FP, d3 far -> FP, d4 TP on G2.
    assert r.tp.tolist() == [True, False, False, True]
    assert r.fp.tolist() == [False, True, True, False]
    np.testing.assert_allclose(r.precision, [1, 1 / 2, 1 / 3, 1 / 2])
    np.testing.assert_allclose(r.recall, [0.5, 0.5, 0.5, 1.0])
    # all-point: 0.5 * 1 (recall 0 -> 0.5) + 0.5 * 0.5 (recall 0.5 -> 1).
    assert r.ap == pytest.approx(0.75)
    r07 = _eval(FOUR, [G1, G2], use_07=True)
    # t = 0 .. 0.5 -> precision 1 (6 points); t = 0.6 .. 1 -> 0.5 (5 points).
    assert r07.ap == pytest.approx((6 * 1 + 5 * 0.5) / 11)


def test_ranking_is_by_score_not_input_order() -> None:
    shuffled = [FOUR[2], FOUR[3], FOUR[0], FOUR[1]]
    assert _eval(shuffled, [G1, G2]).ap == pytest.approx(0.75)


def test_difficult_is_ignored_and_not_a_positive() -> None:
    g3 = [40, 40, 50, 50]
    dets = [(0.95, g3)] + FOUR + [(0.5, [40, 40, 50, 49])]
    r = _eval(dets, [G1, G2, g3], difficult=[False, False, True])
    assert r.n_pos == 2
    # the two detections on the difficult box are neither TP nor FP (even the second one).
    assert r.tp.tolist() == [False, True, False, False, True, False]
    assert r.fp.tolist() == [False, False, True, True, False, False]
    assert r.ap == pytest.approx(0.75)


def test_devkit_takes_best_box_even_if_already_matched() -> None:
    a, b = [0, 0, 10, 10], [2, 0, 12, 10]
    # d2 overlaps a (IoU .905) more than b (IoU .739 >= .5): a is taken -> duplicate FP (COCO would use b).
    r = _eval([(0.9, a), (0.8, [0.5, 0, 10.5, 10])], [a, b])
    assert r.tp.tolist() == [True, False] and r.fp.tolist() == [False, True]
    assert r.ap == pytest.approx(0.5)


def test_plus_one_changes_iou_at_the_edge() -> None:
    gt, det = [0, 0, 9, 9], [0, 0, 9, 4]
    # without +1: 36 / 81 = 0.444 < 0.5 -> FP; with +1: 50 / 100 = 0.5 -> TP.
    assert _eval([(0.9, det)], [gt], plus_one=False).tp.tolist() == [False]
    assert _eval([(0.9, det)], [gt], plus_one=True).tp.tolist() == [True]
    assert _eval([(0.9, det)], [gt], plus_one=True).ap == pytest.approx(1.0)


def test_voc_ap_formulas_by_hand() -> None:
    rec = np.array([0.2, 0.4, 0.4, 0.6])
    prec = np.array([1.0, 0.5, 0.4, 0.6])
    # all-point: envelope 1 on (0, .2], .6 on (.2, .6], 0 after: .2 + .4 * .6 = .44.
    assert voc_ap(rec, prec, use_07=False) == pytest.approx(0.44)
    # 11-point: t=0,.1,.2 -> 1; t=.3..0.6 -> .6 (4 points); t=.7..1 -> 0. (3 + 2.4) / 11.
    assert voc_ap(rec, prec, use_07=True) == pytest.approx(5.4 / 11)
    assert voc_ap(np.array([0.3]), np.array([1.0]), use_07=True) == pytest.approx(4 / 11)  # exact 0.3 counts
    assert voc_ap(np.zeros(0), np.zeros(0), use_07=False) == 0.0


def test_no_positive_class_is_nan_and_excluded() -> None:
    ev = VOCEvaluator(["a", "b", "c"], use_07=False)
    t = BoxTarget(
        boxes=torch.tensor([[0, 0, 10, 10], [20, 20, 30, 30]], dtype=torch.float32),
        labels=torch.tensor([0, 2]),
        difficult=torch.tensor([False, True]),
        image_id="x",
    )
    p = Detections(
        boxes=torch.tensor([[0, 0, 10, 10], [20, 20, 30, 30], [5, 5, 9, 9]], dtype=torch.float32),
        scores=torch.tensor([0.9, 0.8, 0.7]),
        labels=torch.tensor([0, 2, 1]),
        image_id="x",
    )
    ev.process([p], [t])
    out = ev.compute()
    assert out["per_class"]["a"] == pytest.approx(1.0)
    assert math.isnan(out["per_class"]["b"]) and math.isnan(out["per_class"]["c"])  # no non-difficult gt
    assert out["map50"] == pytest.approx(1.0) and out["n_images"] == 1
    ev.reset()
    assert ev.compute()["n_images"] == 0


def test_resized_targets_are_scaled_to_the_original_image() -> None:
    ev = VOCEvaluator(["a"], use_07=False, plus_one=False)
    t = BoxTarget(
        boxes=torch.tensor([[10.0, 10.0, 30.0, 30.0]]),
        labels=torch.tensor([0]),
        difficult=torch.tensor([False]),
        image_id="i",
        size=(100, 100),
        orig_size=(200, 400),
    )
    p = Detections(
        boxes=torch.tensor([[40.0, 20.0, 120.0, 60.0]]), scores=torch.tensor([0.5]), labels=torch.tensor([0])
    )
    ev.process([p], [t])
    assert ev.compute()["map50"] == pytest.approx(1.0)


# --- VOC2007 recall thresholds: exact k/10 (default) or np.arange(0, 1.1, 0.1) (the Python ports) ---


def _ssd_pytorch_voc_ap07(rec: np.ndarray, prec: np.ndarray) -> float:
    """ssd.pytorch eval.py ``voc_ap(rec, prec, use_07_metric=True)``, restated line by line."""
    ap = 0.0
    for t in np.arange(0.0, 1.1, 0.1):
        if np.sum(rec >= t) == 0:
            p = 0
        else:
            p = np.max(prec[rec >= t])
        ap = ap + p / 11.0
    return float(ap)


@pytest.mark.parametrize(
    ("tp", "n_pos", "precision", "exact", "arange"),
    [
        # recall 3/10 == 0.3 (the double nearest 0.3) < arange's 0.30000000000000004:
        # exact: t = 0, .1, .2, .3 reach precision 1 -> 4 / 11; arange: t = 0, .1, .2 only -> 3 / 11.
        (3, 10, 1.0, 4 / 11, 3 / 11),
        # recall 6/10 == 0.6 < arange's 0.6000000000000001:
        # exact: t = 0 .. .6 (7 points) at .5 -> 3.5 / 11; arange: t = 0 .. .5 (6 points) -> 3 / 11.
        (6, 10, 0.5, 3.5 / 11, 3 / 11),
        # recall 7/10 == 0.7 < arange's 0.7000000000000001:
        # exact: t = 0 .. .7 (8 points) at 1 -> 8 / 11; arange: t = 0 .. .6 (7 points) -> 7 / 11.
        (7, 10, 1.0, 8 / 11, 7 / 11),
    ],
)
def test_voc07_exact_and_arange_thresholds_by_hand(
    tp: int, n_pos: int, precision: float, exact: float, arange: float
) -> None:
    rec = np.array([float(tp)]) / n_pos  # as evaluate_class computes it: ctp / n_pos
    prec = np.array([precision])
    assert voc_ap(rec, prec, use_07=True, thresholds="exact") == pytest.approx(exact, abs=1e-12)
    assert voc_ap(rec, prec, use_07=True, thresholds="arange") == pytest.approx(arange, abs=1e-12)
    assert voc_ap(rec, prec, use_07=True) == pytest.approx(exact, abs=1e-12)  # the default stays exact
    assert voc_ap(rec, prec, use_07=True, thresholds="arange") == pytest.approx(
        _ssd_pytorch_voc_ap07(rec, prec), abs=1e-12
    )
    # the all-point AP has no thresholds: both give the same area.
    assert voc_ap(rec, prec, use_07=False, thresholds="arange") == voc_ap(rec, prec, use_07=False)


# Ten boxes (one class, one image) and nine ranked detections: TP TP TP FP TP TP TP FP TP.
TEN_GT = [[20.0 * k, 0.0, 20.0 * k + 10.0, 10.0] for k in range(10)]
RANKED = ["tp", "tp", "tp", "fp", "tp", "tp", "tp", "fp", "tp"]
# recall    .1 .2 .3 .3  .4  .5  .6  .6  .7
# precision  1  1  1 3/4 4/5 5/6 6/7 3/4 7/9
# exact k/10:  t = 0, .1, .2, .3 -> 1 (4 points); t = .4, .5, .6 -> max(4/5, 5/6, 6/7, ...) = 6/7 (3 points);
#              t = .7 -> 7/9; t = .8, .9, 1 -> 0.            AP = (4 + 3 * 6/7 + 7/9) / 11 = 0.668110
# arange:      t = 0, .1, .2 -> 1 (3 points); t = .3+, .4, .5 -> 6/7 (recall .3 misses .30000000000000004);
#              t = .6+ -> 7/9 (recall .6 misses .6000000000000001); t = .7+ -> 0 (recall .7 misses
#              .7000000000000001); t = .8, .9, 1 -> 0.       AP = (3 + 3 * 6/7 + 7/9) / 11 = 0.577201
RANKED_EXACT = (4 + 3 * 6 / 7 + 7 / 9) / 11
RANKED_ARANGE = (3 + 3 * 6 / 7 + 7 / 9) / 11


def _ranked_detections() -> tuple[np.ndarray, np.ndarray]:
    """Scores [9] (descending) and boxes [9, 4]: the TPs sit on the boxes in order, the FPs far away."""
    boxes, k = [], 0
    for kind in RANKED:
        if kind == "tp":
            boxes.append(TEN_GT[k])
            k += 1
        else:
            boxes.append([500.0, 500.0, 510.0, 510.0])
    return np.linspace(0.9, 0.5, len(RANKED)), np.array(boxes)


def test_voc07_thresholds_on_a_ranked_list_by_hand() -> None:
    scores, boxes = _ranked_detections()
    args = (np.zeros(9, int), scores, boxes, np.zeros(10, int), np.array(TEN_GT), np.zeros(10, bool), 0.5)
    exact = evaluate_class(*args, use_07=True, thresholds="exact")
    np.testing.assert_allclose(exact.recall, [0.1, 0.2, 0.3, 0.3, 0.4, 0.5, 0.6, 0.6, 0.7])
    np.testing.assert_allclose(exact.precision, [1, 1, 1, 3 / 4, 4 / 5, 5 / 6, 6 / 7, 3 / 4, 7 / 9])
    assert exact.ap == pytest.approx(RANKED_EXACT, abs=1e-12)
    arange = evaluate_class(*args, use_07=True, thresholds="arange")
    assert arange.ap == pytest.approx(RANKED_ARANGE, abs=1e-12)
    assert arange.ap == pytest.approx(_ssd_pytorch_voc_ap07(arange.recall, arange.precision), abs=1e-12)
    assert evaluate_class(*args, use_07=True).ap == pytest.approx(RANKED_EXACT, abs=1e-12)  # default


def test_voc07_arange_equals_ssd_pytorch_loop_on_random_curves() -> None:
    rng = np.random.default_rng(0)
    differ = 0
    for _ in range(200):
        n_pos = int(rng.choice([10, 20, 7, 13]))
        tp = rng.random(int(rng.integers(1, 30))) < 0.6
        ctp = np.cumsum(tp, dtype=np.float64)
        rec = ctp / n_pos
        prec = ctp / np.arange(1, tp.size + 1, dtype=np.float64)
        got = voc_ap(rec, prec, use_07=True, thresholds="arange")
        assert got == pytest.approx(_ssd_pytorch_voc_ap07(rec, prec), abs=1e-12)
        differ += not math.isclose(got, voc_ap(rec, prec, use_07=True), abs_tol=1e-12)
    assert differ > 10  # recalls of exactly .3 / .6 / .7 (n_pos 10 or 20) do occur


def test_voc07_evaluator_passes_thresholds_down() -> None:
    scores, boxes = _ranked_detections()
    target = BoxTarget(
        boxes=torch.tensor(TEN_GT),
        labels=torch.zeros(10, dtype=torch.int64),
        difficult=torch.zeros(10, dtype=torch.bool),
        image_id="x",
    )
    pred = Detections(
        boxes=torch.tensor(boxes, dtype=torch.float32),
        scores=torch.tensor(scores, dtype=torch.float32),
        labels=torch.zeros(9, dtype=torch.int64),
        image_id="x",
    )
    maps = {}
    for thresholds in ("exact", "arange", None):
        kwargs = {} if thresholds is None else {"thresholds": thresholds}
        ev = VOCEvaluator(["a"], use_07=True, plus_one=False, **kwargs)
        ev.process([pred], [target])
        maps[thresholds] = ev.compute()["map50"]
    assert maps["exact"] == pytest.approx(RANKED_EXACT, abs=1e-9)
    assert maps["arange"] == pytest.approx(RANKED_ARANGE, abs=1e-9)
    assert maps[None] == maps["exact"]


def test_voc07_unknown_thresholds_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"thresholds='linspace' is unknown.*'exact'.*'arange'"):
        voc_ap(np.array([0.5]), np.array([1.0]), use_07=True, thresholds="linspace")
    with pytest.raises(ConfigError, match="thresholds='Exact'"):
        VOCEvaluator(["a"], use_07=True, thresholds="Exact")


# --- published worked example (rafaelpadilla/Object-Detection-Metrics) ---------------------------


def _read_odm(root: Path):
    di, ds, db, gi, gb = [], [], [], [], []
    for k, f in enumerate(sorted((root / "groundtruths").glob("*.txt"))):
        for line in f.read_text().splitlines():
            if line.strip():
                _, x, y, w, h = line.split()
                x, y, w, h = map(float, (x, y, w, h))
                gi.append(k)
                gb.append([x, y, x + w, y + h])
        for line in (root / "detections" / f.name).read_text().splitlines():
            if line.strip():
                _, s, x, y, w, h = line.split()
                x, y, w, h = map(float, (x, y, w, h))
                di.append(k)
                ds.append(float(s))
                db.append([x, y, x + w, y + h])
    return np.array(di), np.array(ds), np.array(db), np.array(gi), np.array(gb)


def test_published_worked_example() -> None:
    root = DATA / "odm"
    if not root.is_dir():
        pytest.skip(f"Object-Detection-Metrics sample not found: {root}")
    di, ds, db, gi, gb = _read_odm(root)
    diff = np.zeros(len(gi), bool)
    # The published example uses IoU threshold 0.3 and the +1 pixel convention.
    r = evaluate_class(di, ds, db, gi, gb, diff, 0.3, use_07=False, plus_one=True)
    assert round(r.ap * 100, 2) == 24.57  # results/results.txt
    r07 = evaluate_class(di, ds, db, gi, gb, diff, 0.3, use_07=True, plus_one=True)
    assert round(r07.ap * 100, 2) == 26.84  # README, 11-point
    text = (root / "results" / "results.txt").read_text()
    pub_p = [float(v) for v in text.split("Precision: [")[1].split("]")[0].replace("'", "").split(",")]
    pub_r = [float(v) for v in text.split("Recall: [")[1].split("]")[0].replace("'", "").split(",")]
    np.testing.assert_allclose(np.round(r.precision, 2), pub_p)
    np.testing.assert_allclose(np.round(r.recall, 2), pub_r)


# --- independent devkit-style loop on random data ------------------------------------------------


def _devkit_loop(dets, gts, n_cls, thr, use_07, plus_one):
    """dets: list of (img, cls, score, box) in input order; gts: list of (img, cls, box, difficult)."""
    one = 1.0 if plus_one else 0.0
    aps = []
    for c in range(n_cls):
        g = {}
        npos = 0
        for img, cls, box, dif in gts:
            if cls == c:
                g.setdefault(img, []).append([box, dif, False])
                npos += 0 if dif else 1
        cd = sorted([d for d in dets if d[1] == c], key=lambda d: -d[2])  # Python sort is stable
        tp, fp = [], []
        for img, _, _, bb in cd:
            ovmax, jmax = -math.inf, -1
            for j, (bg, _, _) in enumerate(g.get(img, [])):
                iw = min(bb[2], bg[2]) - max(bb[0], bg[0]) + one
                ih = min(bb[3], bg[3]) - max(bb[1], bg[1]) + one
                if iw > 0 and ih > 0:
                    ua = (
                        (bb[2] - bb[0] + one) * (bb[3] - bb[1] + one)
                        + (bg[2] - bg[0] + one) * (bg[3] - bg[1] + one)
                        - iw * ih
                    )
                    if iw * ih / ua > ovmax:
                        ovmax, jmax = iw * ih / ua, j
            if ovmax >= thr:
                rec = g[img][jmax]
                if rec[1]:
                    tp.append(0), fp.append(0)
                elif not rec[2]:
                    rec[2] = True
                    tp.append(1), fp.append(0)
                else:
                    tp.append(0), fp.append(1)
            else:
                tp.append(0), fp.append(1)
        if npos == 0:
            aps.append(math.nan)
            continue
        ctp = np.cumsum(tp, dtype=float)
        cfp = np.cumsum(fp, dtype=float)
        rec = ctp / npos
        prec = np.divide(ctp, ctp + cfp, out=np.zeros_like(ctp), where=(ctp + cfp) > 0)
        if use_07:
            ap = 0.0
            for k in range(11):
                p = [prec[i] for i in range(len(rec)) if rec[i] >= k / 10]
                ap += (max(p) if p else 0.0) / 11
        else:
            # area: for each new recall level, the best precision at that recall or beyond.
            ap, prev = 0.0, 0.0
            for i in range(len(rec)):
                if rec[i] > prev:
                    ap += (rec[i] - prev) * max(prec[i:])
                    prev = rec[i]
        aps.append(ap)
    return aps


def _random_case(seed: int, n_img: int = 40, n_cls: int = 3):
    rng = np.random.default_rng(seed)
    targets, preds, flat_d, flat_g = [], [], [], []
    for i in range(n_img):
        ng = int(rng.integers(0, 6))
        xy = rng.uniform(0, 80, (ng, 2))
        wh = rng.uniform(4, 40, (ng, 2))
        gb = np.round(np.concatenate([xy, xy + wh], 1))
        gl = rng.integers(0, n_cls, ng)
        gd = rng.random(ng) < 0.2
        # detections: jittered copies (some twice) and random boxes; scores with ties.
        src = np.concatenate([gb, gb[rng.random(ng) < 0.4]]) if ng else np.zeros((0, 4))
        srcl = np.concatenate([gl, gl[: len(src) - ng]]) if ng else np.zeros(0, int)
        jit = src + rng.normal(0, 3, src.shape)
        nr = int(rng.integers(0, 4))
        rxy = rng.uniform(0, 80, (nr, 2))
        rb = np.concatenate([rxy, rxy + rng.uniform(4, 40, (nr, 2))], 1)
        db = np.round(np.concatenate([jit, rb]), 1)
        dl = np.concatenate([srcl, rng.integers(0, n_cls, nr)]).astype(int)
        ds = np.round(rng.random(len(db)), 1)
        targets.append(BoxTarget(torch.tensor(gb, dtype=torch.float32), torch.tensor(gl), torch.tensor(gd), f"im{i}"))
        f = torch.float32
        preds.append(Detections(torch.tensor(db, dtype=f), torch.tensor(ds, dtype=f), torch.tensor(dl), f"im{i}"))
        f32 = lambda a: np.asarray(a, dtype=np.float32).astype(float).tolist()  # noqa: E731
        flat_g += [(i, int(c), b, bool(d)) for c, b, d in zip(gl, f32(gb), gd)]
        flat_d += [(i, int(c), float(s), b) for c, s, b in zip(dl, np.float32(ds), f32(db))]
    return targets, preds, flat_d, flat_g


@pytest.mark.parametrize("use_07", [True, False])
@pytest.mark.parametrize("plus_one", [True, False])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_devkit_loop_on_random_data(seed: int, use_07: bool, plus_one: bool) -> None:
    targets, preds, flat_d, flat_g = _random_case(seed)
    ev = VOCEvaluator(["a", "b", "c"], use_07=use_07, plus_one=plus_one)
    ev.process(preds[:15], targets[:15])  # two batches
    ev.process(preds[15:], targets[15:])
    out = ev.compute()
    ref = _devkit_loop(flat_d, flat_g, 3, 0.5, use_07, plus_one)
    got = [out["per_class"][n] for n in "abc"]
    np.testing.assert_allclose(got, ref, atol=1e-12)
    assert out["map50"] == pytest.approx(np.nanmean(ref), abs=1e-12)
    assert sum(len(t) for t in targets) > 50 and any(bool(t.difficult.any()) for t in targets)


def test_match_class_handles_empty_inputs() -> None:
    order, tp, fp = match_class(np.zeros(2, int), np.array([0.1, 0.2]), np.zeros((2, 4)), [], np.zeros((0, 4)), [])
    assert order.tolist() == [1, 0] and not tp.any() and fp.all()
    order, tp, fp = match_class([], [], np.zeros((0, 4)), [0], [[0, 0, 1, 1]], [False])
    assert order.size == tp.size == fp.size == 0


def test_5000_images_20_classes_is_fast() -> None:
    rng = np.random.default_rng(0)
    n_img, n_cls, n_det = 5000, 20, 100
    ev = VOCEvaluator([str(c) for c in range(n_cls)], use_07=True)
    gxy = torch.from_numpy(rng.uniform(0, 400, (n_img, 3, 2))).float()
    gb = torch.cat([gxy, gxy + 50], -1)
    dxy = torch.from_numpy(rng.uniform(0, 400, (n_img, n_det, 2))).float()
    db = torch.cat([dxy, dxy + 50], -1)
    gl = torch.from_numpy(rng.integers(0, n_cls, (n_img, 3)))
    dl = torch.from_numpy(rng.integers(0, n_cls, (n_img, n_det)))
    ds = torch.from_numpy(rng.random((n_img, n_det))).float()
    targets = [BoxTarget(gb[i], gl[i], torch.zeros(3, dtype=torch.bool), str(i)) for i in range(n_img)]
    preds = [Detections(db[i], ds[i], dl[i], str(i)) for i in range(n_img)]
    t0 = time.perf_counter()
    ev.process(preds, targets)
    out = ev.compute()
    elapsed = time.perf_counter() - t0
    assert out["n_images"] == n_img and 0.0 <= out["map50"] < 0.2  # random boxes: low AP
    assert elapsed < 10.0, f"500k detections took {elapsed:.1f} s"
