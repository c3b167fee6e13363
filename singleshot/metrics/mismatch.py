"""Mismatches between what is evaluated and what it is evaluated against, named instead of absorbed.

One place for three comparisons the score, val and train modes of every family make:

* :func:`prediction_mismatches`: the ids (images, videos) of a ground truth that have no prediction,
  and the predicted ids outside it. The metrics keep their protocol (an image or video without
  predictions still counts as missed); this only says so, in a warning and in the result's
  ``"mismatches"`` entry.
* :func:`class_name_differences`: the class names of a model's weights against those of the data.
* :func:`same_items`: a validation set that is (partly) the training set; :func:`with_warnings`
  records such warnings in a training run's result (``"warnings"``).

Each returns what it found (empty / None: nothing to say) and logs one warning per finding.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

logger = logging.getLogger(__name__)

__all__ = ["FIRST", "class_name_differences", "first_few", "prediction_mismatches", "same_items", "with_warnings"]

#: How many ids a warning and a ``"first"`` list name.
FIRST = 5


def first_few(ids: Sequence[str], n: int = FIRST) -> str:
    """``'a', 'b', 'c'`` (the first ``n`` of ``ids``, quoted), ``, ...`` when there are more."""
    shown = ", ".join(repr(str(i)) for i in ids[:n])
    return shown + (", ..." if len(ids) > n else "")


def _unique(ids: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(str(i) for i in ids))


def prediction_mismatches(
    gt_ids: Sequence[str],
    predicted_ids: Iterable[str],
    source: str,
    what: str = "images",
    *,
    outside: str = "ignored",
    kind: str = "predictions",
) -> dict[str, dict[str, Any]]:
    """Compare the evaluated ground-truth ids with the ids that have predictions; warn about each side.

    Args:
        gt_ids: the evaluated ground truth's ids (images or videos, in its order).
        predicted_ids: the ids holding at least one prediction (any order, repeats allowed).
        source: the prediction file named in the warnings.
        what: the plural noun of the ids (``"images"``, ``"videos"``).
        outside: what happens to predictions outside the ground truth (said in the warning).
        kind: the plural noun of the predictions (``"predictions"``, ``"tubes"``); it names the entries.

    Returns:
        ``{"gt_without_<kind>": {"count", "first"}, "<kind>_not_in_gt": {"count", "first"}}`` with only
        the non-empty entries (``{}``: every evaluated id has predictions and no prediction lies
        outside); ``first`` holds up to :data:`FIRST` ids, ground-truth order for the first entry,
        order of appearance for the second.
    """
    gt = _unique(gt_ids)
    predicted = _unique(predicted_ids)
    have, known = set(predicted), set(gt)
    missing = [i for i in gt if i not in have]
    extra = [i for i in predicted if i not in known]
    out: dict[str, dict[str, Any]] = {}
    if missing:
        out[f"gt_without_{kind}"] = {"count": len(missing), "first": missing[:FIRST]}
        logger.warning(
            "%s: %d of the %d evaluated ground-truth %s have no %s (first: %s); they count as misses",
            source,
            len(missing),
            len(gt),
            what,
            kind,
            first_few(missing),
        )
    if extra:
        out[f"{kind}_not_in_gt"] = {"count": len(extra), "first": extra[:FIRST]}
        logger.warning(
            "%s: %s for %d %s outside the %d evaluated ground-truth %s (first: %s); %s",
            source,
            kind,
            len(extra),
            what,
            len(gt),
            what,
            first_few(extra),
            outside,
        )
    return out


def class_name_differences(
    model_names: Sequence[str], data_names: Sequence[str], model: str, data: str, *, by: str = "index"
) -> str | None:
    """The warning for class names of weights (``model``) that differ from the data's, or None.

    ``by="index"``: labels are matched by position (the counts are equal); the differing pairs are
    named. ``by="name"``: labels are matched by name; the data's classes the weights lack are named
    (a permutation or a subset of the weights' classes is no difference). Both lists are named.
    """
    model_names, data_names = [str(n) for n in model_names], [str(n) for n in data_names]
    lists = f"the weights' classes: {', '.join(model_names)}; the data's: {', '.join(data_names)}"
    if by == "index":
        pairs = [(i, m, d) for i, (m, d) in enumerate(zip(model_names, data_names)) if m != d]
        if not pairs and len(model_names) == len(data_names):
            return None
        shown = ", ".join(f"{i}: {m!r} (weights) vs {d!r} (data)" for i, m, d in pairs[:FIRST])
        more = f" and {len(pairs) - FIRST} more" if len(pairs) > FIRST else ""
        text = (
            f"{model}: class names differ from those of {data} at {len(pairs)} of {len(data_names)} labels "
            f"(matched by index): {shown}{more}; {lists}"
        )
    else:
        known = set(model_names)
        unknown = [d for d in data_names if d not in known]
        if not unknown:
            return None
        noun = "class" if len(unknown) == 1 else "classes"
        text = (
            f"{model}: {data} has {len(unknown)} {noun} the weights lack: {', '.join(repr(u) for u in unknown)} "
            f"(labels are matched by name); {lists}"
        )
    logger.warning("%s", text)
    return text


def same_items(train: Sequence[str], val: Sequence[str], what: str = "images", hint: str = "") -> str | None:
    """The warning (logged) for a validation set that holds training items (files or ids), or None.

    Identical sets: ``validation reads the same N images as training: the metrics measure fit, not
    generalisation``; a validation set inside the training set says so; a partial overlap names how
    many and the first few. ``hint`` (how to hold items out) ends the warning.
    """
    train_set = set(map(str, train))
    val_ids = _unique(val)
    shared = [v for v in val_ids if v in train_set]
    if not shared:
        return None
    if len(shared) == len(val_ids) == len(train_set):
        text = (
            f"validation reads the same {len(val_ids)} {what} as training: the metrics measure fit, not generalisation"
        )
    elif len(shared) == len(val_ids):
        text = (
            f"the {len(val_ids)} validation {what} are all among the {len(train_set)} training {what}: "
            "the metrics measure fit, not generalisation"
        )
    else:
        text = (
            f"{len(shared)} of the {len(val_ids)} validation {what} are training {what} too "
            f"(first: {first_few(shared)}): the metrics partly measure fit"
        )
    text += f"; {hint}" if hint else ""
    logger.warning("%s", text)
    return text


Report = Callable[[dict[str, float]], dict[str, Any]]


def with_warnings(report: Report | None, notes: Sequence[str | None]) -> Report | None:
    """A training run's ``report`` (best metrics -> result; None: the metrics as they are) that also
    lists the non-empty ``notes`` under ``"warnings"``; ``report`` itself when there are none."""
    kept = [n for n in notes if n]
    if not kept:
        return report

    def wrapped(best: dict[str, float]) -> dict[str, Any]:
        result = dict(report(best)) if report is not None else dict(best)
        result["warnings"] = [*result.get("warnings", []), *kept]
        return result

    return wrapped
