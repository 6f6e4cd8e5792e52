"""lead-ingest's read models, written only by its event handlers.

* ``leads``: one document per lead. Personal data stays as the events' ciphertexts (``contact``,
  ``interactions[].answers``, ``score.inputs``) and is decrypted on read, so crypto-shredding
  covers the read model too: after erasure nothing in it is readable.
* ``subjects``: what consent-ledger said about each subject (restricted, suppressed, objections).
* ``privacy_requests``: status of each data-subject request.

Every write goes through :func:`~services.common.store.apply_once`, keyed by event id.
:meth:`LeadProjection.apply` is the whole read-model side of every event the service consumes:
the handlers call it before they react (score, qualify, send receipts), and ``leadtrail replay``
calls it alone, so a rebuild runs the very code that built the live collections.

Live, lead-, consent-, privacy- and erasure-events arrive through separate consumer groups, so
an erasure may be handled before lead events published earlier (or before a later capture of
the subject), while a replay applies them in time order. So an erasure also marks the subject
(``erased_at``), and every lead event that brings personal data strips the lead again when it
is already erased: the documents end the same in either order.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection

from contracts import REGISTRY, EventEnvelope
from contracts.events import consent, erasure, lead, privacy
from contracts.topics import CONSENT_EVENTS
from services.common.consent import fact_from_event
from services.common.crypto import seal_of
from services.common.store import Collections, Document, apply_once, find_owned, update_if

__all__ = ["CONSENT_TYPES", "LeadProjection", "request_status", "subject_key"]

CONSENT_TYPES = frozenset(REGISTRY.types_on_topic(CONSENT_EVENTS.name))


REQUEST_OUTCOMES = (
    erasure.ErasureCompletedV1,
    erasure.RectificationCompletedV1,
    erasure.ErasureOverdueV1,
)
"""erasure-propagator's events that answer a verified privacy request (or say it is overdue).
consent-ledger's answers, ``restriction.placed`` and ``objection.recorded`` naming a request,
are consent facts first (:meth:`LeadProjection.subject_state`)."""


def request_status(document: Document) -> str:
    """A request's status: ``completed`` once carried out, ``overdue`` past its deadline
    without every receipt, else what the request events said (``received``, ``verified``)."""
    if document.get("completed_at") is not None:
        return "completed"
    if document.get("overdue_at") is not None:
        return "overdue"
    return str(document.get("status", "received"))


def subject_key(tenant_id: str, subject_id: str) -> str:
    return f"{tenant_id}:{subject_id}"


def score_band(score: int) -> str:
    """Coarse, non-personal score bands for aggregates (R19)."""
    if score < 25:
        return "0-24"
    if score < 50:
        return "25-49"
    if score < 75:
        return "50-74"
    return "75+"


class LeadProjection:
    def __init__(self, db: Collections) -> None:
        self.leads = db["leads"]
        self.subjects = db["subjects"]
        self.requests = db["privacy_requests"]

    async def ensure_indexes(self) -> None:
        await self.leads.create_index([("tenant_id", ASCENDING), ("subject_id", ASCENDING)])
        await self.requests.create_index([("tenant_id", ASCENDING), ("subject_id", ASCENDING)])

    async def apply(self, envelope: EventEnvelope, data: BaseModel) -> int:
        """Apply one decoded event to the read models; returns how many documents changed.

        No side effect beyond these collections: no event, no key, no blind index.
        """
        changed: int | bool = 0
        if isinstance(data, lead.LeadCapturedV1):
            changed = await self.captured(envelope, data)
        elif isinstance(data, lead.LeadInteractionRecordedV1):
            changed = await self.interaction(envelope, data)
        elif isinstance(data, lead.LeadScoredV2):
            changed = await self.scored(envelope, data)
        elif isinstance(data, lead.LeadScoreReviewedV2):
            changed = await self.reviewed(envelope, data)
        elif isinstance(data, lead.LeadQualifiedV1):
            changed = await self.qualified(envelope, data)
        elif isinstance(data, erasure.LeadRectifiedV1):
            changed = await self.rectified(envelope)
        elif isinstance(data, erasure.ErasureRequestedV1):
            changed = await self.anonymise_subject(
                envelope.tenant_id, envelope.subject_id, envelope.occurred_at
            )
            await self.request_erasure(envelope, data)
        elif isinstance(data, REQUEST_OUTCOMES):
            changed = await self.request_outcome(envelope, data)
        elif isinstance(data, privacy.PrivacyRequestReceivedV1):
            changed = await self.request_received(envelope, data)
        elif isinstance(data, privacy.PrivacyRequestVerifiedV2):
            changed = await self.request_verified(envelope, data)
        elif isinstance(data, privacy.PrivacyRequestCompletedV1):
            changed = await self.request_completed(envelope, data)
        elif envelope.type in CONSENT_TYPES:
            changed = await self.subject_state(envelope, data)
            # A restriction or objection, consent-ledger's answer to a request of that type.
            changed += await self.request_outcome(envelope, data)
        return int(changed)

    # -- leads --------------------------------------------------------------------------
    async def captured(self, envelope: EventEnvelope, data: lead.LeadCapturedV1) -> bool:
        # The subject document lists its leads, so finding them is a lookup by _id (a query on
        # another field is a collection scan on FerretDB 1.x).
        await apply_once(
            self.subjects,
            subject_key(envelope.tenant_id, envelope.subject_id),
            envelope.id,
            {
                "$set": {"tenant_id": envelope.tenant_id, "subject_id": envelope.subject_id},
                "$addToSet": {"lead_ids": data.lead_id},
            },
        )
        changed = await apply_once(
            self.leads,
            data.lead_id,
            envelope.id,
            {
                "$set": {
                    "tenant_id": envelope.tenant_id,
                    "subject_id": envelope.subject_id,
                    "captured_at": envelope.occurred_at,
                    "month": envelope.occurred_at.strftime("%Y-%m"),
                    "source": data.source.model_dump(mode="json"),
                    "source_kind": data.source.kind,
                    "consent": data.consent.model_dump(mode="json") if data.consent else None,
                    "contact": seal_of(envelope),
                    "updated_at": envelope.occurred_at,
                },
                # No `$setOnInsert` of an empty `interactions`: FerretDB 1.x drops empty arrays
                # there, MongoDB keeps them, and a rebuild (ops.replay_memory) must come out the
                # same as live on either. Readers take a missing list as empty.
            },
        )
        # Captured after the subject's erasure was handled: strip it as the erasure would have.
        # (The lead list is written before this read, and the erasure marks the subject before
        # it reads the list: whichever runs second sees the other.)
        erased_at = (await self.subject(envelope.tenant_id, envelope.subject_id)).get("erased_at")
        if erased_at is not None:
            document = await self.leads.find_one({"_id": data.lead_id})
            if document is not None:
                await self.strip(document, erased_at)
        return changed

    async def interaction(
        self, envelope: EventEnvelope, data: lead.LeadInteractionRecordedV1
    ) -> bool:
        return await self.apply_personal(
            self.leads,
            data.lead_id,
            envelope.id,
            {
                "$push": {
                    "interactions": {
                        "interaction_id": data.interaction_id,
                        "event_id": envelope.id,
                        "channel": data.channel,
                        "at": envelope.occurred_at,
                        "answered": data.answered,
                        "answers": seal_of(envelope),
                    }
                },
                "$set": {"updated_at": envelope.occurred_at},
            },
        )

    async def scored(self, envelope: EventEnvelope, data: lead.LeadScoredV2) -> bool:
        # A criterion without its rule (a v1 event, upcast) is kept as v1 code kept it, so a
        # read model built before lead.scored v2 equals its rebuild.
        matched = [m.model_dump(exclude={"rule"} if m.rule is None else None) for m in data.matched]
        return await self.apply_personal(
            self.leads,
            data.lead_id,
            envelope.id,
            {
                "$set": {
                    "score": {
                        "value": data.score,
                        "threshold": data.threshold,
                        "qualified": data.qualified,
                        "rules_version": data.rules_version,
                        "matched": matched,
                        "inputs": seal_of(envelope),
                        "event_id": envelope.id,
                        "at": envelope.occurred_at,
                        "source": "rules",
                    },
                    "score_band": score_band(data.score),
                    "updated_at": envelope.occurred_at,
                }
            },
        )

    async def reviewed(self, envelope: EventEnvelope, data: lead.LeadScoreReviewedV2) -> bool:
        # Since v2 the reviewer is sealed with the reason; only a v1 event (upcast) brings it in
        # clear, kept as v1 code kept it (so a read model built before v2 equals its rebuild)
        # until an erasure strips it.
        review: dict[str, Any] = {
            "review_id": data.review_id,
            "previous_score": data.previous_score,
        }
        if data.legacy_reviewer is not None:
            review["reviewer"] = data.legacy_reviewer
        if data.reviewer_hash is not None:
            review["reviewer_hash"] = data.reviewer_hash
        return await self.apply_personal(
            self.leads,
            data.lead_id,
            envelope.id,
            {
                "$set": {
                    "score.value": data.new_score,
                    "score_band": score_band(data.new_score),
                    "score.source": "review",
                    "score.review": {
                        **review,
                        "reason": seal_of(envelope),
                        "at": envelope.occurred_at,
                    },
                    "updated_at": envelope.occurred_at,
                }
            },
        )

    async def qualified(self, envelope: EventEnvelope, data: lead.LeadQualifiedV1) -> bool:
        return await apply_once(
            self.leads,
            data.lead_id,
            envelope.id,
            {
                "$set": {
                    "qualified": {"at": envelope.occurred_at, "score": data.score, "by": data.by},
                    # The id claimed by claim_qualification is this event's id: recording it
                    # here too makes the claim part of what a replay rebuilds.
                    "qualification_event_id": envelope.id,
                    "updated_at": envelope.occurred_at,
                }
            },
        )

    async def rectified(self, envelope: EventEnvelope) -> int:
        """Add corrected contact details to every lead of the subject (R24)."""
        changed = 0
        for document in await self.leads_of(envelope.tenant_id, envelope.subject_id):
            changed += await self.apply_personal(
                self.leads,
                str(document["_id"]),
                envelope.id,
                {
                    "$push": {
                        "rectifications": {
                            "at": envelope.occurred_at,
                            "fields": envelope.data["fields"],
                            "sealed": seal_of(envelope),
                        }
                    },
                    "$set": {"updated_at": envelope.occurred_at},
                },
            )
        return changed

    async def anonymise_subject(self, tenant_id: str, subject_id: str, at: datetime) -> int:
        """Erasure: drop every personal field (already unreadable once the keys are gone) and
        keep the non-personal facts (source, times, scores) for aggregates (R19).

        The subject is marked first (``erased_at``, the latest erasure's time), even when
        nothing is known of it yet, so lead events handled after this are stripped as well
        (:meth:`apply_personal`, :meth:`captured`)."""
        await self.subjects.update_one(
            {"_id": subject_key(tenant_id, subject_id)},
            {"$set": {"tenant_id": tenant_id, "subject_id": subject_id}, "$max": {"erased_at": at}},
            upsert=True,
        )
        count = 0
        for document in await self.leads_of(tenant_id, subject_id):
            await self.strip(document, at)
            count += 1
        return count

    async def strip(self, document: Document, at: datetime) -> None:
        """Leave only the non-personal facts of an erased lead; ``erased_at`` is the latest
        erasure's time, whichever was handled last."""
        interactions = [{**item, "answers": None} for item in document.get("interactions", [])]
        update: dict[str, Any] = {
            "contact": None,
            "interactions": interactions,
            "rectifications": [],
        }
        if document.get("score"):
            update["score.inputs"] = None
            if document["score"].get("review"):
                update["score.review.reason"] = None
                if "reviewer" in document["score"]["review"]:  # a v1 review's, in clear
                    update["score.review.reviewer"] = None
        await self.leads.update_one(
            {"_id": document["_id"]}, {"$set": update, "$max": {"erased_at": at}}
        )

    async def apply_personal(
        self, leads: AsyncCollection[Document], lead_id: str, event_id: str, update: Document
    ) -> bool:
        """:func:`apply_once` for an event that brings personal data to a lead: an erased lead
        (its erasure handled before this event) is stripped again."""
        changed = await apply_once(leads, lead_id, event_id, update)
        # By bare _id (FerretDB 1.x scans for any other filter), the whole lead only if erased.
        mark = await leads.find_one({"_id": lead_id}, {"erased_at": 1})
        if mark is not None and mark.get("erased_at") is not None:
            document = await leads.find_one({"_id": lead_id})
            if document is not None:
                await self.strip(document, document["erased_at"])
        return changed

    async def claim_qualification(self, lead_id: str, event_id: str) -> bool:
        """Reserve the one ``lead.qualified`` of a lead for ``event_id``.

        True when this event id holds the reservation (first time, or a redelivery of the same
        cause, which republishes the same event id); False when another cause already did.
        Goes by ``_id`` only (:func:`update_if`): any other filter scans the collection on
        FerretDB 1.x.
        """
        claim = {"$set": {"qualification_event_id": event_id}}
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
        return await find_owned(self.leads, lead_id, tenant_id)

    async def leads_of(self, tenant_id: str, subject_id: str) -> list[Document]:
        subject = await self.subject(tenant_id, subject_id)
        lead_ids = subject.get("lead_ids", [])
        if not lead_ids:
            return []
        found = [await find_owned(self.leads, lead_id, tenant_id) for lead_id in lead_ids]
        return [document for document in found if document is not None]

    # -- subjects ----------------------------------------------------------------------
    async def subject_state(self, envelope: EventEnvelope, data: BaseModel) -> bool:
        """Keep the consent facts the shared decision folds, and the suppression flag."""
        update: dict[str, Any] = {"$set": {"tenant_id": envelope.tenant_id}}
        fact = fact_from_event(envelope.type, envelope.id, envelope.occurred_at, data.model_dump())
        if fact is not None:
            update["$push"] = {"facts": fact.to_document()}
        elif isinstance(data, consent.SuppressionAddedV1):
            update["$set"].update(suppressed=True, suppressed_at=envelope.occurred_at)
        else:
            return False
        return await apply_once(
            self.subjects, subject_key(envelope.tenant_id, envelope.subject_id), envelope.id, update
        )

    async def subject(self, tenant_id: str, subject_id: str) -> Document:
        found = await self.subjects.find_one({"_id": subject_key(tenant_id, subject_id)})
        return found or {}

    # -- privacy requests --------------------------------------------------------------
    async def request_received(
        self, envelope: EventEnvelope, data: privacy.PrivacyRequestReceivedV1
    ) -> bool:
        return await apply_once(
            self.requests,
            data.request_id,
            envelope.id,
            {
                "$set": {
                    "tenant_id": envelope.tenant_id,
                    "subject_id": envelope.subject_id,
                    "type": data.request_type,
                    "received_at": envelope.occurred_at,
                    "deadline": data.deadline,
                    "verification": data.verification,
                    "subject_known": data.subject_known,
                },
                "$setOnInsert": {"status": "received"},
            },
        )

    async def request_verified(
        self, envelope: EventEnvelope, data: privacy.PrivacyRequestVerifiedV2
    ) -> bool:
        return await apply_once(
            self.requests,
            data.request_id,
            envelope.id,
            {"$set": {"status": "verified", "verified_at": envelope.occurred_at}},
        )

    async def request_completed(
        self, envelope: EventEnvelope, data: privacy.PrivacyRequestCompletedV1
    ) -> bool:
        return await apply_once(
            self.requests,
            data.request_id,
            envelope.id,
            {
                "$set": {
                    "status": "completed",
                    "completed_at": envelope.occurred_at,
                    "export_formats": data.formats,
                }
            },
        )

    async def request_erasure(
        self, envelope: EventEnvelope, data: erasure.ErasureRequestedV1
    ) -> None:
        """Which request an erasure answers: ``erasure.overdue`` names only the erasure. Kept
        on the subject (read by ``_id``), beside the erasure mark."""
        erasure_id, request_id = data.erasure_id, data.trigger.request_id
        if request_id is None:
            return  # from retention or a withdrawal
        await apply_once(
            self.subjects,
            subject_key(envelope.tenant_id, envelope.subject_id),
            envelope.id,
            {
                "$set": {
                    "tenant_id": envelope.tenant_id,
                    f"erasure_requests.{erasure_id}": request_id,
                }
            },
        )

    async def request_outcome(self, envelope: EventEnvelope, data: BaseModel) -> bool:
        """The outcome of a verified request, from the service that carried it out."""
        if isinstance(data, erasure.ErasureCompletedV1):
            return await self.request_answered(envelope, data.trigger.request_id, data.receipts)
        if isinstance(data, erasure.RectificationCompletedV1):
            return await self.request_answered(envelope, data.request_id, data.receipts)
        if isinstance(data, erasure.ErasureOverdueV1):
            return await self.request_overdue(envelope, data)
        if (
            isinstance(data, consent.RestrictionPlacedV1 | consent.ObjectionRecordedV1)
            and data.origin == "privacy_request"
        ):
            # consent-ledger's answer to a verified restriction or objection request
            return await self.request_answered(envelope, data.request_id, [])
        return False

    async def request_answered(
        self,
        envelope: EventEnvelope,
        request_id: str | None,
        receipts: Sequence[erasure.Receipt],
    ) -> bool:
        """A request carried out (erasure, rectification, restriction, objection): when, and
        each service's receipt. ``status`` stays what the request events set; the view reads
        ``completed_at`` first, so the answer counts whichever consumer group is ahead."""
        if request_id is None:
            return False
        return await apply_once(
            self.requests,
            request_id,
            envelope.id,
            {
                "$set": {
                    "tenant_id": envelope.tenant_id,
                    "completed_at": envelope.occurred_at,
                    "completed_by": envelope.type,
                    "receipts": [
                        {"service": r.service, "actions": list(r.actions), "at": r.at}
                        for r in receipts
                    ],
                }
            },
        )

    async def request_overdue(
        self, envelope: EventEnvelope, data: erasure.ErasureOverdueV1
    ) -> bool:
        subject = await self.subject(envelope.tenant_id, envelope.subject_id)
        request_id = subject.get("erasure_requests", {}).get(data.erasure_id)
        if request_id is None:
            return False  # an erasure from retention or a withdrawal: no request to answer
        return await apply_once(
            self.requests,
            request_id,
            envelope.id,
            {
                "$set": {
                    "tenant_id": envelope.tenant_id,
                    "overdue_at": envelope.occurred_at,
                    "missing_receipts": list(data.missing_receipts),
                }
            },
        )

    async def request(self, tenant_id: str, request_id: str) -> Document | None:
        return await find_owned(self.requests, request_id, tenant_id)
