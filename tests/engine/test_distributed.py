"""DDP: two torchrun processes on CPU (gloo) follow the single-process trajectory of the same
global batch; the helpers are identities for one process; only rank 0 writes files."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch
import torch.distributed as dist

import singleshot.engine.trainer as trainer_module
from singleshot.engine import distributed as d

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "tiny_run.py"
REPO = HERE.parents[1]


def test_single_process_helpers_are_identities(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert d.init_distributed("cpu") == "cpu" and not dist.is_initialized()
    assert (d.get_rank(), d.get_world_size(), d.is_main_process(), d.is_distributed()) == (0, 1, True, False)
    t = torch.tensor([1.0, 2.0])
    assert d.all_reduce_mean(t) is t
    assert d.broadcast_object({"a": 1}) == {"a": 1} and d.all_gather_objects(3) == [3]
    d.barrier()
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(ValueError, match="WORLD_SIZE"):
        d.init_distributed("cpu")


def test_only_rank_zero_writes_files(
    tiny_run_module: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tiny = tiny_run_module
    monkeypatch.setattr(trainer_module, "get_rank", lambda: 1)  # play rank 1 of a (pretend) group
    cfg = trainer_module.TrainConfig(epochs=2, out_dir=tmp_path / "run", checkpoint_every=1, plot_every=1)
    loader = torch.utils.data.DataLoader(tiny.RandomData(8), batch_size=4)
    t = trainer_module.Trainer(tiny.TinyNet(0.0), tiny.loss_fn, loader, cfg, tiny.prepare)
    t.train()
    assert t.iteration == 4 and not (tmp_path / "run").exists()


@pytest.mark.slow
@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="needs torch.distributed with gloo")
def test_torchrun_two_processes_match_one_process(tiny_run_module: ModuleType, tmp_path: Path) -> None:
    tiny = tiny_run_module
    out = tmp_path / "ddp"
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        "OMP_NUM_THREADS": "1",
    }
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nnodes=1",
        "--nproc_per_node=2",
        str(SCRIPT),
        "--out",
        str(out),
        "--batch",
        "4",
        "--dropout",
        "0",
        "--ema",
        "0.9",
    ]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    # one process, the same global batch (2 x 4), the same seed
    ref, steps = tiny.run(tmp_path / "one", batch=8, dropout=0.0, ema=0.9)
    got = torch.load(out / "final.pt", weights_only=True)
    assert got["iteration"] == ref.iteration == 9  # 3 epochs x ceil(5 batches / accumulate 2)
    torch.testing.assert_close(torch.tensor(got["losses"]), torch.tensor(steps.losses), rtol=0, atol=1e-5)
    for name, value in ref.model.state_dict().items():
        torch.testing.assert_close(got["model"][name], value, rtol=0, atol=1e-5, msg=name)
        torch.testing.assert_close(got["ema"][name], ref.ema.module.state_dict()[name], rtol=0, atol=1e-5)
    rows = list(csv.DictReader(open(out / "results.csv")))
    ref_rows = list(csv.DictReader(open(tmp_path / "one" / "results.csv")))
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    for r, q in zip(rows, ref_rows, strict=True):  # losses averaged over ranks, metrics from rank 0
        assert float(r["train/total"]) == pytest.approx(float(q["train/total"]), abs=1e-5)
        assert float(r["metrics/score"]) == pytest.approx(float(q["metrics/score"]), abs=1e-5)
    assert (out / "last.pt").is_file() and (out / "best.pt").is_file()
    assert torch.load(out / "last.pt", weights_only=True)["sampler"]["world_size"] == 2
