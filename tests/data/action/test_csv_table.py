"""The box table (CSV of per-frame boxes): parsing with and without a header, the problems it
reports with their lines, and the tubes of its tracks (gaps split them)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from singleshot.data.action.csv_table import parse_box_csv, read_box_csv, row_problem, track_tubes
from singleshot.errors import DataError


def test_header_optional_and_columns_by_name(tmp_path: Path) -> None:
    plain = "clip1,3,1,2,11,12,Jump\nclip1,4,1,2,11,12.5,Jump,p2\n"
    rows, problems = parse_box_csv(plain, "x.csv")
    assert not problems and [(r.line, r.frame, r.actor) for r in rows] == [(1, 3, ""), (2, 4, "p2")]
    assert rows[1].box == (1.0, 2.0, 11.0, 12.5) and rows[0].label == "Jump"
    reordered = (
        "# made by hand\nlabel, actor, video, frame, x1, y1, x2, y2, note\nJump, a, Run/clip1.mp4, 7, 0, 0, 5, 5, ok\n"
    )
    rows, problems = parse_box_csv(reordered, "x.csv")
    assert not problems
    assert (rows[0].line, rows[0].video, rows[0].frame, rows[0].actor, rows[0].label) == (
        3,
        "Run/clip1",
        7,
        "a",
        "Jump",
    )
    path = tmp_path / "b.csv"
    path.write_bytes(b"\xef\xbb\xbfvideo,frame,x1,y1,x2,y2,label\nv,1,0,0,1,1,A\n")  # a BOM, as spreadsheets write
    assert read_box_csv(path).videos == ["v"]


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("v,0,1,1,2,2,A", "frame 0 < 1"),
        ("v,1.5,1,1,2,2,A", "not an integer"),
        ("v,1,a,1,2,2,A", "x1 'a' is not a number"),
        ("v,1,nan,1,2,2,A", "not a finite number"),
        ("v,1,5,1,2,2,A", "degenerate box"),
        ("v,1,1,1,2,2", "got 6 fields"),
        ("v,1,1,1,2,2,", "is not a class name"),
        ("../v,1,1,1,2,2,A", "is not a name"),
        ("v,1,1,1,2,2,Z", "not in the class list"),
    ],
)
def test_bad_rows_name_file_and_line(tmp_path: Path, line: str, words: str) -> None:
    path = tmp_path / "boxes.csv"
    path.write_text(f"v,1,1,1,2,2,A\n\n{line}\n")
    with pytest.raises(DataError, match=rf"boxes\.csv:3: .*{words}"):
        read_box_csv(path, classes=["A", "B"])


def test_every_problem_is_listed_and_duplicates_name_the_first_line() -> None:
    text = "v,1,1,1,2,2,A\nv,1,1,1,3,3,A\nv,x,1,1,2,2,A\nw,2,1,1,2,2,A,p\nw,2,1,1,2,2,A,q\n"
    rows, problems = parse_box_csv(text, "t.csv")
    assert [r.line for r in rows] == [1, 4, 5]
    assert [(line, video) for line, video, _ in problems] == [(2, "v"), (3, "v")]
    assert "first on line 1" in problems[0][2] and "no actor column" in problems[0][2]


def test_header_without_required_columns_and_empty_table(tmp_path: Path) -> None:
    rows, problems = parse_box_csv("name,frame_no\nv,1\n", "t.csv")
    assert not rows and problems[0][0] == 1 and "lacks the column(s)" in problems[0][2]
    path = tmp_path / "empty.csv"
    path.write_text("video,frame,x1,y1,x2,y2,label\n")
    with pytest.raises(DataError, match="holds no box rows"):
        read_box_csv(path)
    with pytest.raises(DataError, match="not found"):
        read_box_csv(tmp_path / "missing.csv")
    (tmp_path / "latin.csv").write_bytes(b"v,1,1,1,2,2,caf\xe9\n")
    with pytest.raises(DataError, match="not UTF-8"):
        read_box_csv(tmp_path / "latin.csv")


def test_tubes_split_at_gaps_and_boxes_are_clipped() -> None:
    text = "".join(f"v,{f},{f},1,{f + 10},11,A\n" for f in (3, 4, 5, 8, 9)) + "v,4,50,1,70,11,A,other\n"
    rows, _ = parse_box_csv(text, "t.csv")
    tubes, gaps, clipped = track_tubes(rows, "A/v", {"A": 0}, size=(40, 60))
    assert [(t.start, t.end) for t in tubes] == [(3, 5), (4, 4), (8, 9)]
    assert [(g.actor, g.after, g.before) for g in gaps] == [("", 5, 8)]
    assert gaps[0].to_dict()["missing"] == [6, 7]
    assert clipped == 1 and tubes[1].boxes[0].tolist() == [50, 1, 60, 11]
    assert tubes[0].boxes.dtype == np.float32 and tubes[0].frames.tolist() == [3, 4, 5]


def test_row_problem_against_the_video() -> None:
    rows, _ = parse_box_csv("v,9,1,1,5,5,A\nv,2,70,1,80,5,A\nv,3,-5,-5,5,5,A\n", "t.csv")
    assert "beyond the 8 frames" in row_problem(rows[0], 8, (40, 60))
    assert "wholly outside the 60x40" in row_problem(rows[1], 8, (40, 60))
    assert row_problem(rows[2], 8, (40, 60)) is None  # partly outside: clipped
