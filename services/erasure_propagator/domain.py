"""erasure-propagator's state machine as a pure fold: which documents an event touches, and
what it makes of them. No I/O here; the batch pipeline (:mod:`services.common.pipeline`) loads
and writes the documents, and the handlers (:mod:`.handlers`) act on the result: destroy keys,
publish.

Read models (derived from events alone; all ``leadtrail replay`` rebuilds):

* ``erasure_requests``, one per privacy request: what erasure-propagator needs once it is
  verified (type, deadline, when it was received, the sealed corrections of a rectification);
* ``erasure_holds``, one per legal hold: its scope and whether it is still active.

Process state (its own decisions; published, not consumed back):

* ``erasures``, one per erasure, with an id derived from the event that started it::

      (started) --a hold covers the subject--> deferred --last hold released--> requested
      (started) ------------------------------------------------------------> requested
      requested --every expected receipt in--> completed

  ``requested`` means: destroy the subject's keys and publish ``erasure.requested`` (the
  handlers do both, again on a redelivery, with the same event id). The times recorded are
  the events' times (``requested_at``: the event that started or released it;
  ``completed_at``: the last receipt), so a fold gives the same documents whenever it runs.
* ``rectifications``, one per rectification: its receipts until complete (the handlers open
  it, as that needs the decrypted corrections).

Holds and deferred erasures are found by a query, not by id (the active holds of a tenant, its
deferred erasures): the handlers read them before the fold and hand them to the folder as
already loaded (:meth:`ErasureModel.seeds_needed`); the fold then sees them, and the holds the
batch itself places or releases, as of each event.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from contracts.events import consent, erasure, privacy, retention
from services.common.clock import add_working_days
from services.common.crypto import seal_of
from services.common.pipeline import DocRef, Docs, Event
from services.common.publisher import derived_event_id
from services.common.store import Document

__all__ = [
    "DECIDED_BY",
    "ERASURES",
    "HOLDS",
    "OPEN_STATES",
    "READ_MODELS",
    "RECTIFICATIONS",
    "REQUESTS",
    "ErasureModel",
    "Seeds",
    "covering_holds",
    "decided_by",
    "erasure_id_for",
    "missing_receipts",
    "receipts_of",
]

REQUESTS = "erasure_requests"
HOLDS = "erasure_holds"
ERASURES = "erasures"
RECTIFICATIONS = "rectifications"
READ_MODELS = (REQUESTS, HOLDS)
OPEN_STATES = ("requested", "deferred")
"""Erasure states before ``completed``."""
DECIDED_BY = "decided_by"
"""The id of the event that brought an erasure or rectification to its current state."""


def erasure_id_for(cause_id: str) -> str:
    """The id of the erasure ``cause_id`` starts: the same on every redelivery and replay."""
    return "er_" + uuid.UUID(derived_event_id(cause_id, "erasure")).hex


def missing_receipts(document: Document) -> set[str]:
    return set(document["expected"]) - set(document.get("receipts", {}))


def receipts_of(document: Document) -> list[erasure.Receipt]:
    return [
        erasure.Receipt(service=name, actions=r["actions"], at=r["at"], event_id=r["event_id"])
        for name, r in sorted(document.get("receipts", {}).items())
    ]


def decided_by(document: Document | None, event_id: str, state: str) -> bool:
    """Whether ``document`` is in ``state`` because of the event ``event_id`` (folded now, or
    before a redelivery of it): what that event must act on."""
    return (
        document is not None
        and document.get("state") == state
        and document.get(DECIDED_BY) == event_id
    )


@dataclass(frozen=True)
class Seeds:
    """What a batch needs found by query before it is folded (tenant ids)."""

    holds_of: frozenset[str]
    """Tenants whose active holds an event decides on (an erasure starts, a hold is released)."""
    deferred_of: frozenset[str]
    """Tenants a hold of which is released: their deferred erasures may run."""


class ErasureModel:
    """The :class:`~services.common.pipeline.ReadModel` of erasure-propagator.

    ``process=False`` folds the read models only (``erasure_requests``, ``erasure_holds``):
    what a replay rebuilds."""

    def __init__(
        self,
        *,
        expected_receipts: Sequence[str],
        deadline_working_days: int,
        process: bool = True,
    ) -> None:
        self.expected = list(expected_receipts)
        self.deadline_working_days = deadline_working_days
        self.process = process

    @classmethod
    def read_models_only(cls) -> ErasureModel:
        """The model a replay folds: ``erasure_requests`` and ``erasure_holds``."""
        return cls(expected_receipts=(), deadline_working_days=0, process=False)

    @staticmethod
    def seeds_needed(events: Iterable[Event]) -> Seeds:
        holds_of: set[str] = set()
        deferred_of: set[str] = set()
        for event in events:
            tenant = event.envelope.tenant_id
            if isinstance(event.data, retention.RetentionHoldReleasedV1):
                holds_of.add(tenant)
                deferred_of.add(tenant)
            elif ErasureModel._starts(event):
                holds_of.add(tenant)
        return Seeds(frozenset(holds_of), frozenset(deferred_of))

    # -- which documents -------------------------------------------------------------------
    def refs(self, event: Event, docs: Docs) -> tuple[DocRef, ...]:
        refs = self._refs(event, docs)
        if self.process:
            return refs
        if self._starts(event):
            return ()
        return tuple(ref for ref in refs if ref.collection in READ_MODELS)

    def _refs(self, event: Event, docs: Docs) -> tuple[DocRef, ...]:
        data, envelope = event.data, event.envelope
        own = _own_ref(data)
        if isinstance(data, retention.RetentionHoldReleasedV1):
            deferred = _of_tenant(docs, ERASURES, envelope.tenant_id, state="deferred")
            return (
                DocRef(HOLDS, data.hold_id),
                *_of_tenant(docs, HOLDS, envelope.tenant_id),
                *deferred,
            )
        if own is not None:
            return (own,)
        if self._starts(event):
            holds = _of_tenant(docs, HOLDS, envelope.tenant_id)
            request = (
                (DocRef(REQUESTS, data.request_id),)
                if isinstance(data, privacy.PrivacyRequestVerifiedV2)
                else ()
            )
            return (DocRef(ERASURES, erasure_id_for(envelope.id)), *request, *holds)
        return ()

    @staticmethod
    def _starts(event: Event) -> bool:
        data = event.data
        if isinstance(data, privacy.PrivacyRequestVerifiedV2):
            return data.request_type == "erasure"
        if isinstance(data, retention.RetentionExpiredV1):
            return data.all_categories_expired  # else some data is still within its period
        return isinstance(data, consent.NoBasisRemainingV1)

    # -- what they become ------------------------------------------------------------------
    def apply(self, docs: Docs, event: Event) -> Mapping[DocRef, Document | None]:
        data = event.data
        ref = _own_ref(data)
        if isinstance(data, privacy.PrivacyRequestReceivedV1) and ref is not None:
            return {ref: self.request(docs.get(ref), event, data)}
        if isinstance(data, retention.RetentionHoldPlacedV1) and ref is not None:
            return {ref: self.hold_placed(docs.get(ref), event, data)}
        if isinstance(data, retention.RetentionHoldReleasedV1):
            return self.hold_released(docs, event, data)
        if isinstance(data, (erasure.ErasureReceiptV1, erasure.RectificationReceiptV1)):
            assert ref is not None  # noqa: S101 (a receipt names its document)
            current = docs.get(ref)
            document = self.with_receipt(current, event, data.service, data.actions)
            return {} if document is None or document is current else {ref: document}
        if self._starts(event) and self.process:
            return self.start(docs, event)
        return {}

    @staticmethod
    def request(
        current: Document | None, event: Event, data: privacy.PrivacyRequestReceivedV1
    ) -> Document:
        envelope = event.envelope
        return {
            **(current or {}),
            "tenant_id": envelope.tenant_id,
            "subject_id": envelope.subject_id,
            "type": data.request_type,
            "deadline": data.deadline,
            "received_at": envelope.occurred_at,
            "subject_known": data.subject_known,
            "sealed": seal_of(envelope),
        }

    @staticmethod
    def hold_placed(
        current: Document | None, event: Event, data: retention.RetentionHoldPlacedV1
    ) -> Document:
        """A hold as placed. A release is final whichever was handled first: it travels under
        the key the operator gave, which need not be the placement's partition."""
        envelope = event.envelope
        return {
            **(current or {}),
            "tenant_id": envelope.tenant_id,
            "subject_id": None if data.scope == "tenant" else envelope.subject_id,
            "scope": data.scope,
            "reason": data.reason,
            "active": (current or {}).get("active", True),
        }

    def hold_released(
        self, docs: Docs, event: Event, data: retention.RetentionHoldReleasedV1
    ) -> dict[DocRef, Document | None]:
        """The hold is released (scope, subject and reason stay the placement's); every
        deferred erasure of the tenant that no active hold covers any more is requested."""
        ref = DocRef(HOLDS, data.hold_id)
        changes: dict[DocRef, Document | None] = {
            ref: {
                **(docs.get(ref) or {"tenant_id": event.envelope.tenant_id}),
                "active": False,
                "release_reason": data.reason,
            }
        }
        if not self.process:
            return changes
        after = {**docs, **changes}
        for erasure_ref in _of_tenant(after, ERASURES, event.envelope.tenant_id, state="deferred"):
            document = after[erasure_ref]
            assert document is not None  # noqa: S101 (found by state)
            if not _holds_over(after, document["tenant_id"], document["subject_id"]):
                changes[erasure_ref] = {
                    **document,
                    "state": "requested",
                    "requested_at": event.envelope.occurred_at,
                    DECIDED_BY: event.envelope.id,
                }
        return changes

    def start(self, docs: Docs, event: Event) -> dict[DocRef, Document | None]:
        """A new erasure: deferred when a legal hold covers the subject (R18), else requested."""
        envelope, data = event.envelope, event.data
        ref = DocRef(ERASURES, erasure_id_for(envelope.id))
        started = docs.get(ref)
        if started is not None and started.get("state") != "new":
            # Started by this event before (a redelivery past the window). ``new``: started
            # by an earlier version, which recorded the erasure before deciding; decide now.
            return {}
        trigger: erasure.ErasureTrigger
        deadline: datetime
        opened_at = envelope.occurred_at
        if isinstance(data, privacy.PrivacyRequestVerifiedV2):
            request = docs.get(DocRef(REQUESTS, data.request_id))
            if request is None:
                raise LookupError(f"request {data.request_id} verified before received")
            trigger = erasure.ErasureTrigger(
                kind="privacy_request", event_id=envelope.id, request_id=data.request_id
            )
            deadline, opened_at = request["deadline"], request.get("received_at") or opened_at
        else:
            deadline = add_working_days(envelope.occurred_at, self.deadline_working_days)
            category = data.category if isinstance(data, retention.RetentionExpiredV1) else None
            trigger = erasure.ErasureTrigger(
                kind="retention" if category else "no_basis_remaining",
                event_id=envelope.id,
                category=category,
            )
        holds = _holds_over(docs, envelope.tenant_id, envelope.subject_id)
        document: Document = {
            "tenant_id": envelope.tenant_id,
            "subject_id": envelope.subject_id,
            "trigger": trigger.model_dump(mode="json"),
            "deadline": deadline,
            "expected": list(self.expected),
            "correlation_id": envelope.correlation_id,
            "cause_id": envelope.id,
            "opened_at": opened_at,
            "receipts": (started or {}).get("receipts", {}),
            DECIDED_BY: envelope.id,
        }
        if holds:
            document |= {"state": "deferred", "hold_ids": holds}
        else:
            document |= {"state": "requested", "requested_at": envelope.occurred_at}
        return {ref: document}

    @staticmethod
    def with_receipt(
        current: Document | None, event: Event, service: str, actions: Sequence[str]
    ) -> Document | None:
        """``current`` with ``service``'s receipt (the first one it sent stays), completed
        once every expected receipt is in; None: not started here, nothing to confirm;
        ``current`` itself: nothing changes.

        An erasure completes from ``requested`` only (a deferred one has not destroyed
        anything yet); ``completed_at`` is the last receipt's time."""
        if current is None:
            return None
        receipts = current.get("receipts", {})
        if service not in receipts:
            entry = {
                "actions": list(actions),
                "at": event.envelope.occurred_at,
                "event_id": event.envelope.id,
            }
            current = {**current, "receipts": {**receipts, service: entry}}
        if current["state"] == "requested" and not missing_receipts(current):
            completed_at = event.envelope.occurred_at
            return {
                **current,
                "state": "completed",
                "completed_at": completed_at,
                DECIDED_BY: event.envelope.id,
            }
        return current


def _own_ref(data: object) -> DocRef | None:
    """The one document an event of a single document names (None: not such an event)."""
    if isinstance(data, privacy.PrivacyRequestReceivedV1):
        return DocRef(REQUESTS, data.request_id)
    if isinstance(data, retention.RetentionHoldPlacedV1):
        return DocRef(HOLDS, data.hold_id)
    if isinstance(data, erasure.ErasureReceiptV1):
        return DocRef(ERASURES, data.erasure_id)
    if isinstance(data, erasure.RectificationReceiptV1):
        return DocRef(RECTIFICATIONS, data.rectification_id)
    return None


def _of_tenant(docs: Docs, collection: str, tenant_id: str, **match: Any) -> list[DocRef]:
    """The loaded documents of ``collection`` of the tenant (matching ``match``), by id."""
    return sorted(
        ref
        for ref, document in docs.items()
        if ref.collection == collection
        and document is not None
        and document.get("tenant_id") == tenant_id
        and all(document.get(k) == v for k, v in match.items())
    )


def _holds_over(docs: Docs, tenant_id: str, subject_id: str) -> list[str]:
    """The ids of the active holds among ``docs`` that cover the subject."""
    return [
        ref.id
        for ref in _of_tenant(docs, HOLDS, tenant_id, active=True)
        if (docs[ref] or {}).get("scope") == "tenant"
        or (docs[ref] or {}).get("subject_id") == subject_id
    ]


def covering_holds(holds: Iterable[Document], tenant_id: str, subject_id: str) -> list[str]:
    """The ids of the active holds among ``holds`` (stored documents, with their ``_id``) that
    cover the subject (R18): a hold on the whole tenant, or on that subject."""
    return sorted(
        str(hold["_id"])
        for hold in holds
        if hold.get("active")
        and hold.get("tenant_id") == tenant_id
        and (hold.get("scope") == "tenant" or hold.get("subject_id") == subject_id)
    )
