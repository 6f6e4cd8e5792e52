"""Value types shared by several event payloads."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints

__all__ = ["Channel", "Identifier", "LegalBasis", "OperatorHash", "Purpose", "ShortText"]

Purpose = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{1,48}$")]
"""A processing purpose declared by the tenant, e.g. ``crm_sync`` or ``marketing_email``."""

LegalBasis = Literal["consent", "contract", "legitimate_interest", "legal_obligation"]
"""The lawful bases of GDPR art. 6(1) that Leadtrail records (R9)."""

Channel = Literal["web_form", "whatsapp", "phone", "email", "chat", "sms", "api"]
"""Where a lead, an answer or a consent came from."""

Identifier = Literal["email", "phone"]
"""Personal identifiers that link records to one data subject (R5)."""

ShortText = Annotated[str, StringConstraints(min_length=1, max_length=500, strip_whitespace=True)]

Sha256Hex = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]

OperatorHash = Annotated[
    str,
    Field(
        pattern=r"^[0-9a-f]{64}$",
        description="HMAC-SHA256 (hex) of an operator's name or e-mail under a secret key: "
        "kept in clear for accountability, it names no one to a reader without the key",
    ),
]
"""A tenant operator (reviewer, attester) as it may stay in clear: a keyed hash, not a name."""
