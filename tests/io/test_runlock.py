"""``singleshot.io.runlock``: one writer per run folder, the holder's pid named, stale locks taken over."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from singleshot.errors import ConfigError
from singleshot.io.runlock import LOCK_NAME, acquire_run_lock

HOLDER = """
import sys, time
from singleshot.io.runlock import acquire_run_lock
lock = acquire_run_lock(sys.argv[1])
print("held", flush=True)
time.sleep(60)
"""


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_second_process_is_refused_naming_the_holder(tmp_path: Path) -> None:
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        assert (tmp_path / LOCK_NAME).read_text().strip() == str(holder.pid)
        with pytest.raises(ConfigError, match=rf"in use by process {holder.pid}\b"):
            acquire_run_lock(tmp_path)
    finally:
        holder.kill()
        holder.wait()
    # killed without cleaning up: its lock file stays, yet the folder is free again
    assert (tmp_path / LOCK_NAME).exists()
    with acquire_run_lock(tmp_path) as lock:
        assert lock.held and (tmp_path / LOCK_NAME).read_text().strip().isdigit()
    assert not (tmp_path / LOCK_NAME).exists()


def test_a_stale_lock_is_taken_over_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    dead = _dead_pid()
    (tmp_path / LOCK_NAME).write_text(f"{dead}\n")
    with caplog.at_level(logging.WARNING, logger="singleshot.io.runlock"):
        lock = acquire_run_lock(tmp_path)
    assert f"process {dead}" in caplog.text
    lock.release()
    lock.release()  # once only
    assert not (tmp_path / LOCK_NAME).exists()


def test_a_lock_file_naming_a_running_process_is_respected(tmp_path: Path) -> None:
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / LOCK_NAME).write_text(f"{sleeper.pid}\n")
        with pytest.raises(ConfigError, match=str(sleeper.pid)):
            acquire_run_lock(tmp_path)
    finally:
        sleeper.kill()
        sleeper.wait()
