"""Ids of a predict folder's files (:func:`unique_ids`) and its skipped list (:class:`SkippedInputs`)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from singleshot.errors import DataError
from singleshot.tasks.predict_files import SKIPPED_KEY, SkippedInputs, unique_ids


def test_unique_ids_keep_free_ids_and_number_shared_ones_in_path_order(caplog: pytest.LogCaptureFixture) -> None:
    paths = [Path("d/x.png"), Path("d/y.jpg"), Path("d/x.jpg"), Path("d/x_1.bmp"), Path("d/X.webp")]
    with caplog.at_level(logging.WARNING):
        ids = unique_ids(paths)
    # x.jpg, x.png and X.webp share "x" (letter case ignored: their pictures would collide on
    # macOS/Windows); by path: X.webp < x.jpg < x.png; x_1 is another file's, so x_2, x_3
    assert ids == ["x_3", "y", "x_2", "x_1", "X"]
    assert len(set(i.casefold() for i in ids)) == len(ids)
    assert "3 image files share the id 'X'" in caplog.text and "x_3 (d/x.png)" in caplog.text
    assert unique_ids(paths[::-1]) == ids[::-1]  # the same files give the same ids in any order


def test_unique_ids_with_given_ids_and_without_clashes(caplog: pytest.LogCaptureFixture) -> None:
    paths = [Path("a/pcd0100d.tiff"), Path("b/pcd0100d.tiff"), Path("b/pcd0101d.npy")]
    assert unique_ids(paths, ["pcd0100", "pcd0100", "pcd0101"]) == ["pcd0100", "pcd0100_1", "pcd0101"]
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert unique_ids([Path("a.jpg"), Path("b.jpg")]) == ["a", "b"]
    assert not caplog.records  # nothing to say when no id is shared
    with pytest.raises(ValueError):
        unique_ids([Path("a.jpg")], ["a", "b"])


def test_skipped_inputs_listed_in_skipped_txt_or_an_error_when_nothing_was_read(tmp_path: Path) -> None:
    skipped = SkippedInputs(tmp_path / "src", "image")
    assert skipped.report(tmp_path, {"images": 2}) == {"images": 2}  # none skipped: unchanged, no file
    assert not (tmp_path / "skipped.txt").exists()
    skipped.add(tmp_path / "src" / "bad.jpg", DataError("bad.jpg: cannot decode image"), "bad")
    skipped.require_some(1)  # one image predicted: no error
    result = skipped.report(tmp_path, {"images": 1})
    assert result[SKIPPED_KEY] == 1 and result["skipped_list"] == str(tmp_path / "skipped.txt")
    text = (tmp_path / "skipped.txt").read_text()
    assert "bad.jpg" in text and "unreadable image" in text and "cannot decode image" in text
    with pytest.raises(DataError, match=r"src: none of its 1 image file\(s\) could be read: bad.jpg: cannot decode"):
        skipped.require_some(0)
