"""Signed, expiring one-click unsubscribe tokens, one per subject and purpose (R11).

A token is ``<payload>.<signature>``: the payload is base64url JSON ``{t, s, p, exp}`` (tenant,
subject, purpose, expiry as a Unix time), the signature HMAC-SHA256 over the payload under the
unsubscribe key. Nothing is stored: the signature proves the link was issued by us, the
expiry bounds its life, and it names no personal data (subject ids are pseudonymous).
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


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(key: bytes, payload: str) -> str:
    return _b64(hmac.new(key, payload.encode(), hashlib.sha256).digest())


def issue(key: bytes, token: UnsubscribeToken) -> str:
    payload = _b64(
        json.dumps(
            {
                "t": token.tenant_id,
                "s": token.subject_id,
                "p": token.purpose,
                "exp": int(token.expires_at.timestamp()),
            },
            separators=(",", ":"),
        ).encode()
    )
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
        )
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise InvalidTokenError("this unsubscribe link is not valid") from None
    if token.expires_at < now:
        raise InvalidTokenError("this unsubscribe link has expired")
    return token
