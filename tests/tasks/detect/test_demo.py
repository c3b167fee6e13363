from __future__ import annotations

import json
from pathlib import Path

import pytest

from singleshot.cli import main
from singleshot.engine.weights import load_weights


def _last_json(capsys: pytest.CaptureFixture[str]) -> dict:
    out = capsys.readouterr().out.strip().splitlines()
    return json.loads(out[-1])


def test_demo_pipeline_smoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A tiny demo run writes every artefact the real one does (the metric itself is the demo's job)."""
    args = ["detect", "demo", f"project={tmp_path}", "epochs=1", "n_train=24", "n_val=8", "batch=8", "workers=0"]
    assert main(args) == 0
    got = _last_json(capsys)
    assert 0.0 <= got["map50"] <= 1.0
    out = tmp_path / "demo"
    assert (out / "metrics.json").is_file() and (out / "results.png").is_file() and (out / "results.csv").is_file()
    assert len(list((out / "predictions").glob("*.jpg"))) == 8
    _, meta = load_weights(out / "best.safetensors")
    assert meta["classes"] == ["circle", "square", "triangle", "cross", "ring"]
    # `val` on the same split reproduces the demo's metric from the saved weights alone
    data = tmp_path / "demo_data"
    assert (
        main(
            [
                "detect",
                "val",
                f"weights={out / 'best.safetensors'}",
                f"data={data}",
                "val_set=val",
                f"project={tmp_path}",
            ]
        )
        == 0
    )
    assert _last_json(capsys)["map50"] == pytest.approx(got["map50"], abs=1e-6)
