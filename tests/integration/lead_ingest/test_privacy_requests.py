"""Privacy-request intake (R21, R26): recorded as events, verified before execution."""

from __future__ import annotations

from datetime import datetime

import pytest

from services.common.clear_fields import operator_hash
from tests.helpers import eventually
from tests.integration.lead_ingest.conftest import Ingest, sample_lead

pytestmark = pytest.mark.integration


async def _request_view(ingest: Ingest, request_id: str, status: str) -> dict[str, object]:
    async def probe() -> dict[str, object] | None:
        response = await ingest.client.get(
            f"/v1/privacy-requests/{request_id}", headers=ingest.auth()
        )
        body: dict[str, object] = response.json()
        return body if response.status_code == 200 and body["status"] == status else None

    return await eventually(probe, what=f"request {request_id} {status}")


async def test_an_attested_erasure_request_is_recorded_and_verified(ingest: Ingest) -> None:
    lead = (await ingest.post_lead(sample_lead())).json()
    response = await ingest.client.post(
        "/v1/privacy-requests",
        json={
            "type": "erasure",
            "subject": {"email": "MARIA.ROSSI@example.org"},
            "verification": {"method": "tenant_attestation", "attested_by": "dpo@acme.example"},
        },
        headers=ingest.auth(),
    )
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert accepted["status"] == "verified"
    received_at = datetime.fromisoformat(accepted["deadline"])
    assert received_at.tzinfo is not None

    view = await _request_view(ingest, accepted["request_id"], "verified")
    assert view["type"] == "erasure"
    assert view["subject_known"] is True
    events = await ingest.all_events("privacy-events")
    assert [e.type for e in events] == ["privacy.request.received", "privacy.request.verified"]
    assert {e.subject_id for e in events} == {lead["subject_id"]}
    verified = events[1]
    assert verified.version == 2
    assert "attested_by" not in verified.data, "the attester travels encrypted (issue 16)"
    secret = ingest.settings.blind_index_bytes()
    assert verified.data["attested_by_hash"] == operator_hash(secret, "dpo@acme.example")
    assert await ingest.runtime.cipher.decrypt(verified) == {"attested_by": "dpo@acme.example"}
    assert "maria" not in events[0].model_dump_json().casefold()


async def test_the_token_flow_verifies_only_with_the_right_token(ingest: Ingest) -> None:
    response = await ingest.client.post(
        "/v1/privacy-requests",
        json={
            "type": "access",
            "subject": {"phone": "+39 347 123 4567"},
            "verification": {"method": "token"},
            "relayed_by_tenant": False,
        },
        headers=ingest.auth(),
    )
    accepted = response.json()
    assert accepted["status"] == "received"
    token = accepted["verification_token"]
    await _request_view(ingest, accepted["request_id"], "received")
    path = f"/v1/privacy-requests/{accepted['request_id']}/verify"
    wrong = await ingest.client.post(path, json={"token": "x" * 32}, headers=ingest.auth())
    assert wrong.status_code == 422
    assert wrong.json()["type"] == "urn:leadtrail:problem:invalid-verification-token"
    right = await ingest.client.post(path, json={"token": token}, headers=ingest.auth())
    assert right.status_code == 202
    view = await _request_view(ingest, accepted["request_id"], "verified")
    assert view["subject_known"] is False, "nobody with that phone was known"
    reused = await ingest.client.post(path, json={"token": token}, headers=ingest.auth())
    assert reused.status_code == 422, "a token works once"


@pytest.mark.parametrize(
    "body",
    [
        {
            "type": "objection",
            "subject": {"email": "a@example.org"},
            "verification": {"method": "token"},
        },
        {
            "type": "rectification",
            "subject": {"email": "a@example.org"},
            "verification": {"method": "token"},
        },
        {"type": "erasure", "subject": {}, "verification": {"method": "token"}},
        {
            "type": "erasure",
            "subject": {"email": "a@example.org"},
            "verification": {"method": "telepathy"},
        },
        {
            "type": "forget-me",
            "subject": {"email": "a@example.org"},
            "verification": {"method": "token"},
        },
    ],
)
async def test_malformed_requests_are_refused(ingest: Ingest, body: dict[str, object]) -> None:
    response = await ingest.client.post("/v1/privacy-requests", json=body, headers=ingest.auth())
    assert response.status_code == 422
    assert response.json()["type"] == "urn:leadtrail:problem:validation-error"
    assert await ingest.all_events("privacy-events") == []


async def test_requests_are_tenant_scoped(ingest: Ingest) -> None:
    response = await ingest.client.post(
        "/v1/privacy-requests",
        json={
            "type": "objection",
            "subject": {"email": "a@example.org"},
            "verification": {"method": "tenant_attestation", "attested_by": "dpo"},
            "purposes": ["profiling"],
        },
        headers=ingest.auth(),
    )
    request_id = response.json()["request_id"]
    await _request_view(ingest, request_id, "verified")
    foreign = await ingest.client.get(
        f"/v1/privacy-requests/{request_id}", headers=ingest.auth(ingest.other_key)
    )
    assert foreign.status_code == 404


async def _answered_access_request(ingest: Ingest) -> tuple[str, dict[str, object]]:
    """An access request about a new lead, answered (lead-ingest's part is the package)."""
    lead = (await ingest.post_lead(sample_lead())).json()
    await ingest.lead(lead["lead_id"])
    response = await ingest.client.post(
        "/v1/privacy-requests",
        json={
            "type": "access",
            "subject": {"lead_id": lead["lead_id"]},
            "verification": {"method": "tenant_attestation", "attested_by": "dpo@acme.example"},
        },
        headers=ingest.auth(),
    )
    assert response.status_code == 202, response.text
    request_id: str = response.json()["request_id"]
    return request_id, await _request_view(ingest, request_id, "completed")


@pytest.mark.parametrize(
    "ingest",
    [{"export_parts": ["lead-ingest"], "public_url": "https://leads.acme.example/api/"}],
    indirect=True,
)
async def test_export_links_start_with_the_public_url_never_the_host_header(
    ingest: Ingest,
) -> None:
    """The link is the only credential for a person's whole data package: a request's Host
    header must not choose where it points (issue 16 item 5)."""
    request_id, view = await _answered_access_request(ingest)
    for host in ("evil.example", "leads.acme.example"):
        shown = await ingest.client.get(
            f"/v1/privacy-requests/{request_id}", headers={**ingest.auth(), "Host": host}
        )
        export = shown.json()["export"]
        for url in (export["url"], export["csv_url"]):
            assert url.startswith(f"https://leads.acme.example/api/v1/exports/{request_id}?")
    assert view["export"] is not None


@pytest.mark.parametrize(
    "ingest",
    [{"export_parts": ["lead-ingest"], "link_rate_limit_burst": 2, "link_rate_limit_per_s": 0.001}],
    indirect=True,
)
async def test_downloads_of_one_package_are_rate_limited(ingest: Ingest) -> None:
    """The download is a public route (the signed link is the credential): limited per
    package, however the link is changed (issue 16 item 6)."""
    _, view = await _answered_access_request(ingest)
    export = view["export"]
    assert isinstance(export, dict)
    assert (await ingest.client.get(export["url"])).status_code == 200
    url, _, signature = export["url"].partition("signature=")
    forged = await ingest.client.get(f"{url}signature={'0' * len(signature)}")
    assert forged.status_code == 403, forged.text
    limited = await ingest.client.get(export["csv_url"])
    assert limited.status_code == 429, limited.text
    assert limited.json()["type"] == "urn:leadtrail:problem:rate-limited"
    assert int(limited.headers["retry-after"]) >= 1


@pytest.mark.parametrize("ingest", [{"export_parts": ["lead-ingest"]}], indirect=True)
async def test_a_download_checks_the_signature_first_and_answers_alike_for_unknown_exports(
    ingest: Ingest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 16 item 8: nothing is decrypted for a link that is not ours, and an unknown
    request id answers exactly like a known one with a bad signature."""
    request_id, view = await _answered_access_request(ingest)
    export = view["export"]
    assert isinstance(export, dict)
    assembler = ingest.handlers.exports
    opened: list[str] = []
    package = assembler.package

    async def recording_package(request_id: str) -> object:
        opened.append(request_id)
        return await package(request_id)

    monkeypatch.setattr(assembler, "package", recording_package)
    url, _, signature = export["url"].partition("signature=")
    bad = await ingest.client.get(f"{url}signature={'0' * len(signature)}")
    unknown = await ingest.client.get(export["url"].replace(request_id, "pr_nothing"))
    assert opened == [], "the package was read before the signature was checked"
    assert bad.status_code == unknown.status_code == 403
    assert bad.json() | {"instance": None} == unknown.json() | {"instance": None}
    assert bad.json()["type"] == "urn:leadtrail:problem:invalid-export-signature"
    good = await ingest.client.get(export["url"])
    assert good.status_code == 200
    assert opened == [request_id]
