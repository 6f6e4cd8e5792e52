"""EventPublisher's sealing: enqueue order is seq order, acks are awaited outside the lock, and
a failed or abandoned publish never leaves an unexplained gap. Kafka itself is covered by
tests/integration/test_integrity.py; here a broker double hands out futures the test settles."""

from __future__ import annotations

import asyncio
import base64
import json
import os
from datetime import UTC, datetime
from typing import Any, cast

import pytest
from faststream.kafka import KafkaBroker

from contracts import REGISTRY
from contracts.events.retention import RetentionHoldPlacedV1
from ops.verify import LogRecord, Verifier
from services.common.clock import FakeClock
from services.common.crypto import InMemoryDataKeyring, PiiCipher
from services.common.publisher import EventPublisher
from services.common.settings import CommonSettings

KEY = os.urandom(32)


class PendingBroker:
    """Records what was enqueued, in order, and returns an unsettled future for each."""

    def __init__(self) -> None:
        self.enqueued: list[tuple[bytes, asyncio.Future[Any]]] = []
        self._changed = asyncio.Condition()

    async def until(self, count: int) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: len(self.enqueued) >= count)

    async def publish(self, value: bytes, **options: Any) -> asyncio.Future[Any]:
        assert options["no_confirm"] is True
        await asyncio.sleep(0)  # enqueueing may yield (metadata, buffer space)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        async with self._changed:
            self.enqueued.append((value, future))
            self._changed.notify_all()
        return future


@pytest.fixture
def broker() -> PendingBroker:
    return PendingBroker()


@pytest.fixture
def publisher(broker: PendingBroker, kek_b64: str) -> EventPublisher:
    return EventPublisher(
        broker=cast("KafkaBroker", broker),
        settings=CommonSettings(kek=kek_b64, integrity_key=base64.b64encode(KEY).decode()),
        registry=REGISTRY,
        cipher=PiiCipher(InMemoryDataKeyring()),
        clock=FakeClock(datetime(2026, 11, 1, tzinfo=UTC)),
        producer="retention-scheduler",
    )


def hold(n: int) -> RetentionHoldPlacedV1:
    return RetentionHoldPlacedV1(
        hold_id=f"hold_{n:016x}", scope="tenant", reason=f"case {n}", placed_by="legal"
    )


async def publish(publisher: EventPublisher, n: int) -> Any:
    return await publisher.publish(
        hold(n), tenant_id="acme", subject_id="_tenant", correlation_id=f"c{n}"
    )


def verify(values: list[bytes]) -> Verifier:
    verifier = Verifier(KEY)
    for offset, value in enumerate(values):
        body = json.loads(value)
        headers = [
            ("type", body["type"].encode()),
            ("version", str(body["version"]).encode()),
            ("tenant_id", body["tenant_id"].encode()),
            ("event_id", body["id"].encode()),
            ("correlation_id", body["correlation_id"].encode()),
        ]
        record = LogRecord(
            "retention-events", 0, offset, body["subject_id"].encode(), value, headers
        )
        verifier.add(record)
    return verifier


async def settle(broker: PendingBroker, *, fail: frozenset[int] = frozenset()) -> None:
    for index, (_, future) in enumerate(broker.enqueued):
        if not future.done():
            if index in fail:
                future.set_exception(TimeoutError("no acknowledgement"))
            else:
                future.set_result(None)
    await asyncio.sleep(0)


async def test_concurrent_publishes_are_enqueued_in_seq_order_and_share_round_trips(
    publisher: EventPublisher, broker: PendingBroker
) -> None:
    tasks = [asyncio.create_task(publish(publisher, n)) for n in range(20)]
    await broker.until(20)
    assert not any(task.done() for task in tasks), "nobody is told 'sent' before the ack"
    seqs = [json.loads(value)["integrity"]["seq"] for value, _ in broker.enqueued]
    assert seqs == list(range(20)), "all 20 enqueued before any ack: the lock covers only enqueue"
    await settle(broker)
    sealed = await asyncio.gather(*tasks)
    assert sorted(e.integrity.seq for e in sealed) == list(range(20))
    assert verify([value for value, _ in broker.enqueued]).report().clean


async def test_a_failed_ack_raises_ends_the_chain_and_is_declared_void(
    publisher: EventPublisher, broker: PendingBroker
) -> None:
    tasks = [asyncio.create_task(publish(publisher, n)) for n in range(3)]
    await broker.until(3)
    old_chain = publisher.chain
    await settle(broker, fail=frozenset({1}))
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(results[1], TimeoutError)
    assert publisher.chain != old_chain
    task = asyncio.create_task(publish(publisher, 3))
    await broker.until(4)
    await settle(broker)
    after = await task
    assert (after.integrity.chain, after.integrity.seq) == (publisher.chain, 0)
    assert [(p.chain, p.seq) for p in after.integrity.void] == [(old_chain, 1)]
    landed = [value for i, (value, _) in enumerate(broker.enqueued) if i != 1]
    report = verify(landed).report()
    assert report.clean, report.findings
    assert report.voided == 1


async def test_a_caller_that_times_out_does_not_leave_a_hole_in_the_chain(
    publisher: EventPublisher, broker: PendingBroker
) -> None:
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(publish(publisher, 0), timeout=0.01)
    await settle(broker)
    task = asyncio.create_task(publish(publisher, 1))
    await broker.until(2)
    await settle(broker)
    await task
    values = [value for value, _ in broker.enqueued]
    assert [json.loads(v)["integrity"]["seq"] for v in values] == [0, 1]
    assert verify(values).report().clean
