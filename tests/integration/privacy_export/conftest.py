"""All five services in-process on real Kafka and the store, a local HubSpot as the tenant's
CRM, and one fake clock: for access/portability exports and audit timelines."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from services.common.clock import FakeClock
from services.common.settings import CommonSettings
from tests.crm_fakes.hubspot import DEFAULT_TOKEN, HubSpotFake
from tests.helpers import eventually
from tests.integration.cluster import cluster
from tests.integration.crm_sync.test_crm_push import CrmStack, write_crm_config

ALL_SERVICES = [
    "lead_ingest",
    "consent_ledger",
    "retention_scheduler",
    "erasure_propagator",
    "crm_sync",
]
START = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)  # just after sample_lead's consent


@dataclass
class Full(CrmStack):
    clock: FakeClock

    def operator_settings(self) -> CommonSettings:
        """What ``leadtrail`` reads from the environment, for this cluster."""
        return CommonSettings.model_validate(self.stack.base)

    async def request(self, kind: str, lead_id: str) -> str:
        response = await self.stack.client("lead_ingest").post(
            "/v1/privacy-requests",
            json={
                "type": kind,
                "subject": {"lead_id": lead_id},
                "verification": {"method": "tenant_attestation", "attested_by": "dpo@acme"},
            },
            headers=self.stack.auth(),
        )
        assert response.status_code == 202, response.text
        request_id: str = response.json()["request_id"]
        return request_id

    async def export_link(self, request_id: str) -> dict[str, Any]:
        view = await self.stack.get_json(
            "lead_ingest",
            f"/v1/privacy-requests/{request_id}",
            until=lambda body: body.get("export") is not None,
        )
        assert view["status"] == "completed"
        link: dict[str, Any] = view["export"]
        return link

    async def erased(self, subject_id: str) -> None:
        await self.stack.wait_for_event(
            "erasure-events",
            lambda e: e.type == "erasure.completed" and e.subject_id == subject_id,
            within=60,
        )

        async def gone() -> bool | None:
            # crm-sync's receipt waits for the CRM's delete; then nothing is left readable.
            return True if not self.hubspot.records else None

        await eventually(gone, what="the CRM record to be deleted")


@pytest.fixture
async def full(
    kafka_bootstrap: str, mongo_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Full]:
    monkeypatch.setenv("LT_TEST_HUBSPOT_TOKEN", DEFAULT_TOKEN)
    clock = FakeClock(START)
    async with HubSpotFake.running(custom_properties=["leadtrail_score"]) as hubspot:
        write_crm_config(tmp_path, hubspot.base_url)
        async with cluster(
            kafka_bootstrap,
            mongo_url,
            tmp_path,
            ALL_SERVICES,
            clock=clock,
            tick_interval_s=3600,
            overdue_check_interval_s=3600,
            dispatch_interval_s=0.05,
            export_link_ttl_s=3600,
        ) as stack:
            yield Full(stack, hubspot, clock)
