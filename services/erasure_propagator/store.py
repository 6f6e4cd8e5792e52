"""erasure-propagator's collections, read. What events make of them is :mod:`.domain` (a pure
fold, the state machine); :meth:`ErasureStore.apply` folds one event into the read models only
(``erasure_requests``, ``erasure_holds``), which is what ``leadtrail replay`` runs.

``erasures`` and ``rectifications`` are process state, not rebuilt: what this service
decided and did (keys destroyed, events sent, receipts collected); the events it publishes are
the record of those decisions, and it does not consume them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pymongo import ASCENDING

from contracts import REGISTRY, EventEnvelope
from services.common.pipeline import VERSION_FIELD, BatchFolder, DocRef
from services.common.store import Collections, Document, find_owned
from services.erasure_propagator.domain import (
    DECIDED_BY,
    ERASURES,
    HOLDS,
    OPEN_STATES,
    RECTIFICATIONS,
    REQUESTS,
    ErasureModel,
    Seeds,
)

__all__ = ["ErasureStore"]


class ErasureStore:
    def __init__(self, db: Collections) -> None:
        self.db = db
        self.erasures = db[ERASURES]
        self.rectifications = db[RECTIFICATIONS]
        self.holds = db[HOLDS]
        self.requests = db[REQUESTS]
        self.replay_folder = BatchFolder(db, ErasureModel.read_models_only())

    async def ensure_indexes(self) -> None:
        await self.erasures.create_index([("state", ASCENDING), ("deadline", ASCENDING)])
        await self.erasures.create_index([("tenant_id", ASCENDING), ("subject_id", ASCENDING)])
        await self.holds.create_index([("tenant_id", ASCENDING), ("active", ASCENDING)])

    async def apply(self, envelope: EventEnvelope) -> None:
        """Fold one event (validated and upcast here) into the read models."""
        await self.apply_all([envelope])

    async def apply_all(self, envelopes: Sequence[EventEnvelope]) -> None:
        """Fold a batch of events into the read models, in order (what a replay runs)."""
        await self.replay_folder.fold([REGISTRY.decode(envelope) for envelope in envelopes])

    async def request(self, tenant_id: str, request_id: str) -> Document | None:
        return await find_owned(self.requests, request_id, tenant_id)

    async def seeds(self, seeds: Seeds) -> dict[DocRef, Document | None]:
        """What a batch's fold needs found by query (:class:`~.domain.Seeds`): the active
        holds of some tenants, the deferred erasures of some; one read each, when needed."""
        found: dict[DocRef, Document | None] = {}
        queries = (
            (self.holds, HOLDS, seeds.holds_of, {"active": True}),
            (self.erasures, ERASURES, seeds.deferred_of, {"state": "deferred"}),
        )
        for collection, name, tenants, match in queries:
            if tenants:
                query = {"tenant_id": {"$in": sorted(tenants)}, **match}
                async for document in collection.find(query):
                    found[DocRef(name, document["_id"])] = document
        return found

    # -- erasures --------------------------------------------------------------------------
    async def recheck_reads(
        self, tenants: Sequence[str], batch_event_ids: Sequence[str]
    ) -> tuple[list[Document], list[Document]]:
        """For :meth:`~.handlers.ErasureHandlers.recheck_deferred`: the tenants' deferred
        erasures (and those a previous attempt at this batch requested), and their active
        holds. Two reads."""
        erasures = await self.erasures.find(
            {
                "tenant_id": {"$in": sorted(tenants)},
                "$or": [
                    {"state": "deferred"},
                    {"state": "requested", DECIDED_BY: {"$in": sorted(batch_event_ids)}},
                ],
            }
        ).to_list(None)
        holds = await self.holds.find(
            {"tenant_id": {"$in": sorted(tenants)}, "active": True}
        ).to_list(None)
        return erasures, holds

    async def request_deferred(
        self, document: Document, requested_at: datetime, decided_by_event: str
    ) -> Document | None:
        """Move a deferred erasure to ``requested`` if it is still the version read; the
        document as written, or None when something else changed it first."""
        fields = {"state": "requested", "requested_at": requested_at, DECIDED_BY: decided_by_event}
        version = document.get(VERSION_FIELD)
        result = await self.erasures.update_one(
            {"_id": document["_id"], "state": "deferred", VERSION_FIELD: version},
            {"$set": fields, "$inc": {VERSION_FIELD: 1}},
        )
        if result.modified_count != 1:
            return None
        return {**document, **fields, VERSION_FIELD: (document.get(VERSION_FIELD) or 0) + 1}

    async def erasure(self, erasure_id: str) -> Document | None:
        return await self.erasures.find_one({"_id": erasure_id})

    async def erased(self, tenant_id: str, subject_id: str) -> bool:
        """Whether an erasure of the subject destroyed its keys (requested or completed)."""
        found = await self.erasures.find_one(
            {
                "tenant_id": tenant_id,
                "subject_id": subject_id,
                "state": {"$in": ["requested", "completed"]},
            },
            {"_id": 1},
        )
        return found is not None

    async def mark_overdue(self, erasure_id: str, event_id: str) -> None:
        """Outside a fold: a new version, so a fold that read the erasure before folds again."""
        await self.erasures.update_one(
            {"_id": erasure_id},
            {"$set": {"overdue_event_id": event_id}, "$inc": {VERSION_FIELD: 1}},
        )

    async def open_counts(self, now: datetime) -> dict[str, tuple[int, int]]:
        """Per open state: (erasures, of which past their deadline)."""
        counts = dict.fromkeys(OPEN_STATES, (0, 0))
        cursor = self.erasures.find(
            {"state": {"$in": list(OPEN_STATES)}}, {"state": 1, "deadline": 1}
        )
        async for document in cursor:
            total, late = counts[document["state"]]
            counts[document["state"]] = (total + 1, late + (document["deadline"] <= now))
        return counts

    async def overdue(self, now: datetime) -> list[Document]:
        cursor = self.erasures.find(
            {"state": "requested", "deadline": {"$lte": now}, "overdue_event_id": None}
        )
        return [document async for document in cursor]

    async def next_deadline(self, after: datetime) -> datetime | None:
        """The earliest deadline after ``after`` of a requested erasure not reported overdue
        (None: none). One read."""
        document = await self.erasures.find_one(
            {"state": "requested", "deadline": {"$gt": after}, "overdue_event_id": None},
            {"deadline": 1},
            sort=[("deadline", ASCENDING)],
        )
        return None if document is None else document["deadline"]

    # -- rectifications --------------------------------------------------------------------
    async def open_rectification(self, rectification_id: str, values: dict[str, Any]) -> None:
        """Create the rectification once (its receipts are folded, :mod:`.domain`)."""
        await self.rectifications.update_one(
            {"_id": rectification_id},
            {"$setOnInsert": {**values, "receipts": {}, "state": "requested"}},
            upsert=True,
        )
