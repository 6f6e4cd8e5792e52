"""The signed webhook: signatures and replay protection, the event body, the receiver's id."""

from __future__ import annotations

import json
import time
import uuid

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.crm_sync.adapters.base import ConnectionConfig, CrmError
from services.crm_sync.adapters.webhook import (
    EVENT_DELETED,
    EVENT_UPSERTED,
    HEADER_DELIVERY,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    WebhookAdapter,
    WebhookVerificationError,
    sign_webhook,
    verify_webhook,
)
from tests.crm_fakes import WebhookReceiverFake
from tests.crm_fakes.samples import sample_contact

SECRET = b"whsec_test_secret"
NOW = 1_800_000_000.0
STAMP = str(int(NOW))
BODY = b'{"type":"crm.lead_upserted","lead":{"lead_id":"L1"}}'


def test_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    import hashlib
    import hmac

    expected = hmac.new(SECRET, f"{STAMP}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert sign_webhook(SECRET, STAMP, BODY) == f"v1={expected}"


def test_a_good_signature_verifies() -> None:
    verify_webhook(SECRET, STAMP, BODY, sign_webhook(SECRET, STAMP, BODY), NOW)
    verify_webhook(SECRET, STAMP, BODY, sign_webhook(SECRET, STAMP, BODY), NOW + 299)


def test_any_of_several_signatures_may_match_during_rotation() -> None:
    old = sign_webhook(b"old-secret", STAMP, BODY)
    verify_webhook(SECRET, STAMP, BODY, f"{old}, {sign_webhook(SECRET, STAMP, BODY)}", NOW)


@pytest.mark.parametrize(
    ("secret", "stamp", "body", "signature", "now", "reason"),
    [
        (SECRET, STAMP, BODY + b" ", None, NOW, "signature mismatch"),  # tampered body
        (b"other", STAMP, BODY, None, NOW, "signature mismatch"),  # wrong secret
        (SECRET, STAMP, BODY, None, NOW + 301, "timestamp too old"),  # a replay, later
        (SECRET, STAMP, BODY, None, NOW - 301, "timestamp in the future"),
        (SECRET, "17e8", BODY, "v1=00", NOW, "malformed timestamp"),
        (SECRET, "", BODY, "v1=00", NOW, "malformed timestamp"),
        (SECRET, STAMP, BODY, "", NOW, "no v1 signature"),
        (SECRET, STAMP, BODY, "v0=abc", NOW, "no v1 signature"),
        (SECRET, STAMP, BODY, "v1=ünïcode", NOW, "signature mismatch"),
    ],
)
def test_bad_requests_are_refused(  # noqa: PLR0917 (one parameter per column)
    secret: bytes, stamp: str, body: bytes, signature: str | None, now: float, reason: str
) -> None:
    offered = signature if signature is not None else sign_webhook(SECRET, STAMP, BODY)
    with pytest.raises(WebhookVerificationError, match=reason):
        verify_webhook(secret, stamp, body, offered, now)


def test_a_timestamp_moved_to_now_breaks_the_signature() -> None:
    """Replaying an old request with a fresh timestamp header: the HMAC covers the timestamp."""
    old_stamp = str(int(NOW) - 3600)
    signature = sign_webhook(SECRET, old_stamp, BODY)
    with pytest.raises(WebhookVerificationError, match="signature mismatch"):
        verify_webhook(SECRET, STAMP, BODY, signature, NOW)


@settings(max_examples=60, deadline=None)
@given(secret=st.binary(min_size=1, max_size=64), body=st.binary(max_size=512), data=st.data())
def test_signatures_verify_and_any_flipped_byte_is_caught(
    secret: bytes, body: bytes, data: st.DataObject
) -> None:
    signature = sign_webhook(secret, STAMP, body)
    verify_webhook(secret, STAMP, body, signature, NOW)
    if body:
        index = data.draw(st.integers(0, len(body) - 1))
        flipped = body[:index] + bytes([body[index] ^ 0x01]) + body[index + 1 :]
        with pytest.raises(WebhookVerificationError):
            verify_webhook(secret, STAMP, flipped, signature, NOW)


# -- the adapter against the receiver --------------------------------------------------------
async def test_upsert_sends_a_signed_event_and_keeps_the_receivers_id(
    webhook: WebhookReceiverFake, webhook_adapter: WebhookAdapter
) -> None:
    record_id = await webhook_adapter.upsert(sample_contact(), None)
    assert record_id == "wh-1"
    assert await webhook_adapter.upsert(sample_contact(score=91), record_id) == "wh-1"
    assert webhook.records["wh-1"]["score"] == 91

    request = webhook.requests[0]
    event = request.json()
    assert event["type"] == EVENT_UPSERTED
    assert str(uuid.UUID(event["id"])) == event["id"] == request.headers[HEADER_DELIVERY.lower()]
    assert event["occurred_at"].endswith("Z")
    assert abs(int(request.headers[HEADER_TIMESTAMP.lower()]) - time.time()) < 5
    assert request.headers[HEADER_SIGNATURE.lower()].startswith("v1=")
    assert request.headers["content-type"] == "application/json"
    assert event["lead"] == {
        "lead_id": "01JF8Z6V2M9Q4T7X1C3B5N8K0D",
        "subject_id": "subj_7f3a9c2e",
        "tenant_id": "acme",
        "record_id": None,
        "email": "jane.doe@example.com",
        "phone": "+4915112345678",
        "first_name": "Jane",
        "last_name": "Doe",
        "company": "Example GmbH",
        "job_title": "Head of Purchasing",
        "score": 82,
        "qualified": True,
        "interaction_summary": "whatsapp 2026-11-02: budget=15000; timeline=this quarter",
        "source": "web_form",
        "extra": {},
    }
    assert webhook.requests[1].json()["lead"]["record_id"] == "wh-1"
    assert webhook.rejected == []


@pytest.mark.parametrize("respond", ["empty", "text"])
async def test_without_a_record_id_in_the_answer_the_lead_id_is_used(
    webhook: WebhookReceiverFake, webhook_adapter: WebhookAdapter, respond: str
) -> None:
    webhook.respond = respond  # type: ignore[assignment]
    lead_id = sample_contact().lead_id
    assert await webhook_adapter.upsert(sample_contact(), None) == lead_id
    assert await webhook_adapter.upsert(sample_contact(), "kept-id") == "kept-id"


async def test_delete_carries_identifiers_only(
    webhook: WebhookReceiverFake, webhook_adapter: WebhookAdapter
) -> None:
    record_id = await webhook_adapter.upsert(sample_contact(), None)
    await webhook_adapter.delete(sample_contact(), record_id)
    event = webhook.requests[-1].json()
    assert event["type"] == EVENT_DELETED
    assert event["lead"] == {
        "record_id": record_id,
        "lead_id": sample_contact().lead_id,
        "subject_id": "subj_7f3a9c2e",
        "tenant_id": "acme",
    }
    assert webhook.records == {}
    await webhook_adapter.delete(None, record_id)  # the receiver answers 404: done anyway
    assert webhook.requests[-1].status == 404
    assert webhook.requests[-1].json()["lead"] == {"record_id": record_id}


async def test_a_receiver_with_a_skewed_clock_refuses_and_that_is_permanent(
    webhook: WebhookReceiverFake, webhook_adapter: WebhookAdapter
) -> None:
    webhook.clock = lambda: time.time() + 3600
    try:
        with pytest.raises(CrmError) as caught:
            await webhook_adapter.upsert(sample_contact(), None)
    finally:
        webhook.clock = time.time
    assert (caught.value.status, caught.value.transient) == (401, False)
    assert "timestamp too old" in str(caught.value)
    assert webhook.rejected[0][0] == "timestamp too old"


async def test_the_receiver_refuses_a_tampered_or_replayed_request(
    webhook: WebhookReceiverFake, webhook_adapter: WebhookAdapter
) -> None:
    await webhook_adapter.upsert(sample_contact(), None)
    original = webhook.requests[0]
    headers = {
        name: original.headers[name.lower()]
        for name in (HEADER_DELIVERY, HEADER_TIMESTAMP, HEADER_SIGNATURE)
    } | {"Content-Type": "application/json"}
    tampered = json.loads(original.body)
    tampered["lead"]["email"] = "attacker@example.com"
    async with httpx.AsyncClient() as client:
        changed = await client.post(webhook.url, content=json.dumps(tampered), headers=headers)
        webhook.clock = lambda: time.time() + 600
        try:
            replayed = await client.post(webhook.url, content=original.body, headers=headers)
        finally:
            webhook.clock = time.time
    assert (changed.status_code, changed.json()) == (401, {"error": "signature mismatch"})
    assert (replayed.status_code, replayed.json()) == (401, {"error": "timestamp too old"})
    assert webhook.records["wh-1"]["email"] == "jane.doe@example.com"


async def test_plain_http_is_only_allowed_to_loopback() -> None:
    with pytest.raises(ValueError, match="https"):
        ConnectionConfig(id="w", kind="webhook", url="http://crm.example.com/hook", secret_env="X")
    config = ConnectionConfig(
        id="w", kind="webhook", url="https://crm.example.com/hook/", secret_env="X"
    )
    assert config.api_root == "https://crm.example.com/hook/"  # exactly as configured
