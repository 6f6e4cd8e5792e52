"""retention-scheduler's handler: keep due times current from the events (R15-R18)."""

from __future__ import annotations

from contracts import EventEnvelope
from contracts.events import privacy
from contracts.registry import EventRegistry
from services.common.export import EXPORT_REQUEST_TYPES, send_export_part
from services.common.publisher import EventPublisher
from services.common.receipts import send_erasure_receipt
from services.retention_scheduler.export import export_part
from services.retention_scheduler.schedule import ACTIVITY, CONSENT_CHANGES, RetentionStore

__all__ = ["ACTIVITY", "CONSENT_CHANGES", "RetentionHandlers"]

SERVICE = "retention-scheduler"


class RetentionHandlers:
    def __init__(
        self, registry: EventRegistry, publisher: EventPublisher, store: RetentionStore
    ) -> None:
        self.registry = registry
        self.publisher = publisher
        self.store = store

    async def on_event(self, envelope: EventEnvelope) -> None:
        """One subscription over every topic that moves a due date, so one subject's events are
        handled in order by one consumer. The read models first (all a replay runs), then the
        erasure receipt."""
        data = self.registry.decode(envelope).data
        forgotten = await self.store.apply(envelope, data)
        if isinstance(data, privacy.PrivacyRequestVerifiedV2):
            if data.request_type in EXPORT_REQUEST_TYPES:
                part = await export_part(self.store, envelope.tenant_id, envelope.subject_id)
                await send_export_part(self.publisher, envelope, part)
        elif envelope.type == "erasure.requested":
            await send_erasure_receipt(
                self.publisher,
                envelope,
                SERVICE,
                [f"retention schedules closed: {forgotten}"],
            )
