"""``leadtrail audit`` and ``leadtrail export`` against a live cluster: the whole lifecycle of a
subject from the log, decrypted until the erasure and "erased" after it (R34, R22)."""

from __future__ import annotations

import itertools
import json
from datetime import timedelta
from typing import Any

import pytest

from contracts import EventEnvelope
from ops.audit import AUDIT_TOPICS, TimelineEntry, subject_timeline
from tests.integration.lead_ingest.conftest import sample_lead
from tests.integration.privacy_export.conftest import Full

pytestmark = pytest.mark.integration

EMAIL = "maria.rossi@example.org"


async def subject_events(full: Full, subject_id: str) -> list[EventEnvelope]:
    found: dict[str, EventEnvelope] = {}
    for topic in AUDIT_TOPICS:
        for event in await full.stack.events(topic.name):
            if event.subject_id == subject_id and event.tenant_id == "acme":
                found.setdefault(event.id, event)
    return list(found.values())


def assert_in_order(timeline: list[TimelineEntry]) -> None:
    seen: set[str] = set()
    for previous, entry in itertools.pairwise(timeline):
        assert previous.at <= entry.at, "the timeline runs forward in time"
    for entry in timeline:
        if entry.causation_id is not None and entry.causation_id in {e.event_id for e in timeline}:
            assert entry.causation_id in seen, f"{entry.type} shown before its cause"
        seen.add(entry.event_id)


def first(timeline: list[TimelineEntry], event_type: str) -> TimelineEntry:
    return next(entry for entry in timeline if entry.type == event_type)


async def test_the_timeline_shows_every_event_decrypted_until_the_erasure(full: Full) -> None:
    lead = await full.qualified_lead(EMAIL)
    await full.in_crm(EMAIL)
    full.clock.advance(timedelta(seconds=5))
    await full.stack.wait_for_event("crm-events", lambda e: e.type == "crm.lead_synced")
    settings = full.operator_settings()

    # The services may still be publishing (consent-ledger derives a grant per purpose, in
    # its own time): the timeline holds at least what was on the log before it was read, and
    # nothing that is not on the log after.
    logged_before = {e.id for e in await subject_events(full, lead["subject_id"])}
    subject_id, timeline = await subject_timeline(settings, "acme", lead["lead_id"])
    assert subject_id == lead["subject_id"]
    logged_after = {e.id for e in await subject_events(full, subject_id)}
    shown = [e.event_id for e in timeline]
    assert logged_before <= set(shown) <= logged_after, "every event on the log"
    assert len(shown) == len(set(shown)), "each event once"
    assert_in_order(timeline)
    assert timeline[0].type == "lead.captured"
    assert {
        "lead.captured",
        "consent.granted",
        "lead.interaction_recorded",
        "lead.scored",
        "lead.qualified",
        "crm.lead_synced",
    } <= {e.type for e in timeline}
    captured = first(timeline, "lead.captured")
    assert captured.personal_state == "decrypted"
    assert captured.personal is not None
    assert captured.personal["email"] == EMAIL
    assert captured.producer == "lead-ingest"
    assert captured.facts["source"]["kind"] == "web_form"
    granted = first(timeline, "consent.granted")
    assert granted.causation_id == captured.event_id
    assert granted.personal is not None
    assert granted.personal["user_agent"] == "Mozilla/5.0"
    assert granted.personal["ip_prefix"].startswith("203.0.113.")
    interaction = first(timeline, "lead.interaction_recorded")
    assert interaction.personal is not None
    assert interaction.personal["answers"] == {"budget": 20000, "role": "owner"}
    assert first(timeline, "lead.qualified").personal_state == "none"

    as_json = await full.stack.cli("audit", lead["lead_id"], "--tenant", "acme", "--json")
    assert as_json.exit_code == 0, as_json.stderr
    document = json.loads(as_json.stdout)
    assert document["subject_id"] == subject_id
    assert [e["event_id"] for e in document["events"]] == [e.event_id for e in timeline]
    table = await full.stack.cli("audit", subject_id, "--tenant", "acme")
    assert table.exit_code == 0, table.stderr
    assert "lead.captured" in table.stdout
    assert EMAIL in table.stdout

    exported = await full.stack.cli("export", subject_id, "--tenant", "acme", "--format", "csv")
    assert exported.exit_code == 0, exported.stderr
    assert f"personal_data,0,contact.email,{EMAIL}" in exported.stdout.splitlines()

    await full.request("erasure", lead["lead_id"])
    await full.erased(subject_id)

    _, after = await subject_timeline(settings, "acme", subject_id)
    assert_in_order(after)
    assert {"erasure.requested", "erasure.receipt", "erasure.completed"} <= {e.type for e in after}
    captured = first(after, "lead.captured")
    assert captured.personal_state == "erased"
    assert captured.personal is None
    assert captured.facts["lead_id"] == lead["lead_id"], "non-personal facts survive"
    assert first(after, "consent.granted").personal_state == "erased"
    assert all(e.personal_state in ("none", "erased") for e in after)
    erased_json = await full.stack.cli("audit", subject_id, "--tenant", "acme", "--json")
    assert EMAIL not in erased_json.stdout
    assert json.loads(erased_json.stdout)["events"][0]["personal"] == "erased"
    package = await full.stack.cli("export", subject_id, "--tenant", "acme")
    assert json.loads(package.stdout)["sections"]["personal_data"][0]["contact"] == "erased"


ERRORS = [
    (["audit", "sub_nobody", "--tenant", "acme"], "error: no events of subject sub_nobody"),
    (["audit", "lead_nothing", "--tenant", "acme"], "error: no lead lead_nothing"),
    (["audit", "sub_nobody", "--tenant", "nobody"], "error: no tenant 'nobody'"),
    (["export", "sub_nobody", "--tenant", "acme"], "error: no data about subject sub_nobody"),
    (["export", "lead_nothing", "--tenant", "acme"], "error: no lead lead_nothing"),
    (["export", "sub_nobody", "--tenant", "nobody"], "error: no tenant 'nobody'"),
    (["export", "sub_x", "--tenant", "acme", "--format", "xml"], "error: --format must be"),
]


async def test_unknown_subjects_leads_and_tenants_are_one_clear_error(full: Full) -> None:
    await full.stack.client("lead_ingest").post(
        "/v1/leads", json=sample_lead(EMAIL), headers=full.stack.auth()
    )  # the topics and the database are not empty
    for args, message in ERRORS:
        result = await full.stack.cli(*args)
        assert result.exit_code == 1, args
        assert result.stdout == "", args
        lines: list[Any] = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith(message), (args, lines[0])


REVIEWER = "giulia.verdi@acme.example"
ATTESTER = "paolo.neri@acme.example"


async def store_text(full: Full) -> str:
    """Every document of every collection of the cluster's database, as text."""
    db = full.stack.runtimes["lead_ingest"].db
    dumped = []
    for name in await db.list_collection_names():
        dumped += [document async for document in db[name].find({})]
    return json.dumps(dumped, default=str)


async def test_who_reviewed_and_who_attested_are_erased_with_the_subject(full: Full) -> None:
    """The reviewer of a score and the attester of a request are names or e-mails: they travel
    encrypted (lead.score_reviewed v2, privacy.request.verified v2), are shown while the
    subject exists and by nobody once the subject was erased (issue 16)."""
    lead = await full.qualified_lead(EMAIL)
    lead_id, subject_id = lead["lead_id"], lead["subject_id"]
    ingest = full.stack.client("lead_ingest")
    review = await ingest.post(
        f"/v1/leads/{lead_id}/score-reviews",
        json={"score": 95, "reason": "Confirmed on a call", "reviewer": REVIEWER},
        headers=full.stack.auth(),
    )
    assert review.status_code == 202, review.text
    path = f"/v1/leads/{lead_id}"
    shown = await full.stack.get_json(
        "lead_ingest", path, until=lambda v: (v["score"] or {}).get("review")
    )
    assert shown["score"]["review"]["reviewer"] == REVIEWER
    package = await full.stack.cli("export", subject_id, "--tenant", "acme")
    assert json.loads(package.stdout)["sections"]["scores"][0]["review"]["reviewer"] == REVIEWER

    async def attested(kind: str) -> None:
        request = await ingest.post(
            "/v1/privacy-requests",
            json={
                "type": kind,
                "subject": {"lead_id": lead_id},
                "verification": {"method": "tenant_attestation", "attested_by": ATTESTER},
            },
            headers=full.stack.auth(),
        )
        assert request.status_code == 202, request.text

    await attested("access")  # answered, nothing erased: the attester is readable
    verified = await full.stack.wait_for_event(
        "privacy-events", lambda e: e.type == "privacy.request.verified"
    )
    reviewed = await full.stack.wait_for_event(
        "lead-events", lambda e: e.type == "lead.score_reviewed"
    )
    for event in (verified, reviewed):
        assert event.version == 2
        assert event.pii is not None, "the operator travels encrypted"
        assert "@acme.example" not in json.dumps(event.data), event.data
    assert len(verified.data["attested_by_hash"]) == len(reviewed.data["reviewer_hash"]) == 64
    _, before = await subject_timeline(full.operator_settings(), "acme", subject_id)
    assert first(before, "lead.score_reviewed").personal == {
        "reason": "Confirmed on a call",
        "reviewer": REVIEWER,
    }
    assert first(before, "privacy.request.verified").personal == {"attested_by": ATTESTER}

    await attested("erasure")
    await full.erased(subject_id)

    after = await full.stack.get_json("lead_ingest", path, until=lambda v: v["contact"] is None)
    assert after["score"]["review"]["reviewer"] is None
    assert after["score"]["value"] == 95, "non-personal facts survive"
    package = await full.stack.cli("export", subject_id, "--tenant", "acme")
    assert package.exit_code == 0, package.stderr
    assert json.loads(package.stdout)["sections"]["scores"][0]["review"]["reviewer"] == "erased"
    audit = await full.stack.cli("audit", subject_id, "--tenant", "acme", "--json")
    assert audit.exit_code == 0, audit.stderr
    table = await full.stack.cli("audit", subject_id, "--tenant", "acme")
    everything = (
        json.dumps(after)
        + package.stdout
        + audit.stdout
        + table.stdout
        + await store_text(full)
        + "".join(e.model_dump_json() for e in await subject_events(full, subject_id))
    )
    assert REVIEWER not in everything
    assert ATTESTER not in everything
    assert "giulia" not in everything.casefold()
