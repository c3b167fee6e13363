"""The ``grasp`` task (GG-CNN, GG-CNN2, PSPNet grasp nets on Cornell and Jacquard): its modes."""

from __future__ import annotations

from singleshot.tasks.grasp import convert, demo, evaluate, export, predict, train

MODES = {
    "score": evaluate.score,
    "val": evaluate.val,
    "predict": predict.predict,
    "train": train.train,
    "demo": demo.demo,
    "convert": convert.convert,
    "export": export.export_mode,
}
