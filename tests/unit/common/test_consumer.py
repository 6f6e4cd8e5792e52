"""The reliable subscription on FastStream's in-memory broker: routing, poison, dead letters.

Retries with redelivery need a real consumer that can seek; they are covered again on real
Kafka in ``tests/integration/test_event_loop.py``.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
from faststream.kafka import KafkaBroker, TestKafkaBroker

from contracts import REGISTRY, EventEnvelope
from contracts.dead_letter import DeadLetterV1
from services.common.clock import FakeClock
from services.common.consumer import redrive_headers, subscribe_events
from services.common.metrics import ServiceMetrics
from services.common.settings import CommonSettings
from tests.helpers import one_by_one

NOW = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture
def settings(kek_b64: str) -> CommonSettings:
    return CommonSettings(kek=kek_b64, topic_prefix="unit.", handler_max_attempts=1)


@pytest.fixture
def metrics(settings: CommonSettings) -> ServiceMetrics:
    return ServiceMetrics.for_service("unit", settings, REGISTRY)


def handled(metrics: ServiceMetrics, event_type: str, outcome: str) -> float | None:
    return metrics.registry.get_sample_value(
        "leadtrail_events_handled_total",
        {"service": "unit", "topic": "lead-events", "event_type": event_type, "outcome": outcome},
    )


def _event(event_type: str = "lead.captured") -> EventEnvelope:
    return EventEnvelope(
        type=event_type,
        version=1,
        occurred_at=NOW,
        tenant_id="acme",
        subject_id="sub-1",
        correlation_id="corr-1",
        producer="test",
    )


async def _publish(broker: KafkaBroker, event: EventEnvelope | bytes) -> None:
    if isinstance(event, EventEnvelope):
        await broker.publish(
            event.model_dump_json().encode(),
            topic="unit.lead-events",
            key=event.kafka_key(),
            headers=event.kafka_headers(),
        )
    else:
        await broker.publish(event, topic="unit.lead-events", key=b"k", headers={"type": "x.y"})


async def test_handler_gets_wanted_events_only(
    settings: CommonSettings, metrics: ServiceMetrics
) -> None:
    broker = KafkaBroker()
    seen: list[str] = []

    async def handler(event: EventEnvelope) -> None:
        seen.append(event.type)

    subscribe_events(
        broker,
        settings,
        service="unit",
        group_id="unit",
        topics=["lead-events"],
        handler=one_by_one(handler),
        clock=FakeClock(NOW),
        metrics=metrics,
        event_types={"lead.captured"},
    )
    async with TestKafkaBroker(broker):
        await _publish(broker, _event("lead.captured"))
        await _publish(broker, _event("lead.scored"))
    assert seen == ["lead.captured"]
    assert handled(metrics, "lead.captured", "ok") == 1
    assert handled(metrics, "lead.scored", "ok") is None, "skipped types are not handled"
    commits = metrics.registry.get_sample_value(
        "leadtrail_kafka_offset_commits_total", {"service": "unit", "group": "unit"}
    )
    assert commits == 2, "every record is committed, the skipped one too"
    assert (
        metrics.registry.get_sample_value(
            "leadtrail_event_handler_seconds_count",
            {"service": "unit", "topic": "lead-events", "event_type": "lead.captured"},
        )
        == 1
    )


async def test_poison_and_failing_messages_go_to_dead_letters(
    settings: CommonSettings, metrics: ServiceMetrics
) -> None:
    broker = KafkaBroker()
    letters: list[DeadLetterV1] = []

    async def handler(event: EventEnvelope) -> None:
        raise RuntimeError("projection store exploded")

    subscribe_events(
        broker,
        settings,
        service="unit",
        group_id="unit",
        topics=["lead-events"],
        handler=one_by_one(handler),
        clock=FakeClock(NOW),
        metrics=metrics,
    )

    @broker.subscriber("unit.dead-letters")
    async def collect(letter: DeadLetterV1) -> None:
        letters.append(letter)

    async with TestKafkaBroker(broker):
        await _publish(broker, b"\x00 not json at all")
        await _publish(broker, _event())

    assert [letter.error_type for letter in letters] == ["ValidationError", "RuntimeError"]
    poison, failed = letters
    assert base64.b64decode(poison.value_b64) == b"\x00 not json at all"
    assert poison.source_topic == "unit.lead-events"
    assert failed.error_message == "projection store exploded"
    assert failed.event_type == "lead.captured"
    assert failed.tenant_id == "acme"
    assert failed.failed_at == NOW
    assert handled(metrics, "other", "dead_letter") == 1, "the undecodable record"
    assert handled(metrics, "lead.captured", "dead_letter") == 1
    assert handled(metrics, "lead.captured", "ok") is None
    for reason in ("invalid_envelope", "handler_failed"):
        labels = {"service": "unit", "topic": "lead-events", "reason": reason}
        assert metrics.registry.get_sample_value("leadtrail_dead_letters_total", labels) == 1


async def test_a_redriven_record_is_handled_by_the_service_that_gave_up_on_it_alone(
    settings: CommonSettings, metrics: ServiceMetrics
) -> None:
    """``leadtrail dlq redrive`` names the service; the others handled the original already
    (crm-sync, for one, would push again), and the handler sees the redrive's headers."""
    broker = KafkaBroker()
    seen: list[tuple[str, str | None]] = []

    async def handler(event: EventEnvelope) -> None:
        redrive = redrive_headers()
        seen.append((event.type, redrive.get("connection_id") if redrive else None))

    subscribe_events(
        broker,
        settings,
        service="unit",
        group_id="unit",
        topics=["lead-events"],
        handler=one_by_one(handler),
        clock=FakeClock(NOW),
        metrics=metrics,
    )

    async def redrive(event: EventEnvelope, service: str) -> None:
        headers = {
            **event.kafka_headers(),
            "redriven_from": "dl-1",
            "redrive_service": service,
            "connection_id": "crm-b",
        }
        await broker.publish(
            event.model_dump_json().encode(),
            topic="unit.lead-events",
            key=event.kafka_key(),
            headers=headers,
        )

    async with TestKafkaBroker(broker):
        await redrive(_event("lead.qualified"), "another-service")
        await redrive(_event("lead.scored"), "unit")
        await _publish(broker, _event("lead.captured"))
    assert seen == [("lead.scored", "crm-b"), ("lead.captured", None)]
    assert redrive_headers() is None
