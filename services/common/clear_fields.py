"""Fields that travel in clear (not encrypted with the person's key): what they may hold.

Personal data in an event goes in its encrypted part, so erasing the person (destroying the
key) makes it unreadable. A field that stays in clear must not be able to carry personal data
that erasure would miss, so the API constrains it to what it is for (docs/lead-ingest.md, "What
stays in clear"):

* a URL without user information, query string or fragment (a form's address, not a link with
  ``?email=...``);
* identifiers by pattern (a notice version, a collection point): letters, digits and
  ``. _ : / + -``, no ``@``, no spaces;
* a third-party source's provider (a company) and its attestation's reference (a contract or
  batch number): letters, digits, spaces and ``. , & ' ( ) _ / + # -``; no ``@``, so no
  e-mail address; the attestation's statement: any text without ``@``;
* a tenant operator (who reviewed a score, who attested a request): a keyed hash
  (:func:`operator_hash`); the name itself travels encrypted.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated

from pydantic import Field

__all__ = [
    "CLEAR_URL",
    "IDENTIFIER",
    "PROVIDER_TEXT",
    "TEXT_WITHOUT_AT",
    "ClearUrl",
    "CollectionPoint",
    "NoticeVersion",
    "ProviderName",
    "operator_hash",
]

CLEAR_URL = r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[^\s?#@]*)?$"
"""http(s), a host (no ``user@``), an optional port and path; no query, fragment or ``@``."""
IDENTIFIER = r"^[A-Za-z0-9][A-Za-z0-9._:/+-]*$"

ClearUrl = Annotated[
    str,
    Field(
        pattern=CLEAR_URL,
        max_length=2000,
        description="http(s) URL without user information, query string or fragment: it is "
        "stored in clear",
    ),
]
NoticeVersion = Annotated[
    str,
    Field(
        pattern=IDENTIFIER,
        min_length=1,
        max_length=100,
        description="the privacy notice's version, e.g. 2026-10 (an identifier: stored in clear)",
    ),
]
CollectionPoint = Annotated[
    str,
    Field(
        pattern=rf"{IDENTIFIER}|{CLEAR_URL}",
        max_length=2000,
        description="where the consent was collected: an identifier (form-contact-v2) or a URL "
        "without query string (stored in clear)",
    ),
]

PROVIDER_TEXT = r"^[A-Za-z0-9][A-Za-z0-9 .,&'()_/+#-]*$"
"""A company's name or a contract number: no ``@`` (no e-mail), nothing but these characters."""

ProviderName = Annotated[
    str,
    Field(
        pattern=PROVIDER_TEXT,
        min_length=1,
        max_length=200,
        description="the lead-generation company (B2B Leads Ltd), never a person: stored in "
        "clear; letters, digits, spaces and . , & ' ( ) _ / + # -",
    ),
]
TEXT_WITHOUT_AT = r"^[^@]*[^\s\x1c-\x1f@][^@]*$"
"""Some text that is not blank and has no ``@`` (no e-mail address)."""


def operator_hash(secret: bytes, who: str) -> str:
    """What stays in clear of a tenant operator named in an event (a reviewer, an attester):
    HMAC-SHA256 (hex) of the name or e-mail, trimmed and lower-cased, under ``secret``
    (lead-ingest's blind-index key). The same operator always gives the same hash, so who
    reviewed or attested can be checked after the subject's erasure shredded the name; without
    the key it can't be turned back into a guessed e-mail."""
    return hmac.new(secret, who.strip().casefold().encode(), hashlib.sha256).hexdigest()
