"""retention-scheduler's handler: keep due times current from the events (R15-R18).

One subscription over every topic that moves a due date, so one subject's events are handled
in order by one consumer. A batch is folded into the schedules (:mod:`.domain`), then each event
is reacted to: a new policy re-derives the tenant's schedules of its category, a verified
access request gets retention's export part, an erasure its receipt; and the tick is told of
every open schedule (it may now be due before the tick's next wake-up).
"""

from __future__ import annotations

from collections.abc import Sequence

from contracts import EventEnvelope
from contracts.events import privacy
from contracts.registry import EventRegistry
from services.common.export_package import EXPORT_REQUEST_TYPES, send_export_part
from services.common.pipeline import Applied
from services.common.publisher import EventPublisher
from services.common.receipts import send_erasure_receipt
from services.retention_scheduler.domain import DUE
from services.retention_scheduler.export_part import export_part
from services.retention_scheduler.schedule import RetentionStore

__all__ = ["RetentionHandlers", "closed_schedules"]

SERVICE = "retention-scheduler"


def closed_schedules(applied: Applied) -> int:
    """How many open schedules an erasure closed."""
    return sum(
        1
        for ref, after in applied.after.items()
        if ref.collection == DUE
        and (applied.before[ref] or {}).get("state") == "scheduled"
        and (after or {}).get("state") == "erased"
    )


class RetentionHandlers:
    def __init__(
        self, registry: EventRegistry, publisher: EventPublisher, store: RetentionStore
    ) -> None:
        self.registry = registry
        self.publisher = publisher
        self.store = store

    async def on_events(self, envelopes: Sequence[EventEnvelope]) -> None:
        """Fold the batch into the read models, then react to each event in order."""
        events = [self.registry.decode(envelope) for envelope in envelopes]
        for applied in await self.store.folder.fold(events):
            await self.react(applied)

    async def react(self, applied: Applied) -> None:
        envelope, data = applied.event.envelope, applied.event.data
        for ref, document in applied.after.items():
            if ref.collection == DUE:
                self.store.scheduled(document)
        await self.store.follow_policy(applied.event)
        if isinstance(data, privacy.PrivacyRequestVerifiedV2):
            if data.request_type in EXPORT_REQUEST_TYPES:
                part = await export_part(self.store, envelope.tenant_id, envelope.subject_id)
                await send_export_part(self.publisher, envelope, part)
        elif envelope.type == "erasure.requested":
            await send_erasure_receipt(
                self.publisher,
                envelope,
                SERVICE,
                [f"retention schedules closed: {closed_schedules(applied)}"],
            )
