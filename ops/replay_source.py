"""Reading a service's topics for a replay: the offset range, and one merged, ordered stream.

* The range per partition: from the beginning, an offset, or the first record at or after a
  time; up to the end offsets *at the start of the replay*, or to the last record at or before
  ``--to``. Times are Kafka record timestamps (``offsets_for_times``), the moment the broker
  (``LogAppendTime``) or the producer (``CreateTime``, the default) stamped the record.
* The order: every partition in offset order (so one subject's events, which share a key and
  so a partition, keep their order), and the partitions of all topics merged by record
  timestamp, which is the order a caught-up live service saw them in, near enough.
"""

from __future__ import annotations

import heapq
import time
from collections import deque
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from ops.kafka_log import MissingTopicError, describe_partitions

__all__ = [
    "OffsetRange",
    "ReplayInputError",
    "StartPoint",
    "check_range",
    "parse_start",
    "parse_time",
    "partitions_of",
    "plan_offsets",
    "read_merged",
]

StartPoint = datetime | int | None


class ReplayInputError(ValueError):
    """Bad input to a replay: unknown service or topic, unparseable or impossible range."""


@dataclass(frozen=True)
class OffsetRange:
    start: int
    end: int
    """Exclusive."""

    @property
    def count(self) -> int:
        return max(0, self.end - self.start)


def parse_time(text: str) -> datetime:
    """ISO 8601 (``2026-11-29T08:00:00Z``, ``2026-11-29 08:00``); no zone means UTC."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ReplayInputError(
            f"cannot read {text!r} as a time: use ISO 8601, e.g. 2026-11-29T08:00:00Z"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def parse_start(text: str | None) -> StartPoint:
    """``--from``: an offset (digits; every partition starts there) or a time."""
    if text is None:
        return None
    if text.strip().isdigit():
        return int(text)
    return parse_time(text)


def check_range(start: StartPoint, to: datetime | None) -> None:
    if isinstance(start, datetime) and to is not None and to < start:
        raise ReplayInputError(
            f"--to {to.isoformat()} is before --from {start.isoformat()}: nothing to replay"
        )


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


async def partitions_of(bootstrap: str, topics: Iterable[str]) -> list[TopicPartition]:
    """Every partition of these topics (physical names); ReplayInputError if one is missing."""
    try:
        return await describe_partitions(bootstrap, list(topics))
    except MissingTopicError as error:
        several = len(error.topics) > 1
        raise ReplayInputError(
            f"topic{'s' if several else ''} {', '.join(error.topics)} "
            f"{'do' if several else 'does'} not exist (wrong --topic-prefix?)"
        ) from None


async def plan_offsets(
    consumer: AIOKafkaConsumer,
    partitions: list[TopicPartition],
    *,
    start: StartPoint = None,
    to: datetime | None = None,
) -> dict[TopicPartition, OffsetRange]:
    """Each partition's range to replay; raises ReplayInputError."""
    check_range(start, to)
    beginnings = await consumer.beginning_offsets(partitions)
    ends = await consumer.end_offsets(partitions)
    firsts = dict(beginnings)
    if isinstance(start, int):
        largest = max(ends.values(), default=0)
        if start > largest:
            raise ReplayInputError(
                f"--from offset {start} is past the end of every partition "
                f"(the largest end offset is {largest})"
            )
        firsts = {tp: max(beginnings[tp], start) for tp in partitions}
    elif isinstance(start, datetime):
        found_at = await consumer.offsets_for_times({tp: _ms(start) for tp in partitions})
        firsts = {
            tp: ends[tp] if found_at[tp] is None else found_at[tp].offset for tp in partitions
        }
    lasts = dict(ends)
    if to is not None:
        after = await consumer.offsets_for_times(
            {tp: _ms(to + timedelta(milliseconds=1)) for tp in partitions}
        )
        lasts = {tp: ends[tp] if after[tp] is None else after[tp].offset for tp in partitions}
    return {tp: OffsetRange(min(firsts[tp], lasts[tp]), lasts[tp]) for tp in partitions}


async def read_merged(
    consumer: AIOKafkaConsumer,
    ranges: dict[TopicPartition, OffsetRange],
    *,
    stall_s: float = 60.0,
) -> AsyncIterator[list[Any]]:
    """Batches of records (aiokafka ``ConsumerRecord``) in merged order, each partition's in
    offset order, ending at each partition's range end. Raises TimeoutError when the broker
    hands out nothing for ``stall_s`` while records are still missing."""
    active = {tp for tp, span in ranges.items() if span.count > 0}
    if not active:
        return
    order = {tp: index for index, tp in enumerate(sorted(active))}
    consumer.assign(sorted(active))
    for tp in active:
        consumer.seek(tp, ranges[tp].start)
    buffers: dict[TopicPartition, deque[Any]] = {tp: deque() for tp in active}
    heads: list[tuple[int, int, TopicPartition]] = []
    last_progress = time.monotonic()
    while active or heads:
        empty = [tp for tp in active if not buffers[tp]]
        if empty:
            fetched = await consumer.getmany(*empty, timeout_ms=500)
            for tp, records in fetched.items():
                if _take(
                    tp, records, end=ranges[tp].end, buffer=buffers[tp], heads=heads, rank=order[tp]
                ):
                    last_progress = time.monotonic()
                if records and records[-1].offset + 1 >= ranges[tp].end:
                    active.discard(tp)
            if any(not buffers[tp] for tp in active):
                if time.monotonic() - last_progress > stall_s:
                    missing = sorted(f"{tp.topic}[{tp.partition}]" for tp in active)
                    raise TimeoutError("no records from Kafka for " + ", ".join(missing))
                continue
        yield _emit(buffers, heads, order, active)


def _take(
    tp: TopicPartition,
    records: list[Any],
    *,
    end: int,
    buffer: deque[Any],
    heads: list[tuple[int, int, TopicPartition]],
    rank: int,
) -> bool:
    """Buffer the records before ``end``; True if there were any."""
    kept = [r for r in records if r.offset < end]
    if not kept:
        return False
    if not buffer:
        heapq.heappush(heads, (kept[0].timestamp, rank, tp))
    buffer.extend(kept)
    return True


def _emit(
    buffers: dict[TopicPartition, deque[Any]],
    heads: list[tuple[int, int, TopicPartition]],
    order: dict[TopicPartition, int],
    active: set[TopicPartition],
) -> list[Any]:
    """Records in timestamp order until a partition that has more to come runs dry."""
    batch: list[Any] = []
    while heads:
        _, _, tp = heapq.heappop(heads)
        buffer = buffers[tp]
        batch.append(buffer.popleft())
        if buffer:
            heapq.heappush(heads, (buffer[0].timestamp, order[tp], tp))
        elif tp in active:
            break  # its next records decide what comes next: fetch them first
    return batch
