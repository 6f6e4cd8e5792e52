"""consent-ledger's event handler: a batch is folded into the read model
(:mod:`.domain`, through the batch pipeline), then each event is reacted to, in order:

* ``lead.captured`` with consent claims -> one ``consent.granted`` per purpose, with the proof;
* verified privacy requests: access/portability -> its ``privacy.export_part``; restriction ->
  ``restriction.placed``; objection -> ``objection.recorded`` (and ``suppression.added`` for
  purposes that suppress, R13);
* ``consent.withdrawn``: the R12 check: when no purpose keeps a lawful basis,
  ``consent.no_basis_remaining`` tells erasure-propagator to erase;
* ``erasure.requested``: the subject's key leaves the cache, and a receipt says what was done.

Events derived from another event get an id derived from it (``publish_caused``), so a
redelivery republishes the same id; reactions run for a redelivered event too (the crash may
have come between the write and the publish).
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel

from contracts import EventEnvelope
from contracts.events import consent, lead, privacy
from services.common.consent import has_remaining_basis
from services.common.export_package import EXPORT_REQUEST_TYPES, send_export_part
from services.common.logging import get_logger
from services.common.pipeline import Applied
from services.common.purposes import TenantPurposes
from services.common.receipts import send_erasure_receipt
from services.common.runtime import Runtime
from services.consent_ledger.domain import proofs_held, subject_ref
from services.consent_ledger.export_part import export_part
from services.consent_ledger.projection import ConsentProjection

__all__ = ["ConsentHandlers"]

log = get_logger(__name__)
SERVICE = "consent-ledger"


class ConsentHandlers:
    def __init__(
        self, runtime: Runtime, projection: ConsentProjection, purposes: TenantPurposes
    ) -> None:
        self.runtime = runtime
        self.projection = projection
        self.purposes = purposes

    async def emit(
        self, cause: EventEnvelope, what: str, data: BaseModel, pii: BaseModel | None = None
    ) -> None:
        await self.runtime.publisher.publish_caused(cause, data, what=what, pii=pii)

    async def on_events(self, envelopes: Sequence[EventEnvelope]) -> None:
        """Fold the batch into the read model, then react to each event in order."""
        events = [self.runtime.registry.decode(envelope) for envelope in envelopes]
        applied_events = await self.projection.folder.fold(events)
        # The keys the grants decrypt the proof with and encrypt it under: one read.
        captures = [e.envelope for e in events if isinstance(e.data, lead.LeadCapturedV1)]
        await self.runtime.keyring.prefetch(
            [c.pii.key_id for c in captures if c.pii is not None],
            [(c.tenant_id, c.subject_id) for c in captures],
        )
        for applied in applied_events:
            await self.react(applied)

    async def react(self, applied: Applied) -> None:
        envelope, data = applied.event.envelope, applied.event.data
        if isinstance(data, lead.LeadCapturedV1):
            await self.grant_claimed(envelope, data)
        elif isinstance(data, privacy.PrivacyRequestVerifiedV2):
            await self.act_on_verified(envelope, data)
        elif isinstance(data, consent.ConsentWithdrawnV1):
            await self.check_remaining_basis(applied)
        elif envelope.type == "erasure.requested":
            await self.erased(applied)

    async def grant_claimed(self, envelope: EventEnvelope, data: lead.LeadCapturedV1) -> None:
        if data.consent is None:
            return
        contact = await self.runtime.cipher.decrypt(envelope)
        if contact is None:
            # The person was erased meanwhile (a redelivery or a replay): the grants were
            # recorded with the same ids before, and nothing personal may be written again.
            return
        proof = consent.ConsentProofV1(
            ip_prefix=contact.get("ip_prefix"), user_agent=contact.get("user_agent")
        )
        claims = data.consent
        for purpose in claims.purposes:
            await self.emit(
                envelope,
                f"consent.granted/{purpose}",
                consent.ConsentGrantedV1(
                    purpose=purpose,
                    channel=claims.channel,
                    notice_version=claims.notice_version,
                    notice_sha256=claims.notice_sha256,
                    given_at=claims.given_at,
                    collection_point=claims.collection_point
                    or (data.source.url if data.source.kind == "web_form" else None),
                    origin="lead_capture",
                    lead_id=data.lead_id,
                ),
                proof,
            )

    async def act_on_verified(
        self, envelope: EventEnvelope, data: privacy.PrivacyRequestVerifiedV2
    ) -> None:
        if data.request_type in EXPORT_REQUEST_TYPES:
            part = await export_part(
                self.projection,
                self.purposes.for_tenant(envelope.tenant_id),
                self.runtime.cipher,
                envelope.tenant_id,
                envelope.subject_id,
            )
            await send_export_part(self.runtime.publisher, envelope, part)
        elif data.request_type == "restriction":
            await self.emit(
                envelope,
                "restriction.placed",
                consent.RestrictionPlacedV1(origin="privacy_request", request_id=data.request_id),
            )
        elif data.request_type == "objection":
            request = await self.projection.request(envelope.tenant_id, data.request_id)
            purposes = list((request or {}).get("purposes", []))
            if not purposes:
                raise LookupError(f"objection {data.request_id} verified before it was received")
            await self.emit(
                envelope,
                "objection.recorded",
                consent.ObjectionRecordedV1(
                    purposes=purposes, origin="privacy_request", request_id=data.request_id
                ),
            )
            declared = self.purposes.for_tenant(envelope.tenant_id).purposes
            if any(declared.get(p) and declared[p].suppresses for p in purposes):
                await self.emit(
                    envelope,
                    "suppression.added",
                    consent.SuppressionAddedV1(
                        origin="privacy_request", reason="objection", request_id=data.request_id
                    ),
                )

    async def check_remaining_basis(self, applied: Applied) -> None:
        envelope = applied.event.envelope
        document = applied.doc(subject_ref(envelope.tenant_id, envelope.subject_id))
        bases = self.purposes.for_tenant(envelope.tenant_id).bases()
        if has_remaining_basis(self.projection.state(document), bases):
            return
        log.info("no lawful basis remains; asking for erasure", subject_id=envelope.subject_id)
        await self.emit(
            envelope,
            "consent.no_basis_remaining",
            consent.NoBasisRemainingV1(
                withdrawn_purpose=envelope.data["purpose"], cause_event_id=envelope.id
            ),
        )

    async def erased(self, applied: Applied) -> None:
        envelope = applied.event.envelope
        self.runtime.keyring.forget_cached(envelope.tenant_id, envelope.subject_id)
        dropped = proofs_held(applied.before[subject_ref(envelope.tenant_id, envelope.subject_id)])
        await send_erasure_receipt(
            self.runtime.publisher,
            envelope,
            SERVICE,
            [f"consent proofs stripped of personal data: {dropped}", "consent history kept"],
        )
