"""retention-scheduler's handlers: keep due times current from the events (R15-R18)."""

from __future__ import annotations

from contracts import EventEnvelope
from contracts.events import consent, lead, privacy, retention
from contracts.registry import EventRegistry
from services.common.export import EXPORT_REQUEST_TYPES, send_export_part
from services.common.publisher import EventPublisher
from services.common.receipts import send_erasure_receipt
from services.retention_scheduler.export import export_part
from services.retention_scheduler.schedule import RetentionStore

__all__ = ["RetentionHandlers"]

SERVICE = "retention-scheduler"
ACTIVITY = {"lead.interaction_recorded", "lead.score_reviewed", "lead.rectified"}
CONSENT_CHANGES = {"consent.granted", "consent.withdrawn"}


class RetentionHandlers:
    def __init__(
        self, registry: EventRegistry, publisher: EventPublisher, store: RetentionStore
    ) -> None:
        self.registry = registry
        self.publisher = publisher
        self.store = store

    async def on_event(self, envelope: EventEnvelope) -> None:
        """One subscription over every topic that moves a due date, so one subject's events are
        handled in order by one consumer."""
        data = self.registry.decode(envelope).data
        if isinstance(data, lead.LeadCapturedV1):
            category = "lead_data" if data.source.kind == "web_form" else "b2b_profile"
            await self.store.touch(envelope, category)
        elif envelope.type in ACTIVITY:
            await self.store.touch(envelope, "lead_data")
            if envelope.type == "lead.rectified":
                await self.store.touch(envelope, "b2b_profile", only_if_scheduled=True)
        elif isinstance(data, consent.ConsentGrantedV1):
            # Anchored at when the person gave it: consent-ledger derives grants from a capture
            # whenever it gets to it, and that lag must not move (or, on replay, differ) a date.
            await self.store.touch(envelope, "lead_data", only_if_scheduled=True, at=data.given_at)
        elif envelope.type in CONSENT_CHANGES:
            await self.store.touch(envelope, "lead_data", only_if_scheduled=True)
        elif isinstance(data, retention.RetentionPolicySetV1):
            await self.store.set_policy(envelope, data.category, data.period_days, data.anchor)
        elif isinstance(data, retention.RetentionHoldPlacedV1):
            await self.store.hold(envelope, data.hold_id, data.scope, active=True)
        elif isinstance(data, retention.RetentionHoldReleasedV1):
            await self.store.hold(envelope, data.hold_id, data.scope, active=False)
        elif isinstance(data, privacy.PrivacyRequestVerifiedV1):
            if data.request_type in EXPORT_REQUEST_TYPES:
                part = await export_part(self.store, envelope.tenant_id, envelope.subject_id)
                await send_export_part(self.publisher, envelope, part)
        elif envelope.type == "erasure.requested":
            forgotten = await self.store.forget_subject(envelope.tenant_id, envelope.subject_id)
            await send_erasure_receipt(
                self.publisher,
                envelope,
                SERVICE,
                [f"retention schedules closed: {forgotten}"],
            )
