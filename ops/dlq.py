"""Reading and redriving the dead-letter topic (``leadtrail dlq``).

A redrive sends the dead letter's original record to its topic again with the letter's context
as headers: ``redriven_from`` (the letter's id), ``redrive_service`` (only that service handles
it again; the others handled the original) and whatever the letter named, such as crm-sync's
``connection_id`` (only the CRM connection whose call failed is called again). The letter is
then recorded as handled in the ``ops_dead_letters`` collection, which ``leadtrail dlq list``
reads to hide handled letters (``--all`` shows them, marked), and the redrive is published as
``operator.dead_letter_redriven`` naming who asked.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator
from datetime import datetime

from aiokafka import AIOKafkaProducer
from pydantic import ValidationError
from pymongo.asynchronous.collection import AsyncCollection

from contracts import EventEnvelope
from contracts.dead_letter import DeadLetterV1
from contracts.events.operator import ALL_TENANTS, DeadLetterRedrivenV1
from contracts.events.retention import TENANT_SUBJECT
from contracts.topics import DEAD_LETTERS
from ops.kafka_log import open_log
from services.common.logging import get_logger
from services.common.publisher import EventPublisher
from services.common.store import Document

__all__ = [
    "HANDLED_COLLECTION",
    "DeadLetterNotFoundError",
    "handled_letters",
    "mark_handled",
    "read_dead_letters",
    "record_redrive",
    "redrive",
]

logger = get_logger(__name__)
_REDRIVE_KEYS = frozenset({"redriven_from", "redrive_service", "redriven_by"})
HANDLED_COLLECTION = "ops_dead_letters"
"""One document per handled dead letter: ``_id`` the letter's id, ``redriven_at``."""


class DeadLetterNotFoundError(LookupError):
    pass


async def read_dead_letters(bootstrap: str, prefix: str) -> AsyncIterator[DeadLetterV1]:
    """Every dead letter currently on the topic, oldest first per partition; raises
    :class:`~ops.kafka_log.KafkaLogError` when Kafka does not answer or the topic is missing."""
    async with open_log(bootstrap, [f"{prefix}{DEAD_LETTERS.name}"]) as log:
        starts, ends = await log.bounds()
        async for tp, records in log.batches(starts, ends):
            for record in records:
                try:
                    yield DeadLetterV1.model_validate_json(record.value)
                except ValidationError:
                    # Not a letter (written by hand, or by a future version): shown nowhere,
                    # but never the reason the others can't be listed or redriven.
                    logger.warning(
                        "record on the dead-letter topic is no dead letter; skipped",
                        partition=tp.partition,
                        offset=record.offset,
                    )


async def redrive(
    bootstrap: str, prefix: str, letter_id: str, *, by: str | None = None
) -> DeadLetterV1:
    """Send the dead letter's original record to its source topic again; ``by`` (the console
    account that asked) travels as the ``redriven_by`` header."""
    async for letter in read_dead_letters(bootstrap, prefix):
        if letter.id == letter_id:
            break
    else:
        raise DeadLetterNotFoundError(f"no dead letter {letter_id}")
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        await producer.send_and_wait(
            letter.source_topic,
            base64.b64decode(letter.value_b64),
            key=base64.b64decode(letter.key_b64) if letter.key_b64 else None,
            headers=[
                *((k, v.encode()) for k, v in letter.headers.items() if k not in _REDRIVE_KEYS),
                ("redriven_from", letter.id.encode()),
                ("redrive_service", letter.service.encode()),
                *((("redriven_by", by.encode()),) if by else ()),
            ],
        )
    finally:
        await producer.stop()
    return letter


async def record_redrive(publisher: EventPublisher, letter: DeadLetterV1, by: str) -> EventEnvelope:
    """The redrive as an event on ``operator-events`` naming who asked (under the letter's
    tenant, or ``_all`` when the letter names none)."""
    return await publisher.publish(
        DeadLetterRedrivenV1(
            letter_id=letter.id,
            service=letter.service,
            source_topic=letter.source_topic,
            event_id=letter.event_id,
            event_type=letter.event_type,
            redriven_by=by,
        ),
        tenant_id=letter.tenant_id or ALL_TENANTS,
        subject_id=TENANT_SUBJECT,
        correlation_id=str(uuid.uuid4()),
    )


async def mark_handled(
    handled: AsyncCollection[Document],
    letter: DeadLetterV1,
    now: datetime,
    *,
    by: str | None = None,
) -> None:
    """Record that ``letter`` was redriven, and by whom when known (the last redrive wins)."""
    await handled.update_one(
        {"_id": letter.id},
        {"$set": {"redriven_at": now, "service": letter.service, "redriven_by": by}},
        upsert=True,
    )


async def handled_letters(handled: AsyncCollection[Document]) -> dict[str, datetime]:
    """Letter id -> when it was last redriven."""
    return {doc["_id"]: doc["redriven_at"] async for doc in handled.find({})}
