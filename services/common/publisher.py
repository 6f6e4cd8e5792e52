"""Publishing events: build the envelope, encrypt personal data, seal it into this process's
chain (tamper evidence, :mod:`services.common.integrity`), wait for ``acks=all``.

Events that follow from another event (a score from an interaction, a receipt from an erasure
request) get a name-based id (UUIDv5) derived from their cause: a redelivered cause republishes
the *same* event id, which every consumer deduplicates (DESIGN principle 5).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any

from aiokafka.structs import RecordMetadata
from faststream.kafka import KafkaBroker
from pydantic import BaseModel

from contracts.envelope import EventEnvelope, new_event_id
from contracts.registry import EventRegistry
from services.common.clock import Clock
from services.common.crypto import PiiCipher
from services.common.integrity import ChainSealer
from services.common.logging import get_logger
from services.common.settings import CommonSettings

__all__ = ["DERIVED_NAMESPACE", "EventPublisher", "acknowledged_together", "derived_event_id"]

log = get_logger(__name__)
_TOGETHER: ContextVar[list[asyncio.Future[RecordMetadata]] | None] = ContextVar(
    "leadtrail_acks_together", default=None
)


@asynccontextmanager
async def acknowledged_together() -> AsyncIterator[None]:
    """Inside, :meth:`EventPublisher.send` returns as soon as the event is sealed and enqueued
    in the producer (in order); the ``acks=all`` acknowledgements of everything sent inside are
    awaited together on the way out, which raises if any failed.

    The batch pipeline sends the events a whole batch caused this way: one wait for Kafka per
    batch instead of one per event. Only code that does nothing after a publish that depends on
    its success may run inside (the pipeline writes its documents first and commits offsets
    only after this block returned).
    """
    pending: list[asyncio.Future[RecordMetadata]] = []
    token = _TOGETHER.set(pending)
    try:
        yield
    finally:
        _TOGETHER.reset(token)
    if pending:
        await asyncio.shield(asyncio.gather(*pending))


DERIVED_NAMESPACE = uuid.UUID("6f1d1c3e-7a0b-4c55-9a51-2f1f4b9c3d10")


def derived_event_id(seed: str, what: str) -> str:
    """The id of the event ``what`` that follows from ``seed`` (usually the cause's id)."""
    return str(uuid.uuid5(DERIVED_NAMESPACE, f"{seed}/{what}"))


class EventPublisher:
    """Turns a payload model into a published event on the topic its contract names."""

    def __init__(
        self,
        *,
        broker: KafkaBroker,
        settings: CommonSettings,
        registry: EventRegistry,
        cipher: PiiCipher,
        clock: Clock,
        producer: str,
    ) -> None:
        self._broker = broker
        self._settings = settings
        self._registry = registry
        self._cipher = cipher
        self._clock = clock
        self._producer = producer
        self._sealer = ChainSealer(settings.integrity_key_bytes(), producer)

    @property
    def chain(self) -> str:
        """The chain this process seals its next event into."""
        return self._sealer.chain

    async def build(
        self,
        data: BaseModel,
        *,
        tenant_id: str,
        subject_id: str,
        correlation_id: str,
        causation_id: str | None = None,
        pii: BaseModel | None = None,
        event_id: str | None = None,
    ) -> EventEnvelope:
        """The envelope for ``data``, with ``pii`` encrypted under the subject's data key."""
        definition = self._registry.definition_for(type(data))
        if pii is not None and (definition.pii is None or not isinstance(pii, definition.pii)):
            raise TypeError(f"{definition.type} takes personal data of type {definition.pii}")
        event_id = event_id or new_event_id()
        encrypted = None
        if pii is not None:
            plain: dict[str, Any] = pii.model_dump(mode="json", exclude_none=True)
            encrypted = await self._cipher.encrypt(
                tenant_id=tenant_id, subject_id=subject_id, event_id=event_id, pii=plain
            )
        return EventEnvelope(
            id=event_id,
            type=definition.type,
            version=definition.version,
            occurred_at=self._clock.now(),
            tenant_id=tenant_id,
            subject_id=subject_id,
            correlation_id=correlation_id,
            causation_id=causation_id,
            producer=self._producer,
            data=data.model_dump(mode="json"),
            pii=encrypted,
        )

    async def send(self, envelope: EventEnvelope) -> EventEnvelope:
        """Seal, publish and return the sealed envelope once Kafka acknowledged it
        (``acks=all``); raises otherwise.

        Sealing and enqueueing happen under one lock, so events reach each partition in the
        order of their ``seq``; the acknowledgement is awaited outside it, so concurrent
        publishes share round trips. A caller cancelled meanwhile (a timeout) does not
        interrupt either: an event that got a ``seq`` is always enqueued, and a failed one is
        declared void by the chain's next events instead of leaving an unexplained gap.
        """
        topic = self._settings.topic(self._registry.get(envelope.type, envelope.version).topic)
        sealed, ack = await asyncio.shield(asyncio.ensure_future(self._enqueue(envelope, topic)))
        together = _TOGETHER.get()
        if together is not None:
            together.append(ack)  # awaited by acknowledged_together()
            return sealed
        await asyncio.shield(ack)
        return sealed

    async def _enqueue(
        self, envelope: EventEnvelope, topic: str
    ) -> tuple[EventEnvelope, asyncio.Future[RecordMetadata]]:
        async with self._sealer.lock:
            sealed, integrity = self._sealer.seal(envelope)
            try:
                ack: asyncio.Future[RecordMetadata] = await self._broker.publish(
                    sealed.model_dump_json().encode(),
                    topic=topic,
                    key=sealed.kafka_key(),
                    headers=sealed.kafka_headers(),
                    correlation_id=sealed.correlation_id,
                    no_confirm=True,
                )
            except BaseException:
                self._sealer.failed(integrity)
                raise

        def settled(future: asyncio.Future[RecordMetadata]) -> None:
            if future.cancelled() or future.exception() is not None:
                self._sealer.failed(integrity)
                log.warning(
                    "publish failed; its chain position is declared void",
                    chain=integrity.chain,
                    seq=integrity.seq,
                )

        ack.add_done_callback(settled)
        return sealed, ack

    async def publish(
        self,
        data: BaseModel,
        *,
        tenant_id: str,
        subject_id: str,
        correlation_id: str,
        causation_id: str | None = None,
        pii: BaseModel | None = None,
        event_id: str | None = None,
    ) -> EventEnvelope:
        envelope = await self.build(
            data,
            tenant_id=tenant_id,
            subject_id=subject_id,
            correlation_id=correlation_id,
            causation_id=causation_id,
            pii=pii,
            event_id=event_id,
        )
        return await self.send(envelope)

    async def publish_caused(
        self,
        cause: EventEnvelope,
        data: BaseModel,
        *,
        what: str,
        pii: BaseModel | None = None,
    ) -> EventEnvelope:
        """Publish the event ``what`` that follows from ``cause``, for the same tenant and
        subject, with an id derived from the cause (idempotent across redeliveries)."""
        return await self.publish(
            data,
            pii=pii,
            tenant_id=cause.tenant_id,
            subject_id=cause.subject_id,
            correlation_id=cause.correlation_id,
            causation_id=cause.id,
            event_id=derived_event_id(cause.id, what),
        )
