"""consent-ledger's read model, read: a subject's consent document, its consent state, a
privacy request's details. What events make of the documents is :mod:`.domain` (a pure fold);
:meth:`ConsentProjection.apply` folds one event through the batch pipeline's folder, which is
what ``leadtrail replay`` runs.
"""

from __future__ import annotations

from collections.abc import Sequence

from pymongo import ASCENDING

from contracts import REGISTRY, EventEnvelope
from services.common.consent import ConsentFact, ConsentState, fold
from services.common.pipeline import BatchFolder
from services.common.store import Collections, Document, find_owned
from services.consent_ledger.domain import REQUESTS, SUBJECTS, ConsentLedger, subject_key

__all__ = ["ConsentProjection"]


class ConsentProjection:
    def __init__(self, db: Collections) -> None:
        self.subjects = db[SUBJECTS]
        self.requests = db[REQUESTS]
        self.folder = BatchFolder(db, ConsentLedger())

    async def ensure_indexes(self) -> None:
        await self.subjects.create_index([("tenant_id", ASCENDING), ("subject_id", ASCENDING)])

    async def apply(self, envelope: EventEnvelope) -> None:
        """Fold one event (validated and upcast here) into the read model."""
        await self.apply_all([envelope])

    async def apply_all(self, envelopes: Sequence[EventEnvelope]) -> None:
        """Fold a batch of events, in order, as the live handler does (what a replay runs)."""
        await self.folder.fold([REGISTRY.decode(envelope) for envelope in envelopes])

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

    async def request(self, tenant_id: str, request_id: str) -> Document | None:
        return await find_owned(self.requests, request_id, tenant_id)
