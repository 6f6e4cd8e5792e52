"""Proof of the loop on the real broker and the real MongoDB-wire server.

An event published through the common broker factory reaches a FastStream subscriber, which
decrypts it and writes a projection through the common store; the test reads it back. Then the
failure paths: redelivery of the same event, a handler that fails before it succeeds, and a
poison record that must not block its partition.
"""

from __future__ import annotations

import asyncio
import base64
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from contracts import EventEnvelope
from contracts.dead_letter import DeadLetterV1
from contracts.events.lead import LeadCapturedV1, LeadContactV1, WebFormSource
from contracts.topics import DEAD_LETTERS, LEAD_EVENTS
from services.common.consumer import subscribe_events
from services.common.runtime import Runtime
from services.common.settings import CommonSettings
from services.common.store import apply_once
from services.common.topics import ensure_topics
from tests.helpers import eventually, one_by_one

pytestmark = pytest.mark.integration

Handler = Callable[[EventEnvelope], Awaitable[None]]


@pytest.fixture
async def settings(kafka_bootstrap: str, mongo_url: str) -> CommonSettings:
    suffix = uuid.uuid4().hex[:10]
    settings = CommonSettings(
        kafka_bootstrap=kafka_bootstrap,
        mongo_url=mongo_url,
        mongo_db=f"it_{suffix}",
        topic_prefix=f"it-{suffix}.",
        kek=base64.b64encode(os.urandom(32)).decode(),
        handler_max_attempts=3,
        handler_retry_backoff_s=0.05,
    )
    await ensure_topics(kafka_bootstrap, settings.topic_prefix, [LEAD_EVENTS, DEAD_LETTERS])
    return settings


class Harness:
    """One service-like runtime: a projection handler on lead-events."""

    def __init__(self, settings: CommonSettings) -> None:
        self.runtime = Runtime.build("loop-test", settings)
        self.leads = self.runtime.db["leads"]
        self.fail_next = 0

    async def project(self, envelope: EventEnvelope) -> None:
        if self.fail_next > 0:
            self.fail_next -= 1
            raise RuntimeError("transient projection failure")
        decoded = self.runtime.registry.decode(envelope)
        assert isinstance(decoded.data, LeadCapturedV1)
        pii = await self.runtime.cipher.decrypt(envelope) or {}
        await apply_once(
            self.leads,
            decoded.data.lead_id,
            envelope.id,
            {
                "$set": {"tenant_id": envelope.tenant_id, "email": pii.get("email")},
                "$inc": {"captures": 1},
            },
        )

    async def capture(self, lead_id: str, email: str, subject: str = "sub-1") -> EventEnvelope:
        return await self.runtime.publisher.publish(
            LeadCapturedV1(lead_id=lead_id, source=WebFormSource(url="https://acme.example/f")),
            pii=LeadContactV1(email=email),
            tenant_id="acme",
            subject_id=subject,
            correlation_id=str(uuid.uuid4()),
        )

    async def wait_for(self, lead_id: str) -> dict[str, Any]:
        return await eventually(
            lambda: self.leads.find_one({"_id": lead_id}), what=f"projection of {lead_id}"
        )


@pytest.fixture
async def harness(settings: CommonSettings) -> AsyncIterator[Harness]:
    harness = Harness(settings)
    subscribe_events(
        harness.runtime.broker,
        settings,
        service="loop-test",
        group_id="loop-test",
        topics=[LEAD_EVENTS.name],
        handler=one_by_one(harness.project),
        clock=harness.runtime.clock,
        metrics=harness.runtime.metrics,
        event_types={"lead.captured"},
    )
    await harness.runtime.keyring.ensure_indexes()
    await harness.runtime.broker.start()
    try:
        yield harness
    finally:
        await harness.runtime.broker.stop()
        await harness.runtime.mongo.drop_database(settings.mongo_db)
        await harness.runtime.mongo.close()


async def _dead_letters(settings: CommonSettings, count: int) -> list[DeadLetterV1]:
    consumer = AIOKafkaConsumer(
        settings.topic(DEAD_LETTERS.name),
        bootstrap_servers=settings.kafka_bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    letters: list[DeadLetterV1] = []
    try:
        async with asyncio.timeout(30):
            while len(letters) < count:
                record = await consumer.getone()
                letters.append(DeadLetterV1.model_validate_json(record.value))
    finally:
        await consumer.stop()
    return letters


async def test_published_event_is_projected_with_its_personal_data(harness: Harness) -> None:
    envelope = await harness.capture("lead-1", "maria.rossi@example.org")
    assert envelope.pii is not None
    assert "maria" not in envelope.model_dump_json(), "personal data travels encrypted"
    document = await harness.wait_for("lead-1")
    assert document["email"] == "maria.rossi@example.org"
    assert document["captures"] == 1
    assert document["_applied"] == [envelope.id]


async def test_the_same_event_delivered_twice_updates_the_projection_once(
    harness: Harness,
) -> None:
    envelope = await harness.capture("lead-1", "maria.rossi@example.org")
    await harness.runtime.publisher.send(envelope)  # a producer retry or a replay
    await harness.capture("lead-2", "later@example.org")  # same subject: same partition, after
    await harness.wait_for("lead-2")
    document = await harness.wait_for("lead-1")
    assert document["captures"] == 1


async def test_a_failing_handler_is_retried_on_the_same_record(harness: Harness) -> None:
    harness.fail_next = 2  # fewer than handler_max_attempts
    await harness.capture("lead-1", "maria.rossi@example.org")
    document = await harness.wait_for("lead-1")
    assert document["captures"] == 1
    assert harness.fail_next == 0


async def test_poison_goes_to_dead_letters_and_the_partition_moves_on(
    harness: Harness, settings: CommonSettings
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(
            settings.topic(LEAD_EVENTS.name), b"{not json", key=b"sub-1", partition=0
        )
    finally:
        await producer.stop()
    harness.fail_next = 10  # more than handler_max_attempts: this one gives up
    await harness.capture("lead-doomed", "doomed@example.org")
    letters = await _dead_letters(settings, 2)
    by_type = {letter.error_type: letter for letter in letters}
    assert set(by_type) == {"ValidationError", "RuntimeError"}
    assert base64.b64decode(by_type["ValidationError"].value_b64) == b"{not json"
    assert by_type["RuntimeError"].attempts == settings.handler_max_attempts
    harness.fail_next = 0
    await harness.capture("lead-ok", "ok@example.org")
    assert (await harness.wait_for("lead-ok"))["captures"] == 1
    assert await harness.leads.find_one({"_id": "lead-doomed"}) is None


async def test_keys_destroyed_in_mongo_make_the_event_unreadable(harness: Harness) -> None:
    envelope = await harness.capture("lead-1", "maria.rossi@example.org")
    assert await harness.runtime.cipher.decrypt(envelope) == {"email": "maria.rossi@example.org"}
    assert await harness.runtime.keyring.destroy("acme", "sub-1") == 1
    assert await harness.runtime.cipher.decrypt(envelope) is None
    stored = await harness.runtime.db["data_keys"].find_one({"subject_id": "sub-1"})
    assert stored is not None
    assert "wrapped" not in stored
    assert stored["destroyed_at"] <= datetime.now(UTC)
