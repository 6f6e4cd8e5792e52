"""crm-sync's read models as a pure fold (no I/O: the batch pipeline loads and writes).

* ``crm_leads``: what crm-sync knows of each lead (personal data kept as the events'
  ciphertexts): contact, interactions, rectifications, score, whether it is qualified;
* ``crm_subjects``: the subject's consent facts and lead ids (the shared decision, R28), and
  ``erased`` once its erasure was handled.

Live, lead-, consent- and erasure-events arrive through separate consumer groups, so an erasure
may be handled before lead events published earlier (or before a later capture of the subject),
while a replay applies them in time order. So an erasure marks the subject (``erased``) as well
as stripping the leads it knows, and every lead event that brings personal data (a capture, an
interaction, a rectification) strips it again when the subject or lead is already erased: the
documents end the same in either order.
"""

from __future__ import annotations

from collections.abc import Mapping

from contracts.events import consent
from services.common.consent import CONSENT_EVENT_TYPES, fact_from_event
from services.common.crypto import seal_of
from services.common.pipeline import DocRef, Docs, Event
from services.common.store import Document

__all__ = [
    "LEADS",
    "LEAD_EVENTS_HANDLED",
    "SUBJECTS",
    "UPDATES",
    "CrmReadModel",
    "lead_ref",
    "leads_of",
    "subject_ref",
]

LEADS = "crm_leads"
SUBJECTS = "crm_subjects"
UPDATES = frozenset({"lead.interaction_recorded", "lead.scored", "lead.score_reviewed"})
"""Lead events that change what a qualified lead's CRM record shows."""
LEAD_EVENTS_HANDLED = frozenset({"lead.captured", "lead.qualified", "lead.rectified", *UPDATES})
REGAINED = (consent.RestrictionLiftedV1, consent.ConsentGrantedV1)
"""Consent events after which pushing may be allowed again: their reaction needs the leads."""


def subject_ref(tenant_id: str, subject_id: str) -> DocRef:
    return DocRef(SUBJECTS, f"{tenant_id}:{subject_id}")


def lead_ref(lead_id: str) -> DocRef:
    return DocRef(LEADS, lead_id)


def leads_of(docs: Docs, subject: DocRef) -> tuple[DocRef, ...]:
    """The subject's leads, once the subject is loaded."""
    if subject not in docs:
        return ()
    return tuple(lead_ref(lead_id) for lead_id in (docs[subject] or {}).get("lead_ids", []))


def stripped(document: Document) -> Document:
    """Only the non-personal facts of an erased lead."""
    return {**document, "contact": None, "interactions": [], "rectifications": [], "erased": True}


class CrmReadModel:
    """The :class:`~services.common.pipeline.ReadModel` of crm-sync."""

    def refs(self, event: Event, docs: Docs) -> tuple[DocRef, ...]:
        envelope = event.envelope
        subject = subject_ref(envelope.tenant_id, envelope.subject_id)
        if envelope.type in ("lead.captured", *UPDATES):
            return (subject, lead_ref(str(envelope.data["lead_id"])))
        if envelope.type == "lead.qualified":
            return (lead_ref(str(envelope.data["lead_id"])),)
        if envelope.type in ("lead.rectified", "erasure.requested") or isinstance(
            event.data, REGAINED
        ):
            return (subject, *leads_of(docs, subject))
        if envelope.type in CONSENT_EVENT_TYPES:
            return (subject,)
        return ()

    def apply(self, docs: Docs, event: Event) -> Mapping[DocRef, Document | None]:
        envelope = event.envelope
        data = envelope.data
        subject_id = subject_ref(envelope.tenant_id, envelope.subject_id)
        subject = docs.get(subject_id) or {}
        if envelope.type in ("lead.captured", "lead.qualified", *UPDATES):
            ref = lead_ref(str(data["lead_id"]))
            changes: dict[DocRef, Document | None] = {ref: self.lead_event(docs[ref], event)}
            if envelope.type == "lead.captured":
                lead_ids = list(subject.get("lead_ids", []))
                if data["lead_id"] not in lead_ids:
                    lead_ids.append(data["lead_id"])
                changes[subject_id] = {
                    **subject,
                    "tenant_id": envelope.tenant_id,
                    "lead_ids": lead_ids,
                }
                if subject.get("erased"):
                    # Captured after the subject's erasure was handled: stripped as it would.
                    changes[ref] = stripped(changes[ref] or {})
            return changes
        if envelope.type == "lead.rectified":
            entry = {"at": envelope.occurred_at, "sealed": seal_of(envelope)}
            rectified: dict[DocRef, Document | None] = {}
            for ref in leads_of(docs, subject_id):
                entries = self.more(docs[ref], "rectifications", entry)
                rectified[ref] = self.personal(
                    {**(docs[ref] or {}), "rectifications": entries}, event
                )
            return rectified
        if envelope.type == "erasure.requested":
            erased: dict[DocRef, Document | None] = {
                subject_id: {**subject, "tenant_id": envelope.tenant_id, "erased": True}
            }
            for ref in leads_of(docs, subject_id):
                if docs[ref] is not None:  # an erasure strips what exists, creates nothing
                    erased[ref] = stripped(docs[ref] or {})
            return erased
        fact = fact_from_event(envelope.type, envelope.id, envelope.occurred_at, data)
        if fact is None:
            return {}
        facts = [*subject.get("facts", []), fact.to_document()]
        return {subject_id: {**subject, "tenant_id": envelope.tenant_id, "facts": facts}}

    @staticmethod
    def more(document: Document | None, field: str, entry: Document) -> list[Document]:
        return [*(document or {}).get(field, []), entry]

    def lead_event(self, current: Document | None, event: Event) -> Document:
        envelope = event.envelope
        data = envelope.data
        lead = {**(current or {})}
        if envelope.type == "lead.captured":
            source = data["source"]
            lead.update(
                contact=seal_of(envelope),
                source=source["kind"]
                if source["kind"] == "web_form"
                else f"third_party:{source['provider']}",
            )
            if current is None:
                lead["qualified"] = False
        elif envelope.type == "lead.qualified":
            lead["qualified"] = True
        elif envelope.type == "lead.interaction_recorded":
            interaction = {
                "at": envelope.occurred_at,
                "channel": data["channel"],
                "answers": seal_of(envelope),
            }
            lead["interactions"] = self.more(current, "interactions", interaction)
            return self.personal(lead, event)
        else:  # lead.scored, lead.score_reviewed
            lead["score"] = int(data["score"] if "score" in data else data["new_score"])
        return self.stamped(lead, event)

    @staticmethod
    def stamped(lead: Document, event: Event) -> Document:
        envelope = event.envelope
        return {
            **lead,
            "tenant_id": envelope.tenant_id,
            "subject_id": envelope.subject_id,
            "updated_at": envelope.occurred_at,
        }

    def personal(self, lead: Document, event: Event) -> Document:
        """A change that brings personal data: an erased lead stays erased."""
        changed = self.stamped(lead, event)
        return stripped(changed) if changed.get("erased") else changed
