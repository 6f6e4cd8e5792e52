"""The metrics helpers and the HTTP observability middleware, without Kafka or MongoDB."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import structlog
from fastapi import APIRouter, FastAPI
from prometheus_client import CollectorRegistry, Counter

from contracts import REGISTRY
from services.common.logging import current_correlation_id
from services.common.metrics import OTHER, LabelCache, ServiceMetrics, logical_topic
from services.common.observability import RequestObservability, metrics_router
from tests.helpers import parse_metrics, sample


def make_metrics() -> ServiceMetrics:
    types = {definition.type for definition in REGISTRY.definitions()}
    return ServiceMetrics("unit", topic_prefix="unit.", event_types=types)


def test_label_cache_returns_one_child_per_label_tuple() -> None:
    registry = CollectorRegistry()
    counter = Counter("things", "", ["a", "b"], registry=registry)
    cache = LabelCache(counter)
    cache("x", "y").inc()
    cache("x", "y").inc()
    cache("x", "z").inc()
    assert cache("x", "y") is counter.labels("x", "y")
    assert registry.get_sample_value("things_total", {"a": "x", "b": "y"}) == 2
    assert registry.get_sample_value("things_total", {"a": "x", "b": "z"}) == 1


def test_labels_stay_in_closed_sets() -> None:
    metrics = make_metrics()
    assert metrics.event_type("lead.captured") == "lead.captured"
    assert metrics.event_type("made.up_by_someone") == OTHER
    assert metrics.event_type(None) == OTHER
    assert logical_topic("unit.lead-events", "unit.") == "lead-events"
    assert metrics.topic("elsewhere.lead-events") == "elsewhere.lead-events"


async def test_recorded_values_show_in_the_exposition() -> None:
    metrics = make_metrics()
    metrics.handled("lead-events", "lead.captured", "ok", 0.002)
    metrics.handled("lead-events", "lead.captured", "ok", 0.004)
    metrics.handled("lead-events", "lead.captured", "retry", 0.5)
    metrics.published("lead-events", "lead.captured")
    metrics.dead_lettered("lead-events", "handler_failed")
    metrics.http_request("POST", "/v1/leads", 202, 0.01)
    metrics.http_request("BREW", "unmatched", 405, 0.01)
    got = parse_metrics((await metrics.render()).decode())

    def value(name: str, **labels: str) -> float | None:
        return sample(got, name, service="unit", **labels)

    handled = "leadtrail_events_handled_total"
    assert value(handled, topic="lead-events", event_type="lead.captured", outcome="ok") == 2
    assert value(handled, topic="lead-events", event_type="lead.captured", outcome="retry") == 1
    seconds = "leadtrail_event_handler_seconds_count"
    assert value(seconds, topic="lead-events", event_type="lead.captured") == 3
    published = "leadtrail_events_published_total"
    assert value(published, topic="lead-events", event_type="lead.captured") == 1
    letters = "leadtrail_dead_letters_total"
    assert value(letters, topic="lead-events", reason="handler_failed") == 1
    requests = "leadtrail_http_requests_total"
    assert value(requests, method="POST", route="/v1/leads", status="202") == 1
    assert value(requests, method=OTHER, route="unmatched", status="405") == 1


@dataclass(frozen=True)
class TP:
    topic: str
    partition: int


class FakeConsumer:
    """Stands in for ``AIOKafkaConsumer``: an assignment, end offsets and positions."""

    def __init__(self, ends: dict[TP, int], positions: dict[TP, int]) -> None:
        self.ends = ends
        self.positions = positions

    def assignment(self) -> set[Any]:
        return set(self.positions)

    async def end_offsets(self, partitions: list[Any]) -> dict[Any, int]:
        return {tp: self.ends[tp] for tp in partitions}

    async def position(self, partition: Any) -> int:
        return self.positions[partition]


async def test_lag_is_end_offset_minus_position_per_assigned_partition() -> None:
    metrics = make_metrics()
    zero, one = TP("unit.lead-events", 0), TP("unit.lead-events", 1)
    consumer = FakeConsumer({zero: 10, one: 4}, {zero: 7, one: 4})
    metrics.track_consumer("g", lambda: consumer)
    metrics.track_consumer("not-started", lambda: None)
    got = parse_metrics((await metrics.render()).decode())
    lag = "leadtrail_consumer_lag"
    labels = {"service": "unit", "group": "g", "topic": "lead-events"}
    assert sample(got, lag, partition="0", **labels) == 3
    assert sample(got, lag, partition="1", **labels) == 0

    consumer.positions = {one: 4}  # partition 0 was revoked
    got = parse_metrics((await metrics.render()).decode())
    assert sample(got, lag, partition="0", **labels) is None


class RebalancingConsumer(FakeConsumer):
    async def position(self, partition: Any) -> int:
        raise RuntimeError("partition is not assigned")


async def test_a_consumer_that_cannot_answer_reports_nothing_and_is_counted() -> None:
    metrics = make_metrics()
    tp = TP("unit.lead-events", 0)
    healthy = FakeConsumer({tp: 5}, {tp: 2})
    stuck = RebalancingConsumer({tp: 9}, {tp: 1})
    metrics.track_consumer("healthy", lambda: healthy)
    metrics.track_consumer("stuck", lambda: stuck)
    got = parse_metrics((await metrics.render()).decode())
    labels = {"service": "unit", "topic": "lead-events", "partition": "0"}
    assert sample(got, "leadtrail_consumer_lag", group="healthy", **labels) == 3
    assert sample(got, "leadtrail_consumer_lag", group="stuck", **labels) is None
    errors = "leadtrail_metrics_refresh_errors_total"
    assert sample(got, errors, service="unit", source="consumer_lag") == 1


async def test_a_failing_refresher_is_counted_and_the_scrape_still_answers() -> None:
    metrics = make_metrics()
    ran: list[str] = []

    async def broken() -> None:
        raise ConnectionError("mongo went away")

    async def fine() -> None:
        ran.append("fine")

    metrics.on_scrape("broken", broken)
    metrics.on_scrape("fine", fine)
    text = (await metrics.render()).decode()
    assert ran == ["fine"]
    errors = "leadtrail_metrics_refresh_errors_total"
    assert sample(parse_metrics(text), errors, service="unit", source="broken") == 1


def observed_app(metrics: ServiceMetrics, seen: list[str | None]) -> FastAPI:
    router = APIRouter()

    @router.get("/things/{thing_id}")
    async def thing(thing_id: str) -> dict[str, str]:
        seen.append(structlog.contextvars.get_contextvars().get("correlation_id"))
        return {"thing": thing_id, "correlation_id": current_correlation_id()}

    @router.get("/boom")
    async def boom() -> None:
        raise RuntimeError("boom")

    app = FastAPI()
    app.add_middleware(RequestObservability, metrics=metrics)
    app.include_router(router)
    app.include_router(metrics_router(metrics))
    return app


async def test_requests_get_a_correlation_id_in_logs_body_and_header() -> None:
    metrics = make_metrics()
    seen: list[str | None] = []
    transport = httpx.ASGITransport(app=observed_app(metrics, seen), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://unit") as client:
        given = await client.get("/things/1", headers={"X-Correlation-ID": "req-42.a:b"})
        minted = await client.get("/things/2")
        forged = await client.get("/things/3", headers={"X-Correlation-ID": 'x" evil=1'})
        missing = await client.get("/nowhere/at/all")
        failed = await client.get("/boom")
        scrape = await client.get("/metrics")
    assert given.headers["x-correlation-id"] == "req-42.a:b" == given.json()["correlation_id"]
    minted_id = minted.headers["x-correlation-id"]
    assert minted_id == minted.json()["correlation_id"] == seen[1]
    assert len(minted_id) == 36  # a UUIDv7
    assert forged.headers["x-correlation-id"] not in ('x" evil=1', minted_id)
    assert seen[0] == "req-42.a:b"
    assert missing.status_code == 404
    assert "x-correlation-id" in missing.headers
    assert failed.status_code == 500
    assert scrape.headers["content-type"].startswith("text/plain")
    assert structlog.contextvars.get_contextvars().get("correlation_id") is None, "unbound after"

    got = parse_metrics(scrape.text)

    def count(route: str, status: str) -> float | None:
        labels = {"service": "unit", "method": "GET", "route": route, "status": status}
        return sample(got, "leadtrail_http_requests_total", **labels)

    assert count("/things/{thing_id}", "200") == 3, "the template, not the concrete paths"
    assert count("unmatched", "404") == 1
    assert count("/boom", "500") == 1


@pytest.mark.parametrize("value", ["", "-leading-dash", "a" * 65, "has space", "ünïcode"])
async def test_invalid_incoming_correlation_ids_are_replaced(value: str) -> None:
    metrics = make_metrics()
    transport = httpx.ASGITransport(app=observed_app(metrics, []))
    async with httpx.AsyncClient(transport=transport, base_url="http://unit") as client:
        response = await client.get("/things/1", headers={b"X-Correlation-ID": value.encode()})
    assert response.headers["x-correlation-id"] != value
    assert len(response.headers["x-correlation-id"]) == 36


async def test_outside_a_request_a_fresh_correlation_id_is_minted() -> None:
    first, second = await asyncio.gather(
        asyncio.to_thread(current_correlation_id), asyncio.to_thread(current_correlation_id)
    )
    assert first != second
