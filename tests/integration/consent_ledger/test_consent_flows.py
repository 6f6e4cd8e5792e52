"""consent-ledger with lead-ingest on real Kafka and the document store (R9-R14, R28)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.common.consent import ConsentFact, fact_from_event, fold
from tests.integration.cluster import Cluster, cluster
from tests.integration.lead_ingest.conftest import RULES, sample_lead

pytestmark = pytest.mark.integration

ALL_CONSENT = """
purposes:
  crm_sync: {basis: consent}
  marketing_email: {basis: consent, marketing: true}
  profiling: {basis: consent}
  partner_sharing: {basis: consent, suppresses: true}
"""


@pytest.fixture
async def stack(kafka_bootstrap: str, mongo_url: str, tmp_path: Path) -> AsyncIterator[Cluster]:
    acme = tmp_path / "tenants" / "acme"
    acme.mkdir(parents=True)
    (acme / "scoring.yaml").write_text(RULES)
    async with cluster(
        kafka_bootstrap, mongo_url, tmp_path, ["lead_ingest", "consent_ledger"]
    ) as running:
        yield running


async def capture(stack: Cluster, body: dict[str, Any] | None = None) -> dict[str, Any]:
    response = await stack.client("lead_ingest").post(
        "/v1/leads", json=body or sample_lead(), headers=stack.auth()
    )
    assert response.status_code == 202, response.text
    accepted: dict[str, Any] = response.json()
    return accepted


async def consents(stack: Cluster, subject_id: str, until: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = await stack.get_json(
        "consent_ledger", f"/v1/subjects/{subject_id}/consents", until=until
    )
    return body


def purpose(view: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(p for p in view["purposes"] if p["purpose"] == name)
    return found


async def test_consent_claims_become_grants_with_proof(stack: Cluster) -> None:
    lead = await capture(stack)
    view = await consents(stack, lead["subject_id"], until=lambda v: len(v["history"]) == 2)
    assert purpose(view, "crm_sync")["allowed"] is True
    assert purpose(view, "marketing_email")["consented"] is True
    assert purpose(view, "sms") == purpose(view, "sms") | {"allowed": False, "consented": False}
    assert purpose(view, "profiling")["basis"] == "legitimate_interest"
    assert purpose(view, "profiling")["allowed"] is True
    granted = view["history"][0]
    assert granted["type"] == "consent.granted"
    assert granted["data"]["notice_version"] == "2026-10"
    assert granted["data"]["collection_point"] == "https://acme.example/contact"
    assert granted["data"]["lead_id"] == lead["lead_id"]
    assert granted["proof"] == {"ip_prefix": "203.0.113.0/24", "user_agent": "Mozilla/5.0"}
    proof = await stack.client("consent_ledger").get(
        f"/v1/subjects/{lead['subject_id']}/consents/proof", headers=stack.auth()
    )
    assert "attachment" in proof.headers["content-disposition"]
    assert proof.json()["history"] == view["history"]


async def test_one_click_unsubscribe_withdraws_marketing_only(stack: Cluster) -> None:
    lead = await capture(stack)
    subject = lead["subject_id"]
    await consents(stack, subject, until=lambda v: len(v["history"]) == 2)
    link = await stack.client("consent_ledger").post(
        f"/v1/subjects/{subject}/unsubscribe-links",
        json={"purpose": "marketing_email"},
        headers=stack.auth(),
    )
    assert link.status_code == 201, link.text
    path = "/" + link.json()["url"].split("/", 3)[3]
    page = await stack.client("consent_ledger").get(path)
    assert page.status_code == 200
    assert "<form" in page.text, "GET only shows the page: mail scanners must not unsubscribe"
    done = await stack.client("consent_ledger").post(path)
    assert done.status_code == 200
    assert "Unsubscribed" in done.text
    view = await consents(
        stack, subject, until=lambda v: not purpose(v, "marketing_email")["allowed"]
    )
    assert purpose(view, "marketing_email")["reason"] == "consent withdrawn (R11)"
    assert purpose(view, "crm_sync")["allowed"] is True, "only that purpose stops"
    forged = await stack.client("consent_ledger").post(path[:-3] + "xyz")
    assert forged.status_code == 404


async def test_unsubscribe_links_start_with_the_public_url_never_the_host_header(
    kafka_bootstrap: str, mongo_url: str, tmp_path: Path
) -> None:
    """The link goes to the person: a request's Host header must not choose where it points
    (issue 16 item 5)."""
    async with cluster(
        kafka_bootstrap,
        mongo_url,
        tmp_path,
        ["lead_ingest", "consent_ledger"],
        public_url="https://consent.acme.example",
    ) as stack:
        lead = await capture(stack)
        await consents(stack, lead["subject_id"], until=lambda v: len(v["history"]) == 2)
        link = await stack.client("consent_ledger").post(
            f"/v1/subjects/{lead['subject_id']}/unsubscribe-links",
            json={"purpose": "marketing_email"},
            headers={**stack.auth(), "Host": "evil.example"},
        )
        assert link.status_code == 201, link.text
        token = link.json()["token"]
        assert link.json()["url"] == f"https://consent.acme.example/v1/unsubscribe/{token}"


async def test_without_a_public_url_links_point_at_the_listener_not_the_host_header(
    stack: Cluster,
) -> None:
    lead = await capture(stack)
    await consents(stack, lead["subject_id"], until=lambda v: len(v["history"]) == 2)
    link = await stack.client("consent_ledger").post(
        f"/v1/subjects/{lead['subject_id']}/unsubscribe-links",
        json={"purpose": "marketing_email"},
        headers={**stack.auth(), "Host": "evil.example"},
    )
    assert link.status_code == 201, link.text
    listener = stack.runtimes["consent_ledger"].settings.public_base_url()
    assert listener.startswith("http://127.0.0.1:")
    assert link.json()["url"] == f"{listener}/v1/unsubscribe/{link.json()['token']}"


async def test_a_non_ascii_unsubscribe_token_is_a_404_not_a_crash(stack: Cluster) -> None:
    ledger = stack.client("consent_ledger")
    for token in ("%C3%A9", "e30.%C3%A9%C3%A9", "abc.d%C3%A9f"):
        page = await ledger.get(f"/v1/unsubscribe/{token}")
        assert page.status_code == 404, page.text
        assert "Link not valid" in page.text
        posted = await ledger.post(
            f"/v1/unsubscribe/{token}", headers={"Accept": "application/json"}
        )
        assert posted.status_code == 404, posted.text
        assert posted.json()["type"] == "urn:leadtrail:problem:invalid-unsubscribe-link"


async def unsubscribe_link(stack: Cluster, subject: str, purpose: str) -> httpx.Response:
    return await stack.client("consent_ledger").post(
        f"/v1/subjects/{subject}/unsubscribe-links", json={"purpose": purpose}, headers=stack.auth()
    )


async def click(stack: Cluster, token: str) -> httpx.Response:
    return await stack.client("consent_ledger").post(
        f"/v1/unsubscribe/{token}", headers={"Accept": "application/json"}
    )


async def test_a_link_withdraws_only_the_grant_it_was_issued_for_once(stack: Cluster) -> None:
    """Issue 16 item 6: a repeat is a no-op that keeps the first withdrawn_at, and an old
    link, clicked after the person agreed again, leaves the new consent alone."""
    lead = await capture(stack)
    subject = lead["subject_id"]
    await consents(stack, subject, until=lambda v: len(v["history"]) == 2)
    link = await unsubscribe_link(stack, subject, "marketing_email")
    assert link.status_code == 201, link.text
    token = link.json()["token"]

    first = await click(stack, token)
    assert first.status_code == 202, first.text
    assert first.json()["status"] == "withdrawn"
    again_at_once = await click(stack, token)  # before the read model saw the withdrawal
    assert again_at_once.json()["event_id"] in (first.json()["event_id"], None)
    view = await consents(
        stack, subject, until=lambda v: purpose(v, "marketing_email")["withdrawn_at"]
    )
    withdrawn_at = purpose(view, "marketing_email")["withdrawn_at"]
    repeat = await click(stack, token)
    assert repeat.status_code == 200, repeat.text
    assert repeat.json() == {
        "purpose": "marketing_email",
        "status": "already_withdrawn",
        "event_id": None,
        "withdrawn_at": withdrawn_at,
    }

    regrant = await stack.client("consent_ledger").post(
        f"/v1/subjects/{subject}/consents",
        json={
            "purpose": "marketing_email",
            "channel": "email",
            "notice_version": "2026-11",
            "given_at": "2026-11-05T10:00:00Z",
        },
        headers=stack.auth(),
    )
    assert regrant.status_code == 202, regrant.text
    await consents(stack, subject, until=lambda v: purpose(v, "marketing_email")["consented"])
    old = await click(stack, token)
    assert old.status_code == 200, old.text
    assert old.json()["status"] == "superseded"
    page = await stack.client("consent_ledger").post(f"/v1/unsubscribe/{token}")
    assert "Nothing changed" in page.text
    view = await consents(stack, subject)
    assert purpose(view, "marketing_email")["allowed"] is True, "the new consent stands"
    withdrawals = [
        e
        for e in await stack.events("consent-events")
        if e.type == "consent.withdrawn" and e.subject_id == subject
    ]
    assert {e.id for e in withdrawals} == {first.json()["event_id"]}
    assert [h["type"] for h in view["history"]].count("consent.withdrawn") == 1

    newer = await unsubscribe_link(stack, subject, "marketing_email")
    assert (await click(stack, newer.json()["token"])).json()["status"] == "withdrawn"


async def test_no_link_without_a_consent_in_force(stack: Cluster) -> None:
    lead = await capture(stack)
    await consents(stack, lead["subject_id"], until=lambda v: len(v["history"]) == 2)
    refused = await unsubscribe_link(stack, lead["subject_id"], "sms")
    assert refused.status_code == 409, refused.text
    assert refused.json()["type"] == "urn:leadtrail:problem:no-consent-in-force"


async def test_public_routes_are_limited_per_link_and_per_client(
    kafka_bootstrap: str, mongo_url: str, tmp_path: Path
) -> None:
    async with cluster(
        kafka_bootstrap,
        mongo_url,
        tmp_path,
        ["lead_ingest", "consent_ledger"],
        link_rate_limit_burst=3,
        link_rate_limit_per_s=0.001,
        public_rate_limit_burst=6,
        public_rate_limit_per_s=0.001,
    ) as stack:
        lead = await capture(stack)
        await consents(stack, lead["subject_id"], until=lambda v: len(v["history"]) == 2)
        link = await unsubscribe_link(stack, lead["subject_id"], "marketing_email")
        token = link.json()["token"]
        answers = [(await click(stack, token)).status_code for _ in range(4)]
        assert 429 not in answers[:3]
        assert answers[3] == 429, "the fourth use of one link"
        limited = await click(stack, token)
        assert limited.headers["retry-after"] == "1000"
        assert limited.json()["type"] == "urn:leadtrail:problem:rate-limited"
        other = await unsubscribe_link(stack, lead["subject_id"], "crm_sync")
        assert (await click(stack, other.json()["token"])).status_code == 202
        anything = await stack.client("consent_ledger").get("/v1/unsubscribe/garbage.link")
        assert anything.status_code == 429, "the seventh request from this client address"
    withdrawals = [e for e in await stack.events("consent-events") if e.type == "consent.withdrawn"]
    assert len({e.id for e in withdrawals}) == 2


@pytest.mark.parametrize(
    ("claims", "problem"),
    [
        ({"given_at": "2099-01-01T00:00:00Z"}, "consent-in-the-future"),
        ({"purpose": "telepathy"}, "unknown-purpose"),
    ],
)
async def test_both_services_refuse_the_same_consent_alike(
    stack: Cluster, claims: dict[str, str], problem: str
) -> None:
    """Issue 16 item 10: consent-ledger took a consent given in 2099, or to a purpose the
    tenant never declared, that lead-ingest refuses; one validation now serves both."""
    lead = await capture(stack)
    await consents(stack, lead["subject_id"], until=lambda v: len(v["history"]) == 2)
    grant = {
        "purpose": "marketing_email",
        "channel": "email",
        "notice_version": "2026-11",
        "given_at": "2026-11-05T10:00:00Z",
        **claims,
    }
    direct = await stack.client("consent_ledger").post(
        f"/v1/subjects/{lead['subject_id']}/consents", json=grant, headers=stack.auth()
    )
    body = sample_lead()
    body["consent"] |= {"given_at": grant["given_at"], "purposes": [grant["purpose"]]}
    with_a_lead = await stack.client("lead_ingest").post(
        "/v1/leads", json=body, headers=stack.auth()
    )
    for response in (direct, with_a_lead):
        assert response.status_code == 422, response.text
        assert response.json()["type"] == f"urn:leadtrail:problem:{problem}"
    view = await consents(stack, lead["subject_id"])
    assert len(view["history"]) == 2, "nothing was recorded"


async def test_withdrawing_the_only_basis_asks_for_erasure_r12(stack: Cluster) -> None:
    (stack.config_dir / "tenants" / "acme" / "purposes.yaml").write_text(ALL_CONSENT)
    body = sample_lead()
    body["consent"]["purposes"] = ["crm_sync", "marketing_email"]
    lead = await capture(stack, body)
    subject = lead["subject_id"]
    await consents(stack, subject, until=lambda v: len(v["history"]) == 2)
    client = stack.client("consent_ledger")
    withdraw = f"/v1/subjects/{subject}/consents/{{}}/withdraw"
    assert (
        await client.post(withdraw.format("marketing_email"), headers=stack.auth())
    ).status_code == 202
    await consents(stack, subject, until=lambda v: len(v["history"]) == 3)
    events = [e.type for e in await stack.events("consent-events")]
    assert "consent.no_basis_remaining" not in events, "crm_sync still has consent"
    await client.post(withdraw.format("crm_sync"), headers=stack.auth())
    exhausted = await stack.wait_for_event(
        "consent-events", lambda e: e.type == "consent.no_basis_remaining"
    )
    assert exhausted.subject_id == subject
    assert exhausted.data["withdrawn_purpose"] == "crm_sync"


async def test_withdrawn_consent_stops_scoring_in_lead_ingest(stack: Cluster) -> None:
    (stack.config_dir / "tenants" / "acme" / "purposes.yaml").write_text(ALL_CONSENT)
    body = sample_lead()
    body["consent"]["purposes"] = ["crm_sync", "profiling"]
    lead = await capture(stack, body)
    ingest, ledger = stack.client("lead_ingest"), stack.client("consent_ledger")
    lead_path = f"/v1/leads/{lead['lead_id']}"

    async def interact(answers: dict[str, Any]) -> None:
        response = await ingest.post(
            f"{lead_path}/interactions",
            json={"channel": "chat", "answers": answers},
            headers=stack.auth(),
        )
        assert response.status_code == 202

    await stack.get_json(
        "lead_ingest", lead_path, until=lambda v: v["processing"]["scoring_paused"] is None
    )
    await interact({"budget": 20000})
    scored = await stack.get_json("lead_ingest", lead_path, until=lambda v: v["score"])
    assert scored["score"]["value"] == 30
    await ledger.post(
        f"/v1/subjects/{lead['subject_id']}/consents/profiling/withdraw", headers=stack.auth()
    )
    paused = await stack.get_json(
        "lead_ingest", lead_path, until=lambda v: v["processing"]["scoring_paused"]
    )
    assert paused["processing"]["scoring_paused"] == "consent withdrawn (R11)"
    await interact({"role": "CEO"})
    stored = await stack.get_json(
        "lead_ingest", lead_path, until=lambda v: len(v["interactions"]) == 2
    )
    assert stored["score"]["value"] == 30, "no new score after the withdrawal"
    scored_events = [e for e in await stack.events("lead-events") if e.type == "lead.scored"]
    assert len(scored_events) == 1


async def test_verified_objection_suppresses_and_restriction_pauses(stack: Cluster) -> None:
    (stack.config_dir / "tenants" / "acme" / "purposes.yaml").write_text(ALL_CONSENT)
    lead = await capture(stack)
    subject = lead["subject_id"]
    ingest = stack.client("lead_ingest")
    await stack.get_json("lead_ingest", f"/v1/leads/{lead['lead_id']}")
    for request in (
        {"type": "objection", "purposes": ["partner_sharing"]},
        {"type": "restriction"},
    ):
        response = await ingest.post(
            "/v1/privacy-requests",
            json={
                **request,
                "subject": {"lead_id": lead["lead_id"]},
                "verification": {"method": "tenant_attestation", "attested_by": "dpo"},
            },
            headers=stack.auth(),
        )
        assert response.status_code == 202, response.text
    view = await consents(stack, subject, until=lambda v: v["restricted"] and v["suppressed"])
    assert purpose(view, "partner_sharing")["objected_at"] is not None
    assert purpose(view, "crm_sync")["reason"] == "processing is restricted (R14)"
    types = [e["type"] for e in view["history"]]
    assert {"objection.recorded", "suppression.added", "restriction.placed"} <= set(types)
    lead_view = await stack.get_json(
        "lead_ingest",
        f"/v1/leads/{lead['lead_id']}",
        until=lambda v: v["processing"]["suppressed"] and v["processing"]["restricted"],
    )
    assert lead_view["processing"]["scoring_paused"] == "processing is restricted (R14)"
    lifted = await stack.client("consent_ledger").delete(
        f"/v1/subjects/{subject}/restriction", headers=stack.auth()
    )
    assert lifted.status_code == 202
    await consents(stack, subject, until=lambda v: not v["restricted"])


async def test_tenant_walls_and_unknown_subjects(stack: Cluster) -> None:
    lead = await capture(stack)
    path = f"/v1/subjects/{lead['subject_id']}/consents"
    await consents(stack, lead["subject_id"])
    foreign = await stack.client("consent_ledger").get(path, headers=stack.auth("globex"))
    assert foreign.status_code == 404
    unknown = await stack.client("consent_ledger").get(
        "/v1/subjects/sub_nobody/consents", headers=stack.auth()
    )
    assert unknown.status_code == 404
    assert unknown.json()["type"] == "urn:leadtrail:problem:not-found"
    no_key = await stack.client("consent_ledger").get(path)
    assert no_key.status_code == 401


async def test_the_read_model_equals_a_replay_of_the_topic(stack: Cluster) -> None:
    lead = await capture(stack)
    subject = lead["subject_id"]
    ledger = stack.client("consent_ledger")
    await consents(stack, subject, until=lambda v: len(v["history"]) == 2)
    await ledger.post(
        f"/v1/subjects/{subject}/consents/marketing_email/withdraw", headers=stack.auth()
    )
    await ledger.post(
        f"/v1/subjects/{subject}/objections", json={"purposes": ["profiling"]}, headers=stack.auth()
    )
    await consents(stack, subject, until=lambda v: len(v["history"]) == 4)
    replayed = fold(
        fact
        for event in await stack.events("consent-events")
        if event.subject_id == subject
        for fact in [fact_from_event(event.type, event.id, event.occurred_at, event.data)]
        if fact is not None
    )
    document = (
        await stack.runtimes["consent_ledger"]
        .db["consent_subjects"]
        .find_one({"_id": f"acme:{subject}"})
    )
    assert document is not None
    live = fold(ConsentFact.from_document(f) for f in document["facts"])
    assert live == replayed
