"""Counting the store's round trips: the command listener and its counter, without a store."""

from __future__ import annotations

from typing import Any

from bson import SON
from pymongo import monitoring

from services.common.metrics import ServiceMetrics
from services.common.runtime import Runtime
from services.common.settings import CommonSettings
from services.common.store import CommandCounter, make_mongo_client


def started(command: dict[str, Any]) -> monitoring.CommandStartedEvent:
    return monitoring.CommandStartedEvent(
        SON(command), "leadtrail", request_id=1, connection_id=("127.0.0.1", 1), operation_id=1
    )


def count(metrics: ServiceMetrics, command: str, collection: str) -> float | None:
    return metrics.registry.get_sample_value(
        "leadtrail_store_commands_total",
        {"service": "unit", "command": command, "collection": collection},
    )


def test_each_command_is_counted_by_name_and_collection() -> None:
    metrics = ServiceMetrics("unit", topic_prefix="unit.", event_types=[])
    counter = CommandCounter(metrics.store_command)
    counter.started(started({"find": "leads", "filter": {"_id": "x"}}))
    counter.started(started({"find": "leads", "filter": {"_id": "y"}}))
    counter.started(started({"update": "crm_outbox", "updates": []}))
    counter.started(started({"getMore": 42, "collection": "retention_due"}))
    counter.started(started({"ping": 1}))
    assert count(metrics, "find", "leads") == 2
    assert count(metrics, "update", "crm_outbox") == 1
    assert count(metrics, "getMore", "retention_due") == 1
    assert count(metrics, "ping", "") == 1
    assert count(metrics, "insert", "leads") is None


def test_the_client_a_service_builds_reports_to_its_listeners(kek_b64: str) -> None:
    seen: list[tuple[str, str]] = []
    counter = CommandCounter(lambda command, collection: seen.append((command, collection)))
    client = make_mongo_client(CommonSettings(kek=kek_b64), app_name="unit", listeners=[counter])
    listeners: list[object] = list(client.options.event_listeners)
    assert counter in listeners


def test_the_runtime_counts_its_store_commands_in_its_own_metrics(kek_b64: str) -> None:

    runtime = Runtime.build("unit", CommonSettings(kek=kek_b64))
    counters = [
        listener
        for listener in runtime.mongo.options.event_listeners
        if isinstance(listener, CommandCounter)
    ]
    assert len(counters) == 1
    counters[0].started(started({"insert": "data_keys", "documents": []}))
    got = runtime.metrics.registry.get_sample_value(
        "leadtrail_store_commands_total",
        {"service": "unit", "command": "insert", "collection": "data_keys"},
    )
    assert got == 1
