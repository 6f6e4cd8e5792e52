"""Access and portability requests answered by every service, assembled by lead-ingest and
downloaded through a signed link (R22, R23, R26), on real Kafka and the document store."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from typing import Any

import pytest

from ops.export import build_package, open_database
from services.consent_ledger.projection import ConsentProjection
from services.crm_sync.store import outbox_id
from tests.helpers import eventually
from tests.integration.privacy_export.conftest import Full

pytestmark = pytest.mark.integration

EMAIL = "maria.rossi@example.org"


def by(rows: list[dict[str, Any]], field: str) -> dict[Any, dict[str, Any]]:
    return {row[field]: row for row in rows}


async def both_grants_recorded(full: Full, subject_id: str) -> None:
    ledger = ConsentProjection(full.stack.runtimes["consent_ledger"].db)

    async def recorded() -> bool | None:
        document = await ledger.subject("acme", subject_id) or {}
        granted = {
            entry["data"].get("purpose")
            for entry in document.get("history", [])
            if entry["type"] == "consent.granted"
        }
        return True if granted >= {"crm_sync", "marketing_email"} else None

    await eventually(recorded, what="consent-ledger recording both grants")


async def push_recorded(full: Full, lead_id: str) -> None:
    """The CRM has the record before crm-sync has recorded the delivery on its outbox entry;
    the export's ``received`` reads the entry."""
    outbox = full.stack.runtimes["crm_sync"].db["crm_outbox"]

    async def delivered() -> bool | None:
        entry = await outbox.find_one({"_id": outbox_id(lead_id, "hubspot-eu")})
        return True if entry is not None and entry.get("last_delivered_at") else None

    await eventually(delivered, what="crm-sync recording the delivery")


async def test_an_access_request_delivers_everything_every_service_holds(full: Full) -> None:
    lead = await full.qualified_lead(EMAIL)
    record_id = await full.in_crm(EMAIL)
    ingest = full.stack.client("lead_ingest")
    # An export holds what each service had handled when it answered; consent-ledger records
    # each purpose's grant from its own consent.granted, so ask once both are in.
    await both_grants_recorded(full, lead["subject_id"])
    await push_recorded(full, lead["lead_id"])

    request_id = await full.request("access", lead["lead_id"])
    link = await full.export_link(request_id)
    assert link["format"] == "json"
    response = await ingest.get(link["url"])
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    package = response.json()
    sections = package["sections"]
    assert package["subject_id"] == lead["subject_id"]
    assert package["request_id"] == request_id
    assert package["missing_parts"] == []
    assert len(package["parts"]) == 5

    (personal,) = sections["personal_data"]
    assert personal["contact"]["email"] == EMAIL
    assert personal["contact"]["first_name"] == "Maria"
    assert personal["erased"] is False
    (source,) = sections["sources"]
    assert source["kind"] == "web_form"
    assert source["url"] == "https://acme.example/contact"
    (interaction,) = sections["interactions"]
    assert interaction["answers"] == {"budget": 20000, "role": "owner"}
    (score,) = sections["scores"]
    assert score["score"] == 55
    assert score["qualified_at"] is not None
    assert {e["criterion_id"] for e in score["explanation"]} == {"budget_10k", "decision_maker"}
    assert request_id in by(sections["privacy_requests"], "request_id")

    purposes = by(sections["purposes"], "purpose")
    assert purposes["crm_sync"]["legal_basis"] == "consent"
    assert purposes["crm_sync"]["allowed_now"] is True
    assert purposes["profiling"]["legal_basis"] == "legitimate_interest"
    consents = by(sections["consents"], "purpose")
    assert set(consents) == {"crm_sync", "marketing_email"}
    assert consents["crm_sync"]["notice_version"] == "2026-10"
    assert consents["crm_sync"]["given_at"] == "2026-11-02T09:15:03Z"
    assert consents["crm_sync"]["proof"]["user_agent"] == "Mozilla/5.0"
    assert consents["crm_sync"]["proof"]["ip_prefix"].startswith("203.0.113.")

    (retention,) = sections["retention"]
    assert retention["category"] == "lead_data"
    assert retention["period_days"] == 730
    assert retention["due_at"].startswith("2028-")
    (recipient,) = sections["recipients"]
    assert recipient["connection_id"] == "hubspot-eu"
    assert recipient["location"] == "EU (Frankfurt)"
    assert recipient["received"] is True
    assert recipient["leads"][0]["record_id"] == record_id

    # R26: the response is on the log, and no personal data travelled in clear.
    events = await full.stack.events("privacy-events")
    parts = [e for e in events if e.type == "privacy.export_part"]
    assert sorted(e.producer for e in parts) == sorted(package["parts"])
    assert all(EMAIL not in e.model_dump_json() for e in parts)
    (completed,) = {e.id: e for e in events if e.type == "privacy.request.completed"}.values()
    assert completed.data["request_id"] == request_id
    assert completed.data["records"]["personal_data"] == 1

    # The CSV is the same package, one value per row.
    csv_response = await ingest.get(link["csv_url"])
    assert csv_response.status_code == 200
    assert csv_response.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(csv_response.text)))
    assert rows[0] == ["section", "record", "field", "value"]
    assert ["personal_data", "0", "contact.email", EMAIL] in rows
    assert ["recipients", "0", "leads.0.record_id", record_id] in rows
    assert ["consents", "0", "proof.user_agent", "Mozilla/5.0"] in rows
    assert ["retention", "0", "due_at", retention["due_at"]] in rows

    # `leadtrail export` runs the same part builders and assembler against the database.
    async with open_database(full.operator_settings()) as (db, cipher):
        direct = await build_package(db, cipher, full.stack.config_dir, "acme", lead["lead_id"])
    same = [name for name in sections if name != "privacy_requests"]
    assert {name: direct.model_dump(mode="json")["sections"][name] for name in same} == {
        name: sections[name] for name in same
    }


async def test_a_changed_link_is_refused_and_an_expired_one_is_gone(full: Full) -> None:
    lead = await full.qualified_lead(EMAIL)
    request_id = await full.request("portability", lead["lead_id"])
    link = await full.export_link(request_id)
    ingest = full.stack.client("lead_ingest")
    assert (await ingest.get(link["url"])).status_code == 200

    tampered = link["url"].replace("format=json", "format=csv")
    refused = await ingest.get(tampered)
    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["type"] == "urn:leadtrail:problem:invalid-export-signature"
    other = await ingest.get(link["url"].replace(request_id, "pr_nothing"))
    assert other.status_code == 403, "no export answers like a changed link"
    assert other.json()["type"] == refused.json()["type"]

    full.clock.advance(timedelta(hours=1, seconds=1))
    expired = await ingest.get(link["url"])
    assert expired.status_code == 410
    assert expired.json()["type"] == "urn:leadtrail:problem:export-link-expired"
    fresh = await full.export_link(request_id)
    assert (await ingest.get(fresh["csv_url"])).status_code == 200, "each view signs anew"

    # Erasure shreds the stored package with everything else.
    await full.request("erasure", lead["lead_id"])
    await full.erased(lead["subject_id"])
    after = await full.export_link(request_id)
    gone = await ingest.get(after["url"])
    assert gone.status_code == 410
    assert gone.json()["type"] == "urn:leadtrail:problem:export-erased"
