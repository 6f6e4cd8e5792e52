"""Pausing a server for the fault tests (``devstack.process.pause``): it returns only once the
server is really stopped, and says so when there is nothing to stop."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack import process
from devstack.errors import InfraError


@pytest.fixture
def threaded_child() -> Iterator[subprocess.Popen[bytes]]:
    """A process with several threads, leading its own process group (as the servers do)."""
    code = (
        "import threading, time\n"
        + "".join(
            "threading.Thread(target=time.sleep, args=(60,), daemon=True).start()\n"
            for _ in range(4)
        )
        + "time.sleep(60)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)  # noqa: S603
    try:
        yield child
    finally:
        child.kill()
        child.wait()


def _states(pid: int) -> set[str]:
    stats = [(task / "stat").read_text() for task in Path(f"/proc/{pid}/task").iterdir()]
    return {stat.rpartition(")")[2].split()[0] for stat in stats}


def test_pause_returns_with_every_thread_stopped_and_resume_runs_them_again(
    threaded_child: subprocess.Popen[bytes],
) -> None:
    process.pause(threaded_child.pid)
    assert _states(threaded_child.pid) <= {"T", "t"}
    process.resume(threaded_child.pid)
    deadline = time.monotonic() + 10
    while _states(threaded_child.pid) & {"T", "t"} and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not _states(threaded_child.pid) & {"T", "t"}


def test_pausing_a_process_that_is_gone_is_an_error_not_a_silent_no_op() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"], start_new_session=True)
    child.wait()
    with pytest.raises(InfraError, match="gone"):
        process.pause(child.pid)


def test_pausing_a_zombie_is_an_error() -> None:
    """An exited child nobody has reaped yet: its group still exists, its process does not run."""
    child = subprocess.Popen([sys.executable, "-c", "pass"], start_new_session=True)
    deadline = time.monotonic() + 10
    while _states_or_none(child.pid) != {"Z"} and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        with pytest.raises(InfraError, match="exited"):
            process.pause(child.pid)
    finally:
        child.wait()


def _states_or_none(pid: int) -> set[str] | None:
    try:
        return _states(pid)
    except OSError:
        return None
