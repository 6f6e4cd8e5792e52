"""consent-ledger's read model: per subject, the consent facts, the full history with proof
(personal parts still encrypted, as in the events) and the suppression flag; and the details of
privacy requests it will act on once verified.

:meth:`ConsentProjection.apply` is the whole read-model side of every event the service
consumes; the handlers call it before they react, ``leadtrail replay`` calls it alone.
"""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING

from contracts import REGISTRY, EventEnvelope
from contracts.topics import CONSENT_EVENTS
from services.common.consent import ConsentFact, ConsentState, fact_from_event, fold
from services.common.crypto import seal_of
from services.common.store import Collections, Document, apply_once, find_owned

__all__ = ["LEDGER_TYPES", "ConsentProjection", "subject_key"]

LEDGER_TYPES = frozenset(REGISTRY.types_on_topic(CONSENT_EVENTS.name))
"""consent-ledger's own events, recorded in the subject's history."""


def subject_key(tenant_id: str, subject_id: str) -> str:
    return f"{tenant_id}:{subject_id}"


class ConsentProjection:
    def __init__(self, db: Collections) -> None:
        self.subjects = db["consent_subjects"]
        self.requests = db["consent_requests"]

    async def ensure_indexes(self) -> None:
        await self.subjects.create_index([("tenant_id", ASCENDING), ("subject_id", ASCENDING)])

    async def apply(self, envelope: EventEnvelope) -> int:
        """Apply one (validated) event to the read models; returns how many documents changed.

        Stored as the event carries it (``data`` of its own version), like the live handlers.
        """
        changed: int | bool = 0
        if envelope.type == "lead.captured":
            changed = await self.known(envelope)
        elif envelope.type == "privacy.request.received":
            changed = await self.remember_request(envelope)
        elif envelope.type == "erasure.requested":
            changed = await self.erase_proof(envelope.tenant_id, envelope.subject_id)
        elif envelope.type in LEDGER_TYPES:
            changed = await self.record(envelope)
        return int(changed)

    async def known(self, envelope: EventEnvelope) -> bool:
        """Record that the subject exists for its tenant (from any event about them)."""
        return await apply_once(
            self.subjects,
            subject_key(envelope.tenant_id, envelope.subject_id),
            envelope.id,
            {
                "$set": {"tenant_id": envelope.tenant_id, "subject_id": envelope.subject_id},
                "$min": {"first_seen": envelope.occurred_at},
            },
        )

    async def record(self, envelope: EventEnvelope) -> bool:
        """Apply one of consent-ledger's own events to the subject's document.

        The live service reads each topic in its own consumer group, so an erasure may be
        handled before a consent event that was published earlier: after it, a recorded event
        keeps no proof, exactly as if the erasure had stripped it (a replay, which reads in
        time order, ends with the same document)."""
        current = await self.subject(envelope.tenant_id, envelope.subject_id)
        erased = bool((current or {}).get("erased"))
        update: dict[str, Any] = {
            "$set": {"tenant_id": envelope.tenant_id, "subject_id": envelope.subject_id},
            "$push": {
                "history": {
                    "event_id": envelope.id,
                    "type": envelope.type,
                    "version": envelope.version,
                    "at": envelope.occurred_at,
                    "data": envelope.data,
                    "proof": None if erased else seal_of(envelope),
                }
            },
        }
        fact = fact_from_event(envelope.type, envelope.id, envelope.occurred_at, envelope.data)
        if fact is not None:
            update["$push"]["facts"] = fact.to_document()
        if envelope.type == "suppression.added":
            update["$set"]["suppressed"] = True
        return await apply_once(
            self.subjects, subject_key(envelope.tenant_id, envelope.subject_id), envelope.id, update
        )

    async def erase_proof(self, tenant_id: str, subject_id: str) -> int:
        """Erasure: drop the encrypted personal parts of the proofs; the non-personal history
        (what was consented to, when, under which notice) stays as the audit trail."""
        document = await self.subject(tenant_id, subject_id) or {}
        entries = document.get("history", [])
        # Marked erased even when nothing is known yet (the erasure was handled before the
        # capture): what arrives later keeps no proof (see record()).
        update: dict[str, Any] = {
            "tenant_id": tenant_id,
            "subject_id": subject_id,
            "erased": True,
        }
        if entries:
            update["history"] = [{**entry, "proof": None} for entry in entries]
        await self.subjects.update_one(
            {"_id": subject_key(tenant_id, subject_id)}, {"$set": update}, upsert=True
        )
        return sum(1 for entry in entries if entry.get("proof"))

    async def subject(self, tenant_id: str, subject_id: str) -> Document | None:
        return await self.subjects.find_one({"_id": subject_key(tenant_id, subject_id)})

    @staticmethod
    def current_grant(document: Document | None, purpose: str) -> ConsentFact | None:
        """The latest ``consent.granted`` for ``purpose`` in log order (withdrawn or not)."""
        latest = None
        for fact in (document or {}).get("facts", []):
            if fact["type"] == "consent.granted" and purpose in fact.get("purposes", ()):
                latest = fact
        return None if latest is None else ConsentFact.from_document(latest)

    @staticmethod
    def state(document: Document | None) -> ConsentState:
        facts = (document or {}).get("facts", [])
        return fold(ConsentFact.from_document(f) for f in facts)

    async def remember_request(self, envelope: EventEnvelope) -> bool:
        data = envelope.data
        return await apply_once(
            self.requests,
            str(data["request_id"]),
            envelope.id,
            {
                "$set": {
                    "tenant_id": envelope.tenant_id,
                    "subject_id": envelope.subject_id,
                    "type": data["request_type"],
                    "purposes": data.get("purposes", []),
                }
            },
        )

    async def request(self, tenant_id: str, request_id: str) -> Document | None:
        return await find_owned(self.requests, request_id, tenant_id)
