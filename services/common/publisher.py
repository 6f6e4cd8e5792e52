"""Publishing events: build the envelope, encrypt personal data, wait for ``acks=all``.

Events that follow from another event (a score from an interaction, a receipt from an erasure
request) get a name-based id (UUIDv5) derived from their cause: a redelivered cause republishes
the *same* event id, which every consumer deduplicates (DESIGN principle 5).
"""

from __future__ import annotations

import uuid
from typing import Any

from faststream.kafka import KafkaBroker
from pydantic import BaseModel

from contracts.envelope import EventEnvelope, new_event_id
from contracts.registry import EventRegistry
from services.common.clock import Clock
from services.common.crypto import PiiCipher
from services.common.settings import CommonSettings

__all__ = ["DERIVED_NAMESPACE", "EventPublisher", "derived_event_id"]

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

    async def send(self, envelope: EventEnvelope) -> None:
        """Publish and return once Kafka acknowledged it (``acks=all``); raises otherwise."""
        definition = self._registry.get(envelope.type, envelope.version)
        await self._broker.publish(
            envelope.model_dump_json().encode(),
            topic=self._settings.topic(definition.topic),
            key=envelope.kafka_key(),
            headers=envelope.kafka_headers(),
            correlation_id=envelope.correlation_id,
        )

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
        await self.send(envelope)
        return envelope

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
