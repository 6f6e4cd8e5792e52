"""A generic HTTPS webhook, for CRMs without an adapter: signed JSON events to one URL.

``POST <url>`` with ``Content-Type: application/json`` and::

    {"type": "crm.lead_upserted" | "crm.lead_deleted", "id": "<uuid>",
     "occurred_at": "2026-11-02T10:00:00.000Z", "lead": {...}}

Headers: ``X-Leadtrail-Delivery: <id>`` (the body's ``id``), ``X-Leadtrail-Timestamp: <unix
seconds>`` and ``X-Leadtrail-Signature: v1=<hex HMAC-SHA256(secret, f"{timestamp}.{raw body}")>``.
Receivers check it with :func:`verify_webhook`, which also refuses timestamps more than
``tolerance_s`` (300) seconds from their clock, so a captured request cannot be replayed later.

A 2xx answer is success. The record id is the answer's JSON ``record_id`` when it has one, else
the record id crm-sync already had, else the lead id. On delete, 404 and 410 count as done;
a delete event carries identifiers only, never personal data.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx

from services.crm_sync.adapters._http import HttpAdapter, json_or_none
from services.crm_sync.adapters.base import CrmContact
from services.crm_sync.adapters.config import ConnectionConfig

__all__ = [
    "EVENT_DELETED",
    "EVENT_UPSERTED",
    "HEADER_DELIVERY",
    "HEADER_SIGNATURE",
    "HEADER_TIMESTAMP",
    "WebhookAdapter",
    "WebhookVerificationError",
    "lead_payload",
    "sign_webhook",
    "verify_webhook",
]

EVENT_UPSERTED = "crm.lead_upserted"
EVENT_DELETED = "crm.lead_deleted"
HEADER_TIMESTAMP = "X-Leadtrail-Timestamp"
HEADER_SIGNATURE = "X-Leadtrail-Signature"
HEADER_DELIVERY = "X-Leadtrail-Delivery"
_SUCCESS = range(200, 300)
_TEXT_LIMIT = 200


class WebhookVerificationError(ValueError):
    """A webhook request that must be refused: bad or missing signature, stale timestamp."""


def sign_webhook(secret: bytes, timestamp: str, body: bytes) -> str:
    """The ``X-Leadtrail-Signature`` value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret, timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return f"v1={mac.hexdigest()}"


def verify_webhook(  # noqa: PLR0917 (the receivers' documented signature)
    secret: bytes,
    timestamp: str,
    body: bytes,
    signature: str,
    now: float,
    tolerance_s: int = 300,
) -> None:
    """Raise :class:`WebhookVerificationError` unless the request is authentic and fresh.

    ``body`` must be the raw bytes received, before any JSON parsing. ``signature`` may list
    several ``v1=`` values separated by commas (as while a secret is being rotated); one match
    is enough. The timestamp must be within ``tolerance_s`` of ``now`` either way.
    """
    stamp = timestamp.strip()
    if not stamp.isascii() or not stamp.isdigit() or len(stamp) > 12:
        raise WebhookVerificationError("malformed timestamp")
    age = now - int(stamp)
    if age > tolerance_s:
        raise WebhookVerificationError("timestamp too old")
    if age < -tolerance_s:
        raise WebhookVerificationError("timestamp in the future")
    offered = [
        part.strip()[3:].encode("utf-8")
        for part in signature.split(",")
        if part.strip().startswith("v1=")
    ]
    if not offered:
        raise WebhookVerificationError("no v1 signature")
    expected = sign_webhook(secret, stamp, body)[3:].encode("ascii")
    if not any(hmac.compare_digest(expected, candidate) for candidate in offered):
        raise WebhookVerificationError("signature mismatch")


def lead_payload(contact: CrmContact, record_id: str | None) -> dict[str, Any]:
    """The ``lead`` object of a ``crm.lead_upserted`` event."""
    return {
        "lead_id": contact.lead_id,
        "subject_id": contact.subject_id,
        "tenant_id": contact.tenant_id,
        "record_id": record_id,
        "email": contact.email,
        "phone": contact.phone,
        "first_name": contact.first_name,
        "last_name": contact.last_name,
        "company": contact.company,
        "job_title": contact.job_title,
        "score": contact.score,
        "qualified": contact.qualified,
        "interaction_summary": contact.interaction_summary,
        "source": contact.source,
        "extra": dict(contact.extra),
    }


class WebhookAdapter(HttpAdapter):
    kind = "webhook"
    vendor = "Webhook"

    def __init__(
        self,
        config: ConnectionConfig,
        client: httpx.AsyncClient | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(config, client)
        self._clock = clock

    async def upsert(self, contact: CrmContact, record_id: str | None) -> str:
        response = await self._deliver(
            EVENT_UPSERTED, lead_payload(contact, record_id), "deliver upsert", _SUCCESS
        )
        body = json_or_none(response)
        returned = body.get("record_id") if isinstance(body, dict) else None
        if isinstance(returned, str | int) and not isinstance(returned, bool) and str(returned):
            return str(returned)
        return record_id or contact.lead_id

    async def delete(self, contact: CrmContact | None, record_id: str) -> None:
        lead: dict[str, Any] = {"record_id": record_id}
        if contact is not None:
            lead |= {
                "lead_id": contact.lead_id,
                "subject_id": contact.subject_id,
                "tenant_id": contact.tenant_id,
            }
        await self._deliver(EVENT_DELETED, lead, "deliver delete", (*_SUCCESS, 404, 410))

    async def _deliver(
        self, event_type: str, lead: dict[str, Any], what: str, expect: tuple[int, ...] | range
    ) -> httpx.Response:
        now = self._clock()
        delivery = str(uuid.uuid4())
        occurred_at = datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds")
        event = {
            "type": event_type,
            "id": delivery,
            "occurred_at": occurred_at.replace("+00:00", "Z"),
            "lead": lead,
        }
        body = json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        timestamp = str(int(now))
        secret = self._secret_value().encode("utf-8")
        return await self._request(
            "POST",
            "",
            what,
            content=body,
            headers={
                "Content-Type": "application/json",
                HEADER_DELIVERY: delivery,
                HEADER_TIMESTAMP: timestamp,
                HEADER_SIGNATURE: sign_webhook(secret, timestamp, body),
            },
            expect=expect,
        )

    def _auth(self) -> tuple[dict[str, str], dict[str, str]]:
        return {}, {}  # the signature authenticates; the secret never goes over the wire

    def _error_text(self, response: httpx.Response) -> str:
        """Receivers answer errors in any shape: a JSON message if there is one, else text."""
        body = json_or_none(response)
        if isinstance(body, dict):
            for key in ("error", "message", "detail", "title"):
                if isinstance(body.get(key), str) and body[key]:
                    return str(body[key])[:_TEXT_LIMIT]
        text = " ".join(response.text.split())
        if text and body is None:
            return text[:_TEXT_LIMIT]
        return super()._error_text(response)
