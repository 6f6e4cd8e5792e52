"""Signed, expiring one-click unsubscribe tokens, one per subject, purpose and grant (R11).

A token is ``<payload>.<signature>``: the payload is base64url JSON ``{t, s, p, g, exp}``
(tenant, subject, purpose, the id of the ``consent.granted`` event in force when the link was
issued, expiry as a Unix time), the signature HMAC-SHA256 over the payload under the
unsubscribe key. Nothing is stored: the signature proves the link was issued by us, the
expiry bounds its life, the grant id limits it to the consent it was issued for (a later
grant, after the person agreed again, is out of its reach), and it names no personal data
(subject ids are pseudonymous). Tokens issued before the grant id was added have no ``g``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime

__all__ = ["InvalidTokenError", "UnsubscribeToken", "issue", "verify"]


class InvalidTokenError(ValueError):
    pass


@dataclass(frozen=True)
class UnsubscribeToken:
    tenant_id: str
    subject_id: str
    purpose: str
    expires_at: datetime
    grant_id: str | None = None
    """The ``consent.granted`` event the link withdraws; None in tokens issued before it was
    recorded (see :func:`services.consent_ledger.api.ConsentApi.unsubscribe_now`)."""


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(key: bytes, payload: str) -> str:
    return _b64(hmac.new(key, payload.encode(), hashlib.sha256).digest())


def issue(key: bytes, token: UnsubscribeToken) -> str:
    fields: dict[str, str | int] = {
        "t": token.tenant_id,
        "s": token.subject_id,
        "p": token.purpose,
        "exp": int(token.expires_at.timestamp()),
    }
    if token.grant_id is not None:
        fields["g"] = token.grant_id
    payload = _b64(json.dumps(fields, separators=(",", ":")).encode())
    return f"{payload}.{_sign(key, payload)}"


def verify(key: bytes, text: str, now: datetime) -> UnsubscribeToken:
    # A token we issued is ASCII; anything else is refused before it reaches compare_digest,
    # which raises TypeError on non-ASCII text.
    payload, sep, signature = text.partition(".")
    if not sep or not text.isascii() or not hmac.compare_digest(_sign(key, payload), signature):
        raise InvalidTokenError("this unsubscribe link is not valid")
    try:
        fields = json.loads(_unb64(payload))
        token = UnsubscribeToken(
            tenant_id=str(fields["t"]),
            subject_id=str(fields["s"]),
            purpose=str(fields["p"]),
            expires_at=datetime.fromtimestamp(int(fields["exp"]), UTC),
            grant_id=None if fields.get("g") is None else str(fields["g"]),
        )
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise InvalidTokenError("this unsubscribe link is not valid") from None
    if token.expires_at < now:
        raise InvalidTokenError("this unsubscribe link has expired")
    return token
