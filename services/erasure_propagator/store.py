"""erasure-propagator's collections.

Read models, derived from events alone (:meth:`ErasureStore.apply`, all ``leadtrail replay``
rebuilds): the privacy requests it will execute once verified (``erasure_requests``) and the
legal holds in force (``erasure_holds``).

Process state, not rebuilt: ``erasures`` and ``rectifications`` record what this orchestrator
decided and did (keys destroyed, events sent, receipts collected, deadlines from its clock); the
events it publishes are the record of those decisions, and it does not consume them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import ASCENDING

from contracts import EventEnvelope
from contracts.events.privacy import PrivacyRequestReceivedV1
from services.common.crypto import seal_of
from services.common.store import Collections, Document, apply_once, find_owned

__all__ = ["OPEN_STATES", "ErasureStore"]

OPEN_STATES = ("new", "requested", "deferred")
"""Erasure states before ``completed``."""


class ErasureStore:
    def __init__(self, db: Collections) -> None:
        self.erasures = db["erasures"]
        self.rectifications = db["rectifications"]
        self.holds = db["erasure_holds"]
        self.requests = db["erasure_requests"]

    async def ensure_indexes(self) -> None:
        await self.erasures.create_index([("state", ASCENDING), ("deadline", ASCENDING)])
        await self.erasures.create_index([("tenant_id", ASCENDING), ("subject_id", ASCENDING)])
        await self.holds.create_index([("tenant_id", ASCENDING), ("active", ASCENDING)])

    async def apply(self, envelope: EventEnvelope) -> int:
        """Apply one (validated) event to the read models; returns how many documents changed."""
        if envelope.type == "privacy.request.received":
            return int(await self.remember_request(envelope))
        if envelope.type in ("retention.hold_placed", "retention.hold_released"):
            return int(await self.hold(envelope, active=envelope.type == "retention.hold_placed"))
        return 0

    # -- privacy requests ------------------------------------------------------------------
    async def remember_request(self, envelope: EventEnvelope) -> bool:
        received = PrivacyRequestReceivedV1.model_validate(envelope.data)
        return await apply_once(
            self.requests,
            received.request_id,
            envelope.id,
            {
                "$set": {
                    "tenant_id": envelope.tenant_id,
                    "subject_id": envelope.subject_id,
                    "type": received.request_type,
                    "deadline": received.deadline,
                    "received_at": envelope.occurred_at,
                    "subject_known": received.subject_known,
                    "sealed": seal_of(envelope),
                }
            },
        )

    async def request(self, tenant_id: str, request_id: str) -> Document | None:
        return await find_owned(self.requests, request_id, tenant_id)

    # -- holds -----------------------------------------------------------------------------
    async def hold(self, envelope: EventEnvelope, active: bool) -> bool:
        """A hold as placed, and whether it is released. A release is final whichever was
        handled first: it travels under the key the operator gave, which need not be the
        placement's partition (``$min``: false < true). Scope, subject and reason are the
        placement's."""
        update: dict[str, Any] = {
            "$set": {"tenant_id": envelope.tenant_id},
            "$min": {"active": active},
        }
        if active:
            scope = envelope.data["scope"]
            update["$set"].update(
                subject_id=None if scope == "tenant" else envelope.subject_id,
                scope=scope,
                reason=envelope.data.get("reason"),
            )
        else:
            update["$set"]["release_reason"] = envelope.data.get("reason")
        return await apply_once(self.holds, str(envelope.data["hold_id"]), envelope.id, update)

    async def active_holds(self, tenant_id: str, subject_id: str) -> list[Document]:
        cursor = self.holds.find(
            {
                "tenant_id": tenant_id,
                "active": True,
                "$or": [{"subject_id": subject_id}, {"scope": "tenant"}],
            },
            sort=[("_id", ASCENDING)],
        )
        return [document async for document in cursor]

    # -- erasures --------------------------------------------------------------------------
    async def open_erasure(self, erasure_id: str, values: dict[str, Any]) -> Document:
        """Create the erasure once. (FerretDB 1.x drops empty arrays and documents from
        ``$setOnInsert``, so readers use ``.get("receipts", {})``.)"""
        await self.erasures.update_one(
            {"_id": erasure_id},
            {"$setOnInsert": {**values, "receipts": {}, "state": "new"}},
            upsert=True,
        )
        document = await self.erasures.find_one({"_id": erasure_id})
        assert document is not None  # noqa: S101 (just upserted)
        return document

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

    async def set_state(self, erasure_id: str, state: str, **extra: Any) -> None:
        await self.erasures.update_one({"_id": erasure_id}, {"$set": {"state": state, **extra}})

    async def deferred(self, tenant_id: str) -> list[Document]:
        """The tenant's erasures waiting for a legal hold to be released."""
        query = {"tenant_id": tenant_id, "state": "deferred"}
        return [document async for document in self.erasures.find(query)]

    async def add_receipt(
        self, collection: str, document_id: str, envelope: EventEnvelope
    ) -> Document | None:
        """Record one service's receipt (once) and return the document."""
        target = self.erasures if collection == "erasures" else self.rectifications
        service = envelope.data["service"]
        # One conditional write: the first receipt of each service stays.
        await target.update_one(
            {"_id": document_id, f"receipts.{service}": {"$exists": False}},
            {
                "$set": {
                    f"receipts.{service}": {
                        "actions": envelope.data["actions"],
                        "at": envelope.occurred_at,
                        "event_id": envelope.id,
                    }
                }
            },
        )
        return await target.find_one({"_id": document_id})

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
        await self.rectifications.update_one(
            {"_id": rectification_id},
            {"$setOnInsert": {**values, "receipts": {}, "state": "requested"}},
            upsert=True,
        )
