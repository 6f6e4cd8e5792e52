"""The operator tools' Kafka log reader (ops.kafka_log): every partition from its beginning up
to the end offsets of the moment reading starts, without a consumer group."""

from __future__ import annotations

import uuid

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from contracts.topics import LEAD_EVENTS
from ops.kafka_log import KafkaLogError, open_log
from services.common.topics import ensure_topics

pytestmark = pytest.mark.integration


async def test_it_reads_every_partition_up_to_the_end_offsets_of_when_it_started(
    kafka_bootstrap: str,
) -> None:
    prefix = f"log-{uuid.uuid4().hex[:8]}."
    await ensure_topics(kafka_bootstrap, prefix, [LEAD_EVENTS])
    topic = LEAD_EVENTS.physical(prefix)
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    groups_before = {group for group, _ in await admin.list_consumer_groups()}
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        sent = set()
        for n in range(40):
            meta = await producer.send_and_wait(topic, f"r{n}".encode(), key=f"k{n}".encode())
            sent.add((meta.partition, meta.offset))
        assert len({partition for partition, _ in sent}) > 1, "spread over several partitions"
        async with open_log(kafka_bootstrap, [topic]) as log:
            assert len(log.partitions) == LEAD_EVENTS.partitions
            starts, ends = await log.bounds()
            await producer.send_and_wait(topic, b"after the start", key=b"late")
            read = [
                (tp.partition, record.offset, record.value)
                async for tp, records in log.batches(starts, ends)
                for record in records
            ]
    finally:
        await producer.stop()
    assert {(partition, offset) for partition, offset, _ in read} == sent
    assert b"after the start" not in {value for _, _, value in read}
    for partition in {p for p, _, _ in read}:
        offsets = [offset for p, offset, _ in read if p == partition]
        assert offsets == sorted(offsets), "offset order within a partition"
    try:
        groups_after = {group for group, _ in await admin.list_consumer_groups()}
    finally:
        await admin.close()
    assert groups_after - groups_before == set(), "no consumer group, so no rebalance to wait for"


async def test_a_missing_topic_and_an_unreachable_kafka_are_clear_errors(
    kafka_bootstrap: str,
) -> None:
    with pytest.raises(KafkaLogError, match=r"no topic nowhere-\w+\.lead-events on "):
        async with open_log(kafka_bootstrap, [f"nowhere-{uuid.uuid4().hex[:6]}.lead-events"]):
            pass
    with pytest.raises(KafkaLogError, match=r"Kafka at 127\.0\.0\.1:1 is unreachable"):
        async with open_log("127.0.0.1:1", ["lead-events"]):
            pass
