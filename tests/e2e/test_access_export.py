"""An access request across the five service processes: every service sends its part, and the
download link on the request delivers the package (R22, R23, R26)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.stack import E2EStack
from tests.e2e.workload import Workload
from tests.integration.crm_sync.test_crm_push import QUALIFYING
from tests.integration.lead_ingest.conftest import sample_lead

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


async def test_an_access_request_delivers_the_package_from_every_service(e2e: E2EStack) -> None:
    workload = Workload(e2e)
    email = f"paola.{workload.run}@example.org"
    body = sample_lead(email)
    body["contact"].pop("phone")
    accepted = await workload.call("lead_ingest", "POST", "/v1/leads", json=body)
    assert accepted.status_code == 202, accepted.text
    lead_id = accepted.json()["lead_id"]
    answered = await workload.call(
        "lead_ingest",
        "POST",
        f"/v1/leads/{lead_id}/interactions",
        json={"channel": "chat", "answers": QUALIFYING},
        retry_404=True,
    )
    assert answered.status_code == 202, answered.text
    await e2e.cluster.get_json(
        "lead_ingest", f"/v1/leads/{lead_id}", until=lambda v: v["state"] == "qualified"
    )

    requested = await workload.call(
        "lead_ingest",
        "POST",
        "/v1/privacy-requests",
        json={
            "type": "access",
            "subject": {"lead_id": lead_id},
            "verification": {"method": "tenant_attestation", "attested_by": "dpo@acme"},
        },
    )
    assert requested.status_code == 202, requested.text
    request_id = requested.json()["request_id"]
    view = await e2e.cluster.get_json(
        "lead_ingest",
        f"/v1/privacy-requests/{request_id}",
        until=lambda v: v.get("export") is not None,
    )
    assert view["status"] == "completed"
    download = await e2e.client("lead_ingest").get(view["export"]["url"])
    assert download.status_code == 200, download.text
    sections: dict[str, list[dict[str, Any]]] = download.json()["sections"]

    package = download.json()
    assert package["missing_parts"] == []
    (personal,) = sections["personal_data"]
    assert personal["contact"]["email"] == email
    assert {p["purpose"] for p in sections["purposes"]} >= {"crm_sync", "marketing_email"}
    assert {c["purpose"] for c in sections["consents"]} == {"crm_sync", "marketing_email"}
    (retention,) = sections["retention"]
    assert retention["category"] == "lead_data"
    assert [r["connection_id"] for r in sections["recipients"]], "crm-sync sent its part"
    (source,) = sections["sources"]
    assert source["kind"] == "web_form"
