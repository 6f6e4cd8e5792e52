"""All five services in-process on real Kafka and the document store, sharing a fake clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from ops.operator import operator_publisher
from services.common.clock import FakeClock
from services.common.publisher import EventPublisher
from services.crm_sync.declaration import DECLARATION as CRM_SYNC
from services.erasure_propagator.handlers import ErasureHandlers
from services.retention_scheduler.handlers import RetentionHandlers
from services.retention_scheduler.schedule import Scheduler
from services.retention_scheduler.settings import RetentionSettings
from tests.integration.cluster import Cluster, cluster
from tests.integration.lead_ingest.conftest import RULES, sample_lead

ALL_SERVICES = [
    "lead_ingest",
    "consent_ledger",
    "retention_scheduler",
    "erasure_propagator",
    "crm_sync",
]
START = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)  # a Monday, just after sample_lead's consent


@dataclass
class Lifecycle:
    stack: Cluster
    clock: FakeClock
    operator: EventPublisher

    @property
    def scheduler(self) -> Scheduler:
        """A scheduler on the live service's store and publisher: what its tick runs."""
        handlers: RetentionHandlers = self.stack.services["retention_scheduler"].handlers
        runtime = self.stack.runtimes["retention_scheduler"]
        assert isinstance(runtime.settings, RetentionSettings)
        return Scheduler(
            handlers.store, handlers.publisher, runtime.clock, runtime.settings.tick_batch_size
        )

    @property
    def propagator(self) -> ErasureHandlers:
        handlers: ErasureHandlers = self.stack.services["erasure_propagator"].handlers
        return handlers

    async def capture(
        self, email: str = "maria.rossi@example.org", **overrides: Any
    ) -> dict[str, Any]:
        response = await self.stack.client("lead_ingest").post(
            "/v1/leads", json=sample_lead(email, **overrides), headers=self.stack.auth()
        )
        assert response.status_code == 202, response.text
        accepted: dict[str, Any] = response.json()
        await self.stack.get_json("lead_ingest", f"/v1/leads/{accepted['lead_id']}")
        return accepted

    async def request(self, kind: str, lead_id: str, **extra: Any) -> dict[str, Any]:
        response = await self.stack.client("lead_ingest").post(
            "/v1/privacy-requests",
            json={
                "type": kind,
                "subject": {"lead_id": lead_id},
                "verification": {"method": "tenant_attestation", "attested_by": "dpo@acme"},
                **extra,
            },
            headers=self.stack.auth(),
        )
        assert response.status_code == 202, response.text
        body: dict[str, Any] = response.json()
        return body


@pytest.fixture
async def lifecycle(
    kafka_bootstrap: str, mongo_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[Lifecycle]:
    acme = tmp_path / "tenants" / "acme"
    acme.mkdir(parents=True)
    (acme / "scoring.yaml").write_text(RULES)
    clock = FakeClock(START)
    overrides: dict[str, Any] = getattr(request, "param", {})
    async with cluster(
        kafka_bootstrap,
        mongo_url,
        tmp_path,
        ALL_SERVICES,
        clock=clock,
        tick_interval_s=3600,
        overdue_check_interval_s=3600,
        **overrides,
    ) as stack:
        settings = stack.settings_for(CRM_SYNC)
        async with operator_publisher(settings, clock) as operator:
            yield Lifecycle(stack, clock, operator)
