"""A generated dataset (the demos' ``demo_data``, the action demo's flow) is reused only while its
files and the files it was made from are unchanged; the log says why it is reused or written."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from singleshot.tasks.generated_data import dataset_marker, ensure_dataset


def _writer(calls: list[Path]):
    def write(root: Path) -> None:
        calls.append(root)
        (root / "sub").mkdir(parents=True, exist_ok=True)
        (root / "data.txt").write_text(str(len(calls)))
        (root / "sub" / "labels.txt").write_text("a b c")

    return write


def _touch_later(path: Path) -> None:
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))


def test_a_changed_or_missing_file_is_written_again(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    calls: list[Path] = []
    root = tmp_path / "gen"
    ensure_dataset(root, "k", _writer(calls))
    with caplog.at_level(logging.INFO, logger="singleshot.tasks.generated_data"):
        ensure_dataset(root, "k", _writer(calls))
    assert len(calls) == 1 and "reused: .complete-k says it was written for k" in caplog.text
    (root / "sub" / "labels.txt").write_text("a b c d")  # edited by hand
    _touch_later(root / "sub" / "labels.txt")
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="singleshot.tasks.generated_data"):
        ensure_dataset(root, "k", _writer(calls))
    assert len(calls) == 2 and "sub/labels.txt changed since it was written" in caplog.text
    assert (root / "sub" / "labels.txt").read_text() == "a b c"
    (root / "data.txt").unlink()
    ensure_dataset(root, "k", _writer(calls))
    assert len(calls) == 3 and (root / "data.txt").is_file()
    dataset_marker(root, "k").write_text("")  # an older singleshot's empty marker: no record of the files
    ensure_dataset(root, "k", _writer(calls))
    assert len(calls) == 4


def test_a_changed_input_is_written_again_and_nested_datasets_are_their_own(tmp_path: Path) -> None:
    """The action demo's flow (a generated dataset inside ``demo_data``) reads the frames: written
    again after they are; its files are not part of the outer dataset's record."""
    outer_calls: list[Path] = []
    root = tmp_path / "demo_data"
    ensure_dataset(root, "data", _writer(outer_calls))
    inner_calls: list[Path] = []

    def flow() -> Path:
        return ensure_dataset(root / "flow", "flow", _writer(inner_calls), reads=[dataset_marker(root, "data")])

    flow()
    flow()
    assert len(inner_calls) == 1
    ensure_dataset(root, "data", _writer(outer_calls))  # the inner folder's files do not unsettle the outer one
    assert len(outer_calls) == 1
    (root / "data.txt").write_text("changed")
    _touch_later(root / "data.txt")
    ensure_dataset(root, "data", _writer(outer_calls))  # the outer dataset written again: a new marker ...
    assert len(outer_calls) == 2
    flow()  # ... so the flow made from it is written again
    assert len(inner_calls) == 2
    flow()
    assert len(inner_calls) == 2
