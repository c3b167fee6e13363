"""``grasp convert``: data and weights of other projects.

- ``from=pcd src=<cornell root>``: Cornell's point clouds -> ``pcdXXXXd.tiff`` depth images
  (:func:`~singleshot.data.grasp.pcd.convert_cornell_pcd`);
- ``from=ggcnn src=<state dict .pt> dst=<.safetensors>``: dougsm/ggcnn weights (GG-CNN or GG-CNN2,
  found from the layer names; the input kind from the first layer's channels), read without
  unpickling code (:func:`~singleshot.engine.weights.load_foreign_pth`).
"""

from __future__ import annotations

from pathlib import Path

from singleshot.errors import ConfigError, WeightsError
from singleshot.tasks.common import make_config, refuse_dst_over_inputs, require
from singleshot.tasks.grasp.config import GraspConfig
from singleshot.tasks.grasp.predictor import build_grasp_model, model_meta

__all__ = ["convert"]


def convert(args: dict[str, str]) -> dict:
    """``from=pcd src=<cornell root>``: clouds -> ``pcdXXXXd.tiff``; ``from=ggcnn src=<state dict .pt>
    dst=<.safetensors>``: dougsm/ggcnn weights (GG-CNN or GG-CNN2, found from the layer names)."""
    cfg = make_config(GraspConfig, args)
    require(cfg, "from_", "src")
    if cfg.from_ == "pcd":
        from singleshot.data.grasp.pcd import convert_cornell_pcd

        written = convert_cornell_pcd(cfg.src, overwrite=cfg.overwrite)
        return {"from": "pcd", "root": cfg.src, "written": len(written)}
    if cfg.from_ != "ggcnn":
        raise ConfigError(f"from={cfg.from_!r} is unknown; expected pcd or ggcnn")
    from singleshot.engine.weights import load_foreign_pth, load_state_into, save_weights

    require(cfg, "dst")
    refuse_dst_over_inputs(cfg)
    state = load_foreign_pth(cfg.src)
    first = "features.0.weight" if "features.0.weight" in state else "conv1.weight"
    if first not in state:
        raise WeightsError(f"{cfg.src}: not a GG-CNN / GG-CNN2 state dict (no conv1.weight or features.0.weight)")
    cfg.model = "ggcnn2" if first.startswith("features") else "ggcnn"
    kinds = {1: "depth", 3: "rgb", 4: "rgbd"}
    channels = int(state[first].shape[1])
    if channels not in kinds:
        raise WeightsError(f"{cfg.src}: {first} takes {channels} input channels; expected 1, 3 or 4")
    cfg.input = kinds[channels]
    model = load_state_into(build_grasp_model(cfg.model, cfg.input), state, cfg.src, cfg.model)
    save_weights(Path(cfg.dst), model, model_meta(cfg, source=str(cfg.src)))
    return {
        "from": "ggcnn",
        "dst": cfg.dst,
        "architecture": cfg.model,
        "input": cfg.input,
        "tensors": len(state),
        "input_size": cfg.size,
        "crop": cfg.crop,
        "crop_size": cfg.crop_size,
    }
