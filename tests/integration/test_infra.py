"""The real servers behind the fixtures: round trips, and data surviving a restart."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from tests.infra import ServerControl

pytestmark = pytest.mark.integration

Doc = dict[str, Any]


async def _create_topic(bootstrap: str, partitions: int = 1) -> str:
    topic = f"it-infra-{uuid.uuid4().hex}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, replication_factor=1)])
    finally:
        await admin.close()
    return topic


async def _produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value, key=b"lead-1")
    finally:
        await producer.stop()


async def _consume(
    bootstrap: str, topic: str, group: str, count: int, *, commit: bool = False
) -> list[bytes]:
    """Read ``count`` records as consumer group ``group``, optionally committing them."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        values: list[bytes] = []
        for _ in range(60):
            batches = await consumer.getmany(timeout_ms=1000, max_records=count - len(values))
            values += [record.value for records in batches.values() for record in records]
            if len(values) >= count:
                break
        if commit:
            await consumer.commit()
        return values
    finally:
        await consumer.stop()


async def test_kafka_round_trip(kafka_bootstrap: str) -> None:
    topic = await _create_topic(kafka_bootstrap, partitions=3)
    sent = [f"event-{i}".encode() for i in range(5)]

    await _produce(kafka_bootstrap, topic, sent)

    # One key, so one partition, so the order is kept.
    assert await _consume(kafka_bootstrap, topic, f"g-{uuid.uuid4().hex}", len(sent)) == sent


async def test_kafka_keeps_records_and_offsets_across_restart(
    kafka_bootstrap: str, kafka_control: ServerControl
) -> None:
    topic = await _create_topic(kafka_bootstrap)
    group = f"g-{uuid.uuid4().hex}"
    await _produce(kafka_bootstrap, topic, [b"before-1", b"before-2"])
    assert await _consume(kafka_bootstrap, topic, group, 1, commit=True) == [b"before-1"]

    await kafka_control.arestart()

    assert kafka_control.address == kafka_bootstrap
    await _produce(kafka_bootstrap, topic, [b"after-1"])
    # The group resumes after its committed offset: records and offsets both survived.
    assert await _consume(kafka_bootstrap, topic, group, 2) == [b"before-2", b"after-1"]
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=group)
    await consumer.start()
    try:
        assert await consumer.committed(TopicPartition(topic, 0)) == 1
    finally:
        await consumer.stop()


async def test_kafka_survives_a_crash(kafka_bootstrap: str, kafka_control: ServerControl) -> None:
    topic = await _create_topic(kafka_bootstrap)
    await _produce(kafka_bootstrap, topic, [b"acked"])

    await kafka_control.arestart(graceful=False)

    # acks=all on a single node: an acknowledged record is in the log, even after SIGKILL
    # (the page cache outlives the process).
    assert await _consume(kafka_bootstrap, topic, f"g-{uuid.uuid4().hex}", 1) == [b"acked"]


@pytest.fixture
async def mongo_db(mongo_url: str) -> AsyncIterator[AsyncDatabase[Doc]]:
    client: AsyncMongoClient[Doc] = AsyncMongoClient(mongo_url, serverSelectionTimeoutMS=10_000)
    name = f"it_infra_{uuid.uuid4().hex[:12]}"
    try:
        yield client[name]
        await client.drop_database(name)
    finally:
        await client.close()


async def test_mongo_round_trip(mongo_db: AsyncDatabase[Doc]) -> None:
    leads = mongo_db["leads"]

    await leads.insert_one({"_id": "lead-1", "email": "a@example.com", "consents": ["email"]})
    await leads.update_one({"_id": "lead-1"}, {"$push": {"consents": "phone"}})

    assert await leads.find_one({"_id": "lead-1"}) == {
        "_id": "lead-1",
        "email": "a@example.com",
        "consents": ["email", "phone"],
    }
    assert await leads.count_documents({"consents": "phone"}) == 1


async def test_mongo_keeps_data_across_restart(
    mongo_url: str, mongo_control: ServerControl
) -> None:
    name = f"it_infra_{uuid.uuid4().hex[:12]}"
    client: AsyncMongoClient[Doc] = AsyncMongoClient(mongo_url, serverSelectionTimeoutMS=10_000)
    try:
        await client[name]["leads"].insert_one({"_id": "lead-1", "status": "active"})
    finally:
        await client.close()

    await mongo_control.arestart()

    assert mongo_control.address == mongo_url
    client = AsyncMongoClient(mongo_url, serverSelectionTimeoutMS=10_000)
    try:
        leads = client[name]["leads"]
        await leads.update_one({"_id": "lead-1"}, {"$set": {"status": "erased"}})
        assert await leads.find_one({"_id": "lead-1"}) == {"_id": "lead-1", "status": "erased"}
        await client.drop_database(name)
    finally:
        await client.close()
