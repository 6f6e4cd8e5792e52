"""retention-scheduler's read models, read, and the expiry tick.

What events make of the schedules, policies and holds is :mod:`.domain` (a pure fold, run by
the batch pipeline); :class:`RetentionStore` reads them, folds one event for ``leadtrail
replay`` (:meth:`RetentionStore.apply`) and makes the schedules follow a new policy.
``retention_due`` is indexed on ``(state, due_at)`` so a tick over millions of subjects is an
index range read.

Each expiry has an id derived from (tenant, subject, category, due time). Before publishing,
the tick claims it by inserting that id into ``retention_claims``: a unique-key insert is atomic
on every store, so the event is emitted once per subject and category even across restarts and
several replicas. A replica that died between claim and publish is taken over after a grace
period and republishes the same event id, which consumers deduplicate.

The tick marks a schedule expired itself (a write conditional on its due time, which moves its
version on, so no fold in flight overwrites it) and the service also consumes the
``retention.expired`` it published, which marks it the same way: so the expiry is in the event
log and a rebuild repeats it. The ``retention_claims`` are operational state, never rebuilt.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from pymongo import ASCENDING
from pymongo.errors import DuplicateKeyError

from contracts import REGISTRY, EventEnvelope
from contracts.events import retention
from contracts.events.retention import RetentionExpiredV1
from services.common.clock import Clock
from services.common.logging import get_logger
from services.common.pipeline import VERSION_FIELD, BatchFolder, Event
from services.common.publisher import EventPublisher, derived_event_id
from services.common.store import Collections, Document, update_if
from services.retention_scheduler.domain import (
    DUE,
    HOLDS,
    POLICIES,
    SCHEDULED,
    RetentionReadModel,
    due_key,
    policy_of,
    rederived,
)
from services.retention_scheduler.policy import CategoryPolicy

__all__ = [
    "RetentionStore",
    "Scheduler",
    "due_key",
    "expiry_event_id",
]

log = get_logger(__name__)
CLAIM_GRACE = timedelta(seconds=60)


def expiry_event_id(tenant_id: str, subject_id: str, category: str, due: datetime) -> str:
    return derived_event_id(f"{tenant_id}:{subject_id}:{category}", f"expired/{due.isoformat()}")


def expired_fields(envelope: EventEnvelope) -> Document:
    """What an expiry writes on its schedule: the same from the tick and from the event."""
    return {"state": "expired", "expired_at": envelope.occurred_at, "event_id": envelope.id}


def _still_due(document: Document, expected_due: datetime, now: datetime) -> bool:
    """Whether a schedule is still scheduled, due at ``expected_due``, and that is past."""
    return (
        document.get("state") == "scheduled"
        and document.get("due_at") == expected_due
        and expected_due <= now
    )


class RetentionStore:
    def __init__(
        self, db: Collections, on_scheduled: Callable[[datetime], None] | None = None
    ) -> None:
        """``on_scheduled(due_at)``: told of every open schedule it writes (the service wakes
        its expiry loop with it; a replay passes nothing)."""
        self.due = db[DUE]
        self.policies = db[POLICIES]
        self.holds = db[HOLDS]
        self.claims = db["retention_claims"]
        self.on_scheduled = on_scheduled
        self.folder = BatchFolder(db, RetentionReadModel())

    async def ensure_indexes(self) -> None:
        await self.due.create_index([("state", ASCENDING), ("due_at", ASCENDING)])
        await self.due.create_index([("tenant_id", ASCENDING), ("subject_id", ASCENDING)])
        await self.due.create_index([("tenant_id", ASCENDING), ("category", ASCENDING)])
        await self.holds.create_index([("tenant_id", ASCENDING), ("subject_id", ASCENDING)])

    async def apply(self, envelope: EventEnvelope) -> None:
        """Fold one event (validated and upcast here) into the read models, as live."""
        await self.apply_all([envelope])

    async def apply_all(self, envelopes: Sequence[EventEnvelope]) -> None:
        """Fold a batch of events, then follow the policies it set, as the live handler does
        (what a replay runs)."""
        events = [REGISTRY.decode(envelope) for envelope in envelopes]
        await self.folder.fold(events)
        for event in events:
            await self.follow_policy(event)

    async def follow_policy(self, event: Event) -> None:
        """After a ``retention.policy_set`` is folded: every schedule of the category follows,
        open or erased, whether its events were handled before this policy or after (then they
        read it themselves); one an expiry closed keeps the period it expired under. Each write
        is conditional on the version read and moves it on, as the fold's are."""
        data = event.data
        if not isinstance(data, retention.RetentionPolicySetV1):
            return
        cursor = self.due.find({"tenant_id": event.envelope.tenant_id, "category": data.category})
        for document in await cursor.to_list(None):
            changed = rederived(document, data.period_days)
            if not changed:
                continue
            if await update_if(
                self.due,
                document["_id"],
                {VERSION_FIELD: document.get(VERSION_FIELD)},
                {"$set": changed, "$inc": {VERSION_FIELD: 1}},
            ):
                self.scheduled({**document, **changed})
            # else a fold wrote it meanwhile, under the new policy already

    async def policy(self, tenant_id: str, category: str) -> CategoryPolicy:
        return policy_of(await self.policies.find_one({"_id": tenant_id}), category)

    def scheduled(self, document: Document | None) -> None:
        """Tell the tick of an open schedule (it may be due before the tick's next wake-up)."""
        if self.on_scheduled is not None and (document or {}).get("state") == "scheduled":
            self.on_scheduled((document or {})["due_at"])

    async def next_due(self, after: datetime) -> datetime | None:
        """When the earliest open schedule due after ``after`` is due (None: none). One read.
        Schedules due already and not expired are under a hold: its release, not time, lets
        them expire."""
        document = await self.due.find_one(
            {"state": "scheduled", "due_at": {"$gt": after}},
            {"due_at": 1},
            sort=[("due_at", ASCENDING)],
        )
        return None if document is None else document["due_at"]

    async def active_holds(self, tenant_id: str, subject_id: str) -> list[str]:
        cursor = self.holds.find(
            {
                "tenant_id": tenant_id,
                "active": True,
                "$or": [{"subject_id": subject_id}, {"scope": "tenant"}],
            }
        )
        return sorted([str(document["_id"]) async for document in cursor])


@dataclass
class Scheduler:
    store: RetentionStore
    publisher: EventPublisher
    clock: Clock
    batch_size: int = 500

    async def tick(self) -> int:
        """Expire what is due now; returns how many ``retention.expired`` were published."""
        return (await self._tick(self.clock.now()))[1]

    async def run_due(self) -> datetime | None:
        """One round of the expiry loop (:func:`~services.common.wakeup.run_when_due`): expire
        what is due, then return when the next schedule is due: now after a full batch that
        expired something (more may be waiting), else the earliest later due time, read once."""
        now = self.clock.now()
        read, published = await self._tick(now)
        if read >= self.batch_size and published:
            return now
        return await self.store.next_due(now)

    async def _tick(self, now: datetime) -> tuple[int, int]:
        """(schedules read, expiries published)."""
        published = 0
        candidates = self.store.due.find(
            {"state": "scheduled", "due_at": {"$lte": now}},
            sort=[("due_at", ASCENDING)],
            limit=self.batch_size,
        )
        # Read the batch first: expiring changes the very field the cursor filters on.
        batch = await candidates.to_list(self.batch_size)
        for document in batch:
            if await self.store.active_holds(document["tenant_id"], document["subject_id"]):
                continue  # R18: nothing under hold expires
            if await self.expire(document, now):
                published += 1
        return len(batch), published

    async def claim(self, event_id: str, due_id: str, now: datetime) -> bool:
        try:
            await self.store.claims.insert_one({"_id": event_id, "due": due_id, "claimed_at": now})
        except DuplicateKeyError:
            claim = await self.store.claims.find_one({"_id": event_id})
            # Someone else is on it, unless their claim is stale (they died before finishing).
            return claim is not None and claim["claimed_at"] <= now - CLAIM_GRACE
        return True

    async def expire(self, batched: Document, now: datetime) -> bool:
        """Publish the expiry of one schedule read in a tick's batch, once.

        The schedule is read again: the subject's consumer may have moved or closed it since
        the batch was read (new activity, an erasure), and what is published must be what the
        document says now. Every read and write is by ``_id`` (a subject's schedules have known
        ids)."""
        document = await self.store.due.find_one({"_id": batched["_id"]})
        if document is None or not _still_due(document, batched["due_at"], now):
            return False  # changed since the batch was read: the next tick decides
        return await self._expire(document, now)

    async def _expire(self, document: Document, now: datetime) -> bool:
        tenant_id, subject_id = document["tenant_id"], document["subject_id"]
        event_id = expiry_event_id(tenant_id, subject_id, document["category"], document["due_at"])
        if not await self.claim(event_id, document["_id"], now):
            return False
        all_expired = True
        for category in SCHEDULED:
            if category == document["category"]:
                continue
            other = await self.store.due.find_one({"_id": due_key(tenant_id, subject_id, category)})
            all_expired &= other is None or other.get("state") != "scheduled"
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
        await update_if(
            self.store.due,
            document["_id"],
            {"due_at": document["due_at"]},
            {"$set": expired_fields(event), "$inc": {VERSION_FIELD: 1}},
        )
        log.info("retention expired", subject_id=subject_id, category=document["category"])
        return True
