"""retention-scheduler's read models and the expiry tick.

* ``retention_due``: one document per (subject, category) with its anchor and due time, indexed
  on ``(state, due_at)`` so a tick over millions of subjects is an index range read;
* ``retention_policies``: each tenant's periods (events), falling back to the R15 defaults;
* ``retention_holds``: legal holds in force, per subject or per tenant (R18).

Each expiry has an id derived from (tenant, subject, category, due time). Before publishing,
the tick claims it by inserting that id into ``retention_claims``: a unique-key insert is atomic
on MongoDB and on FerretDB 1.x (whose conditional updates are not atomic under concurrency on
SQLite), so the event is emitted once per subject and category even across restarts and several
replicas. A replica that died between claim and publish is taken over after a grace period and
republishes the same event id, which consumers deduplicate.

:meth:`RetentionStore.apply` is the whole read-model side of every consumed event (the handler
calls it, then sends the erasure receipt; ``leadtrail replay`` calls it alone). The tick marks a
schedule expired itself and the service also consumes the ``retention.expired`` it published,
which marks it the same way: so the expiry is in the event log and a rebuild repeats it. The
``retention_claims`` are operational state, never rebuilt.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import BaseModel
from pymongo import ASCENDING
from pymongo.errors import DuplicateKeyError

from contracts import EventEnvelope
from contracts.events import consent, lead, retention
from contracts.events.retention import RetentionExpiredV1
from services.common.clock import Clock
from services.common.logging import get_logger
from services.common.publisher import EventPublisher, derived_event_id
from services.common.store import Collections, Document, apply_once
from services.retention_scheduler.policy import DEFAULTS, CategoryPolicy, due_at

__all__ = ["ACTIVITY", "CONSENT_CHANGES", "RetentionStore", "Scheduler", "expiry_event_id"]

ACTIVITY = {"lead.interaction_recorded", "lead.score_reviewed", "lead.rectified"}
CONSENT_CHANGES = {"consent.granted", "consent.withdrawn"}

log = get_logger(__name__)
CLAIM_GRACE = timedelta(seconds=60)


def expiry_event_id(tenant_id: str, subject_id: str, category: str, due: datetime) -> str:
    return derived_event_id(f"{tenant_id}:{subject_id}:{category}", f"expired/{due.isoformat()}")


def expired_fields(envelope: EventEnvelope) -> Document:
    """What an expiry writes on its schedule: the same from the tick and from the event."""
    return {"state": "expired", "expired_at": envelope.occurred_at, "event_id": envelope.id}


def due_key(tenant_id: str, subject_id: str, category: str) -> str:
    return f"{tenant_id}:{subject_id}:{category}"


class RetentionStore:
    def __init__(self, db: Collections) -> None:
        self.due = db["retention_due"]
        self.policies = db["retention_policies"]
        self.holds = db["retention_holds"]
        self.claims = db["retention_claims"]

    async def ensure_indexes(self) -> None:
        await self.due.create_index([("state", ASCENDING), ("due_at", ASCENDING)])
        await self.due.create_index([("tenant_id", ASCENDING), ("subject_id", ASCENDING)])
        await self.due.create_index([("tenant_id", ASCENDING), ("category", ASCENDING)])
        await self.holds.create_index([("tenant_id", ASCENDING), ("subject_id", ASCENDING)])

    async def apply(self, envelope: EventEnvelope, data: BaseModel) -> int:
        """Apply one decoded event to the read models; returns how many schedules it closed
        (erasure), else 0."""
        if isinstance(data, lead.LeadCapturedV1):
            category = "lead_data" if data.source.kind == "web_form" else "b2b_profile"
            await self.touch(envelope, category)
        elif envelope.type in ACTIVITY:
            await self.touch(envelope, "lead_data")
            if envelope.type == "lead.rectified":
                await self.touch(envelope, "b2b_profile", only_if_scheduled=True)
        elif isinstance(data, consent.ConsentGrantedV1):
            # Anchored at when the person gave it: consent-ledger derives grants from a capture
            # whenever it gets to it, and that lag must not move (or, on replay, differ) a date.
            await self.touch(envelope, "lead_data", only_if_scheduled=True, at=data.given_at)
        elif envelope.type in CONSENT_CHANGES:
            await self.touch(envelope, "lead_data", only_if_scheduled=True)
        elif isinstance(data, retention.RetentionPolicySetV1):
            await self.set_policy(envelope, data.category, data.period_days, data.anchor)
        elif isinstance(data, retention.RetentionHoldPlacedV1):
            await self.hold(envelope, data.hold_id, data.scope, active=True)
        elif isinstance(data, retention.RetentionHoldReleasedV1):
            await self.hold(envelope, data.hold_id, data.scope, active=False)
        elif isinstance(data, RetentionExpiredV1):
            await self.expired(envelope, data)
        elif envelope.type == "erasure.requested":
            return await self.forget_subject(envelope.tenant_id, envelope.subject_id)
        return 0

    async def expired(self, envelope: EventEnvelope, data: RetentionExpiredV1) -> None:
        """The schedule this expiry was for is over (unless new activity moved it since)."""
        key = due_key(envelope.tenant_id, envelope.subject_id, data.category)
        # Read, then write by bare _id (FerretDB 1.x scans for any other filter field); one
        # consumer handles the subject's events in order, so nothing moves it in between.
        document = await self.due.find_one({"_id": key}, {"due_at": 1, "state": 1})
        if document is None or document.get("state") != "scheduled":
            return
        if document.get("due_at") != data.due_at:
            return
        await self.due.update_one({"_id": key}, {"$set": expired_fields(envelope)})

    async def policy(self, tenant_id: str, category: str) -> CategoryPolicy:
        document = await self.policies.find_one({"_id": tenant_id})
        configured = ((document or {}).get("categories") or {}).get(category)
        default = DEFAULTS[category]
        if configured is None:
            return default
        return CategoryPolicy(
            default.category, int(configured["period_days"]), configured["anchor"]
        )

    async def touch(
        self,
        envelope: EventEnvelope,
        category: str,
        *,
        only_if_scheduled: bool = False,
        at: datetime | None = None,
    ) -> None:
        """Record activity of the subject in a category and (re)compute its due time.

        ``at`` is when the activity happened if the event says so (never later than the event
        itself): a fact derived by another service carries the moment of the fact, not the
        moment that service got round to it, so a replay computes the same due time as live.
        New activity after an expiry or erasure starts a new schedule: it is new data.
        """
        key = due_key(envelope.tenant_id, envelope.subject_id, category)
        existing = await self.due.find_one({"_id": key})
        scheduled = existing is not None and existing.get("state") == "scheduled"
        if only_if_scheduled and not scheduled:
            return
        policy = await self.policy(envelope.tenant_id, category)
        anchor = min(at, envelope.occurred_at) if at is not None else envelope.occurred_at
        if existing is not None and scheduled and existing["anchor_at"] >= anchor:
            anchor = existing["anchor_at"]
        await apply_once(
            self.due,
            key,
            envelope.id,
            {
                "$set": {
                    "tenant_id": envelope.tenant_id,
                    "subject_id": envelope.subject_id,
                    "category": category,
                    "anchor_at": anchor,
                    "due_at": due_at(anchor, policy.period_days),
                    "period_days": policy.period_days,
                    "state": "scheduled",
                }
            },
        )

    async def set_policy(
        self, envelope: EventEnvelope, category: str, days: int, anchor: str
    ) -> None:
        await apply_once(
            self.policies,
            envelope.tenant_id,
            envelope.id,
            {"$set": {f"categories.{category}": {"period_days": days, "anchor": anchor}}},
        )
        cursor = self.due.find(
            {"tenant_id": envelope.tenant_id, "category": category, "state": "scheduled"}
        )
        async for document in cursor:
            await self.due.update_one(
                {"_id": document["_id"], "state": "scheduled"},
                {"$set": {"due_at": due_at(document["anchor_at"], days), "period_days": days}},
            )

    async def hold(self, envelope: EventEnvelope, hold_id: str, scope: str, active: bool) -> None:
        await apply_once(
            self.holds,
            hold_id,
            envelope.id,
            {
                "$set": {
                    "tenant_id": envelope.tenant_id,
                    "subject_id": None if scope == "tenant" else envelope.subject_id,
                    "scope": scope,
                    "active": active,
                }
            },
        )

    async def active_holds(self, tenant_id: str, subject_id: str) -> list[str]:
        cursor = self.holds.find(
            {
                "tenant_id": tenant_id,
                "active": True,
                "$or": [{"subject_id": subject_id}, {"scope": "tenant"}],
            }
        )
        return sorted([str(document["_id"]) async for document in cursor])

    async def forget_subject(self, tenant_id: str, subject_id: str) -> int:
        """Erasure: nothing of the subject is scheduled any more. One write by ``_id`` per
        category rather than a filter on the subject, which FerretDB 1.x would answer by
        scanning every schedule."""
        closed = 0
        for category in DEFAULTS:
            result = await self.due.update_one(
                {"_id": due_key(tenant_id, subject_id, category)}, {"$set": {"state": "erased"}}
            )
            closed += int(result.modified_count)
        return closed


@dataclass
class Scheduler:
    store: RetentionStore
    publisher: EventPublisher
    clock: Clock
    batch_size: int = 500

    async def tick(self) -> int:
        """Expire what is due now; returns how many ``retention.expired`` were published."""
        now = self.clock.now()
        published = 0
        candidates = self.store.due.find(
            {"state": "scheduled", "due_at": {"$lte": now}},
            sort=[("due_at", ASCENDING)],
            limit=self.batch_size,
        )
        # Read the batch first: expiring changes the very field the cursor filters on.
        for document in await candidates.to_list(self.batch_size):
            if await self.store.active_holds(document["tenant_id"], document["subject_id"]):
                continue  # R18: nothing under hold expires
            if await self.expire(document, now):
                published += 1
        return published

    async def claim(self, event_id: str, due_id: str, now: datetime) -> bool:
        try:
            await self.store.claims.insert_one({"_id": event_id, "due": due_id, "claimed_at": now})
        except DuplicateKeyError:
            claim = await self.store.claims.find_one({"_id": event_id})
            # Someone else is on it, unless their claim is stale (they died before finishing).
            return claim is not None and claim["claimed_at"] <= now - CLAIM_GRACE
        return True

    async def expire(self, document: Document, now: datetime) -> bool:
        tenant_id, subject_id = document["tenant_id"], document["subject_id"]
        event_id = expiry_event_id(tenant_id, subject_id, document["category"], document["due_at"])
        if not await self.claim(event_id, document["_id"], now):
            return False
        others = self.store.due.find(
            {
                "tenant_id": tenant_id,
                "subject_id": subject_id,
                "_id": {"$ne": document["_id"]},
                "state": "scheduled",
            }
        )
        all_expired = not await others.to_list(1)
        event = await self.publisher.publish(
            RetentionExpiredV1(
                category=document["category"],
                anchor_at=document["anchor_at"],
                due_at=document["due_at"],
                period_days=int(document["period_days"]),
                all_categories_expired=all_expired,
            ),
            tenant_id=tenant_id,
            subject_id=subject_id,
            correlation_id=event_id,
            event_id=event_id,
        )
        await self.store.due.update_one(
            {"_id": document["_id"], "due_at": document["due_at"]},
            {"$set": expired_fields(event)},
        )
        log.info("retention expired", subject_id=subject_id, category=document["category"])
        return True
