"""retention-scheduler's read models and the expiry tick.

* ``retention_due``: one document per (subject, category) with its anchor and due time, indexed
  on ``(state, due_at)`` so a tick over millions of subjects is an index range read. Its state
  is derived, by :func:`derive`, from what the events said, kept beside it: the latest
  activity (``activity_at``) and the facts that only extend or close a schedule (``facts``:
  consent changes, expiries, erasures, sorted by time);
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

The one subscription reads five topics, and across topics (and partitions: policies and tenant
holds travel under the tenant's key) Kafka gives no order: live, a consent change may be handled
before the capture it follows, an erasure before an interaction that happened earlier, a policy
before or after an expiry. A replay merges them by time. So a schedule is never "the last write":
each event adds its fact (a later activity time, a consent change, an expiry, an erasure) and
the schedule is derived again from all of them in the order they *happened*, with the tenant's
current policy; a schedule closed by an expiry keeps the period it expired under. The document
ends the same whatever the order the events were handled in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel
from pymongo import ASCENDING
from pymongo.errors import DuplicateKeyError

from contracts import EventEnvelope
from contracts.events import consent, lead, retention
from contracts.events.retention import RetentionExpiredV1
from services.common.clock import Clock
from services.common.locks import SUBJECT_LOCKS
from services.common.logging import get_logger
from services.common.publisher import EventPublisher, derived_event_id
from services.common.store import Collections, Document, apply_once, update_if
from services.retention_scheduler.policy import DEFAULTS, CategoryPolicy, due_at

__all__ = [
    "ACTIVITY",
    "CONSENT_CHANGES",
    "SCHEDULED",
    "RetentionStore",
    "Scheduler",
    "derive",
    "expiry_event_id",
]

ACTIVITY = {"lead.interaction_recorded", "lead.score_reviewed", "lead.rectified"}
CONSENT_CHANGES = {"consent.granted", "consent.withdrawn"}
SCHEDULED = ("lead_data", "b2b_profile")
"""The categories events schedule (the others are declared for tenants' policies)."""
KIND_RANK = {"activity": 0, "expired": 1, "erased": 2}
"""At the same moment: an activity, then an expiry, then an erasure."""
CLEARED_BY_ACTIVITY = ("expired_at", "event_id")

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


def due_key(tenant_id: str, subject_id: str, category: str) -> str:
    return f"{tenant_id}:{subject_id}:{category}"


def _ms(moment: datetime) -> datetime:
    """To the millisecond, as BSON keeps it: a time taken from an event compares equal to the
    same time read back from the document."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def _fact_order(fact: Document) -> tuple[datetime, int, str]:
    return fact["at"], KIND_RANK[fact["kind"]], str(fact["event_id"])


def derive(
    activity_at: datetime | None, facts: Iterable[Document], period_days: int
) -> tuple[Document, tuple[str, ...]]:
    """A schedule's fields (to set, and to unset) from what the events said, in the order it
    happened: from the latest activity, a consent change (``activity`` fact) moves the anchor
    while the schedule is open, an expiry for the anchor then in force closes it (it keeps the
    period and due time it expired under), an erasure closes it. Facts from before the latest
    activity belong to an earlier schedule: new activity after an expiry or erasure is new data.
    Nothing without an activity (``({}, ())``): the facts wait for one."""
    if activity_at is None:
        return {}, ()
    anchor, state, expiry = activity_at, "scheduled", None
    for fact in sorted(facts, key=_fact_order):
        if fact["at"] < activity_at:
            continue
        if fact["kind"] == "activity":
            if state == "scheduled":
                anchor = max(anchor, fact["anchor_at"])
        elif fact["kind"] == "expired":
            if state == "scheduled" and fact["anchor_at"] == anchor:
                state, expiry = "expired", fact
        elif fact["kind"] == "erased":
            state = "erased"
    fields: Document = {"anchor_at": anchor, "state": state}
    if expiry is None:
        fields.update(due_at=due_at(anchor, period_days), period_days=period_days)
        return fields, CLEARED_BY_ACTIVITY
    fields.update(
        due_at=expiry["due_at"],
        period_days=expiry["period_days"],
        expired_at=expiry["at"],
        event_id=expiry["event_id"],
    )
    return fields, ()


def _inputs(document: Document) -> tuple[datetime | None, list[Document]]:
    """A schedule's latest activity and facts. A document written before they were kept holds
    only its derived fields; they are read back as the facts they stand for."""
    if "facts" in document or "anchor_at" not in document:
        return document.get("activity_at"), list(document.get("facts", []))
    anchor = document["anchor_at"]
    facts: list[Document] = []
    if document.get("expired_at") is not None:
        facts.append(
            {
                "event_id": document.get("event_id") or f"{document['_id']}/expired",
                "kind": "expired",
                "at": document["expired_at"],
                "anchor_at": anchor,
                "due_at": document["due_at"],
                "period_days": document["period_days"],
            }
        )
    if document.get("state") == "erased":
        closed = document.get("expired_at") or anchor
        facts.append({"event_id": f"{document['_id']}/erased", "kind": "erased", "at": closed})
    return anchor, facts


class RetentionStore:
    def __init__(
        self, db: Collections, on_scheduled: Callable[[datetime], None] | None = None
    ) -> None:
        """``on_scheduled(due_at)``: told of every open schedule it writes (the service wakes
        its expiry loop with it; a replay passes nothing)."""
        self.due = db["retention_due"]
        self.policies = db["retention_policies"]
        self.holds = db["retention_holds"]
        self.claims = db["retention_claims"]
        self.on_scheduled = on_scheduled

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
                # An update of a B2B profile, if the subject has one: its capture came earlier
                # in the same partition, so this is known whatever the order across topics.
                await self.extend(envelope, "b2b_profile", only_if_active=True)
        elif isinstance(data, consent.ConsentGrantedV1):
            # Anchored at when the person gave it: consent-ledger derives grants from a capture
            # whenever it gets to it, and that lag must not move (or, on replay, differ) a date.
            await self.extend(envelope, "lead_data", at=data.given_at)
        elif envelope.type in CONSENT_CHANGES:
            await self.extend(envelope, "lead_data")
        elif isinstance(data, retention.RetentionPolicySetV1):
            await self.set_policy(envelope, data.category, data.period_days, data.anchor)
        elif isinstance(data, retention.RetentionHoldPlacedV1):
            await self.hold(envelope, data.hold_id, data.scope, active=True)
        elif isinstance(data, retention.RetentionHoldReleasedV1):
            await self.hold(envelope, data.hold_id, data.scope, active=False)
        elif isinstance(data, RetentionExpiredV1):
            await self.expired(envelope, data)
        elif envelope.type == "erasure.requested":
            return await self.forget_subject(envelope)
        return 0

    async def expired(self, envelope: EventEnvelope, data: RetentionExpiredV1) -> None:
        """The schedule this expiry was for is over, unless activity moved its anchor since
        (then it is a new schedule). Matched by anchor, not due time: a policy handled before or
        after the expiry must not decide whether it counts."""
        await self.record(
            envelope,
            data.category,
            fact={
                "event_id": envelope.id,
                "kind": "expired",
                "at": _ms(envelope.occurred_at),
                "anchor_at": _ms(data.anchor_at),
                "due_at": _ms(data.due_at),
                "period_days": data.period_days,
            },
        )

    async def policy(self, tenant_id: str, category: str) -> CategoryPolicy:
        document = await self.policies.find_one({"_id": tenant_id})
        configured = ((document or {}).get("categories") or {}).get(category)
        default = DEFAULTS[category]
        if configured is None:
            return default
        return CategoryPolicy(
            default.category, int(configured["period_days"]), configured["anchor"]
        )

    async def touch(self, envelope: EventEnvelope, category: str) -> None:
        """Activity of the subject in a category (capture, interaction, review, rectification):
        it schedules the category, or moves the schedule on. New activity after an expiry or
        erasure starts a new schedule: it is new data."""
        await self.record(envelope, category, activity_at=_ms(envelope.occurred_at))

    async def extend(
        self,
        envelope: EventEnvelope,
        category: str,
        *,
        at: datetime | None = None,
        only_if_active: bool = False,
    ) -> None:
        """A change that moves an open schedule on but starts none (a consent change).

        ``at`` is when it happened if the event says so (never later than the event itself): a
        fact derived by another service carries the moment of the fact, not the moment that
        service got round to it, so a replay computes the same due time as live. Kept even
        before the category is scheduled (the capture may be handled after it), and counted if
        it happened while the schedule was open (:func:`derive`)."""
        anchor = min(at, envelope.occurred_at) if at is not None else envelope.occurred_at
        await self.record(
            envelope,
            category,
            fact={
                "event_id": envelope.id,
                "kind": "activity",
                "at": _ms(envelope.occurred_at),
                "anchor_at": _ms(anchor),
            },
            only_if_active=only_if_active,
        )

    async def record(
        self,
        envelope: EventEnvelope,
        category: str,
        *,
        activity_at: datetime | None = None,
        fact: Document | None = None,
        only_if_active: bool = False,
    ) -> tuple[Document, Document]:
        """Add what ``envelope`` says to the (subject, category) schedule and derive it again;
        returns the document before and the fields set. Read, then write by bare ``_id``
        (FerretDB 1.x scans for any other filter field); one consumer handles the service's
        events one at a time, so nothing changes the document in between."""
        key = due_key(envelope.tenant_id, envelope.subject_id, category)
        existing = await self.due.find_one({"_id": key}) or {}
        latest, facts = _inputs(existing)
        if only_if_active and latest is None:
            return existing, {}
        if activity_at is not None:
            latest = activity_at if latest is None else max(latest, activity_at)
        if fact is not None and all(f["event_id"] != fact["event_id"] for f in facts):
            facts.append(fact)
        facts.sort(key=_fact_order)
        policy = await self.policy(envelope.tenant_id, category)
        derived, cleared = derive(latest, facts, policy.period_days)
        fields: Document = {
            "tenant_id": envelope.tenant_id,
            "subject_id": envelope.subject_id,
            "category": category,
            "facts": facts,
            **derived,
        }
        if latest is not None:
            fields["activity_at"] = latest
        update: dict[str, Any] = {"$set": fields}
        if any(name in existing for name in cleared):
            update["$unset"] = dict.fromkeys(cleared, "")
        await apply_once(self.due, key, envelope.id, update)
        self._scheduled(fields)
        return existing, fields

    def _scheduled(self, fields: Document) -> None:
        if self.on_scheduled is not None and fields.get("state") == "scheduled":
            self.on_scheduled(fields["due_at"])

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

    async def set_policy(
        self, envelope: EventEnvelope, category: str, days: int, anchor: str
    ) -> None:
        await apply_once(
            self.policies,
            envelope.tenant_id,
            envelope.id,
            {"$set": {f"categories.{category}": {"period_days": days, "anchor": anchor}}},
        )
        # Every schedule of the category follows, open or erased, whether its events were
        # handled before this policy or after (then they read it themselves); one an expiry
        # closed keeps the period it expired under. Read (FerretDB 1.x scans for this filter
        # anyway), then written by bare _id.
        cursor = self.due.find({"tenant_id": envelope.tenant_id, "category": category})
        for document in await cursor.to_list(None):
            derived, _ = derive(*_inputs(document), days)
            changed = {name: v for name, v in derived.items() if document.get(name) != v}
            if changed:
                await self.due.update_one({"_id": document["_id"]}, {"$set": changed})
                self._scheduled(derived)

    async def hold(self, envelope: EventEnvelope, hold_id: str, scope: str, active: bool) -> None:
        """A hold as placed, and whether it is released. A release is final whichever was
        handled first: it travels under the key the operator gave, which need not be the
        placement's partition (``$min``: false < true). Scope and subject are the placement's."""
        update: dict[str, Any] = {
            "$set": {"tenant_id": envelope.tenant_id},
            "$min": {"active": active},
        }
        if active:
            update["$set"].update(
                subject_id=None if scope == "tenant" else envelope.subject_id, scope=scope
            )
        await apply_once(self.holds, hold_id, envelope.id, update)

    async def active_holds(self, tenant_id: str, subject_id: str) -> list[str]:
        cursor = self.holds.find(
            {
                "tenant_id": tenant_id,
                "active": True,
                "$or": [{"subject_id": subject_id}, {"scope": "tenant"}],
            }
        )
        return sorted([str(document["_id"]) async for document in cursor])

    async def forget_subject(self, envelope: EventEnvelope) -> int:
        """Erasure: nothing of the subject is scheduled any more; returns how many schedules
        it closed. Recorded in each category events schedule, even one not scheduled yet (its
        capture may be handled after this, and must find it closed); one write by ``_id`` per
        category rather than a filter on the subject, which FerretDB 1.x would answer by
        scanning every schedule."""
        closed = 0
        fact = {"event_id": envelope.id, "kind": "erased", "at": _ms(envelope.occurred_at)}
        for category in SCHEDULED:
            before, after = await self.record(envelope, category, fact=dict(fact))
            closed += before.get("state") == "scheduled" and after.get("state") == "erased"
        return closed


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

        Under the subject's lock, the schedule is read again: the subject's consumers may have
        moved or closed it since the batch was read (new activity, an erasure), and what is
        published must be what the document says now. Every read and write is by ``_id``
        (a subject's schedules have known ids), so a tick costs no collection scans on
        FerretDB 1.x."""
        tenant_id, subject_id = batched["tenant_id"], batched["subject_id"]
        async with SUBJECT_LOCKS.hold(tenant_id, subject_id):
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
            {"$set": expired_fields(event)},
        )
        log.info("retention expired", subject_id=subject_id, category=document["category"])
        return True
