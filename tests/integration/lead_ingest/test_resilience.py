"""Nothing acknowledged is lost and retries never duplicate: Kafka outages and a killed
lead-ingest process, on the real broker and the document store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from services.common.tenants import TenantDirectory
from tests.helpers import eventually
from tests.infra import ServerControl
from tests.integration.lead_ingest.conftest import (
    Ingest,
    ingest_settings,
    sample_lead,
    start_ingest,
)
from tests.services_proc import ServiceProcess

pytestmark = pytest.mark.integration


async def test_kafka_down_is_a_503_and_a_retry_adds_exactly_one_lead(
    ingest: Ingest, kafka_control: ServerControl
) -> None:
    assert (await ingest.post_lead(sample_lead("first@example.org"))).status_code == 202
    await kafka_control.astop()
    try:
        failed = await ingest.post_lead(
            sample_lead("second@example.org"), **{"Idempotency-Key": "retry-me"}
        )
        assert failed.status_code == 503
        assert failed.json()["type"] == "urn:leadtrail:problem:kafka-unavailable"
        assert failed.headers["retry-after"] == "5"
    finally:
        await kafka_control.astart()

    async def retry() -> httpx.Response | None:
        response = await ingest.post_lead(
            sample_lead("second@example.org"), **{"Idempotency-Key": "retry-me"}
        )
        return response if response.status_code == 202 else None

    accepted = (await eventually(retry, within=60, what="retry accepted")).json()
    await ingest.lead(accepted["lead_id"])
    captured = [e for e in await ingest.all_events("lead-events") if e.type == "lead.captured"]
    lead_ids = {e.data["lead_id"] for e in captured}
    assert len(lead_ids) == 2, "the failed attempt left no second lead"
    assert await ingest.runtime.db["leads"].count_documents({}) == 2


async def test_a_verification_refused_by_a_kafka_outage_keeps_its_token(
    ingest: Ingest, kafka_control: ServerControl
) -> None:
    """R21: the token is used up by a verification on the log, not by an attempt. Deleted
    before the publish, a 503 left the request unverifiable: the retry was refused as "used"."""
    response = await ingest.client.post(
        "/v1/privacy-requests",
        json={
            "type": "access",
            "subject": {"email": "maria.rossi@example.org"},
            "verification": {"method": "token"},
        },
        headers=ingest.auth(),
    )
    assert response.status_code == 202, response.text
    accepted = response.json()
    path = f"/v1/privacy-requests/{accepted['request_id']}/verify"
    token = {"token": accepted["verification_token"]}
    await kafka_control.astop()
    try:
        failed = await ingest.client.post(path, json=token, headers=ingest.auth())
        assert failed.status_code == 503
        assert failed.json()["type"] == "urn:leadtrail:problem:kafka-unavailable"
    finally:
        await kafka_control.astart()

    async def retry() -> httpx.Response | None:
        response = await ingest.client.post(path, json=token, headers=ingest.auth())
        return response if response.status_code != 503 else None

    verified = await eventually(retry, within=60, what="the retried verification")
    assert verified.status_code == 202, verified.text
    assert verified.json()["status"] == "verified"
    reused = await ingest.client.post(path, json=token, headers=ingest.auth())
    assert reused.status_code == 422, "used up once verified"
    events = await ingest.all_events("privacy-events")
    verifications = {e.id for e in events if e.type == "privacy.request.verified"}
    assert len(verifications) == 1


async def test_killing_lead_ingest_between_requests_loses_nothing(
    kafka_bootstrap: str, mongo_url: str, tmp_path: Path
) -> None:
    settings = ingest_settings(kafka_bootstrap, mongo_url, tmp_path / "config")
    _, api_key = TenantDirectory(settings.config_dir).add(
        "Acme", tenant_id="acme", default_region="IT"
    )
    app, runtime = await start_ingest(settings)  # creates the topics; the app itself is unused
    await runtime.mongo.close()
    env = {
        "LEADTRAIL_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "LEADTRAIL_MONGO_URL": settings.mongo_url,
        "LEADTRAIL_MONGO_DB": settings.mongo_db,
        "LEADTRAIL_TOPIC_PREFIX": settings.topic_prefix,
        "LEADTRAIL_KEK": settings.kek.get_secret_value(),
        "LEADTRAIL_BLIND_INDEX_KEY": settings.blind_index_key.get_secret_value(),
        "LEADTRAIL_CONFIG_DIR": str(settings.config_dir),
    }
    service = ServiceProcess("services.lead_ingest", env, tmp_path)
    headers = {"Authorization": f"Bearer {api_key}"}
    first: dict[str, dict[str, Any]] = {}
    try:
        await service.start()
        async with httpx.AsyncClient(base_url=service.url, headers=headers) as client:
            for n in range(3):
                response = await client.post(
                    "/v1/leads",
                    json=sample_lead(f"person{n}@example.org"),
                    headers={"Idempotency-Key": f"k{n}"},
                )
                assert response.status_code == 202, response.text
                first[f"k{n}"] = response.json()
        await service.kill()
        await service.start()
        async with httpx.AsyncClient(base_url=service.url, headers=headers) as client:
            for idempotency_key, response_body in first.items():
                again = await client.post(
                    "/v1/leads",
                    json=sample_lead(f"person{idempotency_key[1:]}@example.org"),
                    headers={"Idempotency-Key": idempotency_key},
                )
                assert again.json() == response_body, "a retry returns the first response"
            for response_body in first.values():

                async def readable(lead_id: str = response_body["lead_id"]) -> Any:
                    got = await client.get(f"/v1/leads/{lead_id}")
                    return got.json() if got.status_code == 200 else None

                lead = await eventually(readable, what="lead readable after the restart")
                assert lead["contact"]["email"].startswith("person")
    finally:
        await service.stop()
    del app
