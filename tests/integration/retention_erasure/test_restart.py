"""erasure-propagator killed (SIGKILL) in the middle of an erasure: after a restart the erasure
finishes, and every receipt and the completion exist once (by event id)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from tests.integration.cluster import cluster
from tests.integration.lead_ingest.conftest import sample_lead
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
