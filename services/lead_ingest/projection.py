"""lead-ingest's read models, read: leads, subjects, privacy requests, aggregates; and the one
write that is not a fold of events, the reservation of a lead's ``lead.qualified``.

What events make of the documents is :mod:`.domain` (a pure fold); :meth:`LeadProjection.apply`
folds one event through the batch pipeline's folder, which is what ``leadtrail replay`` runs.
"""

from __future__ import annotations

from collections.abc import Sequence

from pymongo import ASCENDING

from contracts import REGISTRY, EventEnvelope
from services.common.coalesce import ByIdReader
from services.common.pipeline import VERSION_FIELD, BatchFolder
from services.common.store import Collections, Document, find_owned, update_if
from services.lead_ingest.domain import (
    LEADS,
    REQUESTS,
    SUBJECTS,
    LeadReadModel,
    score_band,
    subject_key,
)

__all__ = ["LeadProjection", "request_status", "score_band", "subject_key"]


def request_status(document: Document) -> str:
    """A request's status: ``completed`` once carried out, ``overdue`` past its deadline
    without every receipt, else what the request events said (``received``, ``verified``)."""
    if document.get("completed_at") is not None:
        return "completed"
    if document.get("overdue_at") is not None:
        return "overdue"
    return str(document.get("status", "received"))


class LeadProjection:
    def __init__(self, db: Collections) -> None:
        self.leads = db[LEADS]
        self.subjects = db[SUBJECTS]
        self.requests = db[REQUESTS]
        self.folder = BatchFolder(db, LeadReadModel())
        # Every API route reads its lead and the lead's subject by id: concurrent requests
        # share one read per collection.
        self._leads_by_id = ByIdReader(self.leads)
        self._subjects_by_id = ByIdReader(self.subjects)

    async def ensure_indexes(self) -> None:
        await self.leads.create_index([("tenant_id", ASCENDING), ("subject_id", ASCENDING)])
        await self.requests.create_index([("tenant_id", ASCENDING), ("subject_id", ASCENDING)])

    async def apply(self, envelope: EventEnvelope) -> None:
        """Fold one event (validated and upcast here) into the read models."""
        await self.apply_all([envelope])

    async def apply_all(self, envelopes: Sequence[EventEnvelope]) -> None:
        """Fold a batch of events, in order, as the live handler does (what a replay runs)."""
        await self.folder.fold([REGISTRY.decode(envelope) for envelope in envelopes])

    async def claim_qualification(self, lead_id: str, event_id: str) -> bool:
        """Reserve the one ``lead.qualified`` of a lead for ``event_id``.

        True when this event id holds the reservation (first time, or a redelivery of the same
        cause, which republishes the same event id); False when another cause already did.
        One conditional write by ``_id``; it moves the lead's version on, so a fold that read
        the lead before cannot write over the reservation (it folds again).
        """
        claim = {"$set": {"qualification_event_id": event_id}, "$inc": {VERSION_FIELD: 1}}
        if await update_if(self.leads, lead_id, {"qualification_event_id": None}, claim):
            return True
        return await self.qualification_holder(lead_id) == event_id

    async def qualification_holder(self, lead_id: str) -> str | None:
        """The event id that reserved the lead's ``lead.qualified``, if any."""
        holder = await self.leads.find_one({"_id": lead_id}, {"qualification_event_id": 1})
        return None if holder is None else holder.get("qualification_event_id")

    async def aggregates(self, tenant_id: str) -> list[Document]:
        """Lead counts per month, source and score band: anonymous, they outlive erasure."""
        cursor = await self.leads.aggregate(
            [
                {"$match": {"tenant_id": tenant_id}},
                {
                    "$group": {
                        "_id": {
                            "month": "$month",
                            "source": "$source_kind",
                            "band": "$score_band",
                        },
                        "leads": {"$sum": 1},
                    }
                },
            ]
        )
        return [document async for document in cursor]

    async def get(self, tenant_id: str, lead_id: str) -> Document | None:
        """The lead if it is the tenant's (another tenant's lead looks missing)."""
        document = await self._leads_by_id.get(lead_id)
        return document if document is not None and document.get("tenant_id") == tenant_id else None

    async def leads_of(self, tenant_id: str, subject_id: str) -> list[Document]:
        subject = await self.subject(tenant_id, subject_id)
        lead_ids = subject.get("lead_ids", [])
        if not lead_ids:
            return []
        found = [await find_owned(self.leads, lead_id, tenant_id) for lead_id in lead_ids]
        return [document for document in found if document is not None]

    async def subject(self, tenant_id: str, subject_id: str) -> Document:
        return await self._subjects_by_id.get(subject_key(tenant_id, subject_id)) or {}

    async def request(self, tenant_id: str, request_id: str) -> Document | None:
        return await find_owned(self.requests, request_id, tenant_id)
