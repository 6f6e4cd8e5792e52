"""Observability on the real broker and the store: ``/metrics`` counts what happened to a lead,
consumer lag drains to zero, and one correlation id follows the lead through two services'
JSON logs (separate processes, as ``make up`` runs them)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from contracts import ALL_TOPICS
from services.common.settings import CommonSettings
from services.common.tenants import TenantDirectory
from services.common.topics import ensure_topics
from tests.helpers import Samples, eventually, sample, scrape_metrics
from tests.integration.cluster import cluster
from tests.integration.lead_ingest.conftest import key, sample_lead
from tests.services_proc import ServiceProcess

pytestmark = pytest.mark.integration

HANDLED = "leadtrail_events_handled_total"
PUBLISHED = "leadtrail_events_published_total"
LAG = "leadtrail_consumer_lag"


def lags(samples: Samples) -> dict[tuple[str, str, str], float]:
    """(group, topic, partition) -> lag."""
    found = {}
    for (name, labels), lag in samples.items():
        if name == LAG:
            values = dict(labels)
            found[values["group"], values["topic"], values["partition"]] = lag
    return found


async def test_a_lead_moves_the_counters_and_the_lag_drains_to_zero(
    kafka_bootstrap: str, mongo_url: str, tmp_path: Path
) -> None:
    async with cluster(
        kafka_bootstrap, mongo_url, tmp_path, ["lead_ingest", "consent_ledger"]
    ) as stack:
        ingest, ledger = stack.client("lead_ingest"), stack.client("consent_ledger")
        correlation_id = f"it-{uuid.uuid4().hex}"
        response = await ingest.post(
            "/v1/leads",
            json=sample_lead(),
            headers={**stack.auth(), "X-Correlation-ID": correlation_id},
        )
        assert response.status_code == 202, response.text
        assert response.headers["x-correlation-id"] == correlation_id
        lead_id = response.json()["lead_id"]
        await stack.get_json("lead_ingest", f"/v1/leads/{lead_id}")
        captured = await stack.wait_for_event("lead-events", lambda e: e.type == "lead.captured")
        assert captured.correlation_id == correlation_id
        granted = await stack.wait_for_event(
            "consent-events", lambda e: e.type == "consent.granted"
        )
        assert granted.correlation_id == correlation_id, "consent-ledger kept the lead's id"

        async def ledger_handled_the_lead() -> Samples | None:
            samples = await scrape_metrics(ledger)
            labels = {"topic": "lead-events", "event_type": "lead.captured"}
            ok = sample(samples, HANDLED, service="consent-ledger", outcome="ok", **labels)
            return samples if ok else None

        at_ledger = await eventually(ledger_handled_the_lead, what="consent-ledger's counter")
        lead_captured = {"topic": "lead-events", "event_type": "lead.captured"}
        at_ledger_captured = {"service": "consent-ledger", **lead_captured}
        for outcome in ("retry", "dead_letter"):
            assert sample(at_ledger, HANDLED, outcome=outcome, **at_ledger_captured) is None
        granted_labels = {"topic": "consent-events", "event_type": "consent.granted"}
        purposes = len(sample_lead()["consent"]["purposes"])
        assert sample(at_ledger, PUBLISHED, service="consent-ledger", **granted_labels) == purposes

        at_ingest = await scrape_metrics(ingest)
        assert sample(at_ingest, PUBLISHED, service="lead-ingest", **lead_captured) == 1
        post = {"service": "lead-ingest", "method": "POST", "route": "/v1/leads"}
        assert sample(at_ingest, "leadtrail_http_requests_total", status="202", **post) == 1
        assert sample(at_ingest, "leadtrail_http_request_seconds_count", **post) == 1
        ok = sample(at_ingest, HANDLED, service="lead-ingest", outcome="ok", **lead_captured)
        assert ok is not None, "lead-ingest projected its own event"
        assert ok >= 1
        timed = "leadtrail_event_handler_seconds_count"
        seconds = sample(at_ingest, timed, service="lead-ingest", **lead_captured)
        assert seconds is not None
        assert seconds >= ok
        # The store's round trips, counted by the listener on the service's own client.
        commands = "leadtrail_store_commands_total"
        created = sample(
            at_ingest,
            commands,
            service="lead-ingest",
            command="update",  # a key is an upsert that only inserts, with its pointer
            **{"collection": "data_keys"},
        )
        assert created is not None, "the new subject's data key was created"
        assert created >= 1
        committed = sample(
            at_ledger,
            "leadtrail_kafka_offset_commits_total",
            service="consent-ledger",
            group="consent-ledger.leads",
        )
        assert committed is not None, "consent-ledger committed the lead's offset"
        assert committed >= 1

        async def drained(client: httpx.AsyncClient) -> dict[tuple[str, str, str], float] | None:
            current = lags(await scrape_metrics(client))
            return current if current and not any(current.values()) else None

        ingest_lag = await eventually(lambda: drained(ingest), what="lead-ingest lag 0")
        ledger_lag = await eventually(lambda: drained(ledger), what="consent-ledger lag 0")
        every_partition = {str(n) for n in range(6)}
        for group, topic in (
            ("lead-ingest.leads", "lead-events"),
            ("lead-ingest.subjects", "consent-events"),
            ("lead-ingest.privacy", "privacy-events"),
            ("lead-ingest.erasure", "erasure-events"),
        ):
            assert {p for g, t, p in ingest_lag if (g, t) == (group, topic)} == every_partition
        assert {(g, t) for g, t, _ in ledger_lag} == {
            ("consent-ledger.leads", "lead-events"),
            ("consent-ledger.privacy", "privacy-events"),
            ("consent-ledger.erasure", "erasure-events"),
            ("consent-ledger.ledger", "consent-events"),
        }


def json_lines(path: Path) -> list[dict[str, Any]]:
    lines = []
    for line in path.read_text().splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


async def test_one_correlation_id_follows_a_lead_through_two_services_logs(
    kafka_bootstrap: str, mongo_url: str, tmp_path: Path
) -> None:
    suffix = uuid.uuid4().hex[:10]
    config_dir = tmp_path / "config"
    settings = CommonSettings(
        kafka_bootstrap=kafka_bootstrap,
        mongo_url=mongo_url,
        mongo_db=f"it_{suffix}",
        topic_prefix=f"it-{suffix}.",
        kek=key(),
    )
    _, api_key = TenantDirectory(config_dir).add("Acme", tenant_id="acme", default_region="IT")
    await ensure_topics(kafka_bootstrap, settings.topic_prefix, ALL_TOPICS)
    env = {
        "LEADTRAIL_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "LEADTRAIL_MONGO_URL": mongo_url,
        "LEADTRAIL_MONGO_DB": settings.mongo_db,
        "LEADTRAIL_TOPIC_PREFIX": settings.topic_prefix,
        "LEADTRAIL_KEK": settings.kek.get_secret_value(),
        "LEADTRAIL_BLIND_INDEX_KEY": key(),
        "LEADTRAIL_UNSUBSCRIBE_KEY": key(),
        "LEADTRAIL_CONFIG_DIR": str(config_dir),
        "LEADTRAIL_LOG_FORMAT": "json",
        "LEADTRAIL_LOG_LEVEL": "info",
    }
    ingest = ServiceProcess("services.lead_ingest", env, tmp_path)
    ledger = ServiceProcess("services.consent_ledger", env, tmp_path)
    correlation_id = f"trace-{uuid.uuid4().hex}"
    try:
        await ingest.start()
        await ledger.start()
        async with httpx.AsyncClient(base_url=ingest.url) as client:
            response = await client.post(
                "/v1/leads",
                json=sample_lead(),
                headers={"Authorization": f"Bearer {api_key}", "X-Correlation-ID": correlation_id},
            )
        assert response.status_code == 202, response.text

        async def ledger_logged() -> list[dict[str, Any]] | None:
            mine = [
                line
                for line in json_lines(ledger.log)
                if line.get("correlation_id") == correlation_id
                and line.get("event") == "event handled"
                and line.get("event_type") == "lead.captured"
            ]
            return mine or None

        at_ledger = await eventually(ledger_logged, what="consent-ledger's log line")
    finally:
        await ingest.stop()
        await ledger.stop()
    # (consent-ledger's own consent.granted may be handled, and logged, before lead.captured's
    # handler finishes: it waits for Kafka to acknowledge what it publishes)
    assert at_ledger[0]["service"] == "consent-ledger"
    assert at_ledger[0]["tenant_id"] == "acme"
    at_ingest = [
        line for line in json_lines(ingest.log) if line.get("correlation_id") == correlation_id
    ]
    served = [line for line in at_ingest if line["event"] == "request served"]
    assert served == [
        {
            **served[0],
            "service": "lead-ingest",
            "method": "POST",
            "route": "/v1/leads",
            "status": 202,
        }
    ]
    handled = [line for line in at_ingest if line["event"] == "event handled"]
    assert "lead.captured" in {line["event_type"] for line in handled}
    assert all(line["service"] == "lead-ingest" for line in at_ingest)
    event_ids = {line["event_id"] for line in handled if line["event_type"] == "lead.captured"}
    assert event_ids == {at_ledger[0]["event_id"]}, "the same event, seen by both services"
