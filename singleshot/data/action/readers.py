"""Action ground truth from any supported source, as :class:`~singleshot.structures.ActionAnnotations`.

:func:`load_action_annotations` looks at the path and calls the matching reader:

- an ACT / MOC ``*-GT.pkl`` (:mod:`.readers_act`);
- UCF101-24 ``finalAnnots.mat`` or ``pyannot.pkl`` (:mod:`.readers_ucf`);
- a YOWO-layout root, a folder with ``labels/`` and ``rgb-images/`` (:mod:`.readers_yowo`);
- YOWO's per-frame ground-truth folder or its zip, ``<class>_<video>_<frame:05d>.txt``
  (:mod:`.readers_yowo_gt`; J-HMDB-21 classes unless ``classes`` says otherwise).

Every pickle is read by the restricted unpickler of :mod:`.safe_pickle`, never ``pickle.load``.
All results use 1-based frames, xyxy float32 pixel boxes and 0-based labels.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from pathlib import Path

from singleshot.data.action.readers_act import act_dict_to_annotations, read_act_pickle, write_act_pickle
from singleshot.data.action.readers_common import apply_split_list, link_boxes_into_tubes
from singleshot.data.action.readers_ucf import is_pyannot_dict, read_ucf24_mat, read_ucf24_pyannot
from singleshot.data.action.readers_yowo import is_yowo_root, read_yowo_root, write_yowo_labels
from singleshot.data.action.readers_yowo_gt import (
    JHMDB_CLASSES,
    UCF24_CLASSES,
    FrameGroundTruth,
    frame_ground_truth_to_annotations,
    is_yowo_groundtruth,
    read_yowo_groundtruth_dir,
)
from singleshot.data.action.safe_pickle import safe_load_pickle
from singleshot.errors import DataError
from singleshot.structures import ActionAnnotations

logger = logging.getLogger(__name__)

__all__ = [
    "ACCEPTED_FORMS",
    "JHMDB_CLASSES",
    "UCF24_CLASSES",
    "FrameGroundTruth",
    "frame_ground_truth_to_annotations",
    "link_boxes_into_tubes",
    "load_action_annotations",
    "read_act_pickle",
    "read_ucf24_mat",
    "read_ucf24_pyannot",
    "read_yowo_groundtruth_dir",
    "read_yowo_root",
    "write_act_pickle",
    "write_yowo_labels",
]

ACCEPTED_FORMS = (
    "an ACT ground-truth pickle (*-GT.pkl with labels, gttubes, nframes, resolution); "
    "UCF101-24's finalAnnots.mat or pyannot.pkl; "
    "a YOWO-layout folder holding labels/ and rgb-images/; "
    "YOWO's per-frame ground-truth folder or zip (<class>_<video>_<frame:05d>.txt files)"
)


def load_action_annotations(
    path: str | Path,
    split_list: str | Path | None = None,
    split: int = 1,
    classes: Sequence[str] | str | Path | None = None,
    skip: Collection[str] = (),
) -> ActionAnnotations:
    """Read action ground truth, whatever its format (see the module docstring).

    Args:
        path: the annotation file or folder.
        split_list: a list file naming the test videos (``Class/video``) or key frames
            (``Class/video/00009.txt``); it replaces the source's own test split.
        split: 1-based split of an ACT pickle (``train_videos[split - 1]``), or the
            ``testlist{split:02d}.txt`` looked for beside UCF101-24 files and in a YOWO root.
        classes: class names (list or file, one per line) for sources that do not store them
            (YOWO layout, ``finalAnnots.mat``, ``pyannot.pkl``, ground-truth folders).
        skip: videos (``Class/video``) to leave out, e.g. those a dataset check
            (:mod:`singleshot.data.action.check`) found faulty: they are not read at all.

    Raises:
        DataError: the path is missing, or is none of the accepted forms (the message lists them),
            or the reader found the file malformed.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: annotation path not found (accepted: {ACCEPTED_FORMS})")
    if path.is_dir():
        if is_yowo_root(path):
            return read_yowo_root(path, split_list=split_list, split=split, classes=classes, skip=skip)
        if is_yowo_groundtruth(path):
            return _with_split(_frame_gt(read_yowo_groundtruth_dir(path, classes), skip), split_list, skip)
        raise DataError(f"{path}: folder is not a supported action annotation source (accepted: {ACCEPTED_FORMS})")
    suffix = path.suffix.lower()
    if suffix == ".mat":
        return read_ucf24_mat(path, split_list=split_list, split=split, classes=classes, skip=skip)
    if suffix == ".zip":
        return _with_split(_frame_gt(read_yowo_groundtruth_dir(path, classes), skip), split_list, skip)
    if suffix in (".pkl", ".pickle"):
        data = safe_load_pickle(path)
        if isinstance(data, dict) and "gttubes" in data and "labels" in data:
            ann = act_dict_to_annotations(data, str(path), split, skip)
            return _with_split(ann, split_list, skip)
        if is_pyannot_dict(data):
            return read_ucf24_pyannot(path, split_list=split_list, split=split, classes=classes, data=data, skip=skip)
        raise DataError(
            f"{path}: pickle is neither an ACT ground truth (labels, gttubes, nframes...) nor a "
            f"UCF101-24 pyannot.pkl (accepted: {ACCEPTED_FORMS})"
        )
    raise DataError(f"{path}: unknown annotation format {suffix or '(no suffix)'!r} (accepted: {ACCEPTED_FORMS})")


def _with_split(ann: ActionAnnotations, split_list: str | Path | None, skip: Collection[str] = ()) -> ActionAnnotations:
    return apply_split_list(ann, split_list, skip) if split_list is not None else ann


def _frame_gt(gt: FrameGroundTruth, skip: Collection[str]) -> ActionAnnotations:
    """Per-frame ground truth linked into tubes, without the videos of ``skip``."""
    if skip:
        drop = set(skip)
        gt = FrameGroundTruth(gt.classes, {k: v for k, v in gt.frames.items() if k[0] not in drop}, gt.source)
    return frame_ground_truth_to_annotations(gt)
