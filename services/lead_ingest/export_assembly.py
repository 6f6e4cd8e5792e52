"""Answering access and portability requests (R22, R23, R26): collect the parts, assemble the
package, sign download links.

When a request of type ``access`` or ``portability`` is verified, every service that holds data
about the subject publishes its ``privacy.export_part`` (lead-ingest too, through the same
path). lead-ingest assembles them because it owns the request's lifecycle and its API: the
package is stored next to the request and downloaded from it, without another hop.

* ``exports``: one document per request, keyed by request id: the parts as they arrived (still
  encrypted, as in their events), then the assembled package, encrypted under the subject's key
  (an erasure shreds it like everything else) and bound to the request id.
* With every expected part in, the package is assembled once and ``privacy.request.completed``
  is published with an id derived from the request, so redeliveries repeat the same event.

Parts of one subject arrive on one partition (the Kafka key is the subject), so one consumer
handles them in order: no two handlers assemble the same request at once.

Download links carry an HMAC-SHA256 signature over tenant, request, format and expiry
(:func:`sign`), so they can be handed to the person without an API key; a changed link is
refused (403), an expired one is gone (410).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import urlencode

from pymongo.asynchronous.collection import AsyncCollection

from contracts import EncryptedPII, EventEnvelope
from contracts.events import privacy
from services.common.crypto import seal_of
from services.common.export_package import (
    EXPORT_REQUEST_TYPES,
    ExportFormat,
    ExportPackage,
    ExportPart,
    assemble,
    package_sha256,
    send_export_part,
)
from services.common.logging import get_logger
from services.common.publisher import derived_event_id
from services.common.runtime import Runtime
from services.common.store import Document, apply_once, find_owned
from services.lead_ingest.export_part import export_part
from services.lead_ingest.projection import LeadProjection
from services.lead_ingest.schemas import ExportLink

__all__ = [
    "FORMATS",
    "ExportAssembler",
    "LinkError",
    "check",
    "export_link",
    "sign",
    "signed_query",
]

log = get_logger(__name__)
FORMATS: tuple[ExportFormat, ...] = ("json", "csv")


def _package_aad(request_id: str) -> str:
    return f"export:{request_id}"


class LinkError(Exception):
    def __init__(self, status: int, slug: str, title: str) -> None:
        super().__init__(title)
        self.status, self.slug, self.title = status, slug, title


def sign(key: bytes, tenant_id: str, request_id: str, fmt: str, expires: int) -> str:
    message = f"{tenant_id}\n{request_id}\n{fmt}\n{expires}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def signed_query(key: bytes, tenant_id: str, request_id: str, fmt: str, expires: int) -> str:
    signature = sign(key, tenant_id, request_id, fmt, expires)
    return urlencode({"format": fmt, "expires": expires, "signature": signature})


def check(
    key: bytes,
    *,
    tenant_id: str,
    request_id: str,
    fmt: str,
    expires: int,
    signature: str,
    now: datetime,
) -> None:
    """Raise :class:`LinkError`: 403 for a link that was not issued so, 410 once expired."""
    expected = sign(key, tenant_id, request_id, fmt, expires)
    if not hmac.compare_digest(expected, signature):
        raise LinkError(403, "invalid-export-signature", "The download link is not valid")
    if expires < int(now.timestamp()):
        raise LinkError(410, "export-link-expired", "The download link has expired")


def export_link(
    key: bytes, *, ttl_s: int, now: datetime, base_url: str, tenant_id: str, request: Document
) -> ExportLink | None:
    """A fresh signed link to a request's package (from its read-model document), or None
    while there is none. ``base_url`` is where lead-ingest's API is reached from outside
    (``LEADTRAIL_PUBLIC_URL``), never the request's Host header."""
    if request["type"] not in EXPORT_REQUEST_TYPES or not request.get("export_formats"):
        return None
    expires_at = (now + timedelta(seconds=ttl_s)).replace(microsecond=0)
    expires = int(expires_at.timestamp())
    path = f"{base_url.rstrip('/')}/v1/exports/{request['_id']}"

    def url(fmt: str) -> str:
        return f"{path}?{signed_query(key, tenant_id, str(request['_id']), fmt, expires)}"

    return ExportLink(url=url("json"), format="json", expires_at=expires_at, csv_url=url("csv"))


@dataclass
class ExportAssembler:
    runtime: Runtime
    projection: LeadProjection
    expected: Sequence[str]
    exports: AsyncCollection[Document] = field(init=False)

    def __post_init__(self) -> None:
        self.exports = self.runtime.db["exports"]

    async def send_own_part(self, cause: EventEnvelope) -> None:
        """lead-ingest's own part, through the same event as everyone else's."""
        part = await export_part(
            self.projection, self.runtime.cipher, cause.tenant_id, cause.subject_id
        )
        await send_export_part(self.runtime.publisher, cause, part)

    async def add_part(self, envelope: EventEnvelope, data: privacy.ExportPartV1) -> None:
        await apply_once(
            self.exports,
            data.request_id,
            envelope.id,
            {
                "$set": {
                    "tenant_id": envelope.tenant_id,
                    "subject_id": envelope.subject_id,
                    f"parts.{data.service}": seal_of(envelope),
                }
            },
        )
        document = await find_owned(self.exports, data.request_id, envelope.tenant_id)
        if document is None or set(self.expected) - set(document.get("parts", {})):
            return
        await self.complete(envelope, document)

    async def complete(self, cause: EventEnvelope, document: Document) -> None:
        request_id = str(document["_id"])
        request = await self.projection.request(cause.tenant_id, request_id)
        if request is None:
            raise LookupError(f"export parts for request {request_id} before the request")
        summary = document.get("summary")
        if summary is None:
            summary = await self.assemble_and_store(document)
        await self.runtime.publisher.publish(
            privacy.PrivacyRequestCompletedV1(
                request_id=request_id, request_type=request["type"], **summary
            ),
            tenant_id=cause.tenant_id,
            subject_id=cause.subject_id,
            correlation_id=cause.correlation_id,
            causation_id=cause.id,
            event_id=derived_event_id(request_id, "privacy.request.completed"),
        )
        log.info("export ready", request_id=request_id, parts=summary["parts"])

    async def assemble_and_store(self, document: Document) -> dict[str, object]:
        """Decrypt the parts, assemble, store the package encrypted; the completion summary."""
        tenant_id, subject_id = document["tenant_id"], document["subject_id"]
        parts = []
        for service, stored in sorted(document["parts"].items()):
            plain = await self.runtime.cipher.open_sealed(document, stored) if stored else None
            if plain is None:
                # Erased between the request and now: nothing personal may be delivered.
                summary: dict[str, object] = {"parts": [], "records": {}, "formats": []}
                await self.exports.update_one(
                    {"_id": document["_id"]}, {"$set": {"summary": summary, "erased": True}}
                )
                return summary
            parts.append(ExportPart(service=service, sections=plain["sections"]))
        package = assemble(
            parts,
            tenant_id=tenant_id,
            subject_id=subject_id,
            request_id=str(document["_id"]),
            generated_at=self.runtime.clock.now(),
            expected=self.expected,
        )
        sealed = await self.runtime.cipher.encrypt(
            tenant_id=tenant_id,
            subject_id=subject_id,
            event_id=_package_aad(str(document["_id"])),
            pii=package.model_dump(mode="json"),
        )
        summary = {
            "parts": package.parts,
            "records": package.records(),
            "package_sha256": package_sha256(package),
            "formats": list(FORMATS),
        }
        await self.exports.update_one(
            {"_id": document["_id"]},
            {
                "$set": {
                    "package": sealed.model_dump(),
                    "summary": summary,
                    "ready_at": self.runtime.clock.now(),
                }
            },
        )
        return summary

    async def owner(self, request_id: str) -> str | None:
        """The tenant whose request this export answers (read without decrypting anything),
        or None when there is no export document."""
        document = await self.exports.find_one({"_id": request_id}, {"tenant_id": 1})
        return None if document is None else str(document["tenant_id"])

    async def package(self, request_id: str) -> tuple[Document, ExportPackage | None] | None:
        """The export document and its package (None once the subject was erased)."""
        document = await self.exports.find_one({"_id": request_id})
        if document is None or not document.get("package"):
            return None
        plain = await self.runtime.cipher.decrypt_parts(
            tenant_id=document["tenant_id"],
            subject_id=document["subject_id"],
            event_id=_package_aad(request_id),
            pii=EncryptedPII.model_validate(document["package"]),
        )
        return document, None if plain is None else ExportPackage.model_validate(plain)
