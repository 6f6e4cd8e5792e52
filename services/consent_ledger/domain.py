"""consent-ledger's read model as a pure fold: which documents an event touches, and what it
makes of them. No I/O here; the batch pipeline (:mod:`services.common.pipeline`) loads and
writes the documents, the handlers react to the result.

Two collections:

* ``consent_subjects``, one document per subject (``<tenant>:<subject>``): that the subject is
  known (``first_seen``), the full history of consent-ledger's own events with their proof
  (personal parts still encrypted, as in the events), the facts the consent decision folds
  (:mod:`services.common.consent`), the suppression flag and, after an erasure, ``erased``;
* ``consent_requests``, one document per privacy request: its type and purposes, which the
  ledger needs once the request is verified.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from contracts import REGISTRY
from contracts.events import privacy
from contracts.topics import CONSENT_EVENTS
from services.common.consent import fact_from_event
from services.common.crypto import seal_of
from services.common.pipeline import DocRef, Docs, Event
from services.common.store import Document, aware

__all__ = [
    "LEDGER_TYPES",
    "REQUESTS",
    "SUBJECTS",
    "ConsentLedger",
    "proofs_held",
    "request_ref",
    "subject_key",
    "subject_ref",
]

SUBJECTS = "consent_subjects"
REQUESTS = "consent_requests"
LEDGER_TYPES = frozenset(REGISTRY.types_on_topic(CONSENT_EVENTS.name))
"""consent-ledger's own events, recorded in the subject's history."""


def subject_key(tenant_id: str, subject_id: str) -> str:
    return f"{tenant_id}:{subject_id}"


def subject_ref(tenant_id: str, subject_id: str) -> DocRef:
    return DocRef(SUBJECTS, subject_key(tenant_id, subject_id))


def request_ref(request_id: str) -> DocRef:
    return DocRef(REQUESTS, request_id)


def proofs_held(document: Document | None) -> int:
    """How many history entries of a subject's document still hold a proof."""
    return sum(1 for entry in (document or {}).get("history", ()) if entry.get("proof"))


class ConsentLedger:
    """The :class:`~services.common.pipeline.ReadModel` of consent-ledger."""

    def refs(self, event: Event, docs: Docs | None = None) -> tuple[DocRef, ...]:
        envelope = event.envelope
        if envelope.type == "privacy.request.received":
            assert isinstance(event.data, privacy.PrivacyRequestReceivedV1)  # noqa: S101
            return (request_ref(event.data.request_id),)
        if envelope.type in ("lead.captured", "erasure.requested") or envelope.type in LEDGER_TYPES:
            return (subject_ref(envelope.tenant_id, envelope.subject_id),)
        return ()

    def apply(self, docs: Docs, event: Event) -> Mapping[DocRef, Document | None]:
        envelope = event.envelope
        (ref,) = self.refs(event) or (None,)
        if ref is None:
            return {}
        current = docs[ref]
        if envelope.type == "privacy.request.received":
            return {ref: self.request(current, event)}
        subject = {
            **(current or {}),
            "tenant_id": envelope.tenant_id,
            "subject_id": envelope.subject_id,
        }
        if envelope.type == "lead.captured":
            return {ref: self.known(subject, envelope.occurred_at)}
        if envelope.type == "erasure.requested":
            return {ref: self.erased(subject)}
        return {ref: self.recorded(subject, event)}

    @staticmethod
    def known(subject: Document, at: datetime) -> Document:
        """The subject exists for its tenant since the earliest event that said so."""
        first_seen = subject.get("first_seen")
        if first_seen is None or aware(at) < aware(first_seen):
            return {**subject, "first_seen": at}
        return subject

    @staticmethod
    def recorded(subject: Document, event: Event) -> Document:
        """One of consent-ledger's own events joins the subject's history (and facts).

        The live service reads each topic in its own consumer group, so an erasure may be
        handled before a consent event that was published earlier: after it, a recorded event
        keeps no proof, exactly as if the erasure had stripped it (a replay, which reads in
        time order, ends with the same document)."""
        envelope = event.envelope
        entry = {
            "event_id": envelope.id,
            "type": envelope.type,
            "version": envelope.version,
            "at": envelope.occurred_at,
            "data": envelope.data,
            "proof": None if subject.get("erased") else seal_of(envelope),
        }
        updated: dict[str, Any] = {**subject, "history": [*subject.get("history", ()), entry]}
        fact = fact_from_event(envelope.type, envelope.id, envelope.occurred_at, envelope.data)
        if fact is not None:
            updated["facts"] = [*subject.get("facts", ()), fact.to_document()]
        if envelope.type == "suppression.added":
            updated["suppressed"] = True
        return updated

    @staticmethod
    def erased(subject: Document) -> Document:
        """Erasure drops the encrypted personal parts of the proofs; the non-personal history
        (what was consented to, when, under which notice) stays as the audit trail. Marked
        erased even when nothing is known yet (the erasure was handled before the capture):
        what arrives later keeps no proof (see :meth:`recorded`)."""
        history = [{**entry, "proof": None} for entry in subject.get("history", ())]
        return {**subject, "erased": True, **({"history": history} if history else {})}

    @staticmethod
    def request(current: Document | None, event: Event) -> Document:
        data = event.envelope.data  # the JSON form, as the documents keep it
        return {
            **(current or {}),
            "tenant_id": event.envelope.tenant_id,
            "subject_id": event.envelope.subject_id,
            "type": data["request_type"],
            "purposes": list(data.get("purposes", [])),
        }
