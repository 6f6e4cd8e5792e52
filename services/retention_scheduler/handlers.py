"""retention-scheduler's handler: keep due times current from the events (R15-R18)."""

from __future__ import annotations

from contracts import EventEnvelope
from contracts.registry import EventRegistry
from services.common.publisher import EventPublisher
from services.common.receipts import send_erasure_receipt
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
        if envelope.type == "erasure.requested":
            await send_erasure_receipt(
                self.publisher,
                envelope,
                SERVICE,
                [f"retention schedules closed: {forgotten}"],
            )
