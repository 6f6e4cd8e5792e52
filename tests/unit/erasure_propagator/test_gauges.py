"""The open-erasure gauges read the store when scraped, but not on every scrape of an idle
service: again after this process handled erasure events, or once the count is 30 s old."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from prometheus_client import generate_latest

from services.common.metrics import ServiceMetrics
from services.erasure_propagator.metrics import GAUGES_MAX_AGE, ErasureMetrics


class Clock:
    """The service clock, set by hand (it may be set back, as a real one can)."""

    def __init__(self) -> None:
        self.moment = datetime(2026, 12, 1, tzinfo=UTC)

    def now(self) -> datetime:
        return self.moment


class Erasures:
    """The store's open counts, and how often they were read."""

    def __init__(self) -> None:
        self.requested = 0
        self.reads = 0
        self.reading: asyncio.Event | None = None
        self.started = asyncio.Event()

    async def open_counts(self, now: datetime) -> dict[str, tuple[int, int]]:
        self.reads += 1
        seen = self.requested
        self.started.set()
        if self.reading is not None:
            await self.reading.wait()  # a state changes while this count is under way
        return {"requested": (seen, 0), "deferred": (0, 0)}


def gauge(metrics: ServiceMetrics) -> str:
    text = generate_latest(metrics.registry).decode()
    return next(
        line for line in text.splitlines() if "erasures_open{" in line and "requested" in line
    )


def setup() -> tuple[ServiceMetrics, Erasures, Clock, ErasureMetrics]:
    metrics = ServiceMetrics("erasure-propagator", topic_prefix="", event_types=[])
    store, clock = Erasures(), Clock()
    erasure_metrics = ErasureMetrics(metrics, store, clock)  # type: ignore[arg-type]
    return metrics, store, clock, erasure_metrics


async def test_an_idle_service_counts_once_per_max_age_however_often_scraped() -> None:
    metrics, store, clock, _ = setup()
    for _ in range(10):
        await metrics.refresh()
        clock.moment += timedelta(seconds=2)
    assert store.reads == 1
    clock.moment += GAUGES_MAX_AGE
    await metrics.refresh()
    assert store.reads == 2
    clock.moment -= timedelta(hours=1)  # a clock set back counts again
    await metrics.refresh()
    assert store.reads == 3


async def test_handled_erasure_events_make_the_next_scrape_count_again() -> None:
    metrics, store, _, erasure_metrics = setup()
    await metrics.refresh()
    store.requested = 1
    await metrics.refresh()
    assert gauge(metrics).endswith(" 0.0"), "within its age, the count stands"
    erasure_metrics.invalidate()
    await metrics.refresh()
    assert gauge(metrics).endswith(" 1.0")
    assert store.reads == 2


async def test_a_count_overtaken_by_a_change_is_not_kept() -> None:
    metrics, store, _, erasure_metrics = setup()
    store.reading = asyncio.Event()
    counting = asyncio.create_task(metrics.refresh())
    await store.started.wait()
    store.requested = 1
    erasure_metrics.invalidate()  # the batch finished while the scrape was counting
    store.reading.set()
    await counting
    store.reading = None
    await metrics.refresh()
    assert gauge(metrics).endswith(" 1.0")
    assert store.reads == 2
