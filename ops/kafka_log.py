"""Reading topics from their beginning up to the end offsets they have when reading starts: the
one Kafka log reader behind ``leadtrail verify``, ``audit`` and ``dlq``.

The partitions come from one metadata request (:func:`describe_partitions`, which replay uses
too) and are assigned to the consumer directly: no consumer group, no rebalance, and so no
waiting for an assignment in a loop of sleeps. Every Kafka request has a deadline
(:data:`~services.common.broker.KAFKA_REQUEST_TIMEOUT_MS`), and a partition that stops handing
out records before its end offset raises after ``stall_s`` instead of waiting forever.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from services.common.broker import KAFKA_REQUEST_TIMEOUT_MS

__all__ = ["KafkaLogError", "LogReader", "MissingTopicError", "describe_partitions", "open_log"]

STALL_S = 60.0
"""How long a read waits for records the end offsets promise before it gives up."""


class KafkaLogError(RuntimeError):
    """Kafka unreachable, a topic missing, or records that never come."""


class MissingTopicError(KafkaLogError):
    def __init__(self, topics: list[str], bootstrap: str) -> None:
        super().__init__(
            f"no topic {', '.join(topics)} on {bootstrap} (is LEADTRAIL_TOPIC_PREFIX right? "
            "create them: leadtrail topics create)"
        )
        self.topics = topics


@dataclass(frozen=True)
class LogReader:
    consumer: AIOKafkaConsumer
    partitions: list[TopicPartition]
    """Every partition of the topics, sorted by topic and partition."""

    async def bounds(self) -> tuple[dict[TopicPartition, int], dict[TopicPartition, int]]:
        """Each partition's first offset and its end offset (exclusive) now."""
        starts = await self.consumer.beginning_offsets(self.partitions)
        ends = await self.consumer.end_offsets(self.partitions)
        return starts, ends

    async def batches(
        self,
        starts: dict[TopicPartition, int],
        ends: dict[TopicPartition, int],
        *,
        stall_s: float = STALL_S,
    ) -> AsyncIterator[tuple[TopicPartition, list[Any]]]:
        """The records of ``[starts, ends)`` per partition, in offset order, as
        ``(partition, records)`` batches (aiokafka ``ConsumerRecord``\\ s)."""
        remaining = {tp for tp in self.partitions if ends[tp] > starts[tp]}
        for tp in remaining:
            self.consumer.seek(tp, starts[tp])
        progressed = time.monotonic()
        while remaining:
            fetched = await self.consumer.getmany(*remaining, timeout_ms=1000)
            for tp, records in fetched.items():
                wanted = [record for record in records if record.offset < ends[tp]]
                if wanted:
                    progressed = time.monotonic()
                    yield tp, wanted
            for tp in list(remaining):
                # Past the end, also when the last offsets hold no record (transaction markers).
                if await self.consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
            if remaining and time.monotonic() - progressed > stall_s:
                missing = ", ".join(sorted(f"{tp.topic}[{tp.partition}]" for tp in remaining))
                raise KafkaLogError(f"no records from Kafka for {stall_s:.0f} s on {missing}")


async def describe_partitions(bootstrap: str, topics: Sequence[str]) -> list[TopicPartition]:
    """Every partition of ``topics`` (physical names), sorted, from one metadata request;
    raises :class:`MissingTopicError` for a topic that does not exist and ``KafkaError`` when
    Kafka does not answer."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, request_timeout_ms=KAFKA_REQUEST_TIMEOUT_MS
    )
    await admin.start()
    try:
        described = await admin.describe_topics(list(dict.fromkeys(topics)))
    finally:
        await admin.close()
    missing = sorted(t["topic"] for t in described if t["error_code"] != 0 or not t["partitions"])
    if missing:
        raise MissingTopicError(missing, bootstrap)
    return sorted(
        TopicPartition(topic["topic"], partition["partition"])
        for topic in described
        for partition in topic["partitions"]
    )


@asynccontextmanager
async def open_log(bootstrap: str, topics: Sequence[str]) -> AsyncIterator[LogReader]:
    """A reader assigned every partition of ``topics`` (physical names); raises
    :class:`KafkaLogError` when Kafka does not answer or a topic does not exist."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        request_timeout_ms=KAFKA_REQUEST_TIMEOUT_MS,
    )
    try:
        try:
            partitions = await describe_partitions(bootstrap, topics)
            await consumer.start()
        except (KafkaError, OSError) as error:
            raise KafkaLogError(f"Kafka at {bootstrap} is unreachable ({error})") from None
        consumer.assign(partitions)
        yield LogReader(consumer, partitions)
    finally:
        await consumer.stop()
