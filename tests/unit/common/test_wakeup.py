"""Background loops wake on work and due times, not on a timer: counted in fake time."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from services.common.clock import FakeClock
from services.common.wakeup import Wakeup, run_when_due
from tests.helpers import FakeTime

START = datetime(2026, 11, 1, tzinfo=UTC)


async def run_for(wakeup: Wakeup, time: FakeTime, work: object) -> None:
    task = asyncio.create_task(run_when_due("unit work", work, wakeup))  # type: ignore[arg-type]
    try:
        await asyncio.wait_for(time.done.wait(), 10)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_it_sleeps_until_the_next_due_time() -> None:
    clock = FakeClock(START)
    time = FakeTime(clock)
    wakeup = Wakeup(clock, 60, waiter=time)
    await wakeup.sleep(START + timedelta(seconds=12))
    assert time.waits == [12]
    assert clock.now() == START + timedelta(seconds=12)


async def test_it_never_sleeps_longer_than_the_cap() -> None:
    clock = FakeClock(START)
    time = FakeTime(clock)
    wakeup = Wakeup(clock, 60, waiter=time)
    await wakeup.sleep(START + timedelta(days=365))
    await wakeup.sleep(None)
    assert time.waits == [60, 60]


async def test_work_due_now_or_earlier_does_not_sleep() -> None:
    clock = FakeClock(START)
    time = FakeTime(clock)
    wakeup = Wakeup(clock, 60, waiter=time)
    await wakeup.sleep(START)
    wakeup.notify()
    await wakeup.sleep(None)
    assert time.waits == []


async def test_an_announced_time_shortens_the_sleep_a_later_one_does_not() -> None:
    clock = FakeClock(START)
    time = FakeTime(clock)
    wakeup = Wakeup(clock, 60, waiter=time)
    wakeup.notify(START + timedelta(seconds=30))
    wakeup.notify(START + timedelta(seconds=50))
    await wakeup.sleep(START + timedelta(seconds=40))
    assert time.waits == [30]
    wakeup.begin()
    wakeup.notify(START + timedelta(days=2))
    await wakeup.sleep(START + timedelta(seconds=45))
    assert time.waits == [30, 15]


async def test_work_announced_during_a_round_is_due_now() -> None:
    clock = FakeClock(START)
    wakeup = Wakeup(clock, 60)
    wakeup.begin()
    assert not wakeup.due_now
    wakeup.notify(START + timedelta(seconds=5))
    assert not wakeup.due_now, "announced for later"
    wakeup.notify()
    assert wakeup.due_now
    wakeup.begin()
    assert not wakeup.due_now, "a new round handles it"


async def test_a_notify_wakes_a_sleeping_loop_at_once() -> None:
    """The real waiter: a handler's notify ends a sleep of an hour."""
    wakeup = Wakeup(FakeClock(START), 3600)
    sleeping = asyncio.create_task(wakeup.sleep(None))
    await asyncio.sleep(0)
    assert not sleeping.done()
    wakeup.notify()
    await asyncio.wait_for(sleeping, 5)


async def test_an_idle_loop_runs_its_work_once_per_cap() -> None:
    """An hour of fake time with nothing due: the work (one store read, say) runs 60 times,
    not 18,000 (a 0.2 s poll)."""
    clock = FakeClock(START)
    time = FakeTime(clock, horizon=timedelta(hours=1))
    wakeup = Wakeup(clock, 60, waiter=time)
    runs: list[datetime] = []

    async def work() -> datetime | None:
        runs.append(clock.now())
        return None

    await run_for(wakeup, time, work)
    assert len(runs) == 60
    assert set(time.waits) == {60}


async def test_a_failing_round_is_retried_soon_not_at_the_cap() -> None:
    clock = FakeClock(START)
    time = FakeTime(clock, horizon=timedelta(seconds=20))
    wakeup = Wakeup(clock, 60, waiter=time)

    async def work() -> datetime | None:
        raise ConnectionError("store down")

    await run_for(wakeup, time, work)
    assert time.waits == [5, 5, 5, 5]


def test_the_cap_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_sleep_s"):
        Wakeup(FakeClock(START), 0)


async def test_stop_lets_the_round_in_progress_finish_then_the_loop_returns() -> None:
    """A stopping service does not cut a round off halfway (its writes and publishes finish),
    and a loop asleep for an hour ends at once."""
    wakeup = Wakeup(FakeClock(START), 3600)
    started, release = asyncio.Event(), asyncio.Event()
    finished: list[int] = []

    async def work() -> datetime | None:
        started.set()
        await release.wait()
        finished.append(len(finished))
        return None

    loop = asyncio.create_task(run_when_due("unit work", work, wakeup))
    await asyncio.wait_for(started.wait(), 5)
    wakeup.stop()
    release.set()
    await asyncio.wait_for(loop, 5)
    assert finished == [0], "the round finished, and no other began"

    asleep = Wakeup(FakeClock(START), 3600)
    sleeping = asyncio.create_task(asleep.sleep(None))
    await asyncio.sleep(0)
    asleep.stop()
    await asyncio.wait_for(sleeping, 5)
    await asyncio.wait_for(run_when_due("never runs", work, asleep), 5)
    assert finished == [0]
