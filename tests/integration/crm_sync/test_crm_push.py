"""crm-sync on real Kafka and the store, pushing to a local HubSpot (tests/crm_fakes) (R7, R14,
R24, R25, R27, R28)."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from contracts import EventEnvelope
from contracts.dead_letter import DeadLetterV1
from ops.dlq import read_dead_letters
from services.crm_sync.dispatcher import waits_of
from services.crm_sync.export_part import export_part
from services.crm_sync.store import outbox_id
from tests.crm_fakes.hubspot import DEFAULT_TOKEN, HubSpotFake
from tests.helpers import Samples, eventually, sample, scrape_metrics
from tests.integration.cluster import Cluster, cluster
from tests.integration.lead_ingest.conftest import RULES, sample_lead

pytestmark = pytest.mark.integration

QUALIFYING = {"budget": 20000, "role": "owner"}


@dataclass
class CrmStack:
    stack: Cluster
    hubspot: HubSpotFake

    async def qualified_lead(
        self, email: str = "maria.rossi@example.org", **body: Any
    ) -> dict[str, Any]:
        lead_body = sample_lead(email, **body)
        response = await self.stack.client("lead_ingest").post(
            "/v1/leads", json=lead_body, headers=self.stack.auth()
        )
        assert response.status_code == 202, response.text
        lead: dict[str, Any] = response.json()
        path = f"/v1/leads/{lead['lead_id']}"
        await self.stack.get_json("lead_ingest", path)
        subjects = self.stack.services["crm_sync"].handlers.store.subjects
        grants = len(lead_body.get("consent", {}).get("purposes", []))

        async def consents_known() -> bool | None:
            document = await subjects.find_one({"_id": f"acme:{lead['subject_id']}"})
            facts = (document or {}).get("facts", [])
            return True if len(facts) >= grants else None

        await eventually(consents_known, what="crm-sync to know the consents")
        await self.stack.client("lead_ingest").post(
            f"{path}/interactions",
            json={"channel": "phone", "answers": QUALIFYING},
            headers=self.stack.auth(),
        )
        await self.stack.get_json("lead_ingest", path, until=lambda v: v["state"] == "qualified")
        return lead

    async def in_crm(self, email: str) -> str:
        async def probe() -> str | None:
            return self.hubspot.find_by_email(email)

        return await eventually(probe, within=30, what=f"{email} in HubSpot")

    async def raise_score(self, lead_id: str) -> None:
        """One more answer, worth 20 points: the lead's score goes from 55 to 75."""
        await self.stack.client("lead_ingest").post(
            f"/v1/leads/{lead_id}/interactions",
            json={"channel": "email", "answers": {"timeline": "this quarter"}},
            headers=self.stack.auth(),
        )

    async def outbox_entry(
        self, lead_id: str, when: Callable[[dict[str, Any]], bool], what: str
    ) -> dict[str, Any]:
        """The lead's crm-sync outbox entry for hubspot-eu, once ``when(entry)`` holds."""
        outbox = self.stack.services["crm_sync"].handlers.store.outbox

        async def probe() -> dict[str, Any] | None:
            entry: dict[str, Any] | None = await outbox.find_one(
                {"_id": outbox_id(lead_id, "hubspot-eu")}
            )
            return entry if entry is not None and when(entry) else None

        return await eventually(probe, what=what)


async def crm_metrics(crm: CrmStack, until: Callable[[Samples], object]) -> Samples:
    """crm-sync's ``/metrics`` once ``until(samples)`` is truthy."""

    async def probe() -> Samples | None:
        samples = await scrape_metrics(crm.stack.client("crm_sync"))
        return samples if until(samples) else None

    return await eventually(probe, what="crm-sync metrics")


def pushed(samples: Samples, outcome: str) -> float | None:
    labels = {"adapter": "hubspot", "operation": "upsert", "outcome": outcome}
    return sample(samples, "leadtrail_crm_pushes_total", service="crm-sync", **labels)


def circuits(samples: Samples, state: str) -> float | None:
    labels = {"service": "crm-sync", "adapter": "hubspot", "state": state}
    return sample(samples, "leadtrail_crm_circuits", **labels)


def write_crm_config(config_dir: Path, base_url: str, *, pull: bool = False) -> None:
    acme = config_dir / "tenants" / "acme"
    acme.mkdir(parents=True, exist_ok=True)
    (acme / "scoring.yaml").write_text(RULES)
    (acme / "crm.yaml").write_text(
        yaml.safe_dump(
            {
                "connections": [
                    {
                        "id": "hubspot-eu",
                        "recipient": {
                            "name": "HubSpot (Acme's CRM)",
                            "location": "EU (Frankfurt)",
                            "data_categories": ["contact", "score", "interactions"],
                        },
                        "field_mapping": {"score": "leadtrail_score"},
                        "adapter": {
                            "kind": "hubspot",
                            "base_url": base_url,
                            "secret_env": "LT_TEST_HUBSPOT_TOKEN",
                            "gdpr_delete": True,
                        },
                    }
                ],
                "pull": {"enabled": pull, "field_mapping": {"email": "Email"}},
            }
        )
    )


@pytest.fixture
async def crm(
    kafka_bootstrap: str,
    mongo_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> AsyncIterator[CrmStack]:
    monkeypatch.setenv("LT_TEST_HUBSPOT_TOKEN", DEFAULT_TOKEN)
    async with HubSpotFake.running(custom_properties=["leadtrail_score"]) as hubspot:
        write_crm_config(tmp_path, hubspot.base_url, pull=getattr(request, "param", False))
        async with cluster(
            kafka_bootstrap,
            mongo_url,
            tmp_path,
            ["lead_ingest", "consent_ledger", "erasure_propagator", "crm_sync"],
            # No dispatch_interval_s: at its default (60 s) the dispatcher runs only when a
            # handler queues work or a retry is due, so every test here shows it is woken.
            backoff_base_s=0.05,
            backoff_max_s=0.5,
            breaker_threshold=3,
            breaker_open_s=1.0,
            max_attempts=6,
        ) as stack:
            yield CrmStack(stack, hubspot)


async def test_a_qualified_lead_lands_in_the_crm_once_and_updates_hit_the_same_record(
    crm: CrmStack,
) -> None:
    lead = await crm.qualified_lead()
    record_id = await crm.in_crm("maria.rossi@example.org")
    synced = await crm.stack.wait_for_event("crm-events", lambda e: e.type == "crm.lead_synced")
    assert synced.data["record_id"] == record_id
    assert crm.hubspot.records[record_id]["leadtrail_score"] == "55"
    assert crm.hubspot.records[record_id]["firstname"] == "Maria"

    await crm.raise_score(lead["lead_id"])

    async def updated() -> str | None:
        value = crm.hubspot.records[record_id].get("leadtrail_score")
        return value if value == "75" else None

    await eventually(updated, what="the score update in HubSpot")
    assert len(crm.hubspot.records) == 1, "updates never create a second record"


async def test_a_delivered_lead_stays_received_while_its_next_update_waits(
    crm: CrmStack,
) -> None:
    """R22, R27: an access export names the CRM as a recipient from the first delivery on. The
    next update of the lead resets its outbox entry to pending; while the CRM is down it stays
    there, and the export used to read that as "not received"."""
    lead = await crm.qualified_lead()
    record_id = await crm.in_crm("maria.rossi@example.org")
    handlers = crm.stack.services["crm_sync"].handlers
    store = handlers.store
    connections = handlers.connections.for_tenant("acme")
    delivered = await crm.outbox_entry(
        lead["lead_id"],
        lambda e: e.get("last_delivered_at") is not None,
        "crm-sync recording the delivery",
    )
    first = delivered["last_delivered_at"]
    await crm.hubspot.down()
    await crm.raise_score(lead["lead_id"])
    await crm.outbox_entry(
        lead["lead_id"],
        lambda e: e["state"] == "pending" and e["last_error"] is not None,
        "the update failing against the CRM",
    )
    part = await export_part(store, connections, "acme", lead["subject_id"])
    (recipient,) = part.sections["recipients"]
    assert recipient["received"] is True
    assert recipient["leads"] == [
        {
            "lead_id": lead["lead_id"],
            "record_id": record_id,
            "operation": "upsert",
            "state": "pending",
            "last_delivered_at": first.isoformat(),
        }
    ]

    await crm.hubspot.up()

    async def rescored() -> str | None:  # the interaction's push may land before the new score
        value = crm.hubspot.records[record_id].get("leadtrail_score")
        return value if value == "75" else None

    await eventually(rescored, within=60, what="the update reaching the CRM")
    again = await crm.outbox_entry(
        lead["lead_id"],
        lambda e: e["state"] == "done" and e["last_delivered_at"] > first,
        "crm-sync recording the new delivery",
    )
    assert again["record_id"] == record_id


async def test_a_crm_failing_three_times_gets_exactly_one_record(crm: CrmStack) -> None:
    crm.hubspot.fail_next(3, status=503)
    await crm.qualified_lead()
    await crm.in_crm("maria.rossi@example.org")
    failures = [e for e in await crm.stack.events("crm-events") if e.type == "crm.sync_failed"]
    assert len(failures) == 3
    assert all(f.data["transient"] and not f.data["dead_lettered"] for f in failures)
    assert len(crm.hubspot.records) == 1
    pushes = await crm_metrics(crm, lambda s: pushed(s, "ok"))
    assert pushed(pushes, "retry") == 3
    assert pushed(pushes, "dead_letter") is None


async def test_a_crm_down_for_long_trips_the_breaker_and_the_backlog_drains(
    crm: CrmStack,
) -> None:
    await crm.hubspot.down()
    emails = [f"person{n}@example.org" for n in range(3)]
    for email in emails:
        body = sample_lead(email)
        body["contact"].pop("phone")
        await crm.qualified_lead(email, contact=body["contact"])

    async def breaker_open() -> bool | None:
        dispatcher = crm.stack.services["crm_sync"].handlers.dispatcher
        return True if dispatcher.breaker.state("acme/hubspot-eu") == "open" else None

    await eventually(breaker_open, what="the circuit to open")
    calls_while_open = len(crm.hubspot.requests)
    await crm_metrics(crm, lambda s: circuits(s, "open") == 1)
    await crm.hubspot.up()
    for email in emails:
        await crm.in_crm(email)
    closed = await crm_metrics(crm, lambda s: circuits(s, "closed") == 1)
    assert circuits(closed, "open") == circuits(closed, "half-open") == 0
    assert len(crm.hubspot.records) == 3
    assert calls_while_open < 3 * 6, "the breaker stopped hammering the CRM"


async def test_a_crm_down_for_longer_than_the_attempts_allow_loses_nothing(
    crm: CrmStack,
) -> None:
    """Failed probes of an open circuit never dead-letter the entry they carry: the push
    waits out an outage of any length (here more failures than ``max_attempts=6``)."""
    await crm.hubspot.down()
    await crm.qualified_lead()

    async def failures() -> list[EventEnvelope] | None:
        events = await crm.stack.events("crm-events")
        failed = [e for e in events if e.type == "crm.sync_failed"]
        return failed if len(failed) > 8 else None

    failed = await eventually(failures, within=60, what="more failures than max_attempts")
    assert not any(f.data["dead_lettered"] for f in failed)
    await crm.hubspot.up()
    await crm.in_crm("maria.rossi@example.org")


async def test_a_permanent_error_is_dead_lettered_and_redrive_sends_it_again(
    crm: CrmStack,
) -> None:
    crm.hubspot.fail_next(1, status=400, message="Property values were not valid")
    await crm.qualified_lead()
    settings = crm.stack.base

    async def letter() -> DeadLetterV1 | None:
        async for found in read_dead_letters(settings["kafka_bootstrap"], settings["topic_prefix"]):
            if found.service == "crm-sync":
                return found
        return None

    dead = await eventually(letter, what="a dead letter from crm-sync")
    counted = await crm_metrics(crm, lambda s: pushed(s, "dead_letter"))
    assert pushed(counted, "dead_letter") == 1
    letters = {"service": "crm-sync", "topic": "lead-events", "reason": "crm_rejected"}
    assert sample(counted, "leadtrail_dead_letters_total", **letters) == 1
    assert dead.headers["connection_id"] == "hubspot-eu"
    assert "400" in dead.error_type
    # The letter carries the event that queued the push last: lead.qualified, or a lead.scored
    # that replaced it before the call (lead-ingest rescores on every consent.granted, and may
    # handle the lead's grants after its interaction).
    assert dead.event_type in {"lead.qualified", "lead.scored"}
    assert base64.b64decode(dead.value_b64).startswith(b"{")
    # Later changes of the lead (a rescore) may have pushed it meanwhile; start from an empty
    # CRM so the record below can only come from the redriven event.
    await crm.hubspot.reset()
    listed = await crm.stack.cli("dlq", "list", "--service", "crm-sync")
    assert listed.exit_code == 0, listed.output
    assert dead.id in listed.stdout
    redriven = await crm.stack.cli("dlq", "redrive", dead.id, "--by", "ops@acme")
    assert redriven.exit_code == 0, redriven.output
    await crm.in_crm("maria.rossi@example.org")
    recorded = await crm.stack.wait_for_event(
        "operator-events", lambda e: e.type == "operator.dead_letter_redriven"
    )
    assert recorded.data["letter_id"] == dead.id
    assert recorded.data["redriven_by"] == "ops@acme"
    assert recorded.tenant_id == "acme"
    # Handled: no longer listed, but --all still shows it, marked.
    listed = await crm.stack.cli("dlq", "list", "--service", "crm-sync")
    assert dead.id not in listed.stdout
    every = await crm.stack.cli("dlq", "list", "--all", "--json")
    rows = [json.loads(line) for line in every.stdout.splitlines()]
    assert [row["redriven_at"] is not None for row in rows if row["id"] == dead.id] == [True]


async def test_no_push_without_a_basis_for_crm_sync(crm: CrmStack) -> None:
    body = sample_lead()
    body["consent"]["purposes"] = ["marketing_email"]
    lead = await crm.qualified_lead(consent=body["consent"])
    skipped = crm.stack.services["crm_sync"].handlers.store.outbox

    async def decided() -> Any:
        return await skipped.find_one({"lead_id": lead["lead_id"], "state": "skipped"})

    entry = await eventually(decided, what="crm-sync to decide")
    assert entry["reason"] == "no consent given"
    assert crm.hubspot.records == {}
    granted = await crm.stack.client("consent_ledger").post(
        f"/v1/subjects/{lead['subject_id']}/consents",
        json={
            "purpose": "crm_sync",
            "channel": "phone",
            "notice_version": "2026-10",
            "given_at": "2026-11-05T10:00:00Z",
        },
        headers=crm.stack.auth(),
    )
    assert granted.status_code == 202
    await crm.in_crm("maria.rossi@example.org")


async def test_erasure_deletes_in_the_crm_before_the_receipt(crm: CrmStack) -> None:
    lead = await crm.qualified_lead()
    record_id = await crm.in_crm("maria.rossi@example.org")
    await crm.hubspot.down()
    await crm.stack.client("lead_ingest").post(
        "/v1/privacy-requests",
        json={
            "type": "erasure",
            "subject": {"lead_id": lead["lead_id"]},
            "verification": {"method": "tenant_attestation", "attested_by": "dpo"},
        },
        headers=crm.stack.auth(),
    )
    await crm.stack.wait_for_event("erasure-events", lambda e: e.type == "erasure.requested")
    events = await crm.stack.events("erasure-events")
    crm_receipts = [
        e for e in events if e.type == "erasure.receipt" and e.data["service"] == "crm-sync"
    ]
    assert not crm_receipts, "no receipt from crm-sync while the CRM is down"
    await crm.hubspot.up()
    receipt = await crm.stack.wait_for_event(
        "erasure-events", lambda e: e.type == "erasure.receipt" and e.data["service"] == "crm-sync"
    )
    assert record_id in crm.hubspot.gdpr_deleted
    assert record_id not in crm.hubspot.records
    assert any("confirmed deleting record" in a for a in receipt.data["actions"])


@pytest.mark.parametrize("crm", [True], indirect=True)
async def test_pull_mode_and_the_recipients_registry(crm: CrmStack) -> None:
    await crm.qualified_lead()
    upserted = await crm.stack.wait_for_event("crm-sync", lambda e: e.type == "crm.lead_upserted")
    values = await crm.stack.runtimes["crm_sync"].cipher.decrypt(upserted)
    assert values is not None
    assert values["values"]["Email"] == "maria.rossi@example.org", "the tenant's mapping applies"
    recipients = await crm.stack.get_json("crm_sync", "/v1/recipients")
    assert recipients == [
        {
            "connection_id": "hubspot-eu",
            "kind": "hubspot",
            "name": "HubSpot (Acme's CRM)",
            "location": "EU (Frankfurt)",
            "data_categories": ["contact", "score", "interactions"],
            "basis": "processor acting for the tenant",
        }
    ]
    added = await crm.stack.wait_for_event(
        "crm-events", lambda e: e.type == "crm.recipient_changed"
    )
    assert added.data["change"] == "added"


async def test_rectification_reaches_the_crm_before_the_receipt(crm: CrmStack) -> None:
    lead = await crm.qualified_lead()
    record_id = await crm.in_crm("maria.rossi@example.org")
    response = await crm.stack.client("lead_ingest").post(
        "/v1/privacy-requests",
        json={
            "type": "rectification",
            "subject": {"lead_id": lead["lead_id"]},
            "verification": {"method": "tenant_attestation", "attested_by": "dpo"},
            "corrections": {"last_name": "Bianchi", "email": "maria.bianchi@example.org"},
        },
        headers=crm.stack.auth(),
    )
    assert response.status_code == 202, response.text
    receipt = await crm.stack.wait_for_event(
        "erasure-events",
        lambda e: e.type == "rectification.receipt" and e.data["service"] == "crm-sync",
    )
    assert crm.hubspot.records[record_id]["lastname"] == "Bianchi"
    assert crm.hubspot.records[record_id]["email"] == "maria.bianchi@example.org"
    assert len(crm.hubspot.records) == 1, "the same record, corrected"
    assert any(record_id in action for action in receipt.data["actions"])


async def test_a_rectification_overtaken_by_a_later_update_still_gets_its_receipt(
    crm: CrmStack,
) -> None:
    """R24: with the CRM down, a score update replaces the queued rectification push before it
    runs. The update carries the correction too, and the rectification waits for it; the wait
    used to be dropped with the replaced push, and crm-sync's receipt never came."""
    lead = await crm.qualified_lead()
    record_id = await crm.in_crm("maria.rossi@example.org")
    await crm.hubspot.down()
    response = await crm.stack.client("lead_ingest").post(
        "/v1/privacy-requests",
        json={
            "type": "rectification",
            "subject": {"lead_id": lead["lead_id"]},
            "verification": {"method": "tenant_attestation", "attested_by": "dpo"},
            "corrections": {"last_name": "Bianchi"},
        },
        headers=crm.stack.auth(),
    )
    assert response.status_code == 202, response.text
    # By what it waits for and what it will send, not by its cause: lead-ingest rescores on
    # every consent.granted, so a late grant can replace the queued cause at any moment.
    await crm.outbox_entry(
        lead["lead_id"],
        lambda e: any(w.startswith("rectification:") for w in waits_of(e)),
        "the rectification queued",
    )
    await crm.raise_score(lead["lead_id"])
    await crm.outbox_entry(
        lead["lead_id"],
        lambda e: e["cause"]["type"] == "lead.scored" and e["cause"]["data"]["score"] == 75,
        "the update replacing it",
    )
    await crm.hubspot.up()

    receipt = await crm.stack.wait_for_event(
        "erasure-events",
        lambda e: e.type == "rectification.receipt" and e.data["service"] == "crm-sync",
        within=60,
    )
    assert any(record_id in action for action in receipt.data["actions"])
    assert crm.hubspot.records[record_id]["lastname"] == "Bianchi"
    assert crm.hubspot.records[record_id]["leadtrail_score"] == "75"


async def test_withdrawing_consent_deletes_the_crm_record_and_a_new_consent_pushes_again(
    crm: CrmStack,
) -> None:
    lead = await crm.qualified_lead()
    record_id = await crm.in_crm("maria.rossi@example.org")
    withdrawn = await crm.stack.client("consent_ledger").post(
        f"/v1/subjects/{lead['subject_id']}/consents/crm_sync/withdraw", headers=crm.stack.auth()
    )
    assert withdrawn.status_code == 202
    deleted = await crm.stack.wait_for_event(
        "crm-events",
        lambda e: e.type == "crm.record_deleted" and e.subject_id == lead["subject_id"],
    )
    assert (deleted.version, deleted.data["reason"]) == (2, "no_basis")
    assert deleted.data["record_id"] == record_id
    assert deleted.data["erasure_id"] is None
    assert record_id in crm.hubspot.gdpr_deleted, "the connection's GDPR delete"
    assert crm.hubspot.records == {}

    await crm.raise_score(lead["lead_id"])
    entry = await crm.outbox_entry(
        lead["lead_id"], lambda e: e["state"] == "skipped", "the update to be held back"
    )
    assert entry["reason"] == "consent withdrawn (R11)"
    assert crm.hubspot.records == {}, "no update after withdrawal"

    granted = await crm.stack.client("consent_ledger").post(
        f"/v1/subjects/{lead['subject_id']}/consents",
        json={
            "purpose": "crm_sync",
            "channel": "phone",
            "notice_version": "2026-10",
            "given_at": "2026-11-05T10:00:00Z",
        },
        headers=crm.stack.auth(),
    )
    assert granted.status_code == 202
    again = await crm.in_crm("maria.rossi@example.org")
    assert again != record_id, "a new record"
    assert crm.hubspot.records[again]["leadtrail_score"] == "75", "the lead as it is now"


async def test_an_objection_to_crm_sync_deletes_the_record_a_restriction_keeps_it(
    crm: CrmStack,
) -> None:
    lead = await crm.qualified_lead()
    record_id = await crm.in_crm("maria.rossi@example.org")
    subject, client = lead["subject_id"], crm.stack.client("consent_ledger")
    restricted = await client.post(
        f"/v1/subjects/{subject}/restriction",
        json={"reason": "accuracy contested"},
        headers=crm.stack.auth(),
    )
    assert restricted.status_code == 202, restricted.text
    objected = await client.post(
        f"/v1/subjects/{subject}/objections",
        json={"purposes": ["crm_sync"]},
        headers=crm.stack.auth(),
    )
    assert objected.status_code == 202, objected.text
    deleted = await crm.stack.wait_for_event(
        "crm-events", lambda e: e.type == "crm.record_deleted" and e.subject_id == subject
    )
    assert deleted.data["reason"] == "no_basis"
    assert record_id in crm.hubspot.gdpr_deleted
    objection = await crm.stack.wait_for_event(
        "consent-events", lambda e: e.type == "objection.recorded" and e.subject_id == subject
    )
    assert deleted.causation_id == objection.id, "the restriction before it kept the record"


async def test_a_record_deleted_in_the_crm_itself_is_created_again(crm: CrmStack) -> None:
    lead = await crm.qualified_lead()
    first = await crm.in_crm("maria.rossi@example.org")
    await crm.hubspot.reset()  # staff deleted the contact in HubSpot
    await crm.raise_score(lead["lead_id"])
    again = await crm.in_crm("maria.rossi@example.org")
    assert len(crm.hubspot.records) == 1
    assert crm.hubspot.records[again]["firstname"] == "Maria"
    gone = [r for r in crm.hubspot.requests if r.method == "PATCH" and r.status == 404]
    assert gone, f"the update of {first} found the record gone first"
