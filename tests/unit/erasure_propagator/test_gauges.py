"""The open-erasure gauges read the store when scraped, but not on every scrape of an idle
service: again after this process handled erasure events, or once the count is 30 s old."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import generate_latest

from services.common.metrics import ServiceMetrics
from services.erasure_propagator.handlers import ErasureHandlers
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


async def test_a_count_overtaken_by_a_batch_is_made_again_before_the_scrape_shows_it() -> None:
    metrics, store, _, erasure_metrics = setup()
    store.reading = asyncio.Event()
    counting = asyncio.create_task(metrics.refresh())
    await store.started.wait()
    store.requested = 1
    erasure_metrics.invalidate()  # a batch finished while the scrape was counting
    store.reading.set()
    await counting
    assert gauge(metrics).endswith(" 1.0"), "the scrape shows the count made after the batch"
    assert store.reads == 2
    await metrics.refresh()
    assert store.reads == 2, "and that count is kept"


class Folder:
    def __init__(self, events: list[str]) -> None:
        self.events = events

    async def fold(self, events: Any, *, seeded: Any) -> list[Any]:
        self.events.append("fold")
        return []


async def test_handling_a_batch_makes_the_next_scrape_count_again_even_when_it_fails() -> None:
    """After the fold wrote the new states, and again after the rest of the batch."""
    events: list[str] = []
    handlers = ErasureHandlers.__new__(ErasureHandlers)  # only what on_events touches
    handlers.runtime = SimpleNamespace(registry=SimpleNamespace(decode=lambda e: e))  # type: ignore[assignment]
    handlers.model = SimpleNamespace(seeds_needed=lambda events: None)  # type: ignore[assignment]

    async def seeds(needed: Any) -> dict[str, Any]:
        return {}

    handlers.store = SimpleNamespace(seeds=seeds)  # type: ignore[assignment]
    handlers.folder = Folder(events)  # type: ignore[assignment]
    handlers.metrics = SimpleNamespace(invalidate=lambda: events.append("invalidate"))  # type: ignore[assignment]

    async def act_on(applied: Any) -> None:
        events.append("act")
        raise RuntimeError("the store went away")

    handlers.act_on = act_on  # type: ignore[method-assign,assignment]
    with pytest.raises(RuntimeError):
        await handlers.on_events([])
    assert events == ["fold", "invalidate", "act", "invalidate"]
