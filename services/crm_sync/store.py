"""crm-sync's read models.

* ``crm_leads``: what crm-sync knows of each lead (personal data kept as the events' ciphertexts);
* ``crm_subjects``: the subject's consent facts and lead ids (the shared decision, R28);
* ``crm_outbox``: one document per (lead, connection) holding the next CRM operation, its
  attempts, the CRM's record id and when the lead last reached that CRM
  (``last_delivered_at``). A newer request for the same lead replaces a pending one, so a
  burst of updates becomes one push of the latest state; the record id and the delivery time
  stay, so every later update and delete hits the same CRM record;
* ``crm_waits``: the CRM calls an erasure or rectification waits for before crm-sync sends its
  receipt.

``crm_leads`` and ``crm_subjects`` are read models, built by :meth:`CrmStore.apply` alone (all
``leadtrail replay`` rebuilds). The outbox, the waits and ``crm_recipients`` are operational
state: what was sent to which CRM, with which record id, is not in the event log.

Live, lead-, consent- and erasure-events arrive through separate consumer groups, so an erasure
may be handled before lead events published earlier (or before a later capture of the subject),
while a replay applies them in time order. So an erasure marks the subject (``erased``) as well
as stripping the leads it knows, and every lead event that brings personal data (a capture, an
interaction, a rectification) strips it again when the subject or lead is already erased: the
documents end the same in either order.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pymongo import ASCENDING

from contracts import EventEnvelope
from services.common.consent import CONSENT_EVENT_TYPES, fact_from_event
from services.common.crypto import seal_of
from services.common.store import Collections, Document, apply_once, find_owned

__all__ = ["CrmStore", "outbox_id"]


def outbox_id(lead_id: str, connection_id: str) -> str:
    return f"{lead_id}:{connection_id}"


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class CrmStore:
    def __init__(self, db: Collections) -> None:
        self.leads = db["crm_leads"]
        self.subjects = db["crm_subjects"]
        self.outbox = db["crm_outbox"]
        self.waits = db["crm_waits"]
        self.recipients = db["crm_recipients"]

    async def ensure_indexes(self) -> None:
        await self.outbox.create_index([("state", ASCENDING), ("next_attempt_at", ASCENDING)])

    # -- projection ----
    async def apply_event(self, envelope: EventEnvelope) -> None:
        """Apply one (validated) event to the read models, and nothing else."""
        if envelope.type == "lead.captured":
            await self.captured(envelope)
        elif envelope.type == "lead.qualified":
            await self.qualified(envelope)
        elif envelope.type == "lead.interaction_recorded":
            await self.interaction(envelope)
        elif envelope.type in ("lead.scored", "lead.score_reviewed"):
            data = envelope.data
            score = data["score"] if "score" in data else data["new_score"]
            await self.scored(envelope, int(score))
        elif envelope.type == "lead.rectified":
            await self.rectified(envelope)
        elif envelope.type == "erasure.requested":
            await self.forget_subject(envelope)
        elif envelope.type in CONSENT_EVENT_TYPES:
            await self.consent_fact(envelope)
        # Any other event (a verified privacy request) changes no read model here.

    async def apply(self, envelope: EventEnvelope, lead_id: str, update: dict[str, Any]) -> bool:
        update.setdefault("$set", {}).update(
            tenant_id=envelope.tenant_id,
            subject_id=envelope.subject_id,
            updated_at=envelope.occurred_at,
        )
        return await apply_once(self.leads, lead_id, envelope.id, update)

    async def apply_personal(
        self, envelope: EventEnvelope, lead_id: str, update: dict[str, Any]
    ) -> None:
        """:meth:`apply` for an event that brings personal data: an erased lead stays erased.
        Write, then look: an erasure handled in between has stripped it already, one handled
        before left ``erased`` on the lead (read by ``_id``, no filter)."""
        await self.apply(envelope, lead_id, update)
        lead = await self.leads.find_one({"_id": lead_id}, {"erased": 1})
        if lead is not None and lead.get("erased"):
            await self.strip(lead_id)

    async def captured(self, envelope: EventEnvelope) -> None:
        data = envelope.data
        source = data["source"]
        await apply_once(
            self.subjects,
            f"{envelope.tenant_id}:{envelope.subject_id}",
            envelope.id,
            {"$set": {"tenant_id": envelope.tenant_id}, "$addToSet": {"lead_ids": data["lead_id"]}},
        )
        await self.apply(
            envelope,
            data["lead_id"],
            {
                "$set": {
                    "contact": seal_of(envelope),
                    "source": source["kind"]
                    if source["kind"] == "web_form"
                    else f"third_party:{source['provider']}",
                },
                # Lists are created by their first `$push`: FerretDB 1.x drops empty arrays from
                # `$setOnInsert` (MongoDB keeps them), and a rebuild must equal live on either.
                "$setOnInsert": {"qualified": False},
            },
        )
        # A capture handled after the subject's erasure (the lead lists are written first, then
        # read: whichever of the two runs second sees the other).
        if (await self.subject(envelope.tenant_id, envelope.subject_id)).get("erased"):
            await self.strip(data["lead_id"])

    async def interaction(self, envelope: EventEnvelope) -> None:
        await self.apply_personal(
            envelope,
            envelope.data["lead_id"],
            {
                "$push": {
                    "interactions": {
                        "at": envelope.occurred_at,
                        "channel": envelope.data["channel"],
                        "answers": seal_of(envelope),
                    }
                }
            },
        )

    async def scored(self, envelope: EventEnvelope, score: int) -> None:
        await self.apply(envelope, envelope.data["lead_id"], {"$set": {"score": score}})

    async def qualified(self, envelope: EventEnvelope) -> None:
        await self.apply(envelope, envelope.data["lead_id"], {"$set": {"qualified": True}})

    async def rectified(self, envelope: EventEnvelope) -> list[str]:
        lead_ids = await self.lead_ids(envelope.tenant_id, envelope.subject_id)
        for lead_id in lead_ids:
            await self.apply_personal(
                envelope,
                lead_id,
                {
                    "$push": {
                        "rectifications": {"at": envelope.occurred_at, "sealed": seal_of(envelope)}
                    }
                },
            )
        return lead_ids

    async def consent_fact(self, envelope: EventEnvelope) -> None:
        fact = fact_from_event(envelope.type, envelope.id, envelope.occurred_at, envelope.data)
        if fact is None:
            return
        await apply_once(
            self.subjects,
            f"{envelope.tenant_id}:{envelope.subject_id}",
            envelope.id,
            {"$set": {"tenant_id": envelope.tenant_id}, "$push": {"facts": fact.to_document()}},
        )

    async def subject(self, tenant_id: str, subject_id: str) -> Document:
        return await find_owned(self.subjects, f"{tenant_id}:{subject_id}", tenant_id) or {}

    async def lead(self, tenant_id: str, lead_id: str) -> Document | None:
        return await find_owned(self.leads, lead_id, tenant_id)

    async def lead_ids(self, tenant_id: str, subject_id: str) -> list[str]:
        return list((await self.subject(tenant_id, subject_id)).get("lead_ids", []))

    async def forget_subject(self, envelope: EventEnvelope) -> int:
        """Erasure: drop the ciphertexts (unreadable already) from crm-sync's lead copies.

        The subject is marked first, even before anything is known of it, so a lead event
        handled after this (see :meth:`apply_personal` and :meth:`captured`) is stripped too."""
        tenant_id, subject_id = envelope.tenant_id, envelope.subject_id
        await apply_once(
            self.subjects,
            f"{tenant_id}:{subject_id}",
            envelope.id,
            {"$set": {"tenant_id": tenant_id, "erased": True}},
        )
        lead_ids = await self.lead_ids(tenant_id, subject_id)
        for lead_id in lead_ids:
            await self.strip(lead_id)
        return len(lead_ids)

    async def strip(self, lead_id: str) -> None:
        """Leave only the non-personal facts of an erased lead (by ``_id``; nothing if absent)."""
        await self.leads.update_one(
            {"_id": lead_id},
            {"$set": {"contact": None, "interactions": [], "rectifications": [], "erased": True}},
        )

    # -- outbox ----------------------------------------------------------------------------
    async def enqueue(
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
    ) -> None:
        """One entry per lead and connection holds the next CRM operation. An erasure's delete
        is final for the lead: an upsert arriving after it (an earlier lead event handled late,
        or redelivered after a crash) must not replace it, or the erasure would wait for a
        delete that never runs (found by the e2e kill -9 test).

        The operation replaces a pending one, but the waits do not: an erasure or
        rectification waiting for the entry keeps waiting for whatever runs next (a
        rectification's update overtaken by a score update, or by the erasure's delete, would
        otherwise wait for ever)."""
        if operation == "upsert" and await self.deleting(lead_id, connection_id):
            return
        update: dict[str, Any] = {
            "$set": {
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
        }
        if wait_id is not None:
            update["$addToSet"] = {"wait_ids": wait_id}
        await self.outbox.update_one(
            {"_id": outbox_id(lead_id, connection_id)}, update, upsert=True
        )

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

    async def deleting(self, lead_id: str, connection_id: str) -> bool:
        """Whether the lead's record in this CRM is erased or being erased. A delete because
        no basis for ``crm_sync`` remained is not final: a new consent pushes again."""
        document = await self.outbox.find_one(
            {"_id": outbox_id(lead_id, connection_id)}, {"operation": 1, "erasure_id": 1}
        )
        return (
            document is not None
            and document.get("operation") == "delete"
            and document.get("erasure_id") is not None
        )

    async def record_of(self, lead_id: str, connection_id: str) -> str | None:
        document = await self.outbox.find_one({"_id": outbox_id(lead_id, connection_id)})
        return None if document is None else document.get("record_id")

    async def open_wait(
        self, wait_id: str, kind: str, cause: EventEnvelope, pending: list[str], actions: list[str]
    ) -> bool:
        """Record what an erasure/rectification waits for; False if it was already recorded."""
        result = await self.waits.update_one(
            {"_id": wait_id},
            {
                "$setOnInsert": {
                    "kind": kind,
                    "cause": cause.model_dump(mode="json"),
                    "pending": pending,
                    "actions": actions,
                    "receipted": False,
                }
            },
            upsert=True,
        )
        return result.upserted_id is not None
