"""Small helpers shared by integration and end-to-end tests."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any, TypeVar

import httpx
from prometheus_client.parser import text_string_to_metric_families
from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import OperationFailure

from contracts import EventEnvelope
from services.common.clock import FakeClock
from services.common.declaration import ExportSources, Projector, Service, ServiceDeclaration
from services.common.export_package import ExportPart
from services.common.settings import CommonSettings
from services.common.store import CommandCounter

T = TypeVar("T")
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
"""Prometheus samples: (sample name, labels) -> value."""


async def eventually(
    probe: Callable[[], Awaitable[T | None]], *, within: float = 30.0, what: str = "condition"
) -> T:
    """Poll ``probe`` until it returns something other than None; fail after ``within`` s."""
    try:
        async with asyncio.timeout(within):
            while True:
                value = await probe()
                if value is not None:
                    return value
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"{what} did not happen within {within}s") from None


async def scrape_metrics(client: httpx.AsyncClient) -> Samples:
    """``GET /metrics``, parsed with prometheus_client's own text parser."""
    response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    return parse_metrics(response.text)


def parse_metrics(text: str) -> Samples:
    found: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[sample.name, frozenset(sample.labels.items())] = sample.value
    return found


def sample(samples: Samples, name: str, **labels: str) -> float | None:
    """The value of the sample with exactly these labels, or None if there is none."""
    return samples.get((name, frozenset(labels.items())))


@asynccontextmanager
async def scratch_collection(
    mongo_url: str, prefix: str, name: str, *, commands: Counter[str] | None = None
) -> AsyncIterator[AsyncCollection[dict[str, Any]]]:
    """A collection in a database of its own (``<prefix>_<random>``), dropped afterwards.
    ``commands``: counts every command sent, as ``"<command> <collection>"``."""
    listeners = []
    if commands is not None:
        listeners.append(CommandCounter(lambda command, on: commands.update([f"{command} {on}"])))
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        mongo_url, tz_aware=True, event_listeners=listeners
    )
    database = f"{prefix}_{uuid.uuid4().hex[:10]}"
    try:
        yield client[database][name]
    finally:
        await client.drop_database(database)
        await client.close()


class FakeTime:
    """A waiter that lets fake time pass instead of waiting: each wait advances the clock by
    its whole timeout, unless the event is set already. Past ``horizon`` it stops the loop."""

    def __init__(self, clock: FakeClock, horizon: timedelta | None = None) -> None:
        self.clock = clock
        self.horizon = None if horizon is None else clock.now() + horizon
        self.waits: list[float] = []
        self.done = asyncio.Event()

    async def __call__(self, event: asyncio.Event, seconds: float) -> None:
        if event.is_set():
            return
        self.waits.append(seconds)
        self.clock.advance(timedelta(seconds=seconds))
        if self.horizon is not None and self.clock.now() >= self.horizon:
            self.done.set()
            await asyncio.Event().wait()  # parked until the test cancels the loop


async def collection_scans(db: Any) -> dict[str, int] | None:
    """How many filters the local store has answered by reading a whole collection, per
    collection of ``db`` (its ``{leadtrailStats: 1}`` command; system collections left out).
    None on a store without that command (MongoDB: ask ``explain`` instead)."""
    try:
        stats = await db.command("leadtrailStats")
    except OperationFailure:
        return None
    return {
        name: int(count) for name, count in stats["scans"].items() if not name.startswith("system.")
    }


def new_scans(before: dict[str, int] | None, after: dict[str, int] | None) -> dict[str, int]:
    """The scans counted between two :func:`collection_scans` readings (none if the store
    does not count them)."""
    if before is None or after is None:
        return {}
    return {
        name: count - before.get(name, 0)
        for name, count in after.items()
        if count != before.get(name, 0)
    }


def one_by_one(
    handle: Callable[[EventEnvelope], Awaitable[None]],
) -> Callable[[Sequence[EventEnvelope]], Awaitable[None]]:
    """A batch handler that hands each event of the batch to ``handle``, in order."""

    async def handle_batch(events: Sequence[EventEnvelope]) -> None:
        for event in events:
            await handle(event)

    return handle_batch


def bare_declaration(name: str) -> ServiceDeclaration[CommonSettings, None]:
    """A service with no subscriptions, routes, read models or export part: the runtime alone
    (health, metrics, start and stop)."""

    async def nothing() -> None:
        return None

    async def no_events(envelopes: Sequence[EventEnvelope]) -> None:
        assert not envelopes, "a bare service projects nothing"

    async def empty_part(sources: ExportSources, tenant_id: str, subject_id: str) -> ExportPart:
        return ExportPart(service=name, sections={})

    return ServiceDeclaration(
        name=name,
        package="tests",
        title=f"Leadtrail {name}",
        settings=CommonSettings,
        subscriptions=(),
        read_models=(),
        operational=(),
        build=lambda runtime, settings: Service(handlers=None),
        projector=lambda db: Projector(nothing, no_events),
        export_part=empty_part,
    )
