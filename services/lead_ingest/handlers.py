"""lead-ingest's event handler: a batch is folded into the read models (:mod:`.domain`,
through the batch pipeline), then each event is reacted to, in order: interactions are scored,
qualifying scores qualify the lead, rectifications link the corrected identifiers, erasures
unlink the subject, receipts are sent, exports assembled.

Derived events (``lead.scored``, ``lead.qualified``) get a name-based id (UUIDv5) computed from
the event that caused them, so a redelivered cause republishes the *same* event id and every
consumer deduplicates it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from contracts import EventEnvelope
from contracts.events import consent, erasure, lead, privacy
from services.common.export_package import EXPORT_REQUEST_TYPES
from services.common.logging import get_logger
from services.common.pipeline import Applied
from services.common.publisher import derived_event_id
from services.common.purposes import TenantPurposes
from services.common.receipts import send_erasure_receipt, send_rectification_receipt
from services.common.runtime import Runtime
from services.common.store import Document
from services.lead_ingest.domain import (
    LEADS,
    RESCORING_CONSENT,
    consent_state,
    lead_ref,
    scoring_blocked,
    subject_ref,
)
from services.lead_ingest.export_assembly import ExportAssembler
from services.lead_ingest.linking import Kind, SubjectLinker
from services.lead_ingest.normalise import email_link_form
from services.lead_ingest.projection import LeadProjection
from services.lead_ingest.rules import Answer, score
from services.lead_ingest.tenant_rules import TenantRules

__all__ = ["LeadIngestHandlers", "consent_state", "scoring_blocked"]

log = get_logger(__name__)
SERVICE = "lead-ingest"


def _leads(applied: Applied, tenant_id: str) -> list[tuple[Document | None, Document]]:
    """The tenant's leads an event touched: (before, after) each."""
    return [
        (applied.before[ref], document)
        for ref, document in applied.after.items()
        if ref.collection == LEADS
        and document is not None
        and document.get("tenant_id") == tenant_id
    ]


class LeadIngestHandlers:
    def __init__(
        self,
        runtime: Runtime,
        projection: LeadProjection,
        rules: TenantRules,
        purposes: TenantPurposes,
        linker: SubjectLinker,
        *,
        exports: ExportAssembler,
    ) -> None:
        self.runtime = runtime
        self.projection = projection
        self.rules = rules
        self.purposes = purposes
        self.linker = linker
        self.exports = exports

    def blocked(self, tenant_id: str, subject: Document) -> str | None:
        return scoring_blocked(subject, self.purposes.for_tenant(tenant_id).bases())

    async def on_events(self, envelopes: Sequence[EventEnvelope]) -> None:
        """Fold the batch into the read models, then react to each event in order."""
        events = [self.runtime.registry.decode(envelope) for envelope in envelopes]
        for event in events:
            if event.envelope.type == "erasure.requested":
                self.runtime.keyring.forget_cached(
                    event.envelope.tenant_id, event.envelope.subject_id
                )
        applied_events = await self.projection.folder.fold(events)
        # The keys scoring decrypts answers with and encrypts its inputs under: one read.
        scored = [e.envelope for e in events if isinstance(e.data, lead.LeadInteractionRecordedV1)]
        await self.runtime.keyring.prefetch(
            [s.pii.key_id for s in scored if s.pii is not None],
            [(s.tenant_id, s.subject_id) for s in scored],
        )
        for applied in applied_events:
            await self.react(applied)

    async def react(self, applied: Applied) -> None:
        envelope, data = applied.event.envelope, applied.event.data
        subject = applied.after.get(subject_ref(envelope.tenant_id, envelope.subject_id)) or {}
        if isinstance(data, lead.LeadInteractionRecordedV1):
            document = applied.doc(lead_ref(data.lead_id))
            await self.rescore(envelope, document, subject, trigger="interaction")
        elif isinstance(data, lead.LeadScoredV2):
            if data.qualified:
                document = applied.doc(lead_ref(data.lead_id))
                await self.qualify(
                    envelope,
                    document,
                    subject,
                    points=data.score,
                    threshold=data.threshold,
                    by="rules",
                )
        elif isinstance(data, lead.LeadScoreReviewedV2):
            rules = self.rules.for_tenant(envelope.tenant_id)
            if rules is not None and data.new_score >= rules.threshold:
                document = applied.doc(lead_ref(data.lead_id))
                await self.qualify(
                    envelope,
                    document,
                    subject,
                    points=data.new_score,
                    threshold=rules.threshold,
                    by="review",
                )
        elif isinstance(data, erasure.LeadRectifiedV1):
            leads = _leads(applied, envelope.tenant_id)
            await self.on_rectified(envelope, sum(1 for old, new in leads if old is not new))
        elif isinstance(data, erasure.ErasureRequestedV1):
            await self.on_erased(envelope, len(_leads(applied, envelope.tenant_id)))
        elif isinstance(data, RESCORING_CONSENT):
            # Processing may have become allowed again: score what was held back.
            trigger: Literal["restriction_lifted", "rescore"] = (
                "restriction_lifted" if isinstance(data, consent.RestrictionLiftedV1) else "rescore"
            )
            for _, document in _leads(applied, envelope.tenant_id):
                await self.rescore(envelope, document, subject, trigger=trigger)
        elif isinstance(data, privacy.PrivacyRequestVerifiedV2):
            if data.request_type in EXPORT_REQUEST_TYPES:
                await self.exports.send_own_part(envelope)
        elif isinstance(data, privacy.ExportPartV1):
            # Assembling needs the subject's key and the other services' parts: a reaction,
            # not a read model a replay rebuilds (docs/replay.md).
            await self.exports.add_part(envelope, data)

    async def on_rectified(self, envelope: EventEnvelope, changed: int) -> None:
        corrections = await self.runtime.cipher.decrypt(envelope) or {}
        identifiers: dict[Kind, str] = {}
        if corrections.get("email"):
            identifiers["email"] = email_link_form(corrections["email"])
        if corrections.get("phone"):
            identifiers["phone"] = corrections["phone"]
        await self.linker.attach(envelope.tenant_id, envelope.subject_id, identifiers)
        await send_rectification_receipt(
            self.runtime.publisher,
            envelope,
            SERVICE,
            [f"lead records updated: {changed}", f"identifiers linked: {len(identifiers)}"],
        )

    async def on_erased(self, envelope: EventEnvelope, anonymised: int) -> None:
        unlinked = await self.linker.forget(envelope.tenant_id, envelope.subject_id)
        await send_erasure_receipt(
            self.runtime.publisher,
            envelope,
            SERVICE,
            [
                f"blind-index entries deleted: {unlinked}",
                f"lead records anonymised (non-personal facts kept for aggregates): {anonymised}",
            ],
        )

    async def answers(self, document: Document) -> dict[str, Answer] | None:
        """The lead's latest answer per question, or None when its key was destroyed."""
        merged: dict[str, Answer] = {}
        for interaction in sorted(document.get("interactions", []), key=lambda i: i["at"]):
            sealed = interaction.get("answers")
            if not sealed:
                return None  # stripped by an erasure
            plain = await self.open(document, sealed)
            if plain is None:
                return None
            merged.update(plain.get("answers", {}))
        return merged

    async def open(self, document: Document, sealed: dict[str, Any]) -> dict[str, Any] | None:
        return await self.runtime.cipher.open_sealed(document, sealed)

    async def rescore(
        self,
        cause: EventEnvelope,
        document: Document | None,
        subject: Document,
        *,
        trigger: Literal["interaction", "restriction_lifted", "rescore"],
    ) -> None:
        """Score the lead ``document`` (as the batch left it) again, unless that is paused."""
        if document is None or document.get("tenant_id") != cause.tenant_id:
            return  # not captured yet, or not this tenant's
        lead_id = str(document["_id"])
        if not document.get("interactions"):
            return  # nothing answered yet: nothing to score
        if document.get("erased_at") is not None:
            return  # erased: nothing may be derived from the person any more
        blocked = self.blocked(cause.tenant_id, subject)
        if blocked:
            log.info("scoring paused", lead_id=lead_id, reason=blocked)
            return
        if (document.get("score") or {}).get("source") == "review":
            log.info("score was set by a person; rules do not override it", lead_id=lead_id)
            return
        rules = self.rules.for_tenant(cause.tenant_id)
        answers = await self.answers(document)
        if rules is None or answers is None:
            return
        result = score(rules, answers)
        criteria = {criterion.id: criterion for criterion in rules.criteria}
        await self.runtime.publisher.publish(
            lead.LeadScoredV2(
                lead_id=lead_id,
                score=result.score,
                threshold=result.threshold,
                qualified=result.qualified,
                rules_version=result.rules_version,
                matched=[
                    lead.ScoredCriterionV2(
                        criterion_id=m.criterion_id,
                        answer=m.answer,
                        points=m.points,
                        rule=lead.CriterionRule(
                            op=criteria[m.criterion_id].op,
                            value=criteria[m.criterion_id].value,
                            description=criteria[m.criterion_id].description,
                        ),
                    )
                    for m in result.matches
                ],
                trigger=trigger,
            ),
            pii=lead.ScoreInputsV1(inputs={m.criterion_id: m.input for m in result.matches}),
            tenant_id=cause.tenant_id,
            subject_id=document["subject_id"],
            correlation_id=cause.correlation_id,
            causation_id=cause.id,
            event_id=derived_event_id(cause.id, f"lead.scored/{lead_id}"),
        )

    async def qualify(
        self,
        cause: EventEnvelope,
        document: Document | None,
        subject: Document,
        *,
        points: int,
        threshold: int,
        by: Literal["rules", "review"],
    ) -> None:
        """Publish the lead's one ``lead.qualified``, reserved for this cause first."""
        if document is None:
            return  # a score of a lead never captured here: nothing to qualify
        lead_id = str(document["_id"])
        event_id = derived_event_id(cause.id, f"lead.qualified/{lead_id}")
        holder = document.get("qualification_event_id")
        if holder is not None and holder != event_id:
            return  # already qualified by an earlier cause
        # Paused now: nothing to qualify, unless this very cause claimed the qualification
        # before and the process died before publishing it. That claim is finished, not left
        # to block every later qualification of the lead.
        if holder is None:
            if self.blocked(cause.tenant_id, subject):
                return
            if not await self.projection.claim_qualification(lead_id, event_id):
                return  # claimed meanwhile by another cause
        await self.runtime.publisher.publish(
            lead.LeadQualifiedV1(lead_id=lead_id, score=points, threshold=threshold, by=by),
            tenant_id=cause.tenant_id,
            subject_id=cause.subject_id,
            correlation_id=cause.correlation_id,
            causation_id=cause.id,
            event_id=event_id,
        )
