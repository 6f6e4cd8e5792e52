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
