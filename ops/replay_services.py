"""What ``leadtrail replay`` rebuilds for each service, and what it never touches.

Per service: its *read models* (collections derived purely from events, rebuilt by the very
``apply`` method its live handlers call first), its *operational state* (collections that are
not derived from events: claims, queues, keys; never replayed, never dropped), and the topics,
consumer groups and event types its live subscriptions read: the service's own
``SUBSCRIPTIONS`` table, the one it registers live. ``docs/replay.md`` explains the split.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pymongo import ASCENDING

from contracts import REGISTRY, EventEnvelope
from contracts.topics import TopicSpec
from services.common.consumer import Subscription
from services.common.runtime import KEYRING_COLLECTION
from services.common.store import Collections
from services.consent_ledger.app import SUBSCRIPTIONS as CONSENT_LEDGER
from services.consent_ledger.projection import ConsentProjection
from services.crm_sync.app import SUBSCRIPTIONS as CRM_SYNC
from services.crm_sync.store import CrmStore
from services.erasure_propagator.app import SUBSCRIPTIONS as ERASURE_PROPAGATOR
from services.erasure_propagator.store import ErasureStore
from services.lead_ingest.app import SUBSCRIPTIONS as LEAD_INGEST
from services.lead_ingest.projection import LeadProjection
from services.retention_scheduler.app import SUBSCRIPTIONS as RETENTION_SCHEDULER
from services.retention_scheduler.schedule import RetentionStore

__all__ = ["SERVICES", "Projector", "ReadModelSpec"]

KEYS = (KEYRING_COLLECTION, "subjects' data keys: not in the event log, never replayed or dropped")


@dataclass(frozen=True)
class Projector:
    """The read-model side of a service over some collections: indexes, then batches of
    events folded in order (validated and upcast by the registry, as live)."""

    ensure_indexes: Callable[[], Awaitable[None]]
    apply_all: Callable[[Sequence[EventEnvelope]], Awaitable[None]]

    async def apply(self, envelope: EventEnvelope) -> None:
        """One event alone."""
        await self.apply_all([envelope])


@dataclass(frozen=True)
class ReadModelSpec:
    service: str
    read_models: tuple[str, ...]
    operational: tuple[tuple[str, str], ...]
    """(collection, why it is not rebuilt)."""
    subscriptions: tuple[Subscription[Any], ...]
    """The service's own ``SUBSCRIPTIONS`` table."""
    build: Callable[[Collections], Projector]

    @property
    def topics(self) -> list[TopicSpec]:
        seen: dict[str, TopicSpec] = {}
        for subscription in self.subscriptions:
            for topic in subscription.topics:
                seen.setdefault(topic.name, topic)
        return list(seen.values())

    def wanted(self, topic: str) -> frozenset[str]:
        """Event types of ``topic`` (logical name) this service handles."""
        return frozenset().union(*(s.wanted(REGISTRY, topic) for s in self.subscriptions))


def _lead_ingest(db: Collections) -> Projector:
    projection = LeadProjection(db)

    return Projector(projection.ensure_indexes, projection.apply_all)  # decodes, as live


def _consent_ledger(db: Collections) -> Projector:
    projection = ConsentProjection(db)

    return Projector(projection.ensure_indexes, projection.apply_all)  # decodes, as live


def _retention_scheduler(db: Collections) -> Projector:
    store = RetentionStore(db)
    return Projector(store.ensure_indexes, store.apply_all)  # decodes, as live


def _erasure_propagator(db: Collections) -> Projector:
    store = ErasureStore(db)

    async def ensure_indexes() -> None:
        # Only the read model's index: ErasureStore.ensure_indexes also indexes `erasures`,
        # which is process state and must not appear beside the rebuild.
        await store.holds.create_index([("tenant_id", ASCENDING), ("active", ASCENDING)])

    return Projector(ensure_indexes, store.apply_all)  # decodes, as live


def _crm_sync(db: Collections) -> Projector:
    store = CrmStore(db)

    async def ensure_indexes() -> None:
        """crm-sync's only index is on the outbox (operational state)."""

    return Projector(ensure_indexes, store.apply_all)  # decodes, as live


SERVICES: dict[str, ReadModelSpec] = {
    spec.service: spec
    for spec in (
        ReadModelSpec(
            service="lead-ingest",
            read_models=("leads", "subjects", "privacy_requests"),
            operational=(
                ("idempotency", "Idempotency-Key claims of API requests, not events"),
                (
                    "subject_index",
                    "keyed blind index written by the API before the event exists; "
                    "erasure deletes its entries",
                ),
                ("verification_tokens", "one-time tokens of privacy-request verification"),
                (
                    "exports",
                    "access packages assembled from the services' export parts, encrypted "
                    "under the subject's key: a delivery, not a read model",
                ),
                KEYS,
            ),
            subscriptions=LEAD_INGEST,
            build=_lead_ingest,
        ),
        ReadModelSpec(
            service="consent-ledger",
            read_models=("consent_subjects", "consent_requests"),
            operational=(KEYS,),
            subscriptions=CONSENT_LEDGER,
            build=_consent_ledger,
        ),
        ReadModelSpec(
            service="retention-scheduler",
            read_models=("retention_due", "retention_policies", "retention_holds"),
            operational=(
                ("retention_claims", "the tick's once-only claims on expiries it publishes"),
                KEYS,
            ),
            subscriptions=RETENTION_SCHEDULER,
            build=_retention_scheduler,
        ),
        ReadModelSpec(
            service="erasure-propagator",
            read_models=("erasure_requests", "erasure_holds"),
            operational=(
                (
                    "erasures",
                    "process state: keys destroyed, events sent, receipts, deadlines; its own "
                    "decisions, published but not consumed back",
                ),
                ("rectifications", "process state of rectifications, as for erasures"),
                KEYS,
            ),
            subscriptions=ERASURE_PROPAGATOR,
            build=_erasure_propagator,
        ),
        ReadModelSpec(
            service="crm-sync",
            read_models=("crm_leads", "crm_subjects"),
            operational=(
                ("crm_outbox", "CRM operations, attempts, deliveries and the CRMs' record ids"),
                ("crm_waits", "CRM calls an erasure or rectification waits for"),
                ("crm_recipients", "recipients announced to tenants"),
                KEYS,
            ),
            subscriptions=CRM_SYNC,
            build=_crm_sync,
        ),
    )
}
