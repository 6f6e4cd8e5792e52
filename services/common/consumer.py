"""Consuming events reliably, in batches: at-least-once, committed only after handling,
poison to DLQ.

A subscription registered with :func:`subscribe_events` consumes batches: whatever the consumer
has fetched, up to ``consumer_batch_max_records`` records, ``consumer_batch_linger_ms`` after
the first of them arrived (:mod:`services.common.prompt_batches`; an idle consumer waits in
the poll and wakes every ``consumer_batch_wait_ms``). Per batch:

1. records whose ``type`` header names an unwanted type are skipped without decoding
   (records without the header are decoded: they may be poison, which must not vanish);
2. bytes that are not a valid :class:`~contracts.envelope.EventEnvelope` go straight to the
   dead-letter topic (retrying cannot fix them);
3. the rest go to the handler all at once, in offset order per partition (the batch pipeline,
   :mod:`services.common.pipeline`, loads what they touch with one read per collection and
   writes with one ``bulk_write`` per collection), and the events they cause are acknowledged
   by Kafka together (:func:`~services.common.publisher.acknowledged_together`). No lock: two
   replicas, or two consumer groups of one service, may handle one subject at once; the
   pipeline's versioned writes keep that exact. Every record handled writes one
   ``event handled`` line (info) with ``service``, ``tenant_id``, ``correlation_id``,
   ``causation_id``, ``event_id`` and ``event_type``, so a lead's correlation id shows in
   every service's log;
4. then the offsets of the whole batch are committed, once. A handler that fails is
   isolated: the batch is handled again record by record, so the records that are fine commit
   and only the failing one is retried with exponential backoff, up to
   ``handler_max_attempts``, then sent to the dead-letter topic with the error, alone. Nothing
   is dropped silently and nothing is committed before it was handled.
5. a failure that only says the store or Kafka did not answer
   (:func:`~services.common.availability.is_unavailable`) is no fault of a record: it uses up
   no attempt and is never dead-lettered. The consumer rewinds to the start of the batch,
   reports itself stalled (``/readyz``), retries with backoff capped at
   ``unavailable_backoff_max_s`` and resumes by itself when the dependency answers again.

A record sent again by ``leadtrail dlq redrive`` carries the dead letter's id (``redriven_from``)
and the service that gave up on it (``redrive_service``): every other service skips it (they
handled the original), and that service handles it alone, where the handler can read the
redrive's headers with :func:`redrive_headers` (crm-sync pushes to the one connection that failed).

Every record handled is counted by outcome (``ok``, ``retry``, ``dead_letter``) and timed, every
offset commit is counted, and the subscription's consumer reports its lag
(:mod:`services.common.metrics`).

Handlers must be idempotent (DESIGN principle 5): a crash after the effect and before the commit
redelivers the batch.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from contextvars import ContextVar
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from pydantic import ValidationError

from contracts.dead_letter import DeadLetterV1
from contracts.envelope import EventEnvelope
from contracts.registry import EventRegistry
from contracts.topics import TopicSpec
from services.common.availability import DependencyHealth, is_unavailable
from services.common.clock import Clock
from services.common.dead_letters import b64, send_dead_letter
from services.common.logging import get_logger, message_context
from services.common.metrics import ServiceMetrics
from services.common.prompt_batches import wait_in_poll_only
from services.common.publisher import acknowledged_together
from services.common.settings import CommonSettings

if TYPE_CHECKING:
    from services.common.runtime import Runtime

__all__ = [
    "BatchHandler",
    "Subscription",
    "redrive_headers",
    "redriven",
    "subscribe_all",
    "subscribe_events",
]

BatchHandler = Callable[[Sequence[EventEnvelope]], Awaitable[None]]
HandlersT = TypeVar("HandlersT")
log = get_logger(__name__)
_REDRIVE: ContextVar[Mapping[str, str] | None] = ContextVar("leadtrail_redrive", default=None)


def redrive_headers() -> Mapping[str, str] | None:
    """The headers of the record being handled when ``leadtrail dlq redrive`` sent it (the
    dead letter's context: ``redriven_from``, ``redrive_service``, crm-sync's ``connection_id``
    and ``operation``), else None."""
    return _REDRIVE.get()


@contextmanager
def redriven(headers: Mapping[str, str]) -> Iterator[None]:
    """Handle the record inside as one redriven with ``headers`` (see :func:`redrive_headers`)."""
    token = _REDRIVE.set(dict(headers))
    try:
        yield
    finally:
        _REDRIVE.reset(token)


@dataclass(frozen=True)
class Subscription(Generic[HandlersT]):
    """One consumer group of a service: the topics it reads, the event types it handles, and
    the method of the service's handlers object that handles a batch of them (``handle_batch``).

    Each service declares its subscriptions once, as the ``SUBSCRIPTIONS`` table of its
    ``app.py``: the service registers exactly that table (:func:`subscribe_all`), and
    ``leadtrail replay`` reads it to know which events rebuild the service's read models.
    """

    group_id: str
    topics: tuple[TopicSpec, ...]
    handle_batch: Callable[[HandlersT, Sequence[EventEnvelope]], Awaitable[None]]
    event_types: frozenset[str] | None = None
    """None: every type the registry routes to these topics."""

    def wanted(self, registry: EventRegistry, topic: str | None = None) -> frozenset[str]:
        """The event types handled, on one logical ``topic`` or on all of the subscription's."""
        names = [t.name for t in self.topics if topic is None or t.name == topic]
        routed = frozenset(name for n in names for name in registry.types_on_topic(n))
        return routed if self.event_types is None else routed & self.event_types


def subscribe_all(
    runtime: Runtime,
    settings: CommonSettings,
    *,
    service: str,
    subscriptions: Iterable[Subscription[HandlersT]],
    handlers: HandlersT,
) -> None:
    """Register a service's ``SUBSCRIPTIONS`` table with ``handlers`` as the handling object."""
    for subscription in subscriptions:
        subscribe_events(
            runtime.broker,
            settings,
            service=service,
            group_id=subscription.group_id,
            topics=[topic.name for topic in subscription.topics],
            handler=partial(subscription.handle_batch, handlers),
            clock=runtime.clock,
            metrics=runtime.metrics,
            event_types=sorted(subscription.wanted(runtime.registry)),
            health=runtime.health,
        )


def _headers(record: Any) -> dict[str, str]:
    return {key: value.decode(errors="replace") for key, value in (record.headers or ())}


def subscribe_events(
    broker: KafkaBroker,
    settings: CommonSettings,
    *,
    service: str,
    group_id: str,
    topics: Collection[str],
    clock: Clock,
    metrics: ServiceMetrics,
    handler: BatchHandler,
    event_types: Collection[str] | None = None,
    health: DependencyHealth | None = None,
) -> None:
    """Register ``handler`` for batches of events of ``event_types`` (all when None) on
    logical ``topics``."""
    wanted = frozenset(event_types) if event_types is not None else None
    subscription = _Subscription(
        broker=broker,
        settings=settings,
        service=service,
        group_id=group_id,
        handler=handler,
        clock=clock,
        metrics=metrics,
        wanted=wanted,
        logical={settings.topic(name): name for name in topics},
        health=health or DependencyHealth(),
    )
    subscriber = broker.subscriber(
        *[settings.topic(name) for name in topics],
        group_id=group_id,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.MANUAL,
        batch=True,
        max_records=settings.consumer_batch_max_records,
        batch_timeout_ms=settings.consumer_batch_wait_ms,
        title=f"{service}/{group_id}",
        description=f"{service} consumes {', '.join(sorted(wanted or ['all events']))}",
    )
    wait_in_poll_only(subscriber, linger_ms=settings.consumer_batch_linger_ms)
    metrics.track_consumer(group_id, lambda: subscriber.consumer)

    @subscriber
    async def consume(message: KafkaMessage) -> None:
        try:
            await subscription.handle(message)
        except Exception:
            # Even dead-lettering failed (Kafka unreachable?): rewind, never commit past it.
            log.exception("could not handle or dead-letter a batch; rewinding")
            await message.nack()
            raise


@dataclass(frozen=True)
class _Item:
    """One record of a batch that goes to the handler."""

    record: Any
    envelope: EventEnvelope
    topic: str
    """logical topic name (the metrics label)"""
    headers: dict[str, str]
    redrive: bool

    def context(self, service: str) -> Any:
        envelope = self.envelope
        return message_context(
            service=service,
            tenant_id=envelope.tenant_id,
            correlation_id=envelope.correlation_id,
            causation_id=envelope.causation_id,
            event_id=envelope.id,
            event_type=envelope.type,
        )


class _RewoundError(Exception):
    """The batch was rewound (a dependency does not answer): commit nothing."""


@dataclass
class _Subscription:
    broker: KafkaBroker
    settings: CommonSettings
    service: str
    group_id: str
    handler: BatchHandler
    clock: Clock
    metrics: ServiceMetrics
    wanted: frozenset[str] | None
    logical: dict[str, str]
    """physical topic name -> logical name (the metrics label)"""
    health: DependencyHealth
    unavailable_streak: int = 0

    async def handle(self, message: Any) -> None:
        raw = message.raw_message  # a tuple of records (a list in FastStream's test broker)
        records = tuple(raw) if isinstance(raw, tuple | list) else (raw,)
        items: list[_Item] = []
        for record in records:
            item = await self.admit(record)
            if item is not None:
                items.append(item)
        try:
            batch = [item for item in items if not item.redrive]
            if batch:
                await self.run_batch(message, batch)
            await self.run_alone(message, [item for item in items if item.redrive])
        except _RewoundError:
            return
        await self.commit(message)

    async def admit(self, record: Any) -> _Item | None:
        """The record as an item to handle, or None when it is not for this subscription
        (skipped) or is not an event envelope (dead-lettered)."""
        headers = _headers(record)
        header_type = headers.get("type")
        wanted = self.wanted
        if wanted is not None and header_type is not None and header_type not in wanted:
            return None  # routed by header: not for us, no need to decode
        redrive = "redriven_from" in headers
        if redrive and headers.get("redrive_service", self.service) != self.service:
            return None  # another service's dead letter, sent again for it alone
        topic = self.logical.get(record.topic) or self.metrics.topic(record.topic)
        try:
            envelope = EventEnvelope.model_validate_json(record.value or b"")
        except ValidationError as error:
            await self.dead_letter(record, topic, error, 1, "invalid_envelope")
            self.metrics.handled_without_handler(topic, "dead_letter")
            return None
        if wanted is not None and envelope.type not in wanted:
            return None  # a header lied about the type; the body is the truth
        return _Item(record, envelope, topic, headers, redrive)

    async def commit(self, message: Any) -> None:
        """Acknowledge the batch: the consumer commits its offsets (one Kafka round trip),
        counted per group."""
        await message.ack()
        self.metrics.offset_committed(self.group_id)

    async def run_batch(self, message: Any, items: list[_Item]) -> None:
        """The whole batch through the batch handler; on a failure that is not the store's or
        Kafka's, again record by record so that only the failing record is retried."""
        started = time.perf_counter()
        try:
            with message_context(service=self.service):
                async with acknowledged_together():
                    await self.handler([item.envelope for item in items])
        except Exception as error:
            if is_unavailable(error):
                await self.rewind(message, error, items[0], time.perf_counter() - started)
            log.warning(
                "batch failed; handling its records one by one",
                error_type=type(error).__name__,
                error=str(error)[:500],
                records=len(items),
            )
            await self.run_alone(message, items)
            return
        share = (time.perf_counter() - started) / len(items)
        for item in items:
            self.succeeded(item, share)

    async def run_alone(self, message: Any, items: list[_Item]) -> None:
        """Each record on its own, in order: retried with backoff, dead-lettered when it keeps
        failing; the batch is rewound (:class:`_RewoundError`) when a dependency does not answer."""
        for item in items:
            tries = 0
            while True:
                started = time.perf_counter()
                try:
                    await self.attempt(item)
                except Exception as error:
                    spent = time.perf_counter() - started
                    if is_unavailable(error):
                        await self.rewind(message, error, item, spent)
                    tries += 1
                    if not await self.failed(item, error, tries, spent):
                        break
                    continue
                self.succeeded(item, time.perf_counter() - started)
                break

    async def attempt(self, item: _Item) -> None:
        """Handle one record, as a batch of one."""
        with item.context(self.service), redriven(item.headers) if item.redrive else nullcontext():
            async with acknowledged_together():
                await self.handler([item.envelope])

    def succeeded(self, item: _Item, spent: float) -> None:
        self.metrics.handled(item.topic, self.metrics.event_type(item.envelope.type), "ok", spent)
        with item.context(self.service):
            log.info("event handled", topic=item.topic, duration_ms=round(spent * 1000, 3))
        if self.unavailable_streak:
            log.info("dependency answers again; consumer resumed", failures=self.unavailable_streak)
            self.unavailable_streak = 0
            self.health.resume(self.group_id)

    async def failed(self, item: _Item, error: Exception, tries: int, spent: float) -> bool:
        """After a failed attempt: True to try the record again (after a backoff), False when
        it went to the dead letters."""
        event_type = self.metrics.event_type(item.envelope.type)
        if self.unavailable_streak:
            self.unavailable_streak = 0
            self.health.resume(self.group_id)
        with item.context(self.service):
            if tries < self.settings.handler_max_attempts:
                self.metrics.handled(item.topic, event_type, "retry", spent)
                log.warning(
                    "handler failed, will retry",
                    error_type=type(error).__name__,
                    error=str(error),
                    attempt=tries,
                )
                await asyncio.sleep(self.settings.handler_retry_backoff_s * 2 ** (tries - 1))
                return True
            await self.dead_letter(item.record, item.topic, error, tries, "handler_failed")
            self.metrics.handled(item.topic, event_type, "dead_letter", spent)
            return False

    async def rewind(self, message: Any, error: Exception, item: _Item, spent: float) -> None:
        """The store or Kafka does not answer: report the consumer stalled, wait, and rewind
        to the start of the batch (commit nothing). Always raises :class:`_RewoundError`."""
        self.unavailable_streak += 1
        reason = f"{type(error).__name__}: {str(error)[:200]}"
        self.health.stall(self.group_id, reason)
        event_type = self.metrics.event_type(item.envelope.type)
        self.metrics.handled(item.topic, event_type, "retry", spent)
        with item.context(self.service):
            log.warning(
                "a dependency does not answer; consumer paused on this batch",
                error_type=type(error).__name__,
                error=str(error)[:500],
                failures=self.unavailable_streak,
            )
        backoff = self.settings.handler_retry_backoff_s * 2 ** min(self.unavailable_streak, 10)
        await asyncio.sleep(min(backoff, self.settings.unavailable_backoff_max_s))
        await message.nack()
        raise _RewoundError from error

    async def dead_letter(
        self, record: Any, topic: str, error: BaseException, tries: int, reason: str
    ) -> None:
        headers = _headers(record)
        letter = DeadLetterV1(
            failed_at=self.clock.now(),
            service=self.service,
            consumer_group=self.group_id,
            source_topic=record.topic,
            source_partition=record.partition,
            source_offset=record.offset,
            key_b64=b64(record.key) if record.key is not None else None,
            value_b64=b64(record.value or b""),
            headers=headers,
            error_type=type(error).__name__,
            error_message=str(error)[:4000],
            attempts=tries,
            event_id=headers.get("event_id"),
            event_type=headers.get("type"),
            tenant_id=headers.get("tenant_id"),
        )
        await send_dead_letter(self.broker, self.settings, letter, key=record.key)
        self.metrics.dead_lettered(topic, reason)
        log.error(
            "message dead-lettered",
            source_topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            error_type=letter.error_type,
            error=letter.error_message,
            attempts=tries,
        )
