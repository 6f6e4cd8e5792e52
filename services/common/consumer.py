"""Consuming events reliably: at-least-once, committed only after handling, poison to DLQ.

A subscription registered with :func:`subscribe_events` gets, for every Kafka record:

1. records whose ``type`` header names an unwanted type are acknowledged without decoding
   (records without the header are decoded: they may be poison, which must not vanish);
2. bytes that are not a valid :class:`~contracts.envelope.EventEnvelope` go straight to the
   dead-letter topic (retrying cannot fix them) and the partition moves on;
3. the handler runs with ``tenant_id``/``correlation_id`` bound to every log line;
4. success commits the offset; a failure rewinds to the same record and retries with
   exponential backoff, up to ``handler_max_attempts``; then the record goes to the dead-letter
   topic with the error and the partition moves on. Nothing is dropped silently and nothing is
   committed before it was handled.

Handlers must be idempotent (DESIGN principle 5): a crash after the effect and before the commit
redelivers the record.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable, Collection
from typing import Any

from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from pydantic import ValidationError

from contracts.dead_letter import DeadLetterV1
from contracts.envelope import EventEnvelope
from contracts.topics import DEAD_LETTERS
from services.common.clock import Clock
from services.common.logging import get_logger, message_context
from services.common.settings import CommonSettings

__all__ = ["EventHandler", "subscribe_events"]

EventHandler = Callable[[EventEnvelope], Awaitable[None]]
log = get_logger(__name__)


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
    event_types: Collection[str] | None = None,
) -> None:
    """Register ``handler`` for events of ``event_types`` (all when None) on logical ``topics``."""
    wanted = frozenset(event_types) if event_types is not None else None
    attempts: dict[tuple[str, int, int], int] = {}
    dead_letter_topic = settings.topic(DEAD_LETTERS.name)

    async def dead_letter(record: Any, error: BaseException, tries: int) -> None:
        headers = _headers(record)
        letter = DeadLetterV1(
            failed_at=clock.now(),
            service=service,
            consumer_group=group_id,
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
        await broker.publish(
            letter.model_dump_json().encode(),
            topic=dead_letter_topic,
            key=record.key,
            headers={"service": service, "source_topic": record.topic},
        )
        log.error(
            "message dead-lettered",
            source_topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            error_type=letter.error_type,
            error=letter.error_message,
            attempts=tries,
        )

    @broker.subscriber(
        *[settings.topic(name) for name in topics],
        group_id=group_id,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.MANUAL,
        title=f"{service}/{group_id}",
        description=f"{service} consumes {', '.join(sorted(wanted or ['all events']))}",
    )
    async def consume(message: KafkaMessage) -> None:
        try:
            await handle(message)
        except Exception:
            # Even dead-lettering failed (Kafka unreachable?): rewind, never commit past it.
            log.exception("could not handle or dead-letter a record; rewinding")
            await message.nack()
            raise

    async def handle(message: Any) -> None:
        record: Any = message.raw_message
        headers = _headers(record)
        header_type = headers.get("type")
        if wanted is not None and header_type is not None and header_type not in wanted:
            await message.ack()  # routed by header: not for us, no need to decode
            return
        try:
            envelope = EventEnvelope.model_validate_json(record.value or b"")
        except ValidationError as error:
            await dead_letter(record, error, 1)
            await message.ack()
            return
        if wanted is not None and envelope.type not in wanted:
            await message.ack()  # a header lied about the type; the body is the truth
            return
        position = (record.topic, record.partition, record.offset)
        with message_context(
            tenant_id=envelope.tenant_id,
            correlation_id=envelope.correlation_id,
            event_id=envelope.id,
            event_type=envelope.type,
        ):
            try:
                await handler(envelope)
            except Exception as error:
                tries = attempts.get(position, 0) + 1
                if tries < settings.handler_max_attempts:
                    attempts[position] = tries
                    log.warning(
                        "handler failed, will retry",
                        error_type=type(error).__name__,
                        error=str(error),
                        attempt=tries,
                    )
                    await asyncio.sleep(settings.handler_retry_backoff_s * 2 ** (tries - 1))
                    await message.nack()
                    return
                attempts.pop(position, None)
                await dead_letter(record, error, tries)
                await message.ack()
                return
        attempts.pop(position, None)
        await message.ack()
