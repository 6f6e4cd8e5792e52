"""lead-ingest's read models as a pure fold: which documents an event touches and what it makes
of them, plus the scoring decisions read from them. No I/O here: the batch pipeline
(:mod:`services.common.pipeline`) loads and writes the documents, the handlers react.

* ``leads``: one document per lead. Personal data stays as the events' ciphertexts (``contact``,
  ``interactions[].answers``, ``score.inputs``) and is decrypted on read, so crypto-shredding
  covers the read model too: after erasure nothing in it is readable.
* ``subjects``: per subject, its leads (``lead_ids``, so finding them is a lookup by ``_id``),
  what consent-ledger said about it (consent facts, suppression), its erasure mark
  (``erased_at``) and which request each erasure answers.
* ``privacy_requests``: status of each data-subject request.

Live, lead-, consent-, privacy- and erasure-events arrive through separate consumer groups, so
an erasure may be handled before lead events published earlier (or before a later capture of
the subject), while a replay applies them in time order. So an erasure also marks the subject
(``erased_at``), and every lead event that brings personal data strips the lead again when it
or its subject is already erased: the documents end the same in either order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from contracts import REGISTRY
from contracts.events import consent, erasure, lead, privacy
from contracts.topics import CONSENT_EVENTS
from services.common.consent import (
    ConsentFact,
    ConsentState,
    LegalBasis,
    decide,
    fact_from_event,
    fold,
)
from services.common.crypto import seal_of
from services.common.pipeline import DocRef, Docs, Event
from services.common.store import Document, aware

__all__ = [
    "CONSENT_TYPES",
    "LEADS",
    "REQUESTS",
    "SUBJECTS",
    "LeadReadModel",
    "consent_state",
    "lead_ref",
    "request_ref",
    "score_band",
    "scoring_blocked",
    "subject_key",
    "subject_ref",
]

LEADS = "leads"
SUBJECTS = "subjects"
REQUESTS = "privacy_requests"
CONSENT_TYPES = frozenset(REGISTRY.types_on_topic(CONSENT_EVENTS.name))

PERSONAL_LEAD_EVENTS = (
    lead.LeadInteractionRecordedV1,
    lead.LeadScoredV2,
    lead.LeadScoreReviewedV2,
)
"""Lead events that bring personal data, so need the subject's erasure mark (and the scoring
reactions need the subject's consent facts)."""

RESCORING_CONSENT = (consent.RestrictionLiftedV1, consent.ConsentGrantedV1)
"""Consent events after which the subject's held-back leads are scored: their reaction needs
every lead of the subject."""


def subject_key(tenant_id: str, subject_id: str) -> str:
    return f"{tenant_id}:{subject_id}"


def subject_ref(tenant_id: str, subject_id: str) -> DocRef:
    return DocRef(SUBJECTS, subject_key(tenant_id, subject_id))


def lead_ref(lead_id: str) -> DocRef:
    return DocRef(LEADS, lead_id)


def request_ref(request_id: str) -> DocRef:
    return DocRef(REQUESTS, request_id)


def score_band(score: int) -> str:
    """Coarse, non-personal score bands for aggregates (R19)."""
    if score < 25:
        return "0-24"
    if score < 50:
        return "25-49"
    if score < 75:
        return "50-74"
    return "75+"


def consent_state(subject: Document) -> ConsentState:
    return fold(ConsentFact.from_document(f) for f in subject.get("facts", []))


def scoring_blocked(subject: Document, bases: Mapping[str, LegalBasis]) -> str | None:
    """Why the subject may not be scored (profiled) now, or None (R13, R14, R28).

    The same shared decision every service uses, for the ``profiling`` purpose.
    """
    decision = decide(consent_state(subject), "profiling", bases)
    return None if decision.allowed else decision.reason


def _later(first: datetime | None, second: datetime) -> datetime:
    return second if first is None or aware(second) > aware(first) else first


def stripped(document: Document, at: datetime) -> Document:
    """An erased lead: only its non-personal facts; ``erased_at`` is the latest erasure's
    time, whichever was handled last."""
    result: Document = {
        **document,
        "contact": None,
        "interactions": [{**item, "answers": None} for item in document.get("interactions", [])],
        "rectifications": [],
        "erased_at": _later(document.get("erased_at"), at),
    }
    score = document.get("score")
    if score:
        score = {**score, "inputs": None}
        review = score.get("review")
        if review:
            review = {**review, "reason": None}
            if "reviewer" in review:  # a v1 review's, in clear
                review["reviewer"] = None
            score["review"] = review
        result["score"] = score
    return result


class LeadReadModel:
    """The :class:`~services.common.pipeline.ReadModel` of lead-ingest."""

    def refs(self, event: Event, docs: Docs) -> tuple[DocRef, ...]:
        envelope, data = event.envelope, event.data
        subject = subject_ref(envelope.tenant_id, envelope.subject_id)
        touched: tuple[DocRef, ...]
        if isinstance(data, (lead.LeadCapturedV1, *PERSONAL_LEAD_EVENTS)):
            touched = (subject, lead_ref(data.lead_id))
        elif isinstance(data, lead.LeadQualifiedV1):
            touched = (lead_ref(data.lead_id),)
        elif isinstance(
            data, (erasure.LeadRectifiedV1, erasure.ErasureRequestedV1, *RESCORING_CONSENT)
        ):
            touched = (subject, *self.leads_of(docs, subject))
        else:
            request_id = self.answered_request(data)
            if isinstance(data, erasure.ErasureOverdueV1) and subject in docs:
                request_id = (docs[subject] or {}).get("erasure_requests", {}).get(data.erasure_id)
            needs_subject = envelope.type in CONSENT_TYPES or isinstance(
                data, erasure.ErasureOverdueV1
            )
            touched = (subject,) if needs_subject else ()
            if request_id is not None:
                touched = (*touched, request_ref(request_id))
        return touched

    @staticmethod
    def leads_of(docs: Docs, subject: DocRef) -> tuple[DocRef, ...]:
        """The subject's leads, once the subject is loaded."""
        if subject not in docs:
            return ()
        return tuple(lead_ref(lead_id) for lead_id in (docs[subject] or {}).get("lead_ids", []))

    @staticmethod
    def answered_request(data: BaseModel) -> str | None:
        """The privacy request an event is about, when it is one that changes it."""
        if isinstance(
            data,
            privacy.PrivacyRequestReceivedV1
            | privacy.PrivacyRequestVerifiedV2
            | privacy.PrivacyRequestCompletedV1
            | erasure.RectificationCompletedV1,
        ):
            return data.request_id
        if isinstance(data, erasure.ErasureCompletedV1):
            return data.trigger.request_id
        if (
            isinstance(data, consent.RestrictionPlacedV1 | consent.ObjectionRecordedV1)
            and data.origin == "privacy_request"
        ):
            return data.request_id  # consent-ledger's answer to a verified request
        return None

    def apply(self, docs: Docs, event: Event) -> Mapping[DocRef, Document | None]:
        envelope, data = event.envelope, event.data
        subject_id = subject_ref(envelope.tenant_id, envelope.subject_id)
        if isinstance(data, lead.LeadCapturedV1):
            return self.captured(docs, event, data)
        if isinstance(data, PERSONAL_LEAD_EVENTS):
            ref = lead_ref(data.lead_id)
            return {ref: self.personal(docs[ref], event)}
        if isinstance(data, lead.LeadQualifiedV1):
            ref = lead_ref(data.lead_id)
            qualified = {"at": envelope.occurred_at, "score": data.score, "by": data.by}
            return {
                ref: {
                    **(docs[ref] or {}),
                    "qualified": qualified,
                    # The id claimed by the qualification reaction is this event's id:
                    # recording it here too makes the claim part of what a replay rebuilds.
                    "qualification_event_id": envelope.id,
                    "updated_at": envelope.occurred_at,
                }
            }
        if isinstance(data, erasure.LeadRectifiedV1):
            return self.rectified(docs, event, subject_id)
        if isinstance(data, erasure.ErasureRequestedV1):
            return self.erased(docs, event, data, subject_id)
        changes: dict[DocRef, Document | None] = {}
        if envelope.type in CONSENT_TYPES:
            changes.update(self.consent_fact(docs, event, subject_id))
        request_id = self.answered_request(data)
        if isinstance(data, erasure.ErasureOverdueV1):
            subject = docs[subject_id] or {}
            request_id = subject.get("erasure_requests", {}).get(data.erasure_id)
        if request_id is not None:
            ref = request_ref(request_id)
            changes[ref] = self.request(docs[ref], event)
        return changes

    # -- leads --------------------------------------------------------------------------
    def captured(
        self, docs: Docs, event: Event, data: lead.LeadCapturedV1
    ) -> dict[DocRef, Document | None]:
        envelope = event.envelope
        subject_id, ref = (
            subject_ref(envelope.tenant_id, envelope.subject_id),
            lead_ref(data.lead_id),
        )
        subject = docs[subject_id] or {}
        lead_ids = list(subject.get("lead_ids", []))
        if data.lead_id not in lead_ids:
            lead_ids.append(data.lead_id)
        captured = {
            **(docs[ref] or {}),
            "tenant_id": envelope.tenant_id,
            "subject_id": envelope.subject_id,
            "captured_at": envelope.occurred_at,
            "month": envelope.occurred_at.strftime("%Y-%m"),
            "source": data.source.model_dump(mode="json"),
            "source_kind": data.source.kind,
            "consent": data.consent.model_dump(mode="json") if data.consent else None,
            "contact": seal_of(envelope),
            "updated_at": envelope.occurred_at,
            # No empty `interactions` on capture: readers take a missing list as empty.
        }
        erased_at = subject.get("erased_at")
        return {
            subject_id: {
                **subject,
                "tenant_id": envelope.tenant_id,
                "subject_id": envelope.subject_id,
                "lead_ids": lead_ids,
            },
            # Captured after the subject's erasure was handled: stripped as the erasure would.
            ref: captured if erased_at is None else stripped(captured, erased_at),
        }

    @staticmethod
    def personal(lead_doc: Document | None, event: Event) -> Document:
        """A lead event that brings personal data: an erased lead (its erasure handled
        before this event) is stripped again."""
        envelope, data = event.envelope, event.data
        current, at = lead_doc or {}, envelope.occurred_at
        changed: Document
        if isinstance(data, lead.LeadInteractionRecordedV1):
            interaction = {
                "interaction_id": data.interaction_id,
                "event_id": envelope.id,
                "channel": data.channel,
                "at": at,
                "answered": data.answered,
                "answers": seal_of(envelope),
            }
            changed = {**current, "interactions": [*current.get("interactions", []), interaction]}
        elif isinstance(data, lead.LeadScoredV2):
            # A criterion without its rule (a v1 event, upcast) is kept as v1 code kept it, so
            # a read model built before lead.scored v2 equals its rebuild.
            matched = [
                m.model_dump(exclude={"rule"} if m.rule is None else None) for m in data.matched
            ]
            score = {
                "value": data.score,
                "threshold": data.threshold,
                "qualified": data.qualified,
                "rules_version": data.rules_version,
                "matched": matched,
                "inputs": seal_of(envelope),
                "event_id": envelope.id,
                "at": at,
                "source": "rules",
            }
            changed = {**current, "score": score, "score_band": score_band(data.score)}
        else:
            assert isinstance(data, lead.LeadScoreReviewedV2)  # noqa: S101 (PERSONAL_LEAD_EVENTS)
            # Since v2 the reviewer is sealed with the reason; only a v1 event (upcast) brings
            # it in clear, kept as v1 code kept it (so a read model built before v2 equals its
            # rebuild) until an erasure strips it.
            review: dict[str, Any] = {
                "review_id": data.review_id,
                "previous_score": data.previous_score,
            }
            if data.legacy_reviewer is not None:
                review["reviewer"] = data.legacy_reviewer
            if data.reviewer_hash is not None:
                review["reviewer_hash"] = data.reviewer_hash
            review.update(reason=seal_of(envelope), at=at)
            score = {
                **current.get("score", {}),
                "value": data.new_score,
                "source": "review",
                "review": review,
            }
            changed = {**current, "score": score, "score_band": score_band(data.new_score)}
        changed["updated_at"] = at
        erased_at = changed.get("erased_at")
        return changed if erased_at is None else stripped(changed, erased_at)

    def rectified(
        self, docs: Docs, event: Event, subject_id: DocRef
    ) -> dict[DocRef, Document | None]:
        """Corrected contact details join every lead of the subject (R24)."""
        envelope = event.envelope
        entry = {
            "at": envelope.occurred_at,
            "fields": envelope.data["fields"],
            "sealed": seal_of(envelope),
        }
        changes: dict[DocRef, Document | None] = {}
        for ref in self.leads_of(docs, subject_id):
            current = docs[ref]
            if current is None or current.get("tenant_id") != envelope.tenant_id:
                continue
            changed = {
                **current,
                "rectifications": [*current.get("rectifications", []), entry],
                "updated_at": envelope.occurred_at,
            }
            erased_at = changed.get("erased_at")
            changes[ref] = changed if erased_at is None else stripped(changed, erased_at)
        return changes

    def erased(
        self, docs: Docs, event: Event, data: erasure.ErasureRequestedV1, subject_id: DocRef
    ) -> dict[DocRef, Document | None]:
        """Erasure: drop every personal field of the subject's leads (already unreadable once
        the keys are gone) and keep the non-personal facts (source, times, scores) for
        aggregates (R19). The subject is marked (``erased_at``, the latest erasure's time) even
        when nothing is known of it yet, so lead events handled after this are stripped as
        well; and it remembers which request the erasure answers (``erasure.overdue`` names
        only the erasure)."""
        envelope = event.envelope
        at = envelope.occurred_at
        subject = docs[subject_id] or {}
        marked: Document = {
            **subject,
            "tenant_id": envelope.tenant_id,
            "subject_id": envelope.subject_id,
            "erased_at": _later(subject.get("erased_at"), at),
        }
        if data.trigger.request_id is not None:
            requests = {**subject.get("erasure_requests", {})}
            requests[data.erasure_id] = data.trigger.request_id
            marked["erasure_requests"] = requests
        changes: dict[DocRef, Document | None] = {subject_id: marked}
        for ref in self.leads_of(docs, subject_id):
            current = docs[ref]
            if current is not None and current.get("tenant_id") == envelope.tenant_id:
                changes[ref] = stripped(current, at)
        return changes

    # -- subjects ----------------------------------------------------------------------
    @staticmethod
    def consent_fact(docs: Docs, event: Event, subject_id: DocRef) -> dict[DocRef, Document | None]:
        """Keep the consent facts the shared decision folds, and the suppression flag."""
        envelope, data = event.envelope, event.data
        subject = {**(docs[subject_id] or {}), "tenant_id": envelope.tenant_id}
        fact = fact_from_event(envelope.type, envelope.id, envelope.occurred_at, data.model_dump())
        if fact is not None:
            subject["facts"] = [*subject.get("facts", []), fact.to_document()]
        elif isinstance(data, consent.SuppressionAddedV1):
            subject.update(suppressed=True, suppressed_at=envelope.occurred_at)
        else:
            return {}
        return {subject_id: subject}

    # -- privacy requests --------------------------------------------------------------
    @staticmethod
    def request(current: Document | None, event: Event) -> Document:
        """What a request event, or the answer to a request, makes of the request."""
        envelope, data = event.envelope, event.data
        at = envelope.occurred_at
        request = {**(current or {}), "tenant_id": envelope.tenant_id}
        if isinstance(data, privacy.PrivacyRequestReceivedV1):
            request.update(
                subject_id=envelope.subject_id,
                type=data.request_type,
                received_at=at,
                deadline=data.deadline,
                verification=data.verification,
                subject_known=data.subject_known,
            )
            if current is None:  # a request answered before it was received keeps no status
                request["status"] = "received"
        elif isinstance(data, privacy.PrivacyRequestVerifiedV2):
            request.update(status="verified", verified_at=at)
        elif isinstance(data, privacy.PrivacyRequestCompletedV1):
            request.update(status="completed", completed_at=at, export_formats=data.formats)
        elif isinstance(data, erasure.ErasureOverdueV1):
            request.update(overdue_at=at, missing_receipts=list(data.missing_receipts))
        else:
            # A request carried out (erasure, rectification, restriction, objection): when,
            # and each service's receipt. ``status`` stays what the request events set; the
            # view reads ``completed_at`` first, so the answer counts whichever consumer group
            # is ahead.
            receipts: Sequence[erasure.Receipt] = getattr(data, "receipts", [])
            request.update(
                completed_at=at,
                completed_by=envelope.type,
                receipts=[
                    {"service": r.service, "actions": list(r.actions), "at": r.at} for r in receipts
                ],
            )
        return request
