"""One person's whole lifecycle through the five service processes, over real HTTP, Kafka and
the document store: capture, qualification and scoring, the CRM push and its update, one-click
unsubscribe from marketing, then erasure: the CRM record is deleted, every receipt is in, and
nothing personal is left in any collection, on any topic (in clear or decryptable) or in the
CRM (R1, R6-R8, R10, R11, R20, R25).

Later scenarios of the same journey (access export, replay of every read model) belong here as
their own test functions, reusing :class:`~tests.e2e.workload.Workload` and the ``e2e`` stack.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

import pytest

from contracts import ALL_TOPICS
from services.common.clock import SystemClock
from services.common.crypto import KeyWrapper, MongoDataKeyring, PiiCipher
from services.common.declaration import KEYRING_COLLECTION
from tests.e2e.stack import E2EStack
from tests.e2e.workload import ALL_RECEIPTS, Workload
from tests.helpers import collection_scans, eventually, new_scans
from tests.integration.crm_sync.test_crm_push import QUALIFYING
from tests.integration.lead_ingest.conftest import sample_lead

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]  # a busy 2-core machine is slow

TOPICS = [spec.name for spec in ALL_TOPICS]


def _purpose(view: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(p for p in view["purposes"] if p["purpose"] == name)
    return found


async def test_a_person_from_capture_through_the_crm_to_unsubscribe_and_erasure(
    e2e: E2EStack,
) -> None:
    workload = Workload(e2e)
    tag = workload.run
    digits = f"{secrets.randbelow(10**7):07d}"
    contact = {
        "email": f"giulia.{tag}@example.org",
        "phone": f"347 {digits[:3]} {digits[3:]}",
        "first_name": f"Giulia{tag}",
        "last_name": f"Verdi{tag}",
        "company": f"Verdi{tag} Srl",
    }
    personal = [contact["email"], f"+39347{digits}", contact["first_name"], contact["last_name"]]
    async with e2e.mongo() as db:
        scans_before = await collection_scans(db)

    # Capture, two interactions on two channels, scoring with explanations.
    accepted = await workload.call(
        "lead_ingest", "POST", "/v1/leads", json=sample_lead(contact["email"], contact=contact)
    )
    assert accepted.status_code == 202, accepted.text
    lead_id, subject = accepted.json()["lead_id"], accepted.json()["subject_id"]
    interaction = await workload.call(
        "lead_ingest",
        "POST",
        f"/v1/leads/{lead_id}/interactions",
        json={"channel": "whatsapp", "answers": QUALIFYING, "summary": "wants a quote"},
        retry_404=True,
    )
    assert interaction.status_code == 202, interaction.text
    lead = await e2e.cluster.get_json(
        "lead_ingest", f"/v1/leads/{lead_id}", until=lambda v: v["state"] == "qualified"
    )
    assert lead["score"]["value"] == 55
    assert {item["criterion_id"] for item in lead["score"]["explanation"]} >= {
        "budget_10k",
        "decision_maker",
    }
    assert lead["contact"]["phone"] == f"+39347{digits}"

    async def in_crm() -> str | None:
        return e2e.hubspot.find_by_email(contact["email"])

    record_id = await eventually(in_crm, within=60, what="the lead in the CRM")
    assert e2e.hubspot.records[record_id]["leadtrail_score"] == "55"
    again = await workload.call(
        "lead_ingest",
        "POST",
        f"/v1/leads/{lead_id}/interactions",
        json={"channel": "email", "answers": {"timeline": "this quarter"}},
    )
    assert again.status_code == 202, again.text
    await e2e.cluster.get_json(
        "lead_ingest", f"/v1/leads/{lead_id}", until=lambda v: v["score"]["value"] == 75
    )

    async def rescored() -> bool | None:
        return True if e2e.hubspot.records[record_id].get("leadtrail_score") == "75" else None

    await eventually(rescored, within=60, what="the new score in the CRM")
    assert e2e.hubspot.find_by_email(contact["email"]) == record_id, "updated, not duplicated"

    # One-click unsubscribe from the marketing e-mail: that purpose only.
    person = workload.person()
    person.lead_id, person.subject_id = lead_id, subject
    link = await workload.call(
        "consent_ledger",
        "POST",
        f"/v1/subjects/{subject}/unsubscribe-links",
        json={"purpose": "marketing_email"},
        retry_404=True,
    )
    assert link.status_code == 201, link.text
    page = await e2e.client("consent_ledger").get(f"/v1/unsubscribe/{link.json()['token']}")
    assert "<form" in page.text, "opening the link only shows the page"
    await workload.unsubscribe(person, "marketing_email")
    consents = await e2e.cluster.get_json(
        "consent_ledger",
        f"/v1/subjects/{subject}/consents",
        until=lambda v: not _purpose(v, "marketing_email")["allowed"],
    )
    assert _purpose(consents, "crm_sync")["allowed"] is True
    withdrawn = await e2e.cluster.wait_for_event(
        "consent-events", lambda e: e.type == "consent.withdrawn" and e.subject_id == subject
    )
    assert withdrawn.data["origin"] == "unsubscribe"
    assert e2e.hubspot.find_by_email(contact["email"]) == record_id, "the CRM push stays allowed"

    # Erasure: CRM record deleted, all receipts, nothing personal left anywhere.
    request = await workload.erase(person)
    done = await e2e.cluster.wait_for_event(
        "erasure-events",
        lambda e: e.type == "erasure.completed" and e.subject_id == subject,
        within=90,
    )
    assert {receipt["service"] for receipt in done.data["receipts"]} == ALL_RECEIPTS
    assert record_id in e2e.hubspot.gdpr_deleted
    assert e2e.hubspot.find_by_email(contact["email"]) is None
    deleted = await e2e.cluster.wait_for_event(
        "crm-events", lambda e: e.type == "crm.record_deleted" and e.subject_id == subject
    )
    assert deleted.data["record_id"] == record_id
    view = await e2e.cluster.get_json(
        "lead_ingest", f"/v1/leads/{lead_id}", until=lambda v: v["state"] == "erased"
    )
    assert view["contact"] is None
    assert all(item["answers"] is None for item in view["interactions"])
    assert view["score"]["value"] == 75, "non-personal facts stay as the audit trail"
    status = await e2e.cluster.get_json(
        "lead_ingest", f"/v1/privacy-requests/{request['request_id']}"
    )
    assert status["type"] == "erasure"

    async with e2e.mongo() as db:
        # Every read and write of the journey, in all five services and their background
        # loops, found its documents through an index: none grows with what is stored.
        scans = new_scans(scans_before, await collection_scans(db))
        assert not scans, f"filters answered by reading a whole collection: {scans}"
        for name in await db.list_collection_names():
            dump = json.dumps([d async for d in db[name].find({})], default=str)
            for secret in personal:
                assert secret not in dump, f"{secret!r} left in collection {name}"
        keyring = MongoDataKeyring(
            db[KEYRING_COLLECTION],
            KeyWrapper(e2e.settings.kek_bytes(), e2e.settings.kek_id),
            clock=SystemClock(),
        )
        cipher = PiiCipher(keyring)
        trail: set[str] = set()
        for topic in TOPICS:
            for event in await e2e.events(topic):
                raw = event.model_dump_json()
                for secret in personal:
                    assert secret not in raw, f"{secret!r} in clear on {topic}"
                if event.subject_id == subject:
                    trail.add(event.type)
                    if event.pii is not None:
                        assert await cipher.decrypt(event) is None, f"{event.type} decrypts"
    assert {
        "lead.captured",
        "lead.scored",
        "lead.qualified",
        "consent.granted",
        "consent.withdrawn",
        "crm.lead_synced",
        "crm.record_deleted",
        "erasure.requested",
        "erasure.completed",
    } <= trail, "the audit trail of the lifecycle remains"
    crm_dump = json.dumps([e2e.hubspot.records, e2e.hubspot.archived])
    for secret in personal:
        assert secret not in crm_dump, f"{secret!r} left in the CRM"
