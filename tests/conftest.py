"""Shared test helpers: where the real sample data lives; detections compared within tolerance."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest
import torch

from singleshot.structures import Detections

SHARED_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


@pytest.fixture()
def shared_data() -> Callable[..., Path]:
    """``shared_data("voc", "VOCdevkit")``: a path under ../shared/data, or skip the test (saying
    why) when that folder is absent, as on a user's machine."""

    def find(*parts: str) -> Path:
        path = SHARED_DATA.joinpath(*parts)
        if not path.exists():
            pytest.skip(f"real sample data not found: {path} (the ../shared/data folder is absent)")
        return path

    return find


@pytest.fixture(autouse=True, scope="session")
def _check_cache_in_a_temporary_folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Dataset-check results (``SINGLESHOT_CACHE``) go to a folder of this test session, never the
    user's ~/.cache: ``train`` and ``val`` check their data first. Session-wide, so that
    module-scoped fixtures that train see it too."""
    cache = tmp_path_factory.mktemp("check_cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SINGLESHOT_CACHE", str(cache))
        yield cache


@pytest.fixture()
def one_thread() -> Iterator[None]:
    """One intra-op thread for the test (restored after): on a busy 2-core machine two spinning
    OpenMP threads make small convolutions several times slower. Files that train or run small
    models use it with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@contextmanager
def _stalling_http_server(data: bytes, hold_seconds: float = 6.0) -> Iterator[str]:
    """A local HTTP server whose every GET sends the first half of ``data`` then goes silent for
    ``hold_seconds`` (a live stream that stalls); yields its URL."""
    import http.server
    import threading
    import time

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            time.sleep(hold_seconds)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/live.ts"
    finally:
        server.shutdown()


@pytest.fixture()
def stalling_http_server() -> Callable[..., AbstractContextManager[str]]:
    """``with stalling_http_server(data) as url:`` a live stream that sends half of ``data`` then stalls."""
    return _stalling_http_server


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist every worker is a process of its own: one intra-op thread each, so that
    N workers on N cores do not oversubscribe them (OpenMP threads that busy-wait on a shared core
    made the small convolutions of these tests 10x slower or worse)."""
    import os

    if os.environ.get("PYTEST_XDIST_WORKER"):
        torch.set_num_threads(1)


def _assert_same(
    got: Sequence[Detections], ref: Sequence[Detections], score_atol: float = 1e-4, box_atol: float = 1e-2
) -> None:
    """Every detection of ``ref`` has its own partner in ``got`` (same label, score and box within
    tolerance), image by image. Matching instead of sorting: near-equal scores may come in any order."""
    assert len(got) == len(ref)
    for g, r in zip(got, ref):
        assert len(g) == len(r)
        close = (
            (g.labels[None, :] == r.labels[:, None])
            & ((g.scores[None, :] - r.scores[:, None]).abs() <= score_atol)
            & ((g.boxes[None, :, :] - r.boxes[:, None, :]).abs().amax(-1) <= box_atol)
        )  # [len(r), len(g)]
        used = torch.zeros(len(g), dtype=torch.bool)
        for i in range(len(r)):
            free = (close[i] & ~used).nonzero()
            assert len(free) > 0, (
                f"no match for detection {i}: label {int(r.labels[i])} score {float(r.scores[i]):.6f} box {r.boxes[i].tolist()}"
            )
            used[free[0, 0]] = True


@pytest.fixture()
def assert_same_detections() -> Callable[..., None]:
    return _assert_same
