"""Prometheus metrics every service exposes on ``GET /metrics``.

Each service process owns one :class:`ServiceMetrics` with its own ``CollectorRegistry`` (the
in-process test cluster runs five services in one interpreter, so the global default registry
would mix them). Every metric carries a ``service`` label; other labels are closed sets chosen
by the code — logical topic names, registered event types, outcomes, route templates — never
tenant-controlled text or subject ids, so cardinality stays bounded.

Hot paths (one call per event, per publish, per HTTP request) look label children up in a
plain dict keyed by the label tuple, not through ``Metric.labels`` (which takes a lock and
builds a key every time).

Some values are read on scrape rather than pushed: :meth:`ServiceMetrics.on_scrape` registers
an async refresher (consumer lag, open erasures, circuit states) that ``/metrics`` awaits before
rendering, each bounded by a timeout so a slow dependency never blocks the scrape.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector

from contracts.envelope import EventEnvelope
from contracts.registry import EventRegistry
from services.common.logging import get_logger
from services.common.publisher import EventPublisher
from services.common.settings import CommonSettings

__all__ = [
    "CONTENT_TYPE_LATEST",
    "OTHER",
    "LabelCache",
    "MeasuredPublisher",
    "ServiceMetrics",
    "logical_topic",
]

log = get_logger(__name__)

OTHER = "other"
"""The label value for anything outside a closed set (unknown type, topic or method)."""

HANDLER_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0)
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
SCRAPE_REFRESH_TIMEOUT_S = 3.0

M = TypeVar("M", Counter, Gauge, Histogram)


class LabelCache(Generic[M]):
    """``metric.labels(*values)`` memoised in a dict: no lock, no key building per call.

    Only for closed label sets (the cache grows with the number of distinct tuples)."""

    __slots__ = ("_children", "_metric")

    def __init__(self, metric: M) -> None:
        self._metric: M = metric
        self._children: dict[tuple[str, ...], M] = {}

    def __call__(self, *values: str) -> M:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self._metric.labels(*values)
        return child


def logical_topic(physical: str, prefix: str) -> str:
    """``leadtrail.lead-events`` -> ``lead-events`` (the label never carries the prefix)."""
    return physical[len(prefix) :] if physical.startswith(prefix) else physical


class _Consumer(Protocol):
    """What lag needs from an ``aiokafka.AIOKafkaConsumer``."""

    def assignment(self) -> set[Any]: ...

    async def end_offsets(self, partitions: list[Any]) -> dict[Any, int]: ...

    async def position(self, partition: Any) -> int: ...


@dataclass(frozen=True)
class _Tracked:
    group: str
    consumer: Callable[[], _Consumer | None]


class _LagCollector(Collector):
    """``leadtrail_consumer_lag``: end offset minus the consumer's position, per assigned
    partition, as of the last refresh (partitions no longer assigned disappear)."""

    def __init__(self, service: str, prefix: str) -> None:
        self.service = service
        self.prefix = prefix
        self.tracked: list[_Tracked] = []
        self.snapshot: dict[tuple[str, str, str], int] = {}

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "leadtrail_consumer_lag",
            "Records on the partition not yet consumed by the group (end offset - position)",
            labels=["service", "group", "topic", "partition"],
        )
        for (group, topic, partition), lag in sorted(self.snapshot.items()):
            family.add_metric([self.service, group, topic, partition], lag)
        yield family

    def describe(self) -> Iterable[Metric]:
        return [GaugeMetricFamily("leadtrail_consumer_lag", "", labels=[])]

    async def refresh(self) -> None:
        """Read every tracked consumer; one that fails (say, mid-rebalance) reports nothing
        this time rather than stale values, and its error is raised after the others."""
        snapshot: dict[tuple[str, str, str], int] = {}
        failure: Exception | None = None
        for tracked in self.tracked:
            consumer = tracked.consumer()
            if consumer is None:
                continue  # not started yet, or stopped
            try:
                snapshot.update(await self._lags(tracked.group, consumer))
            except Exception as error:  # counted by the caller once raised
                failure = failure or error
        self.snapshot = snapshot
        if failure is not None:
            raise failure

    async def _lags(self, group: str, consumer: _Consumer) -> dict[tuple[str, str, str], int]:
        partitions = list(consumer.assignment())
        if not partitions:
            return {}
        ends = await consumer.end_offsets(partitions)
        lags = {}
        for tp in partitions:
            position = await consumer.position(tp)
            key = (group, logical_topic(tp.topic, self.prefix), str(tp.partition))
            lags[key] = max(0, ends.get(tp, position) - position)
        return lags


class ServiceMetrics:
    """The metrics of one service process, and the refreshers that run on each scrape."""

    def __init__(self, service: str, *, topic_prefix: str, event_types: Iterable[str]) -> None:
        self.service = service
        self.topic_prefix = topic_prefix
        self.event_types = frozenset(event_types)
        self.registry = CollectorRegistry()
        r = self.registry
        self.events_handled = Counter(
            "leadtrail_events_handled",
            "Kafka records handled by an event handler, by outcome: ok (committed), retry "
            "(rewound, will be redelivered), dead_letter (sent to the dead-letter topic)",
            ["service", "topic", "event_type", "outcome"],
            registry=r,
        )
        self.handler_seconds = Histogram(
            "leadtrail_event_handler_seconds",
            "Time spent in the event handler per attempt (decode and commit excluded)",
            ["service", "topic", "event_type"],
            buckets=HANDLER_BUCKETS,
            registry=r,
        )
        self.events_published = Counter(
            "leadtrail_events_published",
            "Events published and acknowledged by Kafka (acks=all)",
            ["service", "topic", "event_type"],
            registry=r,
        )
        self.dead_letters = Counter(
            "leadtrail_dead_letters",
            "Records or CRM calls sent to the dead-letter topic, by source topic and reason",
            ["service", "topic", "reason"],
            registry=r,
        )
        self.http_requests = Counter(
            "leadtrail_http_requests",
            "HTTP requests answered, by route template and status code",
            ["service", "method", "route", "status"],
            registry=r,
        )
        self.http_seconds = Histogram(
            "leadtrail_http_request_seconds",
            "HTTP request duration, from the first byte in to the last byte out",
            ["service", "method", "route"],
            buckets=HTTP_BUCKETS,
            registry=r,
        )
        self.scrape_errors = Counter(
            "leadtrail_metrics_refresh_errors",
            "Refreshes of scrape-time values (lag, gauges) that failed or timed out",
            ["service", "source"],
            registry=r,
        )
        self.store_commands = Counter(
            "leadtrail_store_commands",
            "Commands this service sent to the store (each one round trip), by command name "
            "and the collection it names (empty: none)",
            ["service", "command", "collection"],
            registry=r,
        )
        self.offset_commits = Counter(
            "leadtrail_kafka_offset_commits",
            "Kafka offset commits requested by this service's consumers, by consumer group",
            ["service", "group"],
            registry=r,
        )
        self.test_clock = Gauge(
            "leadtrail_test_clock",
            "1 when the service runs the TEST ONLY offset-file clock (time = system time plus "
            "the offset in a file; never in production), else 0",
            ["service"],
            registry=r,
        )
        self.test_clock.labels(service).set(0)
        self._lag = _LagCollector(service, topic_prefix)
        r.register(self._lag)
        self._handled = LabelCache(self.events_handled)
        self._handler_seconds = LabelCache(self.handler_seconds)
        self._published = LabelCache(self.events_published)
        self._dead_letters = LabelCache(self.dead_letters)
        self._http = LabelCache(self.http_requests)
        self._http_seconds = LabelCache(self.http_seconds)
        self._store_commands = LabelCache(self.store_commands)
        self._offset_commits = LabelCache(self.offset_commits)
        self._refreshers: list[tuple[str, Callable[[], Awaitable[None]]]] = [
            ("consumer_lag", self._lag.refresh)
        ]

    @classmethod
    def for_service(
        cls, service: str, settings: CommonSettings, registry: EventRegistry
    ) -> ServiceMetrics:
        types = {definition.type for definition in registry.definitions()}
        return cls(service, topic_prefix=settings.topic_prefix, event_types=types)

    # -- labels -----------------------------------------------------------------------------
    def event_type(self, name: str | None) -> str:
        """A registered event type, else ``other`` (never free text from a record)."""
        return name if name is not None and name in self.event_types else OTHER

    def topic(self, physical: str) -> str:
        return logical_topic(physical, self.topic_prefix)

    # -- recording --------------------------------------------------------------------------
    def handled(self, topic: str, event_type: str, outcome: str, seconds: float) -> None:
        """One handler attempt on a record of logical ``topic``, ``event_type`` (checked)."""
        self._handled(self.service, topic, event_type, outcome).inc()
        self._handler_seconds(self.service, topic, event_type).observe(seconds)

    def handled_without_handler(self, topic: str, outcome: str) -> None:
        """A record that never reached the handler (undecodable: dead-lettered at once)."""
        self._handled(self.service, topic, OTHER, outcome).inc()

    def published(self, topic: str, event_type: str) -> None:
        self._published(self.service, topic, event_type).inc()

    def dead_lettered(self, topic: str, reason: str) -> None:
        self._dead_letters(self.service, topic, reason).inc()

    def http_request(self, method: str, route: str, status: int, seconds: float) -> None:
        method = method if method in HTTP_METHODS else OTHER
        self._http(self.service, method, route, str(status)).inc()
        self._http_seconds(self.service, method, route).observe(seconds)

    def store_command(self, command: str, collection: str) -> None:
        """One command sent to the store (:class:`~services.common.store.CommandCounter`)."""
        self._store_commands(self.service, command, collection).inc()

    def offset_committed(self, group: str) -> None:
        self._offset_commits(self.service, group).inc()

    # -- scrape-time values -----------------------------------------------------------------
    def track_consumer(self, group: str, consumer: Callable[[], _Consumer | None]) -> None:
        """Report lag for the consumer ``consumer()`` returns (None while not started)."""
        self._lag.tracked.append(_Tracked(group, consumer))

    def on_scrape(self, source: str, refresh: Callable[[], Awaitable[None]]) -> None:
        """Run ``refresh`` before each scrape renders (``source`` names it in error counts)."""
        self._refreshers.append((source, refresh))

    async def refresh(self) -> None:
        """Run every refresher, concurrently, each within a timeout; failures are counted and
        logged, and the scrape goes on with the values it has."""

        async def run(source: str, refresh: Callable[[], Awaitable[None]]) -> None:
            try:
                await asyncio.wait_for(refresh(), timeout=SCRAPE_REFRESH_TIMEOUT_S)
            except Exception as error:  # a scrape must answer even when MongoDB/Kafka do not
                self.scrape_errors.labels(self.service, source).inc()
                log.warning(
                    "metrics refresh failed",
                    source=source,
                    error_type=type(error).__name__,
                    error=str(error),
                )

        await asyncio.gather(*(run(source, refresh) for source, refresh in self._refreshers))

    async def render(self) -> bytes:
        """The Prometheus text exposition, after refreshing scrape-time values."""
        await self.refresh()
        return generate_latest(self.registry)


class MeasuredPublisher(EventPublisher):
    """An :class:`EventPublisher` that counts what Kafka acknowledged.

    It wraps ``send`` from outside, so how the publisher builds and sends envelopes stays the
    publisher's business."""

    def __init__(self, *, metrics: ServiceMetrics, **publisher: Any) -> None:
        """``publisher``: :class:`EventPublisher`'s own keyword arguments, passed through."""
        super().__init__(**publisher)
        registry: EventRegistry = publisher["registry"]
        self._metrics = metrics
        self._topics = {d.type: d.topic for d in registry.definitions()}

    async def send(self, envelope: EventEnvelope) -> EventEnvelope:
        sealed = await super().send(envelope)
        self._metrics.published(
            self._topics.get(envelope.type, OTHER), self._metrics.event_type(envelope.type)
        )
        return sealed
