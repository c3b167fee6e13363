"""ACT over a dataset: the ACT member's evaluation in training and in ``action val``.

:func:`evaluate_act` runs every video once (all its K-frame windows in batches of ``batch``), keeps
its :class:`~singleshot.tasks.action.act_tubelets.VideoTubelets`, then scores:

* frame-mAP on the per-frame detections pooled from the tubelets (ACT's way, NMS 0.3 per frame),
* video-mAP on the tubes of ACT's linking (``linking=act``, or MOC's preset ``moc``),

both under ``cfg.protocol`` (:func:`~singleshot.metrics.action_score.score_action`). :func:`val_act`
is ``action val``'s: with the cache under ``project/cache/tubelets`` and ``workers`` processes.

Cache (:mod:`~singleshot.tasks.action.tubelet_cache`): with ``cache_dir``, a video's tubelets are
written to ``<cache_dir>/<video>.npz`` (atomically) as soon as it is done, stamped with a key of the
model's tensors and every setting that changes them and with a fingerprint of the video's input
files (paths, sizes, modification times) and annotated frame count; a later call with both stamps
equal loads the file instead of running the model, so an interrupted evaluation resumes with the
videos it had not finished. Other weights, another dataset or a changed video are recomputed.

Workers: ``workers=N`` (N >= 2) spreads the videos over N processes (forked where the platform
allows, as DataLoader workers are, else spawned; one intra-op thread each; the model rebuilt once
per process from its tensors); ``workers=0`` and ``workers=1`` run in this process, with all its
intra-op threads (one worker process would do the same work alone while this one waits, slower by
its start and its single thread). All give the same tubelets, hence the same metrics.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import torch

from singleshot.data.action.frames import read_clip_frames, read_frame
from singleshot.errors import DataError
from singleshot.metrics.action_score import score_action
from singleshot.metrics.frame_ap import evaluation_videos
from singleshot.models import model_from_meta
from singleshot.structures import ActionAnnotations, FrameDets, Tube
from singleshot.tasks.action.act_predictor import ACTPredictor
from singleshot.tasks.action.act_tubelets import VideoTubelets, frame_dets_of_tubelets
from singleshot.tasks.action.act_two_stream import flow_frame_path
from singleshot.tasks.action.config import ActionOptions, ActOptions
from singleshot.tasks.action.export import load_onnx_action_model
from singleshot.tasks.action.predictor import trim_tubes
from singleshot.tasks.action.tubelet_cache import (
    cache_key,
    cache_path,
    load_cached_tubelets,
    load_tubelets,
    onnx_path,
    save_tubelets,
    video_data_key,
)

logger = logging.getLogger(__name__)

__all__ = ["cache_key", "load_tubelets", "save_tubelets", "collect_tubelets", "evaluate_act", "val_act"]


def _video_tubelets(
    predictor: ACTPredictor, ann: ActionAnnotations, root: Path, video: str, batch: int
) -> VideoTubelets:
    va = ann.videos[video]
    if va.num_frames < 1:
        raise DataError(f"{root / 'rgb-images' / video}: the annotations give the video no frames")
    frames = read_clip_frames(root, video, range(1, va.num_frames + 1))
    h, w = va.size
    size = (h, w) if h > 0 and w > 0 else (int(frames.shape[-2]), int(frames.shape[-1]))
    flow = None
    if predictor.motion == "flow":
        if predictor.flow_root is None:
            raise DataError(f"{video}: this two-stream ACT reads precomputed flow images: pass flow=<folder>")
        flow = torch.stack(
            [read_frame(flow_frame_path(predictor.flow_root, video, f)) for f in range(1, va.num_frames + 1)]
        )
    return predictor.detect_video(predictor.prepare(frames, flow), size, video, batch)


# ---------------------------------------------------------------- worker processes
_WORKER: dict[str, Any] = {}


def _worker_init(
    states: list[dict[str, torch.Tensor] | str],
    metas: list[dict[str, Any]],
    settings: Any,
    linking: str,
    candidates: Any,
    flow_root: str | None,
    ann: ActionAnnotations,
    root: str,
    batch: int,
    cache_dir: str | None,
    key: str,
    data: dict[str, str],
) -> None:
    torch.set_num_threads(1)
    models = []
    for state, meta in zip(states, metas):
        if isinstance(state, str):  # an exported .onnx: each worker opens its own onnxruntime session
            models.append(load_onnx_action_model(state, threads=1)[0])
            continue
        models.append(model_from_meta(meta, task="action"))
        models[-1].load_state_dict(state)
    flow_model, flow_meta = (models[1], metas[1]) if len(models) > 1 else (None, None)
    predictor = ACTPredictor(
        models[0], metas[0], settings, linking, "cpu", candidates, flow_model, flow_meta, flow_root
    )
    _WORKER.update(
        predictor=predictor,
        ann=ann,
        root=Path(root),
        batch=batch,
        cache_dir=Path(cache_dir) if cache_dir else None,
        key=key,
        data=data,
    )


def _worker_run(video: str) -> VideoTubelets:
    w = _WORKER
    vt = _video_tubelets(w["predictor"], w["ann"], w["root"], video, w["batch"])
    if w["cache_dir"] is not None:
        save_tubelets(cache_path(w["cache_dir"], video), vt, w["key"], w["data"][video])
    return vt


def collect_tubelets(
    predictor: ACTPredictor,
    ann: ActionAnnotations,
    frame_root: str | Path,
    videos: Sequence[str],
    batch: int = 16,
    workers: int = 0,
    cache_dir: str | Path | None = None,
) -> dict[str, VideoTubelets]:
    """Tubelets of each of ``videos`` (from the cache when it holds them, else by running the model)."""
    root = Path(frame_root)
    cache = Path(cache_dir) if cache_dir is not None else None
    key = cache_key(predictor) if cache is not None else ""
    # stamped before the frames are read: a file changed meanwhile leaves a stale stamp, never a wrong one
    data = {v: video_data_key(predictor, ann, root, v) for v in videos} if cache is not None else {}
    out = load_cached_tubelets(cache, key, data, videos) if cache is not None else {}
    todo = [v for v in videos if v not in out]
    if workers > 1 and len(todo) > 1:
        # fork where the platform has it (as DataLoader workers; each worker runs one intra-op thread)
        methods = torch.multiprocessing.get_all_start_methods()
        ctx = torch.multiprocessing.get_context("fork" if "fork" in methods else "spawn")
        states: list[dict[str, torch.Tensor] | str] = [
            onnx_path(s.model) or {k: t.detach().cpu() for k, t in s.model.state_dict().items()}
            for s in predictor.streams
        ]
        metas = [predictor.meta] + ([predictor.flow_meta or {}] if len(predictor.streams) > 1 else [])
        flow_root = str(predictor.flow_root) if predictor.flow_root else None
        init = (
            states,
            metas,
            predictor.settings,
            predictor.linking,
            predictor.candidates,
            flow_root,
            ann,
            str(root),
            batch,
            str(cache) if cache is not None else None,
            key,
            data,
        )
        with ProcessPoolExecutor(
            min(workers, len(todo)), mp_context=ctx, initializer=_worker_init, initargs=init
        ) as pool:
            for v, vt in zip(todo, pool.map(_worker_run, todo)):
                out[v] = vt
        return out
    for v in todo:
        out[v] = _video_tubelets(predictor, ann, root, v, batch)
        if cache is not None:
            save_tubelets(cache_path(cache, v), out[v], key, data[v])
    return out


# ---------------------------------------------------------------- scoring
def evaluate_act(
    predictor: ACTPredictor,
    ann: ActionAnnotations,
    frame_root: str | Path,
    cfg: ActionOptions,
    videos: Sequence[str] | None = None,
    cache_dir: str | Path | None = None,
    workers: int = 0,
) -> tuple[dict[str, Any], FrameDets, list[Tube]]:
    """Frame-mAP and video-mAP of an ACT model on ``videos`` (default: the test split, else all).

    ``cfg`` supplies ``batch``, ``trim``, ``protocol`` and ``match_iou``. Returns (metrics of
    :func:`~singleshot.metrics.action_score.score_action` plus ``"linking"``, frame detections, tubes).
    """
    vids = evaluation_videos(ann, videos)
    tubelets = collect_tubelets(predictor, ann, frame_root, vids, max(1, cfg.batch), max(0, workers), cache_dir)
    dets = frame_dets_of_tubelets(vids, tubelets)
    trim = float(cfg.trim)
    tubes = trim_tubes([t for v in vids for t in tubelets[v].link(predictor.link_params)], trim)
    metrics = score_action(ann, dets, tubes, cfg.protocol, iou_thresh=cfg.match_iou, videos=vids)
    metrics["linking"] = f"{predictor.linking} (tubes linked from the K-frame tubelets)" + (
        f", trimmed at frame score {trim:g}" if trim > 0 else ""
    )
    return metrics, dets, tubes


def val_act(
    predictor: ACTPredictor, ann: ActionAnnotations, frame_root: str | Path, cfg: ActOptions
) -> tuple[dict[str, Any], FrameDets, list[Tube]]:
    """``action val``'s evaluation of an ACT model: :func:`evaluate_act` on the test split with the
    tubelet cache under ``project/cache/tubelets`` (``cache=true``; beside the numbered run
    folders, so that every ``val`` of the project finds it) and ``workers`` processes."""
    cache = Path(cfg.project) / "cache" / "tubelets" if cfg.cache else None
    return evaluate_act(predictor, ann, frame_root, cfg, cache_dir=cache, workers=cfg.workers)
