"""Consuming events reliably: at-least-once, committed only after handling, poison to DLQ.

A subscription registered with :func:`subscribe_events` gets, for every Kafka record:

1. records whose ``type`` header names an unwanted type are acknowledged without decoding
   (records without the header are decoded: they may be poison, which must not vanish);
2. bytes that are not a valid :class:`~contracts.envelope.EventEnvelope` go straight to the
   dead-letter topic (retrying cannot fix them) and the partition moves on;
3. the handler runs with ``service``, ``tenant_id``, ``correlation_id``, ``causation_id``,
   ``event_id`` and ``event_type`` bound to every log line it writes, and one ``event handled``
   line (info) records each success, so a lead's correlation id shows in every service's log;
4. success commits the offset; a failure rewinds to the same record and retries with
   exponential backoff, up to ``handler_max_attempts``; then the record goes to the dead-letter
   topic with the error and the partition moves on. Nothing is dropped silently and nothing is
   committed before it was handled.
5. a failure that only says the store or Kafka did not answer
   (:func:`~services.common.availability.is_unavailable`) is no fault of the record: it uses up
   no attempt and is never dead-lettered. The consumer stays on that record, retrying with
   backoff capped at ``unavailable_backoff_max_s``, reports itself stalled (``/readyz``) and
   resumes by itself when the dependency answers again.

A record sent again by ``leadtrail dlq redrive`` carries the dead letter's id (``redriven_from``)
and the service that gave up on it (``redrive_service``): every other service acknowledges it
without handling it (they handled the original), and the handler of that service can read the
redrive's headers with :func:`redrive_headers` (crm-sync pushes to the one connection that failed).

Every handler attempt is counted by outcome (``ok``, ``retry``, ``dead_letter``) and timed,
and the subscription's consumer reports its lag (:mod:`services.common.metrics`).

Handlers must be idempotent (DESIGN principle 5): a crash after the effect and before the commit
redelivers the record.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Awaitable, Callable, Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from pydantic import ValidationError

from contracts.dead_letter import DeadLetterV1
from contracts.envelope import EventEnvelope
from contracts.registry import EventRegistry
from contracts.topics import DEAD_LETTERS, TopicSpec
from services.common.availability import DependencyHealth, is_unavailable
from services.common.clock import Clock
from services.common.locks import SUBJECT_LOCKS
from services.common.logging import get_logger, message_context
from services.common.metrics import ServiceMetrics
from services.common.settings import CommonSettings

if TYPE_CHECKING:
    from services.common.runtime import Runtime

__all__ = [
    "EventHandler",
    "Subscription",
    "redrive_headers",
    "redriven",
    "subscribe_all",
    "subscribe_events",
]

EventHandler = Callable[[EventEnvelope], Awaitable[None]]
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
    the method of the service's handlers object that handles them.

    Each service declares its subscriptions once, as the ``SUBSCRIPTIONS`` table of its
    ``app.py``: the service registers exactly that table (:func:`subscribe_all`), and
    ``leadtrail replay`` reads it to know which events rebuild the service's read models.
    """

    group_id: str
    topics: tuple[TopicSpec, ...]
    handle: Callable[[HandlersT, EventEnvelope], Awaitable[None]]
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
            handler=partial(subscription.handle, handlers),
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
    handler: EventHandler,
    clock: Clock,
    metrics: ServiceMetrics,
    event_types: Collection[str] | None = None,
    health: DependencyHealth | None = None,
) -> None:
    """Register ``handler`` for events of ``event_types`` (all when None) on logical ``topics``."""
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
        title=f"{service}/{group_id}",
        description=f"{service} consumes {', '.join(sorted(wanted or ['all events']))}",
    )
    metrics.track_consumer(group_id, lambda: subscriber.consumer)

    @subscriber
    async def consume(message: KafkaMessage) -> None:
        try:
            await subscription.handle(message)
        except Exception:
            # Even dead-lettering failed (Kafka unreachable?): rewind, never commit past it.
            log.exception("could not handle or dead-letter a record; rewinding")
            await message.nack()
            raise


@dataclass
class _Subscription:
    broker: KafkaBroker
    settings: CommonSettings
    service: str
    group_id: str
    handler: EventHandler
    clock: Clock
    metrics: ServiceMetrics
    wanted: frozenset[str] | None
    logical: dict[str, str]
    """physical topic name -> logical name (the metrics label)"""
    health: DependencyHealth
    attempts: dict[tuple[str, int, int], int] = field(default_factory=dict)
    unavailable_streak: int = 0

    async def handle(self, message: Any) -> None:
        record: Any = message.raw_message
        headers = _headers(record)
        header_type = headers.get("type")
        wanted = self.wanted
        if wanted is not None and header_type is not None and header_type not in wanted:
            await self.commit(message)  # routed by header: not for us, no need to decode
            return
        redrive = "redriven_from" in headers
        if redrive and headers.get("redrive_service", self.service) != self.service:
            await message.ack()  # another service's dead letter, sent again for it alone
            return
        topic = self.logical.get(record.topic) or self.metrics.topic(record.topic)
        try:
            envelope = EventEnvelope.model_validate_json(record.value or b"")
        except ValidationError as error:
            await self.dead_letter(record, topic, error, 1, "invalid_envelope")
            self.metrics.handled_without_handler(topic, "dead_letter")
            await self.commit(message)
            return
        if wanted is not None and envelope.type not in wanted:
            await self.commit(message)  # a header lied about the type; the body is the truth
            return
        with (
            message_context(
                service=self.service,
                tenant_id=envelope.tenant_id,
                correlation_id=envelope.correlation_id,
                causation_id=envelope.causation_id,
                event_id=envelope.id,
                event_type=envelope.type,
            ),
            redriven(headers) if redrive else nullcontext(),
        ):
            await self.run_handler(message, record, envelope, topic)

    async def commit(self, message: Any) -> None:
        """Acknowledge the record: the consumer commits its offset (one Kafka round trip),
        counted per group."""
        await message.ack()
        self.metrics.offset_committed(self.group_id)

    async def run_handler(
        self, message: Any, record: Any, envelope: EventEnvelope, topic: str
    ) -> None:
        """Success commits; failure rewinds for a retry with backoff, or, out of attempts,
        dead-letters the record and moves on."""
        position = (record.topic, record.partition, record.offset)
        event_type = self.metrics.event_type(envelope.type)
        started = time.perf_counter()
        try:
            async with SUBJECT_LOCKS.hold(envelope.tenant_id, envelope.subject_id):
                await self.handler(envelope)
        except Exception as error:
            spent = time.perf_counter() - started
            if is_unavailable(error):
                await self.wait_for_dependency(message, error, topic, event_type, spent)
                return
            self.unavailable_streak = 0
            self.health.resume(self.group_id)
            tries = self.attempts.get(position, 0) + 1
            if tries < self.settings.handler_max_attempts:
                self.metrics.handled(topic, event_type, "retry", spent)
                self.attempts[position] = tries
                log.warning(
                    "handler failed, will retry",
                    error_type=type(error).__name__,
                    error=str(error),
                    attempt=tries,
                )
                await asyncio.sleep(self.settings.handler_retry_backoff_s * 2 ** (tries - 1))
                await message.nack()
                return
            self.attempts.pop(position, None)
            await self.dead_letter(record, topic, error, tries, "handler_failed")
            self.metrics.handled(topic, event_type, "dead_letter", spent)
            await self.commit(message)
            return
        spent = time.perf_counter() - started
        self.metrics.handled(topic, event_type, "ok", spent)
        log.info("event handled", topic=topic, duration_ms=round(spent * 1000, 3))
        self.attempts.pop(position, None)
        if self.unavailable_streak:
            log.info("dependency answers again; consumer resumed", failures=self.unavailable_streak)
            self.unavailable_streak = 0
            self.health.resume(self.group_id)
        await self.commit(message)

    async def wait_for_dependency(
        self, message: Any, error: Exception, topic: str, event_type: str, spent: float
    ) -> None:
        """Stay on this record (rewind, commit nothing) until the store or Kafka answers."""
        self.unavailable_streak += 1
        reason = f"{type(error).__name__}: {str(error)[:200]}"
        self.health.stall(self.group_id, reason)
        self.metrics.handled(topic, event_type, "retry", spent)
        log.warning(
            "a dependency does not answer; consumer paused on this record",
            error_type=type(error).__name__,
            error=str(error)[:500],
            failures=self.unavailable_streak,
        )
        backoff = self.settings.handler_retry_backoff_s * 2 ** min(self.unavailable_streak, 10)
        await asyncio.sleep(min(backoff, self.settings.unavailable_backoff_max_s))
        await message.nack()

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
            key_b64=base64.b64encode(record.key).decode() if record.key is not None else None,
            value_b64=base64.b64encode(record.value or b"").decode(),
            headers=headers,
            error_type=type(error).__name__,
            error_message=str(error)[:4000],
            attempts=tries,
            event_id=headers.get("event_id"),
            event_type=headers.get("type"),
            tenant_id=headers.get("tenant_id"),
        )
        await self.broker.publish(
            letter.model_dump_json().encode(),
            topic=self.settings.topic(DEAD_LETTERS.name),
            key=record.key,
            headers={"service": self.service, "source_topic": record.topic},
        )
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
