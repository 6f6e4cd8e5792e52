"""A stopping service never waits without a deadline on its background loops: rounds in
progress finish, stragglers are cancelled, and a task that does not even end when cancelled is
left behind with a log line instead of holding the shutdown (and the next start) forever."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from datetime import datetime

import pytest
from structlog.testing import capture_logs

from services.common.runtime import Runtime, stop_background
from services.common.settings import CommonSettings
from services.common.wakeup import run_when_due


@pytest.fixture
async def runtime() -> AsyncIterator[Runtime]:
    settings = CommonSettings(
        kek=base64.b64encode(b"k" * 32).decode(),
        shutdown_grace_s=0.5,
        mongo_url="mongodb://127.0.0.1:9/",  # never contacted
    )
    built = Runtime.build("unit-service", settings)
    yield built
    await built.mongo.close()


async def test_a_loop_mid_round_finishes_its_round_and_is_not_cancelled(runtime: Runtime) -> None:
    wakeup = runtime.wakeup(3600)
    started = asyncio.Event()
    rounds: list[str] = []

    async def work() -> datetime | None:
        started.set()
        await asyncio.sleep(0.1)  # a store write in flight
        rounds.append("finished")
        return None

    task = asyncio.create_task(run_when_due("unit round", work, wakeup), name="unit-loop")
    await started.wait()
    with capture_logs() as logs:
        await stop_background(runtime, [task])
    assert rounds == ["finished"]
    assert task.done()
    assert not task.cancelled()
    assert logs == []


async def test_a_task_that_swallows_its_cancellation_does_not_hold_up_the_shutdown(
    runtime: Runtime,
) -> None:
    """What a cancellation lost in a race (Python 3.11's ``wait_for``) looks like: the task
    goes on waiting. Shutdown goes on without it after the grace periods."""
    release = asyncio.Event()

    async def stubborn() -> None:
        while not release.is_set():
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                continue

    task = asyncio.create_task(stubborn(), name="stubborn")
    with capture_logs() as logs:
        await stop_background(runtime, [task])
    assert not task.done(), "shutdown went on without waiting for it"
    (warning,) = [entry for entry in logs if entry["log_level"] == "warning"]
    assert warning["tasks"] == ["stubborn"]
    assert warning["not_ended"] == ["stubborn"]
    release.set()
    task.cancel()
    await asyncio.wait_for(task, 5)
