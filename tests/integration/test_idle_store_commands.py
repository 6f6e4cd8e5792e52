"""Nothing polls the store while idle (issue 14 point 5), counted, not timed.

Each service's background loop (crm-sync's outbox dispatcher, retention's expiry tick,
erasure-propagator's deadline check) runs against the real store for an hour of fake time with
nothing to do, through the same ``run_when_due`` and ``run_due`` the service runs; the store
commands its client sent are counted by the listener on ``/metrics``. A loop that polled every
0.2 s (crm-sync before) or every 30 s (the other two) sent 18,000 or 120 rounds in that hour;
now each wakes once per cap (60 s): at most 60 rounds of two reads.
"""

from __future__ import annotations

import asyncio
import base64
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.common.clock import FakeClock
from services.common.purposes import TenantPurposes
from services.common.runtime import Runtime
from services.common.wakeup import Wakeup, run_when_due
from services.crm_sync.connections import TenantConnections
from services.crm_sync.dispatcher import Dispatcher
from services.crm_sync.settings import CrmSettings
from services.crm_sync.store import CrmStore
from services.erasure_propagator.handlers import ErasureHandlers
from services.erasure_propagator.settings import ErasureSettings
from services.erasure_propagator.store import ErasureStore
from services.retention_scheduler.schedule import RetentionStore, Scheduler
from tests.helpers import FakeTime

pytestmark = pytest.mark.integration

START = datetime(2026, 11, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)
KEK = base64.b64encode(os.urandom(32)).decode()
CAP_S = 60.0
ROUNDS = int(HOUR.total_seconds() / CAP_S)


def store_commands(runtime: Runtime) -> float:
    return sum(
        sample.value
        for metric in runtime.metrics.store_commands.collect()
        for sample in metric.samples
        if sample.name.endswith("_total")
    )


@pytest.fixture
async def idle(
    mongo_url: str, tmp_path: Path
) -> AsyncIterator[tuple[Runtime, CrmSettings, FakeClock]]:
    clock = FakeClock(START)
    settings = CrmSettings(
        kek=KEK,
        mongo_url=mongo_url,
        mongo_db=f"it_idle_{uuid.uuid4().hex[:10]}",
        config_dir=tmp_path,
        topic_prefix=f"idle{uuid.uuid4().hex[:6]}.",
    )
    runtime = Runtime.build("idle-test", settings, clock)
    try:
        yield runtime, settings, clock
    finally:
        await runtime.mongo.drop_database(settings.mongo_db)
        await runtime.mongo.close()


async def idle_hour(
    runtime: Runtime, clock: FakeClock, work: Callable[[], Awaitable[datetime | None]]
) -> tuple[float, FakeTime]:
    """Store commands sent while ``work``'s loop runs through an idle hour of fake time."""
    time = FakeTime(clock, horizon=HOUR)
    before = store_commands(runtime)
    task = asyncio.create_task(run_when_due("idle", work, Wakeup(clock, CAP_S, waiter=time)))
    try:
        await asyncio.wait_for(time.done.wait(), 120)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return store_commands(runtime) - before, time


async def test_an_idle_crm_dispatcher_reads_the_outbox_once_a_minute_not_five_times_a_second(
    idle: tuple[Runtime, CrmSettings, FakeClock],
) -> None:
    runtime, settings, clock = idle
    dispatcher = Dispatcher(
        runtime,
        CrmStore(runtime.db),
        TenantConnections(settings.config_dir),
        TenantPurposes(settings.config_dir),
        settings,
    )
    sent, time = await idle_hour(runtime, clock, dispatcher.run_due)
    assert set(time.waits) == {CAP_S}, "nothing due: it sleeps the whole cap every time"
    assert 0 < sent <= 2 * ROUNDS, "the due entries and the next due time: two reads a round"


async def test_the_dispatcher_sleeps_until_a_pending_retry_is_due(
    idle: tuple[Runtime, CrmSettings, FakeClock],
) -> None:
    runtime, settings, clock = idle
    store = CrmStore(runtime.db)
    retry_at = START + timedelta(seconds=25)
    await store.outbox.insert_one(
        {"_id": "lead-1:crm", "state": "pending", "next_attempt_at": retry_at}
    )
    dispatcher = Dispatcher(
        runtime,
        store,
        TenantConnections(settings.config_dir),
        TenantPurposes(settings.config_dir),
        settings,
    )
    before = store_commands(runtime)
    assert await dispatcher.run_due() == retry_at, "nothing due yet; the retry's time, read"
    assert store_commands(runtime) - before == 2
    time = FakeTime(clock)
    await Wakeup(clock, CAP_S, waiter=time).sleep(retry_at)
    assert time.waits == [25]


async def test_an_idle_retention_tick_and_deadline_check_read_once_a_minute(
    idle: tuple[Runtime, CrmSettings, FakeClock],
) -> None:
    runtime, settings, clock = idle
    scheduler = Scheduler(RetentionStore(runtime.db), runtime.publisher, clock)
    sent, time = await idle_hour(runtime, clock, scheduler.run_due)
    assert set(time.waits) == {CAP_S}
    assert 0 < sent <= 2 * ROUNDS

    erasures = ErasureSettings(kek=KEK, mongo_url=settings.mongo_url)
    handlers = ErasureHandlers(runtime, ErasureStore(runtime.db), erasures)
    sent, time = await idle_hour(runtime, clock, handlers.run_due)
    assert set(time.waits) == {CAP_S}
    assert 0 < sent <= 2 * ROUNDS
