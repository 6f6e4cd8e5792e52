"""lead-ingest's API on real Kafka and the document store (R1-R8, R13, R14)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from contracts import EventEnvelope
from contracts.events.consent import (
    ObjectionRecordedV1,
    RestrictionLiftedV1,
    RestrictionPlacedV1,
    SuppressionAddedV1,
)
from contracts.events.erasure import ErasureRequestedV1, ErasureTrigger
from contracts.events.lead import LeadScoreReviewedV1, ScoreReviewReasonV1
from services.common.publisher import derived_event_id
from tests.helpers import eventually
from tests.integration.lead_ingest.conftest import Ingest, sample_lead

pytestmark = pytest.mark.integration
PROBLEM = "application/problem+json"


async def test_a_lead_is_accepted_encrypted_and_readable_back(ingest: Ingest) -> None:
    response = await ingest.post_lead(sample_lead())
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert accepted["lead_id"].startswith("lead_")
    assert response.headers["location"] == f"/v1/leads/{accepted['lead_id']}"

    (event,) = await ingest.events("lead-events", 1)
    assert event.type == "lead.captured"
    assert event.subject_id == accepted["subject_id"]
    assert event.data["source"] == {"kind": "web_form", "url": "https://acme.example/contact"}
    assert event.data["consent"]["purposes"] == ["crm_sync", "marketing_email"]
    raw = event.model_dump_json()
    for secret in ("maria", "Rossi", "3471234567", "203.0.113"):
        assert secret not in raw, f"{secret} leaked into the event in clear"

    lead = await ingest.lead(accepted["lead_id"])
    assert lead["state"] == "captured"
    assert lead["contact"]["email"] == "maria.rossi@example.org"
    assert lead["contact"]["phone"] == "+393471234567"
    assert lead["contact"]["ip_prefix"] == "203.0.113.0/24", "IP stored shortened (R33)"
    assert lead["source"]["kind"] == "web_form"


async def test_the_same_person_gets_the_same_subject_per_tenant(ingest: Ingest) -> None:
    first = (await ingest.post_lead(sample_lead("Maria.Rossi@Example.org"))).json()
    by_phone_only = sample_lead()
    by_phone_only["contact"] = {"phone": "+39 347 123 4567"}
    second = (await ingest.post_lead(by_phone_only)).json()
    assert first["subject_id"] == second["subject_id"]
    other = await ingest.post_lead(sample_lead(), Authorization=f"Bearer {ingest.other_key}")
    assert other.json()["subject_id"] != first["subject_id"], "tenants are walls"
    index = [doc async for doc in ingest.runtime.db["subject_index"].find({})]
    assert index, "the blind index exists"
    assert "maria" not in json.dumps(index, default=str).casefold(), "no plain-text PII index"


async def test_third_party_leads_need_a_provider_and_an_attestation(ingest: Ingest) -> None:
    missing = sample_lead(source={"kind": "third_party", "provider": "B2B Leads Ltd"})
    response = await ingest.post_lead(missing)
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM
    assert any("attestation" in e["field"] for e in response.json()["errors"])
    attested = sample_lead(
        source={
            "kind": "third_party",
            "provider": "B2B Leads Ltd",
            "attestation": {
                "legal_basis": "legitimate_interest",
                "statement": "Collected from public registers, art. 14 notice sent.",
                "attested_at": "2026-11-01T00:00:00Z",
            },
        }
    )
    assert (await ingest.post_lead(attested)).status_code == 202


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda body: body["contact"].update(favourite_colour="blue"), "contact.favourite_colour"),
        (lambda body: body.update(tracking_pixel="x"), "tracking_pixel"),
        (lambda body: body["contact"].update(email="not-an-email"), "contact.email"),
        (lambda body: body["contact"].update(phone="12"), "contact.phone"),
        (lambda body: body.pop("source"), "source"),
        (lambda body: body.update(contact={"first_name": "Nobody"}), "contact"),
        (lambda body: body["consent"].update(given_at="2999-01-01T00:00:00Z"), "consent.given_at"),
    ],
)
async def test_bad_input_is_a_clear_problem(ingest: Ingest, mutate: object, field: str) -> None:
    body = sample_lead()
    mutate(body)  # type: ignore[operator]
    response = await ingest.post_lead(body)
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert problem["type"].startswith("urn:leadtrail:problem:")
    assert problem["status"] == 422
    assert any(e["field"].startswith(field) for e in problem["errors"]), problem


async def test_api_keys_and_tenant_walls(ingest: Ingest) -> None:
    missing = await ingest.client.post("/v1/leads", json=sample_lead())
    assert missing.status_code == 401
    assert missing.json()["type"] == "urn:leadtrail:problem:unauthorized"
    wrong = await ingest.post_lead(sample_lead(), Authorization="Bearer lt_acme_nope")
    assert wrong.status_code == 401
    x_api_key = await ingest.client.post(
        "/v1/leads", json=sample_lead(), headers={"X-Api-Key": ingest.key}
    )
    assert x_api_key.status_code == 202
    lead_id = x_api_key.json()["lead_id"]
    await ingest.lead(lead_id)
    foreign = await ingest.client.get(f"/v1/leads/{lead_id}", headers=ingest.auth(ingest.other_key))
    unknown = await ingest.client.get("/v1/leads/lead_nope", headers=ingest.auth(ingest.other_key))
    assert foreign.status_code == unknown.status_code == 404
    assert foreign.json()["detail"] == f"no lead {lead_id}", "no hint that it exists elsewhere"


async def test_idempotent_retries_return_the_first_response_without_a_second_event(
    ingest: Ingest,
) -> None:
    first = await ingest.post_lead(sample_lead(), **{"Idempotency-Key": "form-42"})
    again = await ingest.post_lead(sample_lead(), **{"Idempotency-Key": "form-42"})
    assert first.status_code == again.status_code == 202
    assert first.json() == again.json()
    other_body = await ingest.post_lead(
        sample_lead("someone.else@example.org"), **{"Idempotency-Key": "form-42"}
    )
    assert other_body.status_code == 422
    assert other_body.json()["type"] == "urn:leadtrail:problem:idempotency-key-reused"
    events = await ingest.all_events("lead-events")
    assert [e.type for e in events] == ["lead.captured"]


async def test_an_idempotency_key_is_never_stored_as_given(ingest: Ingest) -> None:
    """A client may use an e-mail as its key: only a keyed hash of it is kept."""
    key = "maria.rossi@example.org"
    first = await ingest.post_lead(sample_lead(), **{"Idempotency-Key": key})
    again = await ingest.post_lead(sample_lead(), **{"Idempotency-Key": key})
    assert first.status_code == again.status_code == 202
    assert first.json() == again.json()
    records = await ingest.runtime.db["idempotency"].find({}).to_list()
    assert len(records) == 1
    assert "maria" not in repr(records)


async def test_interactions_are_scored_with_an_explanation_and_qualify(ingest: Ingest) -> None:
    lead_id = (await ingest.post_lead(sample_lead())).json()["lead_id"]
    await ingest.lead(lead_id)
    first = await ingest.client.post(
        f"/v1/leads/{lead_id}/interactions",
        json={"channel": "whatsapp", "answers": {"budget": 15000, "timeline": "next year"}},
        headers=ingest.auth(),
    )
    assert first.status_code == 202, first.text
    scored = await ingest.lead(lead_id, until=lambda lead: lead["score"] is not None)
    assert scored["state"] == "scored"
    assert scored["score"]["value"] == 30
    assert scored["score"]["explanation"] == [
        {
            "criterion_id": "budget_10k",
            "answer": "budget",
            "input": 15000,
            "points": 30,
            "rule": {"op": "gte", "value": 10000, "description": ""},
        }
    ]
    await ingest.client.post(
        f"/v1/leads/{lead_id}/interactions",
        json={"channel": "phone", "answers": {"role": "owner", "timeline": "this quarter"}},
        headers=ingest.auth(),
    )
    qualified = await ingest.lead(lead_id, until=lambda lead: lead["state"] == "qualified")
    assert qualified["score"]["value"] == 75
    assert {e["criterion_id"] for e in qualified["score"]["explanation"]} == {
        "budget_10k",
        "decision_maker",
        "timeline_soon",
    }
    assert [i["channel"] for i in qualified["interactions"]] == ["whatsapp", "phone"]
    events = [e.type for e in await ingest.all_events("lead-events")]
    assert events.count("lead.qualified") == 1
    assert events.count("lead.scored") == 2


@pytest.mark.parametrize(
    "answers",
    [
        '{"budget": NaN}',
        '{"budget": Infinity}',
        '{"budget": -Infinity}',
        '{"budget": 1e400}',
        '{"budget": ' + "9" * 4000 + "}",
        '{"budget": 18446744073709551616}',
        '{"budget": 10, "budget": 20000}',
    ],
    ids=["nan", "infinity", "-infinity", "1e400", "4000 digits", "2^64", "duplicate key"],
)
async def test_answers_python_would_bend_are_refused(ingest: Ingest, answers: str) -> None:
    """Issue 16 item 9: NaN and Infinity are not JSON, 1e400 read back as null, huge integers
    do not fit anywhere downstream, and with a duplicate key the last one silently won."""
    lead_id = (await ingest.post_lead(sample_lead())).json()["lead_id"]
    await ingest.lead(lead_id)
    response = await ingest.client.post(
        f"/v1/leads/{lead_id}/interactions",
        content=f'{{"channel": "chat", "answers": {answers}}}',
        headers={**ingest.auth(), "Content-Type": "application/json"},
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert problem["type"] == "urn:leadtrail:problem:validation-error"
    assert problem["errors"][0]["code"] == "json_invalid"
    events = await ingest.all_events("lead-events")
    assert [e.type for e in events] == ["lead.captured"], "no interaction was recorded"


async def test_answers_are_numbers_every_reader_keeps_exactly(ingest: Ingest) -> None:
    lead_id = (await ingest.post_lead(sample_lead())).json()["lead_id"]
    await ingest.lead(lead_id)
    beyond = await ingest.client.post(
        f"/v1/leads/{lead_id}/interactions",
        content='{"channel": "chat", "answers": {"seats": 9007199254740992}}',
        headers={**ingest.auth(), "Content-Type": "application/json"},
    )
    assert beyond.status_code == 422, "2**53 is where doubles stop counting one by one"
    assert beyond.json()["type"] == "urn:leadtrail:problem:validation-error"
    response = await ingest.client.post(
        f"/v1/leads/{lead_id}/interactions",
        content='{"channel": "chat", "answers": {"seats": 9007199254740991, "ratio": -0.5}}',
        headers={**ingest.auth(), "Content-Type": "application/json"},
    )
    assert response.status_code == 202, response.text
    lead = await ingest.lead(lead_id, until=lambda lead: lead["interactions"])
    assert lead["interactions"][0]["answers"] == {"seats": 2**53 - 1, "ratio": -0.5}


async def test_a_person_can_override_a_score_with_a_reason(ingest: Ingest) -> None:
    lead_id = (await ingest.post_lead(sample_lead())).json()["lead_id"]
    await ingest.lead(lead_id)
    review = await ingest.client.post(
        f"/v1/leads/{lead_id}/score-reviews",
        json={"score": 80, "reason": "Confirmed budget on a call", "reviewer": "ops@acme.example"},
        headers=ingest.auth(),
    )
    assert review.status_code == 202, review.text
    lead = await ingest.lead(lead_id, until=lambda lead: lead["state"] == "qualified")
    assert lead["score"]["source"] == "review"
    assert lead["score"]["value"] == 80
    assert lead["score"]["review"]["reason"] == "Confirmed budget on a call"


async def test_a_v1_reviewer_in_clear_is_shown_until_the_erasure(ingest: Ingest) -> None:
    """lead.score_reviewed v1 carried the reviewer in clear: its upcaster keeps it as
    ``legacy_reviewer`` (it cannot encrypt it), shown like the encrypted one until the subject
    is erased, then stripped from the read model (issue 16)."""
    accepted = (await ingest.post_lead(sample_lead())).json()
    lead_id, subject_id = accepted["lead_id"], accepted["subject_id"]
    await ingest.lead(lead_id)
    await ingest.consent_publisher.publish(  # as a producer before lead.score_reviewed v2
        LeadScoreReviewedV1(
            lead_id=lead_id,
            review_id="rev_v1",
            previous_score=None,
            new_score=10,
            reviewer="giulia.verdi@acme.example",
        ),
        pii=ScoreReviewReasonV1(reason="Spoke to her"),
        tenant_id="acme",
        subject_id=subject_id,
        correlation_id="review-v1",
    )
    lead = await ingest.lead(lead_id, until=lambda lead: lead["score"])
    assert lead["score"]["review"]["reviewer"] == "giulia.verdi@acme.example"
    assert lead["score"]["review"]["reason"] == "Spoke to her"

    await ingest.runtime.keyring.destroy("acme", subject_id)
    now = datetime.now(UTC)
    await ingest.consent_publisher.publish(
        ErasureRequestedV1(
            erasure_id="er_1",
            trigger=ErasureTrigger(kind="privacy_request", event_id="e1", request_id="pr_1"),
            deadline=now,
            expected_receipts=["lead-ingest"],
        ),
        tenant_id="acme",
        subject_id=subject_id,
        correlation_id="erase-v1",
    )

    async def stripped() -> dict[str, Any] | None:
        found = await ingest.runtime.db["leads"].find_one({"_id": lead_id})
        return found if found is not None and found.get("erased_at") is not None else None

    stored = await eventually(stripped, what="lead-ingest to handle the erasure")
    assert "giulia" not in json.dumps(stored, default=str)
    erased = await ingest.lead(lead_id)
    assert erased["score"]["review"]["reviewer"] is None


async def restrict(ingest: Ingest, lead_id: str, subject_id: str) -> None:
    """Restrict the subject's processing (R14) and wait until lead-ingest knows."""
    await ingest.consent_publisher.publish(
        RestrictionPlacedV1(origin="operator", reason="accuracy contested"),
        tenant_id="acme",
        subject_id=subject_id,
        correlation_id="restrict-1",
    )
    await ingest.lead(lead_id, until=lambda lead: lead["processing"]["restricted"])


async def test_a_restricted_subject_is_stored_but_not_scored_until_lifted(
    ingest: Ingest,
) -> None:
    accepted = (await ingest.post_lead(sample_lead())).json()
    lead_id, subject_id = accepted["lead_id"], accepted["subject_id"]
    await ingest.lead(lead_id)
    await restrict(ingest, lead_id, subject_id)
    response = await ingest.client.post(
        f"/v1/leads/{lead_id}/interactions",
        json={"channel": "email", "answers": {"budget": 50000, "role": "CEO"}},
        headers=ingest.auth(),
    )
    assert response.status_code == 202, "storage is allowed while restricted"
    stored = await ingest.lead(lead_id, until=lambda lead: len(lead["interactions"]) == 1)
    assert stored["score"] is None
    assert stored["processing"]["scoring_paused"] == "processing is restricted (R14)"
    review = await ingest.client.post(
        f"/v1/leads/{lead_id}/score-reviews",
        json={"score": 99, "reason": "x", "reviewer": "ops"},
        headers=ingest.auth(),
    )
    assert review.status_code == 409
    await ingest.consent_publisher.publish(
        RestrictionLiftedV1(origin="operator"),
        tenant_id="acme",
        subject_id=subject_id,
        correlation_id="restrict-1",
    )
    lifted = await ingest.lead(lead_id, until=lambda lead: lead["state"] == "qualified")
    assert lifted["score"]["value"] == 55
    assert lifted["processing"]["scoring_paused"] is None


async def test_a_qualification_claimed_before_a_kill_is_published_after_a_restriction(
    ingest: Ingest,
) -> None:
    """lead-ingest reserved a lead's one ``lead.qualified`` for a cause, then died before
    publishing it; on restart a restriction was handled before the cause came back. The
    re-run must publish the reserved event: it used to stop at "scoring paused" and leave the
    reservation, which refused every later qualification of the lead for ever."""
    accepted = (await ingest.post_lead(sample_lead())).json()
    lead_id, subject_id = accepted["lead_id"], accepted["subject_id"]
    await ingest.lead(lead_id)
    handlers = ingest.handlers
    cause = EventEnvelope.model_validate(
        {
            "id": str(uuid.uuid4()),
            "type": "lead.scored",
            "version": 2,
            "occurred_at": datetime.now(UTC),
            "tenant_id": "acme",
            "subject_id": subject_id,
            "correlation_id": "killed-1",
            "producer": "lead-ingest",
            "data": {},
        }
    )
    qualified_id = derived_event_id(cause.id, f"lead.qualified/{lead_id}")
    assert await handlers.projection.claim_qualification(lead_id, qualified_id)  # then: SIGKILL
    await restrict(ingest, lead_id, subject_id)

    document = await handlers.projection.get("acme", lead_id)
    subject = await handlers.projection.subject("acme", subject_id)
    await handlers.qualify(  # the redelivered cause, with the lead as the batch read it
        cause, document, subject, points=55, threshold=50, by="rules"
    )

    events = await ingest.all_events("lead-events")
    assert [e.id for e in events if e.type == "lead.qualified"] == [qualified_id]
    await ingest.lead(lead_id, until=lambda lead: lead["state"] == "qualified")


def third_party_lead() -> dict[str, Any]:
    """The sample lead, bought from a provider that attests its legal basis."""
    return sample_lead(
        source={
            "kind": "third_party",
            "provider": "B2B Leads Ltd",
            "attestation": {
                "legal_basis": "legitimate_interest",
                "statement": "Public register",
                "attested_at": "2026-11-01T00:00:00Z",
            },
        }
    )


async def test_third_party_data_about_a_suppressed_person_is_refused(ingest: Ingest) -> None:
    accepted = (await ingest.post_lead(sample_lead())).json()
    await ingest.consent_publisher.publish(
        SuppressionAddedV1(origin="privacy_request", reason="objection"),
        tenant_id="acme",
        subject_id=accepted["subject_id"],
        correlation_id="suppress-1",
    )
    await ingest.lead(accepted["lead_id"], until=lambda lead: lead["processing"]["suppressed"])
    third_party = third_party_lead()
    response = await ingest.post_lead(third_party)
    assert response.status_code == 409
    assert response.json()["type"] == "urn:leadtrail:problem:subject-suppressed"
    events = await ingest.all_events("lead-events")
    assert [e.type for e in events] == ["lead.captured"], "nothing of the refused lead is kept"


async def test_a_third_party_lead_of_a_known_person_looks_the_index_up_once(
    ingest: Ingest,
) -> None:
    """The suppression check finds the person; with every identifier known, linking would
    only find them again (issue 14: no lookup twice)."""
    first = (await ingest.post_lead(sample_lead())).json()
    registry = ingest.runtime.metrics.registry

    def commands(command: str) -> float:
        labels = {"service": "lead-ingest", "command": command, "collection": "subject_index"}
        return registry.get_sample_value("leadtrail_store_commands_total", labels) or 0.0

    finds, updates = commands("find"), commands("update")
    third_party = third_party_lead()
    response = await ingest.post_lead(third_party)
    assert response.status_code == 202, response.text
    assert response.json()["subject_id"] == first["subject_id"]
    assert commands("find") - finds == 1
    assert commands("update") - updates == 0, "nothing new to index"


@pytest.mark.parametrize("ingest", [{"max_body_bytes": 2048}], indirect=True)
async def test_oversized_bodies_are_refused(ingest: Ingest) -> None:
    body = sample_lead()
    body["contact"]["message"] = "x" * 4000
    response = await ingest.post_lead(body)
    assert response.status_code == 413
    assert response.json()["type"] == "urn:leadtrail:problem:payload-too-large"

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: chunked on the wire
        encoded = json.dumps(body).encode()
        for start in range(0, len(encoded), 512):
            yield encoded[start : start + 512]

    streamed = await ingest.client.post(
        "/v1/leads",
        content=chunks(),
        headers={**ingest.auth(), "Content-Type": "application/json"},
    )
    assert "content-length" not in streamed.request.headers
    assert streamed.status_code == 413, streamed.text  # issue 16 item 11: was 400
    assert streamed.json() | {"instance": None} == response.json() | {"instance": None}
    assert await ingest.all_events("lead-events") == []


@pytest.mark.parametrize(
    "ingest", [{"rate_limit_per_s": 0.5, "rate_limit_burst": 2}], indirect=True
)
async def test_tenants_are_rate_limited(ingest: Ingest) -> None:
    statuses = [(await ingest.post_lead(sample_lead())).status_code for _ in range(3)]
    assert statuses == [202, 202, 429]
    limited = await ingest.post_lead(sample_lead())
    assert limited.headers["retry-after"].isdigit()
    assert limited.json()["type"] == "urn:leadtrail:problem:rate-limited"
    other = await ingest.post_lead(sample_lead(), Authorization=f"Bearer {ingest.other_key}")
    assert other.status_code == 202, "limits are per tenant"


async def test_an_objection_to_profiling_stops_scoring(ingest: Ingest) -> None:
    accepted = (await ingest.post_lead(sample_lead())).json()
    lead_id = accepted["lead_id"]
    await ingest.lead(lead_id)
    await ingest.consent_publisher.publish(
        ObjectionRecordedV1(purposes=["profiling"], origin="privacy_request"),
        tenant_id="acme",
        subject_id=accepted["subject_id"],
        correlation_id="object-1",
    )
    await ingest.lead(lead_id, until=lambda lead: lead["processing"]["objections"])
    await ingest.client.post(
        f"/v1/leads/{lead_id}/interactions",
        json={"channel": "chat", "answers": {"budget": 90000, "role": "CEO"}},
        headers=ingest.auth(),
    )
    stored = await ingest.lead(lead_id, until=lambda lead: len(lead["interactions"]) == 1)
    assert stored["score"] is None
    assert stored["processing"]["scoring_paused"] == "the subject objected to profiling (R13)"
