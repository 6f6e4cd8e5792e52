"""leadtrail dlq: reading the dead-letter topic and redriving a record to its source."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from contracts.dead_letter import DeadLetterV1
from contracts.topics import DEAD_LETTERS, LEAD_EVENTS
from ops.dlq import (
    HANDLED_COLLECTION,
    DeadLetterNotFoundError,
    handled_letters,
    mark_handled,
    read_dead_letters,
    redrive,
)
from services.common.topics import ensure_topics
from tests.helpers import scratch_collection

pytestmark = pytest.mark.integration


async def test_dead_letters_are_listed_and_redriven(kafka_bootstrap: str) -> None:
    prefix = f"dlq-{uuid.uuid4().hex[:8]}."
    await ensure_topics(kafka_bootstrap, prefix, [LEAD_EVENTS, DEAD_LETTERS])
    source = f"{prefix}{LEAD_EVENTS.name}"
    letters = [
        DeadLetterV1(
            failed_at=datetime(2026, 11, 1, tzinfo=UTC),
            service="crm-sync" if n else "lead-ingest",
            consumer_group="g",
            source_topic=source,
            source_partition=0,
            source_offset=n,
            key_b64=base64.b64encode(b"sub-1").decode(),
            value_b64=base64.b64encode(f"record {n}".encode()).decode(),
            error_type="RuntimeError",
            error_message="boom",
            attempts=1,
        )
        for n in range(3)
    ]
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for letter in letters:
            await producer.send_and_wait(
                f"{prefix}{DEAD_LETTERS.name}", letter.model_dump_json().encode(), key=b"sub-1"
            )
    finally:
        await producer.stop()
    found = [letter async for letter in read_dead_letters(kafka_bootstrap, prefix)]
    assert [letter.id for letter in found] == [letter.id for letter in letters]

    await redrive(kafka_bootstrap, prefix, letters[2].id)
    consumer = AIOKafkaConsumer(
        source, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        record = await consumer.getone()
    finally:
        await consumer.stop()
    assert record.value == b"record 2"
    assert record.key == b"sub-1"
    assert dict(record.headers)["redriven_from"] == letters[2].id.encode()
    # Only the service that gave up on the record handles it again.
    assert dict(record.headers)["redrive_service"] == b"crm-sync"
    with pytest.raises(DeadLetterNotFoundError):
        await redrive(kafka_bootstrap, prefix, "nope")


async def test_a_redriven_letter_is_recorded_as_handled(mongo_url: str) -> None:
    letter = DeadLetterV1(
        failed_at=datetime(2026, 11, 1, tzinfo=UTC),
        service="crm-sync",
        consumer_group="crm-sync.outbox/hubspot-eu",
        source_topic="lead-events",
        source_partition=-1,
        source_offset=-1,
        key_b64=None,
        value_b64="",
        error_type="CrmError(400)",
        error_message="rejected",
        attempts=1,
    )
    async with scratch_collection(mongo_url, "it_dlq", HANDLED_COLLECTION) as handled:
        assert await handled_letters(handled) == {}
        await mark_handled(handled, letter, datetime(2026, 11, 2, tzinfo=UTC))
        await mark_handled(handled, letter, datetime(2026, 11, 3, tzinfo=UTC))
        assert await handled_letters(handled) == {letter.id: datetime(2026, 11, 3, tzinfo=UTC)}
