"""The erasure-propagator service, declared once: see :mod:`services.common.declaration`."""

from __future__ import annotations

from collections.abc import Sequence

from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection

from contracts.topics import CONSENT_EVENTS, ERASURE_EVENTS, PRIVACY_EVENTS, RETENTION_EVENTS
from services.common.consumer import Subscription
from services.common.declaration import (
    KEYS,
    ExportSources,
    OperationalCollection,
    Projector,
    ServiceDeclaration,
)
from services.common.export_package import ExportPart
from services.common.store import Collections, Document
from services.erasure_propagator import export_part as export
from services.erasure_propagator.app import build
from services.erasure_propagator.handlers import ErasureHandlers
from services.erasure_propagator.settings import ErasureSettings
from services.erasure_propagator.store import ErasureStore

__all__ = ["DECLARATION", "erasures", "holds"]


def projector(db: Collections) -> Projector:
    store = ErasureStore(db)

    async def ensure_indexes() -> None:
        # Only the read model's index: ErasureStore.ensure_indexes also indexes `erasures`,
        # which is process state and must not appear beside the rebuild.
        await store.holds.create_index([("tenant_id", ASCENDING), ("active", ASCENDING)])

    return Projector(ensure_indexes, store.apply_all)  # decodes, as live


async def export_part(sources: ExportSources, tenant_id: str, subject_id: str) -> ExportPart:
    return await export.export_part(ErasureStore(sources.db), tenant_id, subject_id)


def holds(db: Collections) -> AsyncCollection[Document]:
    """The legal holds read model (``leadtrail holds`` lists it, ``hold-release`` checks it)."""
    return ErasureStore(db).holds


async def erasures(
    db: Collections, tenant_ids: Sequence[str] | None, *, states: Sequence[str] | None = None
) -> list[Document]:
    """The erasures it runs (of ``tenant_ids``, or of every tenant; in ``states``): ``state``,
    ``opened_at``, ``requested_at``, ``completed_at``, ``deadline``, ``expected`` services and
    ``receipts`` (service -> receipt), ``trigger`` (with the privacy request's id)."""
    query: Document = {} if tenant_ids is None else {"tenant_id": {"$in": list(tenant_ids)}}
    if states is not None:
        query["state"] = {"$in": list(states)}
    return await ErasureStore(db).erasures.find(query).to_list(None)


DECLARATION: ServiceDeclaration[ErasureSettings, ErasureHandlers] = ServiceDeclaration(
    name="erasure-propagator",
    package="services.erasure_propagator",
    title="Leadtrail erasure-propagator",
    settings=ErasureSettings,
    subscriptions=(
        Subscription(
            "erasure-propagator",
            (PRIVACY_EVENTS, RETENTION_EVENTS, CONSENT_EVENTS, ERASURE_EVENTS),
            handle_batch=ErasureHandlers.on_events,
            event_types=frozenset(
                {
                    "privacy.request.received",
                    "privacy.request.verified",
                    "retention.expired",
                    "retention.hold_placed",
                    "retention.hold_released",
                    "consent.no_basis_remaining",
                    "erasure.receipt",
                    "rectification.receipt",
                }
            ),
        ),
    ),
    read_models=("erasure_requests", "erasure_holds"),
    operational=(
        OperationalCollection(
            "erasures",
            "process state: keys destroyed, events sent, receipts, deadlines; its own "
            "decisions, published but not consumed back",
        ),
        OperationalCollection("rectifications", "process state of rectifications, as for erasures"),
        KEYS,
    ),
    build=build,
    projector=projector,
    export_part=export_part,
)
