"""FastStream's batch subscriber without the sleep after an empty poll.

FastStream 0.7's ``BatchSubscriber.get_msg`` asks aiokafka for records, waiting up to
``batch_timeout_ms``, and when none came, sleeps as long again before it asks anew. aiokafka's
``getmany`` already returns the moment records arrive, so the sleep mostly costs: a record
that arrives during it waits for it to end (up to ``batch_timeout_ms`` more latency per hop),
and an idle consumer wakes twice per period instead of once. With the 10 ms that kept that added
latency small, each of the five idle services spent about 6% of a core in the loop.

:func:`wait_in_poll_only` makes a subscriber wait in ``getmany`` alone. Then
``consumer_batch_wait_ms`` costs no latency, and a longer wait only wakes an idle consumer
less often. Stopping stays prompt: aiokafka wakes a waiting ``getmany`` when the consumer
closes.

The sleep did one useful thing: records that arrived during it made one batch, and a batch
costs one store read and one write per collection however many records it holds. Handing
each record over the moment it arrived measured 4.9 store round trips per captured lead
instead of 4.0 (retention-scheduler's doubled). So once records arrive, the subscriber waits
``consumer_batch_linger_ms`` (10 by default) and takes those that came meanwhile too: the
batching back, at most that much latency per hop, and nothing while idle.
"""

from __future__ import annotations

import asyncio
from itertools import chain
from typing import TYPE_CHECKING, Any, cast

from faststream.kafka.subscriber.usecase import BatchSubscriber

if TYPE_CHECKING:
    from aiokafka import AIOKafkaConsumer, ConsumerRecord


class _PromptBatchSubscriber(BatchSubscriber):
    linger_s: float = 0.0

    async def get_msg(self, consumer: AIOKafkaConsumer) -> tuple[ConsumerRecord, ...]:
        limit = self.max_records
        messages = await consumer.getmany(timeout_ms=self.batch_timeout_ms, max_records=limit)
        records = list(chain(*messages.values()))
        if records and self.linger_s > 0 and (limit is None or len(records) < limit):
            # Records are flowing: a moment more makes the batch, and its one read and one
            # write per collection, cover more of them.
            await asyncio.sleep(self.linger_s)
            more = await consumer.getmany(
                timeout_ms=0, max_records=None if limit is None else limit - len(records)
            )
            records.extend(chain(*more.values()))  # per partition, still in offset order
        return tuple(records)


def wait_in_poll_only(subscriber: Any, *, linger_ms: int = 0) -> None:
    """Make FastStream's batch ``subscriber`` hand over records as soon as they arrive, or
    ``linger_ms`` after the first of them, with those that came meanwhile."""
    if type(subscriber) is not BatchSubscriber:
        raise TypeError(
            f"expected FastStream's BatchSubscriber, got {type(subscriber).__name__}: "
            "see services/common/prompt_batches.py"
        )
    subscriber.__class__ = _PromptBatchSubscriber
    prompt = cast("_PromptBatchSubscriber", subscriber)
    prompt.linger_s = linger_ms / 1000
