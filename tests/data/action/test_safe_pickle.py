"""Restricted unpickler: real ACT / UCF101-24 pickles load; pickles naming other globals are refused."""

from __future__ import annotations

import collections
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from singleshot.data.action.safe_pickle import safe_load_pickle, safe_loads_pickle
from singleshot.errors import DataError

SHARED_DATA = Path(__file__).resolve().parents[3] / ".." / "shared" / "data"


def _shared(*parts: str) -> Path:
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real sample data not found: {path} (the ../shared/data folder is absent)")
    return path


def _assert_same(a: object, b: object) -> None:
    """Deep equality of unpickled structures (arrays compared by dtype and value)."""
    assert type(a) is type(b), (type(a), type(b))
    if isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    elif isinstance(a, dict):
        assert list(a) == list(b)
        for k in a:
            _assert_same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _assert_same(x, y)
    else:
        assert a == b


@pytest.mark.parametrize(
    "parts",
    [
        ("act", "tube_sample.pkl"),
        ("act", "gt_tubes.pkl"),
        ("act", "tubes", "Basketball", "v_Basketball_g01_c01_tubes.pkl"),
        ("act", "tubes", "BasketballDunk", "v_BasketballDunk_g01_c01_tubes.pkl"),
    ],
)
def test_real_act_pickles_load_like_pickle_load(parts: tuple[str, ...]) -> None:
    path = _shared(*parts)
    with open(path, "rb") as f:
        reference = pickle.load(f, encoding="latin1")  # trusted sample file: the reference reader
    _assert_same(safe_load_pickle(path), reference)


def test_real_pyannot_loads() -> None:
    path = _shared("ucf101-24", "pyannot.pkl")
    data = safe_load_pickle(path)
    assert len(data) == 3194
    entry = data["Basketball/v_Basketball_g01_c01"]
    assert int(entry["numf"]) == 141
    np.testing.assert_array_equal(entry["annotations"][0]["boxes"][0], [189, 102, 47, 78])


class _Exploit:
    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (f"touch {self.target}",)


def test_os_system_is_refused_and_not_run(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"labels": [_Exploit(marker)]}, protocol=2))
    with pytest.raises(DataError) as info:
        safe_load_pickle(path)
    message = str(info.value)
    assert str(path) in message and "system" in message
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [0, 2, 4])
def test_other_globals_are_refused(tmp_path: Path, protocol: int) -> None:
    for obj, name in ((eval, "eval"), (getattr, "getattr"), (Path("x"), "PosixPath")):
        data = pickle.dumps(obj, protocol=protocol)
        with pytest.raises(DataError, match=name):
            safe_loads_pickle(data, "mem.pkl")


def test_object_array_cannot_smuggle_a_global() -> None:
    arr = np.empty(1, dtype=object)
    arr[0] = os.getcwd
    with pytest.raises(DataError, match="getcwd"):
        safe_loads_pickle(pickle.dumps(arr, protocol=2), "obj.pkl")


@pytest.mark.parametrize("protocol", [0, 1, 2, 3, 4, 5])
def test_numpy_and_containers_round_trip(protocol: int) -> None:
    obj = {
        "a": np.arange(12, dtype=np.float32).reshape(3, 4),
        "b": np.array([[1, 2]], dtype=np.uint16).T,  # non-contiguous view
        "s": np.float32(0.25),
        "u": np.str_("Basketball/v_1"),
        "i": np.int64(7),
        "od": collections.OrderedDict([("x", 1), ("y", [1.5, "z"])]),
        "set": {1, 2},
        "fs": frozenset({"q"}),
        "c": complex(1, 2),
        "bytes": b"\x00\xff",
        "tuple": (1, None, True),
    }
    back = safe_loads_pickle(pickle.dumps(obj, protocol=protocol), "rt.pkl")
    assert back.keys() == obj.keys()
    for k, v in obj.items():
        if isinstance(v, np.ndarray):
            assert back[k].dtype == v.dtype
            np.testing.assert_array_equal(back[k], v)
        else:
            assert back[k] == v and type(back[k]) is type(v)


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        safe_load_pickle(tmp_path / "absent.pkl")
    empty = tmp_path / "empty.pkl"
    empty.write_bytes(b"")
    with pytest.raises(DataError, match="empty"):
        safe_load_pickle(empty)
    truncated = tmp_path / "cut.pkl"
    truncated.write_bytes(pickle.dumps({"a": np.arange(100)}, protocol=2)[:50])
    with pytest.raises(DataError, match="cut.pkl"):
        safe_load_pickle(truncated)
    text = tmp_path / "text.pkl"
    text.write_text("hello world\n")
    with pytest.raises(DataError, match="text.pkl"):
        safe_load_pickle(text)
