"""retention-scheduler's read models as a pure fold, and the derivation of a schedule.

* ``retention_due``: one document per (subject, category) with its anchor and due time. Its
  state is derived, by :func:`derive`, from what the events said, kept beside it: the latest
  activity (``activity_at``) and the facts that only extend or close a schedule (``facts``:
  consent changes, expiries, erasures, sorted by time);
* ``retention_policies``: each tenant's periods (events), falling back to the R15 defaults;
* ``retention_holds``: legal holds, placed and released, per subject or per tenant (R18).

The one subscription reads five topics, and across topics (and partitions: policies and tenant
holds travel under the tenant's key) Kafka gives no order: live, a consent change may be handled
before the capture it follows, an erasure before an interaction that happened earlier, a policy
before or after an expiry. A replay merges them by time. So a schedule is never "the last write":
each event adds its fact (a later activity time, a consent change, an expiry, an erasure) and
the schedule is derived again from all of them in the order they *happened*, with the tenant's
current policy; a schedule closed by an expiry keeps the period it expired under. The document
ends the same whatever the order the events were handled in.

A new policy also re-derives every schedule of its tenant and category, which no ``_id`` names:
that is :meth:`~services.retention_scheduler.schedule.RetentionStore.follow_policy`, run after
the fold.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from contracts.events import consent, lead, retention
from services.common.pipeline import DocRef, Docs, Event
from services.common.store import Document
from services.retention_scheduler.policy import DEFAULTS, CategoryPolicy, due_at

__all__ = [
    "ACTIVITY",
    "CONSENT_CHANGES",
    "DUE",
    "HOLDS",
    "POLICIES",
    "SCHEDULED",
    "RetentionReadModel",
    "derive",
    "due_key",
    "due_ref",
    "policy_of",
]

DUE = "retention_due"
POLICIES = "retention_policies"
HOLDS = "retention_holds"
ACTIVITY = {"lead.interaction_recorded", "lead.score_reviewed", "lead.rectified"}
CONSENT_CHANGES = {"consent.granted", "consent.withdrawn"}
SCHEDULED = ("lead_data", "b2b_profile")
"""The categories events schedule (the others are declared for tenants' policies)."""
KIND_RANK = {"activity": 0, "expired": 1, "erased": 2}
"""At the same moment: an activity, then an expiry, then an erasure."""
CLEARED_BY_ACTIVITY = ("expired_at", "event_id")


def due_key(tenant_id: str, subject_id: str, category: str) -> str:
    return f"{tenant_id}:{subject_id}:{category}"


def due_ref(tenant_id: str, subject_id: str, category: str) -> DocRef:
    return DocRef(DUE, due_key(tenant_id, subject_id, category))


def policy_ref(tenant_id: str) -> DocRef:
    return DocRef(POLICIES, tenant_id)


def policy_of(document: Document | None, category: str) -> CategoryPolicy:
    """A tenant's policy for ``category`` from its policies document, else the default."""
    configured = ((document or {}).get("categories") or {}).get(category)
    default = DEFAULTS[category]
    if configured is None:
        return default
    return CategoryPolicy(default.category, int(configured["period_days"]), configured["anchor"])


def ms(moment: datetime) -> datetime:
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


def inputs(document: Document) -> tuple[datetime | None, list[Document]]:
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


def rederived(document: Document, period_days: int) -> Document:
    """The fields of a schedule that change when it is derived again under a new period
    (empty: none)."""
    derived, _ = derive(*inputs(document), period_days)
    return {name: value for name, value in derived.items() if document.get(name) != value}


class RetentionReadModel:
    """The :class:`~services.common.pipeline.ReadModel` of retention-scheduler."""

    def refs(self, event: Event, docs: Docs) -> tuple[DocRef, ...]:
        envelope, data = event.envelope, event.data
        policy = policy_ref(envelope.tenant_id)
        if isinstance(data, retention.RetentionPolicySetV1):
            return (policy,)
        if isinstance(data, retention.RetentionHoldPlacedV1 | retention.RetentionHoldReleasedV1):
            return (DocRef(HOLDS, data.hold_id),)
        categories = self.categories(event)
        if not categories:
            return ()
        return (
            *(due_ref(envelope.tenant_id, envelope.subject_id, c) for c in categories),
            policy,
        )

    @staticmethod
    def categories(event: Event) -> tuple[str, ...]:
        """The schedules an event adds to."""
        envelope, data = event.envelope, event.data
        if isinstance(data, lead.LeadCapturedV1):
            return ("lead_data" if data.source.kind == "web_form" else "b2b_profile",)
        if envelope.type == "lead.rectified":
            return ("lead_data", "b2b_profile")
        if envelope.type in ACTIVITY or envelope.type in CONSENT_CHANGES:
            return ("lead_data",)
        if isinstance(data, retention.RetentionExpiredV1):
            return (data.category,)
        if envelope.type == "erasure.requested":
            return SCHEDULED
        return ()

    def apply(self, docs: Docs, event: Event) -> Mapping[DocRef, Document | None]:
        envelope, data = event.envelope, event.data
        if isinstance(data, retention.RetentionPolicySetV1):
            ref = policy_ref(envelope.tenant_id)
            categories = {**((docs[ref] or {}).get("categories") or {})}
            categories[data.category] = {"period_days": data.period_days, "anchor": data.anchor}
            return {ref: {**(docs[ref] or {}), "categories": categories}}
        if isinstance(data, retention.RetentionHoldPlacedV1 | retention.RetentionHoldReleasedV1):
            ref = DocRef(HOLDS, data.hold_id)
            return {ref: self.hold(docs[ref], event)}
        changes: dict[DocRef, Document | None] = {}
        policies = docs.get(policy_ref(envelope.tenant_id))
        for category in self.categories(event):
            ref = due_ref(envelope.tenant_id, envelope.subject_id, category)
            changed = recorded(
                docs[ref],
                policies,
                envelope.tenant_id,
                envelope.subject_id,
                category,
                **self.what(event, category),
            )
            if changed is not None:
                changes[ref] = changed
        return changes

    def what(self, event: Event, category: str) -> dict[str, Any]:
        """What an event adds to the schedule of ``category``: an activity (it schedules the
        category, or moves the schedule on; new activity after an expiry or erasure starts a
        new schedule: it is new data), or a fact that only extends or closes one."""
        envelope, data = event.envelope, event.data
        at = ms(envelope.occurred_at)
        if isinstance(data, lead.LeadCapturedV1):
            return {"activity_at": at}
        if envelope.type in ACTIVITY:
            if category == "b2b_profile":  # lead.rectified
                # An update of a B2B profile, if the subject has one: its capture came earlier
                # in the same partition, so this is known whatever the order across topics.
                return {"fact": self.activity(event), "only_if_active": True}
            return {"activity_at": at}
        if isinstance(data, retention.RetentionExpiredV1):
            return {
                "fact": {
                    "event_id": envelope.id,
                    "kind": "expired",
                    "at": at,
                    "anchor_at": ms(data.anchor_at),
                    "due_at": ms(data.due_at),
                    "period_days": data.period_days,
                }
            }
        if envelope.type == "erasure.requested":
            # Recorded in each category events schedule, even one not scheduled yet: its
            # capture may be handled after this, and must find it closed.
            return {"fact": {"event_id": envelope.id, "kind": "erased", "at": at}}
        return {"fact": self.activity(event)}  # a consent change

    @staticmethod
    def activity(event: Event) -> Document:
        """A change that moves an open schedule on but starts none (a consent change).

        Anchored at when it happened if the event says so (a grant's ``given_at``, never later
        than the event itself): a fact derived by another service carries the moment of the
        fact, not the moment that service got round to it, so a replay computes the same due
        time as live."""
        envelope, data = event.envelope, event.data
        at = data.given_at if isinstance(data, consent.ConsentGrantedV1) else None
        anchor = min(at, envelope.occurred_at) if at is not None else envelope.occurred_at
        return {
            "event_id": envelope.id,
            "kind": "activity",
            "at": ms(envelope.occurred_at),
            "anchor_at": ms(anchor),
        }

    @staticmethod
    def hold(current: Document | None, event: Event) -> Document:
        """A hold as placed, and whether it is released. A release is final whichever was
        handled first: it travels under the key the operator gave, which need not be the
        placement's partition. Scope and subject are the placement's."""
        data = event.data
        active = isinstance(data, retention.RetentionHoldPlacedV1)
        hold = {**(current or {}), "tenant_id": event.envelope.tenant_id}
        hold["active"] = active if "active" not in hold else bool(hold["active"]) and active
        if active:
            assert isinstance(data, retention.RetentionHoldPlacedV1)  # noqa: S101
            scope = data.scope
            hold.update(subject_id=None if scope == "tenant" else event.envelope.subject_id)
            hold["scope"] = scope
        return hold


def recorded(
    existing: Document | None,
    policies: Document | None,
    tenant_id: str,
    subject_id: str,
    category: str,
    *,
    activity_at: datetime | None = None,
    fact: Document | None = None,
    only_if_active: bool = False,
) -> Document | None:
    """The (subject, category) schedule with what an event says added, derived again; None
    when the event changes nothing (``only_if_active`` and nothing scheduled)."""
    current = existing or {}
    latest, facts = inputs(current)
    if only_if_active and latest is None:
        return None
    if activity_at is not None:
        latest = activity_at if latest is None else max(latest, activity_at)
    if fact is not None and all(f["event_id"] != fact["event_id"] for f in facts):
        facts.append(fact)
    facts.sort(key=_fact_order)
    derived, cleared = derive(latest, facts, policy_of(policies, category).period_days)
    document: Document = {
        **current,
        "tenant_id": tenant_id,
        "subject_id": subject_id,
        "category": category,
        "facts": facts,
        **derived,
    }
    if latest is not None:
        document["activity_at"] = latest
    for name in cleared:
        document.pop(name, None)
    return document
