"""crm-sync's collections.

* ``crm_leads`` and ``crm_subjects``: read models, folded by :mod:`.domain` through the batch
  pipeline (:meth:`CrmStore.apply_event` folds one event: what ``leadtrail replay`` runs);
* ``crm_outbox``: one document per (lead, connection) holding the next CRM operation, its
  attempts, the CRM's record id and when the lead last reached that CRM
  (``last_delivered_at``). A newer request for the same lead replaces a pending one, so a
  burst of updates becomes one push of the latest state; the record id and the delivery time
  stay, so every later update and delete hits the same CRM record. A batch of events reads the
  entries it may queue for at once and queues with one bulk write (:class:`OutboxBatch`);
* ``crm_waits``: the CRM calls an erasure or rectification waits for before crm-sync sends its
  receipt.

The outbox, the waits and ``crm_recipients`` are operational state: what was sent to which
CRM, with which record id, is not in the event log.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from pymongo import ASCENDING, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError

from contracts import REGISTRY, EventEnvelope
from services.common.logging import get_logger
from services.common.pipeline import BatchFolder
from services.common.store import (
    Collections,
    Document,
    find_owned,
    insert_new,
    only_duplicate_keys,
)
from services.crm_sync.domain import LEADS, SUBJECTS, CrmReadModel

__all__ = ["CrmStore", "OutboxBatch", "Wait", "erasing", "outbox_id"]

log = get_logger(__name__)


def outbox_id(lead_id: str, connection_id: str) -> str:
    return f"{lead_id}:{connection_id}"


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Wait:
    """What an erasure's or rectification's receipt waits for: the outbox entries (CRM calls)
    still ``pending``."""

    wait_id: str
    kind: Literal["erasure", "rectification"]
    cause: EventEnvelope
    pending: list[str]


class CrmStore:
    def __init__(self, db: Collections) -> None:
        self.leads = db[LEADS]
        self.subjects = db[SUBJECTS]
        self.outbox = db["crm_outbox"]
        self.waits = db["crm_waits"]
        self.recipients = db["crm_recipients"]
        self.folder = BatchFolder(db, CrmReadModel())

    async def ensure_indexes(self) -> None:
        await self.outbox.create_index([("state", ASCENDING), ("next_attempt_at", ASCENDING)])

    # -- read models ----------------------------------------------------------------------
    async def apply_event(self, envelope: EventEnvelope) -> None:
        """Fold one event (validated and upcast here) into the read models, and nothing else."""
        await self.apply_all([envelope])

    async def apply_all(self, envelopes: Sequence[EventEnvelope]) -> None:
        """Fold a batch of events, in order, into the read models (what a replay runs)."""
        await self.folder.fold([REGISTRY.decode(envelope) for envelope in envelopes])

    async def subject(self, tenant_id: str, subject_id: str) -> Document:
        return await find_owned(self.subjects, f"{tenant_id}:{subject_id}", tenant_id) or {}

    async def lead(self, tenant_id: str, lead_id: str) -> Document | None:
        return await find_owned(self.leads, lead_id, tenant_id)

    async def lead_ids(self, tenant_id: str, subject_id: str) -> list[str]:
        return list((await self.subject(tenant_id, subject_id)).get("lead_ids", []))

    # -- outbox ----------------------------------------------------------------------------
    async def outbox_batch(self, ids: Iterable[str]) -> OutboxBatch:
        """The outbox entries ``ids`` (one read), to queue operations on in one write."""
        wanted = sorted(set(ids))
        found = await self.outbox.find({"_id": {"$in": wanted}}).to_list() if wanted else []
        return OutboxBatch(self.outbox, {str(entry["_id"]): entry for entry in found})

    async def due(self, now: datetime, limit: int) -> list[Document]:
        cursor = self.outbox.find(
            {"state": "pending", "next_attempt_at": {"$lte": now}},
            sort=[("next_attempt_at", ASCENDING)],
            limit=limit,
        )
        return await cursor.to_list(limit)

    async def next_attempt(self) -> datetime | None:
        """When the earliest pending entry is due (None: nothing pending). One read."""
        # Every pending entry has a date; the bound lets an index on (state, next_attempt_at)
        # answer this on any store (the local one reads an index by a range on its last field).
        document = await self.outbox.find_one(
            {"state": "pending", "next_attempt_at": {"$gte": EPOCH}},
            {"next_attempt_at": 1},
            sort=[("next_attempt_at", ASCENDING)],
        )
        return None if document is None else document["next_attempt_at"]

    async def open_waits(self, waits: Sequence[Wait]) -> set[str]:
        """Record what erasures and rectifications wait for, in one write; returns the ids of
        those recorded now (the others were recorded before: a redelivery)."""
        return await insert_new(
            self.waits,
            {
                wait.wait_id: {
                    "kind": wait.kind,
                    "cause": wait.cause.model_dump(mode="json"),
                    "pending": wait.pending,
                    "actions": [],
                    "receipted": False,
                }
                for wait in waits
            },
        )


def erasing(entry: Document | None) -> bool:
    """Whether the entry is an erasure's delete: final for the lead in that CRM. A delete
    because no basis for ``crm_sync`` remained is not final: a new consent pushes again."""
    return (
        entry is not None
        and entry.get("operation") == "delete"
        and entry.get("erasure_id") is not None
    )


NOT_ERASING = {"$or": [{"operation": {"$ne": "delete"}}, {"erasure_id": None}]}
"""The filter of an entry :func:`erasing` is false for (a missing entry included)."""


class OutboxBatch:
    """The outbox entries a batch of events reads, and the operations it queues on them:
    written with one unordered bulk write (:meth:`flush`), one operation per entry.

    An erasure's delete is final for the lead: an upsert (or a no-basis delete) arriving after
    it (an earlier lead event handled late, or redelivered after a crash) must not replace it,
    or the erasure would wait for a delete that never runs (found by the e2e kill -9 test). So
    those writes are conditional on the entry not being an erasure's delete when written (an
    erasure handled by another consumer meanwhile wins: the write collides on ``_id`` and is
    dropped), and skipped at once when this batch already knows it is.

    The operation replaces a pending one, but the waits do not: an erasure or rectification
    waiting for the entry keeps waiting for whatever runs next (a rectification's update
    overtaken by a score update, or by the erasure's delete, would otherwise wait for ever).
    """

    def __init__(self, outbox: AsyncCollection[Document], entries: dict[str, Document]) -> None:
        self.outbox = outbox
        self.entries = entries
        self.queued: dict[str, tuple[Document, list[str]]] = {}
        """entry id -> (its ``$set``, the waits it gains)"""

    def entry(self, lead_id: str, connection_id: str) -> Document | None:
        return self.entries.get(outbox_id(lead_id, connection_id))

    def record_of(self, lead_id: str, connection_id: str) -> str | None:
        return (self.entry(lead_id, connection_id) or {}).get("record_id")

    def erasing(self, lead_id: str, connection_id: str) -> bool:
        return erasing(self.entry(lead_id, connection_id))

    def enqueue(
        self,
        *,
        tenant_id: str,
        subject_id: str,
        lead_id: str,
        connection_id: str,
        operation: Literal["upsert", "delete"],
        cause: EventEnvelope,
        now: datetime,
        erasure_id: str | None = None,
        wait_id: str | None = None,
    ) -> bool:
        """Queue the entry's next operation; False when an erasure's delete keeps it."""
        if erasure_id is None and self.erasing(lead_id, connection_id):
            return False
        entry_id = outbox_id(lead_id, connection_id)
        fields: Document = {
            "tenant_id": tenant_id,
            "subject_id": subject_id,
            "lead_id": lead_id,
            "connection_id": connection_id,
            "operation": operation,
            "state": "pending",
            "attempts": 0,
            "next_attempt_at": now,
            "cause": cause.model_dump(mode="json"),
            "erasure_id": erasure_id,
            "last_error": None,
        }
        previous = self.entries.get(entry_id) or {}
        _, added = self.queued.get(entry_id, ({}, []))
        if wait_id is not None and wait_id not in added:
            added = [*added, wait_id]
        self.queued[entry_id] = (fields, added)
        waits = [*previous.get("wait_ids", [])]
        waits += [w for w in added if w not in waits]
        self.entries[entry_id] = {**previous, **fields, "_id": entry_id, "wait_ids": waits}
        return True

    async def flush(self) -> bool:
        """Write what was queued; True if anything was (the dispatcher should look)."""
        if not self.queued:
            return False
        operations = []
        for entry_id, (fields, waits) in self.queued.items():
            update: Document = {"$set": fields}
            if waits:
                update["$addToSet"] = {"wait_ids": {"$each": waits}}
            where: Document = {"_id": entry_id}
            if fields["erasure_id"] is None:
                where.update(NOT_ERASING)
            operations.append(UpdateOne(where, update, upsert=True))
        self.queued = {}
        try:
            await self.outbox.bulk_write(operations, ordered=False)
        except BulkWriteError as error:
            if not only_duplicate_keys(error):
                raise
            kept = len(error.details.get("writeErrors", ()))
            log.info("an erasure's delete was queued meanwhile; kept", entries=kept)
        return True
