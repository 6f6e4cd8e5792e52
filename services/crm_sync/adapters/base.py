"""What every CRM adapter shares: the contact it sends, its error, its protocol, its factory.

crm-sync calls an adapter with a :class:`CrmContact` and the CRM's record id it stored from the
previous call (or None the first time). ``upsert`` returns the record id to store; ``delete``
erases the record. Every failure is a :class:`CrmError` that says whether retrying can help.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from services.crm_sync.adapters.config import ConnectionConfig

if TYPE_CHECKING:
    import httpx

__all__ = [
    "ConnectionConfig",
    "CrmAdapter",
    "CrmContact",
    "CrmError",
    "build_adapter",
    "parse_retry_after",
]

# "third_party:<provider>", the provider as lead-ingest got it (1-200 characters, any but controls)
_SOURCE = re.compile(r"^(web_form|third_party:[^\x00-\x1f\x7f]{1,200})$")
_BODY_LIMIT = 2000


@dataclass(frozen=True)
class CrmContact:
    """A lead as crm-sync sends it to a CRM; any personal field may be None.

    The personal fields are left out of ``repr`` so that logging a contact never logs a person.
    ``extra`` holds custom CRM properties, already named by the tenant's field mapping; adapters
    send them as given, after the standard fields (so a mapping can override one).
    """

    lead_id: str
    subject_id: str
    tenant_id: str
    email: str | None = field(repr=False)
    phone: str | None = field(repr=False)
    first_name: str | None = field(repr=False)
    last_name: str | None = field(repr=False)
    company: str | None = field(repr=False)
    job_title: str | None = field(repr=False)
    score: int | None
    qualified: bool
    interaction_summary: str | None = field(repr=False)
    source: str
    extra: Mapping[str, str] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if not _SOURCE.match(self.source):
            raise ValueError("source must be 'web_form' or 'third_party:<provider>'")

    @property
    def full_name(self) -> str | None:
        parts = [part for part in (self.first_name, self.last_name) if part]
        return " ".join(parts) or None


class CrmError(Exception):
    """A CRM call that failed. ``transient`` says whether the same call may succeed later.

    Transient: timeouts, connection errors, 429 (``retry_after`` from ``Retry-After``) and 5xx,
    plus the rate-limit answers a vendor documents under another status (see each adapter).
    Permanent: every other 4xx and anything wrong with the configuration. ``body`` is the
    vendor's response text, cut to 2000 characters; it can echo personal data, so log
    ``str(error)`` rather than the body.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None,
        transient: bool,
        retry_after: float | None = None,
        body: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.transient = transient
        self.retry_after = retry_after
        self.body = body[:_BODY_LIMIT] if body is not None else None

    def __repr__(self) -> str:
        return (
            f"CrmError({self.message!r}, status={self.status}, transient={self.transient}, "
            f"retry_after={self.retry_after})"
        )


@runtime_checkable
class CrmAdapter(Protocol):
    """One CRM connection of one tenant."""

    kind: str

    async def upsert(self, contact: CrmContact, record_id: str | None) -> str:
        """Create or update the contact's record; returns the CRM record id to keep."""
        ...

    async def delete(self, contact: CrmContact | None, record_id: str) -> None:
        """Erase the record (the vendor's GDPR delete where it has one). Gone already is fine."""
        ...

    async def aclose(self) -> None:
        """Close the HTTP client if the adapter created it."""
        ...


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: delay-seconds or an HTTP-date (RFC 9110).

    None when absent or unreadable; never negative (a date in the past means "now").
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    current = time.time() if now is None else now
    return max(0.0, moment.timestamp() - current)


def build_adapter(config: ConnectionConfig, client: httpx.AsyncClient | None = None) -> CrmAdapter:
    """The adapter for ``config.kind``. With ``client`` given, the adapter uses it and leaves
    closing it to the caller; otherwise it makes its own and closes it in ``aclose``."""
    # The vendor modules import this one, so they are imported here, when first needed.
    from services.crm_sync.adapters.hubspot import HubSpotAdapter
    from services.crm_sync.adapters.pipedrive import PipedriveAdapter
    from services.crm_sync.adapters.salesforce import SalesforceAdapter
    from services.crm_sync.adapters.webhook import WebhookAdapter

    match config.kind:
        case "hubspot":
            return HubSpotAdapter(config, client)
        case "salesforce":
            return SalesforceAdapter(config, client)
        case "pipedrive":
            return PipedriveAdapter(config, client)
        case "webhook":
            return WebhookAdapter(config, client)
