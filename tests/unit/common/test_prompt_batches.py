"""Batch subscribers wait in aiokafka's poll only, never in a sleep after an empty poll."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import anyio
import pytest
from aiokafka import TopicPartition
from faststream.kafka import KafkaBroker

from contracts import REGISTRY, EventEnvelope
from services.common.clock import FakeClock
from services.common.consumer import subscribe_events
from services.common.metrics import ServiceMetrics
from services.common.prompt_batches import wait_in_poll_only
from services.common.settings import CommonSettings

FIRST, SECOND = TopicPartition("unit.lead-events", 0), TopicPartition("unit.lead-events", 1)


class ScriptedConsumer:
    """Answers ``getmany`` from a script, and records how it was asked."""

    def __init__(self, *answers: dict[TopicPartition, list[str]]) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[int, int | None]] = []

    async def getmany(self, *, timeout_ms: int, max_records: int | None) -> Any:
        self.calls.append((timeout_ms, max_records))
        return self.answers.pop(0)


def _subscriber(settings: CommonSettings) -> Any:
    broker = KafkaBroker()

    async def handler(events: Sequence[EventEnvelope]) -> None:
        del events

    subscribe_events(
        broker,
        settings,
        service="unit",
        group_id="unit",
        topics=["lead-events"],
        clock=FakeClock(datetime(2026, 11, 1, tzinfo=UTC)),
        metrics=ServiceMetrics.for_service("unit", settings, REGISTRY),
        handler=handler,
    )
    (subscriber,) = broker.subscribers
    return subscriber


async def test_an_empty_poll_is_followed_by_the_next_poll_not_a_sleep(
    kek_b64: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = CommonSettings(
        kek=kek_b64, topic_prefix="unit.", consumer_batch_wait_ms=700, consumer_batch_linger_ms=0
    )
    subscriber = _subscriber(settings)

    async def no_sleep(delay: float) -> None:
        raise AssertionError(f"slept {delay} s after an empty poll")

    monkeypatch.setattr(anyio, "sleep", no_sleep)
    consumer = ScriptedConsumer({}, {FIRST: ["a", "b"], SECOND: ["c"]})

    assert await subscriber.get_msg(consumer) == ()
    assert await subscriber.get_msg(consumer) == ("a", "b", "c")
    max_records = settings.consumer_batch_max_records
    assert consumer.calls == [(700, max_records), (700, max_records)]


async def test_once_records_arrive_it_lingers_for_more_unless_the_batch_is_full(
    kek_b64: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = CommonSettings(
        kek=kek_b64, topic_prefix="unit.", consumer_batch_max_records=3, consumer_batch_linger_ms=25
    )
    subscriber = _subscriber(settings)
    slept: list[float] = []

    async def sleep(delay: float) -> None:
        slept.append(delay)

    monkeypatch.setattr(asyncio, "sleep", sleep)

    consumer = ScriptedConsumer({FIRST: ["a"]}, {SECOND: ["c"], FIRST: ["b"]})
    assert await subscriber.get_msg(consumer) == ("a", "c", "b")
    assert consumer.calls == [(500, 3), (0, 2)], "then only what is there, up to the limit"
    assert slept == [0.025]

    full = ScriptedConsumer({FIRST: ["a", "b"], SECOND: ["c"]})
    assert await subscriber.get_msg(full) == ("a", "b", "c")
    assert full.calls == [(500, 3)], "a full batch goes at once"
    assert slept == [0.025]


def test_only_faststreams_batch_subscriber_is_changed(kek_b64: str) -> None:
    broker = KafkaBroker()
    single = broker.subscriber("unit.lead-events", group_id="unit")
    with pytest.raises(TypeError, match="expected FastStream's BatchSubscriber"):
        wait_in_poll_only(single)
    settings = CommonSettings(kek=kek_b64, topic_prefix="unit.")
    subscriber = _subscriber(settings)
    with pytest.raises(TypeError, match="got _PromptBatchSubscriber"):
        wait_in_poll_only(subscriber)  # once is enough
