"""JSON Lines: read back, turned into a JSON list, a line cut short by a crash named with its line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from singleshot.errors import DataError
from singleshot.io.jsonlines import json_from_lines, read_json_lines


def test_lines_become_a_sorted_json_list(tmp_path: Path) -> None:
    lines = tmp_path / "t.jsonl"
    lines.write_text('{"score": 0.2}\n\n{"score": 0.9}\n')
    out = tmp_path / "t.json"
    json_from_lines(lines, out, sort_key=lambda r: -r["score"])
    assert json.loads(out.read_text()) == [{"score": 0.9}, {"score": 0.2}]


def test_a_cut_line_and_a_missing_file_are_named(tmp_path: Path) -> None:
    lines = tmp_path / "t.jsonl"
    lines.write_text('{"score": 0.2}\n{"sco')
    with pytest.raises(DataError, match=r"t\.jsonl:2: not a JSON object"):
        read_json_lines(lines)
    with pytest.raises(DataError, match="nope.jsonl: tubes file not found"):
        read_json_lines(tmp_path / "nope.jsonl", "tubes")
