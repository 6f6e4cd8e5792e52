"""erasure-propagator killed (SIGKILL) in the middle of an erasure: after a restart the erasure
finishes, and every receipt and the completion exist once (by event id)."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest

from contracts import EventEnvelope
from tests.integration.cluster import cluster
from tests.integration.lead_ingest.conftest import sample_lead
from tests.integration.retention_erasure.conftest import START, Lifecycle
from tests.services_proc import ServiceProcess

pytestmark = pytest.mark.integration


async def test_a_killed_erasure_propagator_finishes_without_duplicates(
    kafka_bootstrap: str, mongo_url: str, tmp_path: Path
) -> None:
    services = ["lead_ingest", "consent_ledger", "retention_scheduler", "crm_sync"]
    async with cluster(kafka_bootstrap, mongo_url, tmp_path, services) as stack:
        env = {
            f"LEADTRAIL_{name.upper()}": str(stack.base[name])
            for name in (
                "kafka_bootstrap",
                "mongo_url",
                "mongo_db",
                "topic_prefix",
                "kek",
                "config_dir",
            )
        }
        propagator = ServiceProcess("services.erasure_propagator", env, tmp_path)
        await propagator.start()
        try:
            accepted = await stack.client("lead_ingest").post(
                "/v1/leads", json=sample_lead(), headers=stack.auth()
            )
            lead = accepted.json()
            await stack.get_json("lead_ingest", f"/v1/leads/{lead['lead_id']}")
            response = await stack.client("lead_ingest").post(
                "/v1/privacy-requests",
                json={
                    "type": "erasure",
                    "subject": {"lead_id": lead["lead_id"]},
                    "verification": {"method": "tenant_attestation", "attested_by": "dpo"},
                },
                headers=stack.auth(),
            )
            assert response.status_code == 202
            await stack.wait_for_event("erasure-events", lambda e: e.type == "erasure.requested")
            await propagator.kill()
            await propagator.start()
            done = await stack.wait_for_event(
                "erasure-events", lambda e: e.type == "erasure.completed", within=90
            )
        finally:
            await propagator.stop()
        events = await stack.events("erasure-events")
        distinct = {e.id: e for e in events}.values()
        assert Counter(e.type for e in distinct)["erasure.completed"] == 1
        receipts = Counter(e.data["service"] for e in distinct if e.type == "erasure.receipt")
        assert receipts == dict.fromkeys(
            ("lead-ingest", "consent-ledger", "retention-scheduler", "crm-sync"), 1
        )
        assert len(done.data["receipts"]) == 4
        view = await stack.get_json(
            "lead_ingest", f"/v1/leads/{lead['lead_id']}", until=lambda v: v["state"] == "erased"
        )
        assert view["contact"] is None


async def test_receipts_handled_before_the_erasure_is_recorded_as_requested_still_complete_it(
    lifecycle: Lifecycle,
) -> None:
    """Killed between publishing ``erasure.requested`` and recording it, erasure-propagator may
    handle every receipt before the redelivered cause. A receipt then finds no
    ``requested_at``: it used to fail (KeyError) until dead-lettered, and the re-run of the
    cause completed nothing; the erasure stayed open until it went overdue."""
    orchestrator = lifecycle.orchestrator
    erasure_id = "er_killed_before_recording"
    document = await orchestrator.store.open_erasure(
        erasure_id,
        {
            "tenant_id": "acme",
            "subject_id": "sub_killed",
            "trigger": {"kind": "privacy_request", "event_id": str(uuid.uuid4())},
            "deadline": START + timedelta(days=14),
            "expected": ["lead-ingest", "crm-sync"],
            "correlation_id": str(uuid.uuid4()),
            "cause_id": str(uuid.uuid4()),
            "opened_at": START,
        },
    )
    for service in ("lead-ingest", "crm-sync"):
        receipt = EventEnvelope.model_validate(
            {
                "id": str(uuid.uuid4()),
                "type": "erasure.receipt",
                "version": 1,
                "occurred_at": START,
                "tenant_id": "acme",
                "subject_id": "sub_killed",
                "correlation_id": document["correlation_id"],
                "producer": service,
                "data": {"erasure_id": erasure_id, "service": service, "actions": ["done"]},
            }
        )
        await orchestrator.on_erasure_receipt(receipt)
    recorded = await orchestrator.store.erasure(erasure_id)
    assert recorded is not None
    assert recorded["state"] == "new", "not completed before it is requested"

    await orchestrator.execute(recorded)  # the redelivered cause's re-run

    completed = await lifecycle.stack.wait_for_event(
        "erasure-events",
        lambda e: e.type == "erasure.completed" and e.data["erasure_id"] == erasure_id,
    )
    assert sorted(r["service"] for r in completed.data["receipts"]) == ["crm-sync", "lead-ingest"]
    finished = await orchestrator.store.erasure(erasure_id)
    assert finished is not None
    assert finished["state"] == "completed"
