"""erasure-propagator killed (SIGKILL) in the middle of an erasure: after a restart the erasure
finishes, and every receipt and the completion exist once (by event id)."""

from __future__ import annotations

import uuid
from collections import Counter
from pathlib import Path

import pytest

from contracts import REGISTRY, EventEnvelope
from services.erasure_propagator.domain import erasure_id_for
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


async def test_an_erasure_recorded_but_not_yet_requested_is_requested_by_the_redelivery(
    lifecycle: Lifecycle,
) -> None:
    """Killed between writing the batch's documents and publishing what they decided, the
    batch comes again: the erasure is already ``requested`` (its cause in ``_applied``), and the
    redelivery still destroys the keys and publishes ``erasure.requested``, with the same id;
    the receipts then complete it, once."""
    propagator = lifecycle.propagator
    cause = EventEnvelope.model_validate(
        {
            "id": str(uuid.uuid4()),
            "type": "consent.no_basis_remaining",
            "version": 1,
            "occurred_at": START,
            "tenant_id": "acme",
            "subject_id": "sub_killed",
            "correlation_id": str(uuid.uuid4()),
            "producer": "consent-ledger",
            "data": {"withdrawn_purpose": "marketing", "cause_event_id": str(uuid.uuid4())},
        }
    )
    key = await lifecycle.stack.runtimes["erasure_propagator"].keyring.get_or_create(
        "acme", "sub_killed"
    )
    await propagator.folder.fold([REGISTRY.decode(cause)])  # written, then killed
    erasure_id = erasure_id_for(cause.id)
    recorded = await propagator.store.erasure(erasure_id)
    assert recorded is not None
    assert recorded["state"] == "requested"

    for _ in range(2):  # the redelivery, and one more
        await propagator.on_events([cause])
    assert await lifecycle.stack.runtimes["erasure_propagator"].keyring.get(key.key_id) is None
    completed = await lifecycle.stack.wait_for_event(
        "erasure-events",
        lambda e: e.type == "erasure.completed" and e.data["erasure_id"] == erasure_id,
    )
    assert completed.data["trigger"]["kind"] == "no_basis_remaining"
    events = await lifecycle.stack.events("erasure-events")
    requested = {e.id for e in events if e.type == "erasure.requested"}
    assert len(requested) == 1, "the same erasure.requested, by id"
    finished = await propagator.store.erasure(erasure_id)
    assert finished is not None
    assert finished["state"] == "completed"
    assert sorted(finished["receipts"]) == sorted(finished["expected"])
